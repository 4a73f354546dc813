// Fleet alerts (silence, recovery, anomaly) raised by the watch service: their subjects, stream and
// JSON payload. JSON with a zod schema, as the dispatcher's delivery messages are: small, low-rate
// messages read by Sluice services and operators (`nats sub`), not by devices.
import { z } from 'zod';
import { assertNameToken, type StreamSpec } from './subjects';

/** What an alert reports. `recovery` closes a `silence` episode. */
export const ALERT_KINDS = ['silence', 'recovery', 'anomaly'] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

const iso = z.string().datetime({ offset: true });

export const alertSchema = z
  .object({
    v: z.literal(1),
    /** Deterministic: the same (kind, device, sensor, rule, episode start) always has this id. */
    id: z.string().min(1).max(128),
    kind: z.enum(ALERT_KINDS),
    region: z.string().min(1),
    deviceId: z.string().min(1),
    /** The sensor of the series; `''` when the alert is about the whole device. */
    sensorType: z.string(),
    /** The rule that fired, e.g. `silence` or `anomaly:1m`. */
    rule: z.string().min(1),
    /** Start of the episode the alert belongs to (silence: the last arrival before it; anomaly: the window start). */
    episodeStart: iso,
    /** When the alert was raised. */
    raisedAt: iso,
    /** Kind-specific facts: thresholds and times (silence), value, baseline and score (anomaly). */
    details: z.record(z.string(), z.unknown()),
  })
  .strict();
export type Alert = z.infer<typeof alertSchema>;

/** Thrown by {@link decodeAlert} for bytes that are not an alert (the consumer dead-letters them). */
export class InvalidAlertError extends Error {
  override readonly name = 'InvalidAlertError';
}

export const CONTENT_TYPE_ALERT = 'application/json; sluice=alert.v1';

export function encodeAlert(a: Alert): Uint8Array {
  return Buffer.from(JSON.stringify(a), 'utf8');
}

export function decodeAlert(data: Uint8Array): Alert {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(data).toString('utf8'));
  } catch (err) {
    throw new InvalidAlertError(`not JSON: ${(err as Error).message}`);
  }
  const parsed = alertSchema.safeParse(json);
  if (!parsed.success) throw new InvalidAlertError(`not an alert: ${parsed.error.message}`);
  return parsed.data;
}

/** Alert subjects and stream of one namespace (`''` = canonical), named by the rules of `topology()`. */
export interface AlertsTopology {
  /** Stream `ALERTS`, subjects `alerts.>`; `<NS>_ALERTS`, `<ns>.alerts.>` in a namespace. */
  stream: StreamSpec & { readonly maxAgeMs: number; readonly duplicateWindowMs: number };
  /** `alerts.<region>.<kind>`. */
  subject(region: string, kind: AlertKind): string;
  /** Every alert subject, or one region's (`alerts.<region>.>`). */
  filter(region?: string): string;
}

/** Alerts are kept a week; a re-raise within the duplicate window (1 h) is dropped by the server. */
export const ALERTS_MAX_AGE_MS = 7 * 24 * 3600_000;
export const ALERTS_DUPLICATE_WINDOW_MS = 3600_000;

export function alertsTopology(namespace = ''): AlertsTopology {
  if (namespace !== '') assertNameToken(namespace, 'token');
  const subj = (s: string) => (namespace ? `${namespace}.${s}` : s);
  const name = namespace ? `${namespace.toUpperCase().replace(/-/g, '_')}_ALERTS` : 'ALERTS';
  return {
    stream: {
      name,
      subjects: [subj('alerts.>')],
      maxAgeMs: ALERTS_MAX_AGE_MS,
      duplicateWindowMs: ALERTS_DUPLICATE_WINDOW_MS,
    },
    subject(region, kind) {
      assertNameToken(region, 'region');
      return subj(`alerts.${region}.${kind}`);
    },
    filter(region) {
      if (region === undefined) return subj('alerts.>');
      assertNameToken(region, 'region');
      return subj(`alerts.${region}.>`);
    },
  };
}
