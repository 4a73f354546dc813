import { z } from 'zod';
import { bool, port } from './fields';
import { pemFile } from './tls';

const DEV_HASH_KEY = 'sluice-development-only-key';

/** Variables every service reads: NATS, logging, tracing, the ops HTTP port and the device-id hash key. */
export const commonEnv = {
  /** NATS servers, comma-separated. Default `nats://127.0.0.1:4222`. */
  NATS_URL: z
    .string()
    .default('nats://127.0.0.1:4222')
    .refine(
      (v) => v.split(',').every((u) => /^(nats|tls|wss?):\/\/[^\s]+$/.test(u.trim())),
      'must be nats://host:port (comma-separated for several)',
    ),
  /** Path to a NATS credentials file (user JWT + NKey seed); unset for none. */
  NATS_CREDS: z.string().optional(),
  /**
   * Path to a file holding a NATS user's NKey seed (`SU...`), as `sluice nats-auth` writes them; unset
   * for none. At most one of NATS_CREDS, NATS_NKEY_SEED_FILE, NATS_USER and NATS_TOKEN.
   */
  NATS_NKEY_SEED_FILE: z.string().optional(),
  /** NATS user name (with NATS_PASSWORD); unset for none. */
  NATS_USER: z.string().optional(),
  /** Password of NATS_USER; unset for none. */
  NATS_PASSWORD: z.string().optional(),
  /** NATS authentication token; unset for none. */
  NATS_TOKEN: z.string().optional(),
  /**
   * PEM file of the CA that signed the NATS servers' certificates; setting it (or NATS_TLS_CERT, or a
   * `tls://` NATS_URL) makes the connection TLS. Unset: plaintext, or the system's CAs with `tls://`.
   */
  NATS_TLS_CA: pemFile(),
  /** PEM client certificate for NATS servers that require one (mTLS), with NATS_TLS_KEY. Default unset. */
  NATS_TLS_CERT: pemFile(),
  /** PEM private key of NATS_TLS_CERT. Default unset. */
  NATS_TLS_KEY: pemFile(),
  /**
   * Prefix of the connection's reply subjects (`<prefix>.<id>`). A user of `sluice nats-auth` may
   * subscribe only to its own prefix (`_INBOX.<user>.<namespace or _>`), so no other user can read its
   * replies or pulled messages. Default `_INBOX`.
   */
  NATS_INBOX_PREFIX: z
    .string()
    .refine(
      (v) => v.split('.').every((t) => t !== '' && !/[\s*>]/.test(t)),
      'must be subject tokens without wildcards or whitespace, like _INBOX.mongo-capture._',
    )
    .default('_INBOX'),
  /**
   * `false`: the service only binds to its streams and consumers and fails to start, naming the
   * missing one, when one does not exist; for a NATS user without the right to create them (`sluice
   * nats-auth`), whose streams and consumers an admin provisions (`sluice nats-auth provision`).
   * Default `true`: each service creates what it needs (as the service-specific switches such as
   * DEDUPE_PROVISION allow).
   */
  NATS_PROVISION: bool(true),
  /** pino level. Default `info`. */
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /**
   * OTLP/HTTP collector base URL (e.g. `http://jaeger:4318`); spans are sent to `<url>/v1/traces`.
   * Unset: no export, but spans are still created, so trace ids reach logs and NATS headers.
   */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url('must be a URL like http://jaeger:4318').optional(),
  /**
   * `otlp` exports OpenTelemetry metrics over OTLP (endpoint and protocol from the standard
   * `OTEL_EXPORTER_OTLP_*` variables). Default `none`, unlike the SDK's `otlp`: Sluice's metrics are
   * Prometheus, on `/metrics`.
   */
  OTEL_METRICS_EXPORTER: z.enum(['none', 'otlp']).default('none'),
  /** `otlp` exports OpenTelemetry log records over OTLP. Default `none`: logs are JSON lines on stdout. */
  OTEL_LOGS_EXPORTER: z.enum(['none', 'otlp']).default('none'),
  /** Turns the OpenTelemetry SDK off entirely. Default `false`. */
  OTEL_SDK_DISABLED: bool(false),
  /** Port of `/healthz`, `/readyz`, `/metrics`. Default 9400. */
  OPS_PORT: port(9400),
  /** Bind address of the ops server. Default `0.0.0.0`. */
  OPS_HOST: z.string().default('0.0.0.0'),
  /**
   * Key of the keyed hash applied to device ids before they are logged. Required in production; the
   * development default is public and only keeps ids out of logs, it does not keep them secret.
   */
  DEVICE_ID_HASH_KEY: z.string().min(16, 'must be at least 16 characters').default(DEV_HASH_KEY),
  /**
   * Prefix of every stream and subject (`<ns>.telemetry.raw.<region>`, stream `<NS>_TELEMETRY_RAW`), so
   * several installations share one NATS account. Default none (the canonical names).
   */
  SLUICE_NAMESPACE: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be lowercase letters, digits, _ or - (at most 64)')
    .optional(),
  /**
   * The region whose deployment this process belongs to (a name like `eu-west`, as in
   * SLUICE_NAMESPACE). Set: the clean stream is `<NS>_TELEMETRY_<REGION>` capturing only
   * `<ns>.telemetry.clean.<region>`, the roll-up stream `<NS>_ROLLUPS_<REGION>` only that region's
   * roll-ups, both placed by SLUICE_REGION_PLACEMENT, and every consumer binds to its region's streams
   * only. Default unset: one clean and one roll-up stream for every region (docs/OPERATIONS.md, NATS
   * cluster).
   */
  SLUICE_REGION: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be lowercase letters, digits, _ or - (at most 64)')
    .optional(),
  /**
   * Server tags the regional streams of SLUICE_REGION are placed on, `|`-separated (the tag syntax of
   * INGEST_PLACEMENT, e.g. `region:eu-west|zone:a`): their replicas go only to servers carrying every
   * tag. `none`: no placement (one server, or servers without tags). Needs SLUICE_REGION. Default
   * `region:<SLUICE_REGION>`.
   */
  SLUICE_REGION_PLACEMENT: z
    .string()
    .refine(
      (v) => v === 'none' || v.split('|').every((t) => /^[^\s,|]+$/.test(t.trim())),
      'must be server tags separated by | (like region:eu-west|zone:a), or none',
    )
    .optional(),
  /** `production` makes the development defaults of secrets an error. Default `development`. */
  SLUICE_ENV: z.enum(['development', 'test', 'production']).default('development'),
};

