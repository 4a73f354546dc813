import { z } from '@sluice/config';
import { NAME_TOKEN_PATTERN } from '@sluice/contracts';
import type { StoreSettings } from '@sluice/archive';
import { intFlag, listFlag, numberFlag, parseCommandLine, parseTime, TIME_FORMS } from '../args';
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

/** An absolute time flag, epoch ms (see {@link parseTime}); throws {@link UsageError} naming the flag. */
export function timeOf(flag: string, value: string, now: number): number {
  const t = parseTime(value, now);
  if (t === undefined)
    throw new UsageError(
      `${flag} ${JSON.stringify(value)} is not a time: use ${TIME_FORMS}`,
      REPLAY_USAGE,
    );
  return t.getTime();
}

const token = (what: string) =>
  z.string().regex(NAME_TOKEN_PATTERN, `must be a ${what}: lowercase letters, digits, _ or -`);

const flagsSchema = z
  .object({
    target: token('consumer name').optional(),
    from: z.string().optional(),
    to: z.string().optional(),
    region: listFlag()
      .pipe(z.array(token('region')))
      .optional(),
    device: listFlag().optional(),
    sensor: listFlag().optional(),
    dataset: z.enum(['telemetry', 'detections']).optional(),
    archive: z.string().min(1).default('tmp/archive'),
    's3-endpoint': z.url('must be a URL like http://127.0.0.1:8333').optional(),
    's3-region': z.string().min(1).default('us-east-1'),
    's3-path-style': z.boolean().default(false),
    rate: numberFlag({ max: 10_000_000, default: 0 }),
    'in-flight': intFlag({ min: 1, max: 10_000, default: 256 }),
    id: token('replay id').max(48).optional(),
    checkpoint: z.string().min(1).optional(),
    resume: z.string().min(1).optional(),
    wait: intFlag({ min: 0, max: 86_400, default: 300 }),
    'dry-run': z.boolean().default(false),
    json: z.boolean().default(false),
    help: z.boolean().default(false),
  })
  .strict();

export type ReplayFlags = z.infer<typeof flagsSchema>;

/** Parses the command line of `sluice replay`; throws {@link UsageError} naming the flag. */
export function parseReplayFlags(args: string[]): ReplayFlags {
  return parseCommandLine(args, {
    schema: flagsSchema,
    usage: REPLAY_USAGE,
    options: {
      target: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      region: { type: 'string', multiple: true },
      device: { type: 'string', multiple: true },
      sensor: { type: 'string', multiple: true },
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
  }).flags;
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
