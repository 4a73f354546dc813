import { parseArgs } from 'node:util';
import { z } from '@sluice/config';
import { NAME_TOKEN_PATTERN } from '@sluice/contracts';
import type { StoreSettings } from '@sluice/archive';
import { UsageError } from '../errors';

export const REPLAY_USAGE = `usage: sluice replay --target <name> --from <time> --to <time> [options]

Re-publishes archived events, with their original event ids and provenance, to one consumer's
replay subject (replay.<target>.<region>). Targets are the consumers that listen there, e.g.
mongo-capture (rebuild the owner's MongoDB) or aggregator (rebuild the roll-ups of the range).

selection
  --target <name>         consumer to replay into (required; see the REPLAY stream's consumers)
  --from <time>           start of the event-time range, inclusive (ISO 8601, or a duration ago: 2h)
  --to <time>             end of the range, exclusive (ISO 8601, a duration ago, or now)
  --region <r,...>        only these regions
  --device <id,...>       only these device ids (not with --target aggregator)
  --sensor <type,...>     only telemetry of these sensor types (not with --target aggregator)
  --dataset <name>        telemetry or detections (default both; the aggregator takes telemetry)

archive
  --archive <where>       folder, file:///folder or s3://bucket[/prefix] (default tmp/archive)
  --s3-endpoint <url>     S3-compatible endpoint, e.g. http://127.0.0.1:8333 (credentials: AWS chain)
  --s3-region <region>    signing region (default us-east-1)
  --s3-path-style         path-style requests (most self-hosted servers)

run
  --rate <events/s>       publish at most this many events per second (default unlimited)
  --in-flight <n>         unacknowledged publishes at once (default 256)
  --id <name>             replay id (default generated); names the checkpoint
  --checkpoint <file>     progress file (default tmp/replay/<id>.json)
  --resume <file>         continue the replay a checkpoint describes (its selection and target)
  --wait <seconds>        aggregator: how long to wait for the rebuild to commit (default 300)
  --dry-run               read the selection and report counts and bytes; publish nothing
  --json                  print the summary as one JSON object
  --help`;

const list = z
  .string()
  .transform((v) =>
    v
      .split(',')
      .map((x) => x.trim())
      .filter((x) => x !== ''),
  )
  .refine((v) => v.length > 0, 'must list at least one value')
  .refine((v) => v.length <= 10_000, 'lists at most 10000 values');

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** An absolute time: ISO 8601 (a date alone is midnight UTC), `now`, or a duration ago (`90m`, `2d`). */
export function parseTime(flag: string, value: string, now: number): number {
  const v = value.trim();
  if (v === 'now') return now;
  const ago = /^(\d{1,9})(s|m|h|d)$/.exec(v);
  if (ago) return now - Number(ago[1]) * UNITS[ago[2]!]!;
  if (/^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(v)) {
    const iso = /^\d{4}-\d{2}-\d{2}$/.test(v) ? `${v}T00:00:00Z` : v;
    const t = Date.parse(/(Z|[+-]\d{2}:?\d{2})$/.test(iso) ? iso : `${iso}Z`);
    if (Number.isFinite(t)) return t;
  }
  throw new UsageError(
    `${flag} ${JSON.stringify(value)} is not a time: use ISO 8601 (2026-11-29T10:00:00Z), now, or a duration ago (30m, 2h, 7d)`,
    REPLAY_USAGE,
  );
}

const token = (what: string) =>
  z.string().regex(NAME_TOKEN_PATTERN, `must be a ${what}: lowercase letters, digits, _ or -`);

const flagsSchema = z
  .object({
    target: token('consumer name').optional(),
    from: z.string().optional(),
    to: z.string().optional(),
    region: list.pipe(z.array(token('region'))).optional(),
    device: list.optional(),
    sensor: list.optional(),
    dataset: z.enum(['telemetry', 'detections']).optional(),
    archive: z.string().min(1).default('tmp/archive'),
    's3-endpoint': z.url('must be a URL like http://127.0.0.1:8333').optional(),
    's3-region': z.string().min(1).default('us-east-1'),
    's3-path-style': z.boolean().default(false),
    rate: z.coerce.number().positive('must be a positive number of events per second').optional(),
    'in-flight': z.coerce.number().int().min(1).max(10_000).default(256),
    id: token('replay id').max(48).optional(),
    checkpoint: z.string().min(1).optional(),
    resume: z.string().min(1).optional(),
    wait: z.coerce.number().int().min(0).max(86_400).default(300),
    'dry-run': z.boolean().default(false),
    json: z.boolean().default(false),
    help: z.boolean().default(false),
  })
  .strict();

export type ReplayFlags = z.infer<typeof flagsSchema>;

/** Parses the command line of `sluice replay`; throws {@link UsageError} naming the flag. */
export function parseReplayFlags(args: string[]): ReplayFlags {
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        target: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        region: { type: 'string' },
        device: { type: 'string' },
        sensor: { type: 'string' },
        dataset: { type: 'string' },
        archive: { type: 'string' },
        's3-endpoint': { type: 'string' },
        's3-region': { type: 'string' },
        's3-path-style': { type: 'boolean' },
        rate: { type: 'string' },
        'in-flight': { type: 'string' },
        id: { type: 'string' },
        checkpoint: { type: 'string' },
        resume: { type: 'string' },
        wait: { type: 'string' },
        'dry-run': { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message, REPLAY_USAGE);
  }
  const r = flagsSchema.safeParse(values);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new UsageError(`--${String(i.path[0] ?? '')}: ${i.message}`, REPLAY_USAGE);
  }
  return r.data;
}

/** Where the archive is, from `--archive` and the `--s3-*` flags. */
export function storeSettings(f: ReplayFlags): StoreSettings {
  const s3 = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(f.archive);
  if (s3) {
    return {
      kind: 's3',
      bucket: s3[1]!,
      prefix: (s3[2] ?? '').replace(/\/+$/, ''),
      region: f['s3-region'],
      forcePathStyle: f['s3-path-style'],
      ...(f['s3-endpoint'] ? { endpoint: f['s3-endpoint'] } : {}),
    };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(f.archive) && !f.archive.startsWith('file://'))
    throw new UsageError(
      `--archive ${JSON.stringify(f.archive)}: use a folder, file:///folder or s3://bucket/prefix`,
      REPLAY_USAGE,
    );
  return { kind: 'fs', dir: f.archive.replace(/^file:\/\//, '') };
}