/** A service's schema: the common variables plus its own, with the production checks applied. */
export function defineConfig<T extends z.ZodRawShape>(own: T) {
  return z.object({ ...commonEnv, ...own }).superRefine((cfg, ctx) => {
    const common = cfg as unknown as CommonConfig;
    const auth = (['NATS_CREDS', 'NATS_NKEY_SEED_FILE', 'NATS_USER', 'NATS_TOKEN'] as const).filter(
      (k) => common[k] !== undefined,
    );
    if (auth.length > 1) {
      ctx.addIssue({
        code: 'custom',
        path: [auth[1]!],
        message: `cannot be combined with ${auth[0]}: set one way of authenticating to NATS`,
      });
    }
    if ((common.NATS_USER === undefined) !== (common.NATS_PASSWORD === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [common.NATS_USER === undefined ? 'NATS_USER' : 'NATS_PASSWORD'],
        message: 'is required with NATS_USER/NATS_PASSWORD: set both or neither',
      });
    }
    if (common.SLUICE_REGION_PLACEMENT !== undefined && common.SLUICE_REGION === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['SLUICE_REGION_PLACEMENT'],
        message: 'needs SLUICE_REGION (the region whose streams it places)',
      });
    }
    if (common.SLUICE_ENV === 'production' && common.DEVICE_ID_HASH_KEY === DEV_HASH_KEY) {
      ctx.addIssue({
        code: 'custom',
        path: ['DEVICE_ID_HASH_KEY'],
        message: 'must be set to a secret in production',
      });
    }
  });
}

export const commonSchema = defineConfig({});
/** The parsed common variables every service config contains. */
export type CommonConfig = z.infer<z.ZodObject<typeof commonEnv>>;

/** The regional deployment a process belongs to: see SLUICE_REGION. */
export interface RegionalDeploymentConfig {
  region: string;
  /** Empty for `SLUICE_REGION_PLACEMENT=none`. */
  placementTags: string[];
}

/**
 * SLUICE_REGION and its placement tags (SLUICE_REGION_PLACEMENT, default `region:<SLUICE_REGION>`),
 * as `topology()` of @sluice/contracts takes them; undefined without SLUICE_REGION.
 */
export function regionalDeploymentOf(
  config: Pick<CommonConfig, 'SLUICE_REGION' | 'SLUICE_REGION_PLACEMENT'>,
): RegionalDeploymentConfig | undefined {
  const region = config.SLUICE_REGION;
  if (region === undefined) return undefined;
  const raw = config.SLUICE_REGION_PLACEMENT ?? `region:${region}`;
  return {
    region,
    placementTags:
      raw === 'none'
        ? []
        : raw
            .split('|')
            .map((t) => t.trim())
            .filter(Boolean),
  };
}
