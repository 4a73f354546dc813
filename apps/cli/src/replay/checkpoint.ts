import {
  mkdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
  fsyncSync,
  openSync,
  closeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { z } from '@sluice/config';
import { UsageError } from '../errors';

export const CHECKPOINT_FORMAT = 'sluice-replay-checkpoint/1';

const schema = z.object({
  format: z.literal(CHECKPOINT_FORMAT),
  id: z.string().min(1),
  target: z.string().min(1),
  rebuild: z.boolean(),
  selection: z.object({
    from: z.number(),
    to: z.number(),
    regions: z.array(z.string()).optional(),
    devices: z.array(z.string()).optional(),
    sensors: z.array(z.string()).optional(),
    datasets: z.array(z.enum(['telemetry', 'detections'])).optional(),
  }),
  /** `--archive` and the S3 flags as given: a resume reads the same archive. */
  archive: z.object({
    archive: z.string(),
    s3Endpoint: z.string().optional(),
    s3Region: z.string(),
    s3PathStyle: z.boolean(),
  }),
  /** Object keys of the files whose every selected event the target's stream has acknowledged. */
  done: z.array(z.string()),
  /** Totals over `done`. */
  events: z.number().int().min(0),
  batches: z.number().int().min(0),
  bytes: z.number().int().min(0),
  /** The aggregator's rebuild was committed (a resume then has nothing left to do). */
  committed: z.boolean().default(false),
  startedAt: z.string(),
  updatedAt: z.string(),
});

/** What a replay has done so far, rewritten atomically after every file. */
export type Checkpoint = z.infer<typeof schema>;

export function readCheckpoint(path: string): Checkpoint {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new UsageError(
      `--resume ${path}: cannot read the checkpoint (${(err as Error).message})`,
    );
  }
  const r = schema.safeParse(raw);
  if (!r.success)
    throw new UsageError(
      `--resume ${path}: not a replay checkpoint (${r.error.issues[0]!.path.join('.')}: ${r.error.issues[0]!.message})`,
    );
  return r.data;
}

/** Writes to a temporary file, syncs it and renames it over `path`: a crash leaves the old or the new one. */
export function writeCheckpoint(path: string, c: Checkpoint): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify({ ...c, updatedAt: new Date().toISOString() }, null, 2) + '\n');
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
