import type { Event } from '@sluice/contracts';

const DAY = 86_400_000;

/**
 * `n` events spread over 2 regions, 2 event days, 7 devices, telemetry and (every 9th) detections,
 * with attributes; deterministic from `prefix`. Events of one batch share a region (as the gateway
 * publishes them).
 */
export function sampleBatches(
  prefix: string,
  batches: number,
  perBatch: number,
  base = Date.UTC(2026, 10, 1, 6),
): Array<{ region: string; events: Event[] }> {
  const out: Array<{ region: string; events: Event[] }> = [];
  for (let b = 0; b < batches; b++) {
    const region = b % 3 === 0 ? 'us-east' : 'eu-west';
    const events: Event[] = [];
    for (let i = 0; i < perBatch; i++) {
      const n = b * perBatch + i;
      const id = `${prefix}-${n}`;
      const t = new Date(base + (n % 2) * DAY + n * 1_000 + (n % 5) * 17);
      const device = `dev-${(n * 7) % 11}`;
      if (n % 9 === 4) {
        events.push({
          kind: {
            $case: 'detection',
            value: {
              eventId: id,
              deviceId: `cam-${n % 3}`,
              streamId: `cam-${n % 2}`,
              frameTime: t,
              region,
              schemaVersion: 2,
              detections:
                n % 2
                  ? []
                  : [
                      {
                        objectId: `o${n}`,
                        classId: n % 5,
                        label: 'person',
                        confidence: 0.5 + (n % 50) / 100,
                        trackerId: String(1844674407370955 + n),
                        bbox: n % 4 ? { left: 0.1, top: 0.2, width: 0.3, height: 0.25 } : undefined,
                      },
                    ],
              attributes: n % 3 ? { lens: 'wide' } : {},
              firmwareVersion: n % 2 ? '' : '4.0.1',
            },
          },
        });
      } else {
        events.push({
          kind: {
            $case: 'telemetry',
            value: {
              eventId: id,
              deviceId: device,
              eventTime: t,
              sensorType: n % 2 ? 'engine_temp' : 'oil_pressure',
              value: Math.round(n * 13.37) / 10,
              unit: n % 2 ? 'celsius' : 'kPa',
              firmwareVersion: `1.${n % 4}.0`,
              region,
              schemaVersion: n % 2 ? 1 : 2,
              attributes: n % 4 === 0 ? {} : { site: `plant-${n % 3}`, 'line no': String(n % 5) },
            },
          },
        });
      }
    }
    out.push({ region, events });
  }
  return out;
}
