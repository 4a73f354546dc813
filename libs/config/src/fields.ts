import { z } from 'zod';
import { mongoTlsProblems, parsePgTls } from './tls';

/** A TCP port, 0 (pick a free one) to 65535. */
export const port = (fallback: number) =>
  z.coerce
    .number()
    .int()
    .min(0, 'must be a port number 0-65535')
    .max(65535, 'must be a port number 0-65535')
    .default(fallback);

/** A positive integer, e.g. a count or a size in bytes. */
export const positiveInt = (fallback: number) =>
  z.coerce
    .number()
    .int('must be a whole number')
    .positive('must be greater than 0')
    .default(fallback);

/** A duration in milliseconds, written as a number of ms or with a unit: `250ms`, `5s`, `2m`, `1h`, `7d`. */
export const durationMs = (fallback: string | number) =>
  z
    .union([z.string(), z.number()])
    .default(fallback)
    .transform((raw, ctx) => {
      const ms = parseDurationMs(raw);
      if (ms === undefined) {
        ctx.addIssue({
          code: 'custom',
          message: `must be a duration like 500ms, 5s, 2m, 1h or 7d, got "${raw}"`,
        });
        return z.NEVER;
      }
      return ms;
    });

/** `true/false/1/0/yes/no`. */
export const bool = (fallback: boolean) =>
  z
    .union([z.boolean(), z.string()])
    .default(fallback)
    .transform((raw, ctx) => {
      if (typeof raw === 'boolean') return raw;
      const v = raw.toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(v)) return true;
      if (['false', '0', 'no', 'off'].includes(v)) return false;
      ctx.addIssue({ code: 'custom', message: `must be true or false, got "${raw}"` });
      return z.NEVER;
    });

/** A comma-separated list of non-empty items. */
export const csv = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((raw) =>
      raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0),
    );

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `500`, `500ms`, `5s`, `1.5m`, `2h`, `7d` into milliseconds; `undefined` when unreadable. */
export function parseDurationMs(raw: string | number): number | undefined {
  if (typeof raw === 'number') return Number.isFinite(raw) && raw >= 0 ? raw : undefined;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(raw.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * UNITS[m[2] ?? 'ms']!);
}

// The shared infrastructure URLs: named once (`PG_URL`, `REDIS_URL`, `MONGO_URL`, like `NATS_URL`),
// read by every service that uses that system, validated the same way everywhere.

/**
 * A PostgreSQL connection URL. Default `postgres://postgres@127.0.0.1:5432/sluice`. TLS by libpq's
 * parameters, checked here: `sslmode` (`disable` by default, `require`, `verify-ca`, `verify-full`),
 * `sslrootcert`, `sslcert`, `sslkey` (PEM files that must be readable).
 */
export const pgUrl = () =>
  z
    .string()
    .regex(
      /^postgres(ql)?:\/\/\S+$/,
      'must be a postgres:// URL, e.g. postgres://user@host:5432/db',
    )
    .superRefine((url, ctx) => {
      const tls = parsePgTls(url);
      if ('problems' in tls)
        for (const message of tls.problems) ctx.addIssue({ code: 'custom', message });
    })
    .default('postgres://postgres@127.0.0.1:5432/sluice');

/** A Redis URL. Default `redis://127.0.0.1:6379`. */
export const redisUrl = () =>
  z
    .string()
    .regex(/^rediss?:\/\/\S+$/, 'must be redis://host:port or rediss://host:port')
    .default('redis://127.0.0.1:6379');

/**
 * A MongoDB connection URL. Default `mongodb://127.0.0.1:27017`. TLS by the driver's parameters:
 * `tls=true`, `tlsCAFile` and `tlsCertificateKeyFile` (PEM files, checked readable here).
 */
export const mongoUrl = () =>
  z
    .string()
    .regex(/^mongodb(\+srv)?:\/\/\S+$/, 'must be a mongodb:// or mongodb+srv:// URL')
    .superRefine((url, ctx) => {
      for (const message of mongoTlsProblems(url)) ctx.addIssue({ code: 'custom', message });
    })
    .default('mongodb://127.0.0.1:27017');
