// `sluice replay`: reads the archive for a selection and re-publishes its events, batch by original
// batch, to one consumer's replay subject. Resumable (a checkpoint after every file), rate-limited,
// and for a `rebuild` target (the aggregator) closed by a commit that replaces the range.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import {
  ArchiveStateError,
  createStore,
  listPartitions,
  readBatches,
  selectFiles,
  type ArchiveSelection,
  type ArchivedBatch,
  type ObjectStore,
  type SelectedFile,
} from '@sluice/archive';
import {
  CONTENT_TYPES,
  encodeBatch,
  HEADERS,
  replayModeOf,
  type RebuildCommit,
  type RebuildStatus,
  type ReplayMode,
  type Topology,
} from '@sluice/contracts';
import { ensureStream, publishDurable } from '@sluice/jetstream';
import type { Command } from '../commands';
import type { CliContext } from '../context';
import { NothingToDoError, UsageError } from '../errors';
import { readCheckpoint, writeCheckpoint, type Checkpoint, CHECKPOINT_FORMAT } from './checkpoint';
import { parseReplayFlags, timeOf, REPLAY_USAGE, storeSettings, type ReplayFlags } from './options';
import { Progress, RateLimiter } from './progress';

const REPLAY_MAX_AGE_MS = 7 * 86_400_000;

/** The consumers listening on the REPLAY stream: target name → how it takes replays. */
export async function replayTargets(
  jsm: JetStreamManager,
  topo: Topology,
): Promise<Map<string, ReplayMode>> {
  const out = new Map<string, ReplayMode>();
  try {
    for await (const c of jsm.consumers.list(topo.streams.replay.name)) {
      const mode = replayModeOf(c.config.description);
      if (!mode) continue;
      const filters = [
        ...(c.config.filter_subject ? [c.config.filter_subject] : []),
        ...(c.config.filter_subjects ?? []),
      ];
      for (const f of filters) {
        const parsed = topo.parse(f.replace(/\.>$/, '.x'));
        if (parsed?.kind === 'replay') out.set(parsed.target, mode);
      }
    }
  } catch (err) {
    if ((err as { code?: number }).code === 404 || /stream not found/i.test(String(err)))
      return out;
    throw err;
  }
  return out;
}

function newReplayId(now: number): string {
  const stamp = new Date(now).toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').toLowerCase();
  return `r${stamp}-${randomBytes(3).toString('hex')}`;
}

function describeSelection(s: ArchiveSelection): string {
  const parts = [`${new Date(s.from).toISOString()} .. ${new Date(s.to).toISOString()}`];
  if (s.regions) parts.push(`regions ${s.regions.join(',')}`);
  if (s.devices) parts.push(`${s.devices.length} device(s)`);
  if (s.sensors) parts.push(`sensors ${s.sensors.join(',')}`);
  if (s.datasets) parts.push(s.datasets.join(','));
  return parts.join(', ');
}

/** A new checkpoint from the flags, or the one `--resume` names (whose selection then rules). */
function plan(flags: ReplayFlags, now: number): { checkpoint: Checkpoint; path: string } {
  if (flags.resume) {
    const given = (
      ['target', 'from', 'to', 'region', 'device', 'sensor', 'dataset', 'id'] as const
    ).filter((k) => flags[k] !== undefined);
    if (given.length > 0)
      throw new UsageError(
        `--resume continues the checkpoint's own replay: drop --${given.join(', --')}`,
        REPLAY_USAGE,
      );
    return { checkpoint: readCheckpoint(flags.resume), path: flags.resume };
  }
  if (!flags.target) throw new UsageError('--target is required', REPLAY_USAGE);
  if (flags.from === undefined || flags.to === undefined)
    throw new UsageError('--from and --to are required (the event-time range)', REPLAY_USAGE);
  const from = timeOf('--from', flags.from, now);
  const to = timeOf('--to', flags.to, now);
  if (from >= to)
    throw new UsageError(
      `--from ${new Date(from).toISOString()} must be before --to ${new Date(to).toISOString()}`,
      REPLAY_USAGE,
    );
  const id = flags.id ?? newReplayId(now);
  const checkpoint: Checkpoint = {
    format: CHECKPOINT_FORMAT,
    id,
    target: flags.target,
    rebuild: false,
    selection: {
      from,
      to,
      ...(flags.region ? { regions: flags.region } : {}),
      ...(flags.device ? { devices: flags.device } : {}),
      ...(flags.sensor ? { sensors: flags.sensor } : {}),
      ...(flags.dataset ? { datasets: [flags.dataset] } : {}),
    },
    archive: {
      archive: flags.archive,
      s3Region: flags['s3-region'],
      s3PathStyle: flags['s3-path-style'],
      ...(flags['s3-endpoint'] ? { s3Endpoint: flags['s3-endpoint'] } : {}),
    },
    done: [],
    events: 0,
    batches: 0,
    bytes: 0,
    committed: false,
    startedAt: new Date(now).toISOString(),
    updatedAt: new Date(now).toISOString(),
  };
  return { checkpoint, path: flags.checkpoint ?? join('tmp', 'replay', `${id}.json`) };
}

/** Publishes archived batches with at most `inFlight` unacknowledged at once. */
class Publisher {
  private readonly pending = new Set<Promise<unknown>>();
  private failure: unknown;

  constructor(
    private readonly ctx: { js: ReturnType<typeof jetstream>; topo: Topology },
    private readonly c: Checkpoint,
    private readonly inFlight: number,
  ) {}

  async publish(b: ArchivedBatch): Promise<number> {
    if (this.failure) throw this.failure;
    while (this.pending.size >= this.inFlight) await Promise.race(this.pending);
    if (this.failure) throw this.failure;
    const data = encodeBatch({ batchId: b.batchId, events: b.events });
    const p = publishDurable(this.ctx.js, this.ctx.topo.replay(this.c.target, b.region), data, {
      msgId: `replay:${this.c.id}:${b.key}`,
      contentType: CONTENT_TYPES.EVENT_BATCH,
      timeoutMs: 30_000,
      headers: {
        [HEADERS.REPLAY_ID]: this.c.id,
        [HEADERS.SOURCE_STREAM]: b.stream,
        [HEADERS.SOURCE_SEQUENCE]: String(b.seq),
        [HEADERS.SOURCE_SUBJECT]: this.ctx.topo.clean(b.region),
        [HEADERS.SOURCE_TIME]: String(b.storedAt),
        [HEADERS.SOURCE_INDEXES]: b.indexes.join(','),
        ...(this.c.rebuild ? { [HEADERS.REPLAY_REBUILD]: this.c.id } : {}),
      },
    }).then(
      () => undefined,
      (err: unknown) => {
        this.failure ??= err;
      },
    );
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
    return data.byteLength;
  }

  /** Every publish so far acknowledged; throws the first failure. */
  async settle(): Promise<void> {
    await Promise.all(this.pending);
    if (this.failure) throw this.failure;
  }
}

interface Totals {
  files: number;
  rowsScanned: number;
  events: number;
  batches: number;
  /** Protobuf bytes published (or that would be). */
  bytes: number;
  /** Archive bytes read. */
  archiveBytes: number;
}

async function dryRun(
  store: ObjectStore,
  files: SelectedFile[],
  sel: ArchiveSelection,
  ctx: CliContext,
): Promise<Totals> {
  const t: Totals = {
    files: files.length,
    rowsScanned: 0,
    events: 0,
    batches: 0,
    bytes: 0,
    archiveBytes: 0,
  };
  const progress = new Progress(
    ctx.err,
    files.reduce((n, f) => n + f.file.rows, 0),
    'reading',
  );
  for (const f of files) {
    if (ctx.signal.aborted) break;
    const r = await readBatches(store, f, sel);
    t.rowsScanned += r.rows;
    t.archiveBytes += r.bytes;
    for (const b of r.batches) {
      t.events += b.events.length;
      t.batches++;
      t.bytes += encodeBatch({ batchId: b.batchId, events: b.events }).byteLength;
    }
    progress.update(t.rowsScanned, t.events);
  }
  progress.done();
  return t;
}

async function waitForRebuild(
  ctx: CliContext,
  commit: RebuildCommit,
  waitSeconds: number,
): Promise<RebuildStatus | undefined> {
  const nc = await ctx.nats();
  const js = jetstream(nc);
  const sub = nc.subscribe(ctx.topology.replayStatus(commit.rebuild), { max: 1 });
  try {
    await nc.flush();
    await publishDurable(
      js,
      ctx.topology.replay('aggregator', 'control'),
      Buffer.from(JSON.stringify(commit)),
      {
        msgId: `replay:${commit.rebuild}:commit`,
        contentType: CONTENT_TYPES.REPLAY_CONTROL,
        headers: {
          [HEADERS.REPLAY_CONTROL]: 'commit',
          [HEADERS.REPLAY_ID]: commit.rebuild,
          [HEADERS.REPLAY_REBUILD]: commit.rebuild,
        },
        timeoutMs: 30_000,
      },
    );
    if (waitSeconds === 0) return undefined;
    const timer = setTimeout(() => sub.unsubscribe(), waitSeconds * 1000);
    const onAbort = () => sub.unsubscribe();
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const m of sub) return JSON.parse(m.string()) as RebuildStatus;
    } finally {
      clearTimeout(timer);
      ctx.signal.removeEventListener('abort', onAbort);
    }
    return undefined;
  } finally {
    sub.unsubscribe();
  }
}

async function run(args: string[], ctx: CliContext): Promise<number> {
  const flags = parseReplayFlags(args);
  if (flags.help) {
    ctx.out.write(REPLAY_USAGE + '\n');
    return 0;
  }
  const now = Date.now();
  const { checkpoint: initial, path } = plan(flags, now);
  let c = initial;
  const sel = c.selection;
  const store = createStore(
    storeSettings({
      ...flags,
      archive: c.archive.archive,
      's3-region': c.archive.s3Region,
      's3-path-style': c.archive.s3PathStyle,
      ...(c.archive.s3Endpoint ? { 's3-endpoint': c.archive.s3Endpoint } : {}),
    }),
  );
  try {
    let files: SelectedFile[];
    try {
      files = await selectFiles(store, sel);
    } catch (err) {
      if (err instanceof ArchiveStateError) throw new UsageError(err.message);
      throw err;
    }
    if (files.length === 0)
      throw new NothingToDoError(
        `no archived events in ${store.location} for ${describeSelection(sel)}: nothing was published`,
      );

    if (flags['dry-run']) {
      const t = await dryRun(store, files, sel, ctx);
      if (t.events === 0)
        throw new NothingToDoError(
          `the archive holds no event matching ${describeSelection(sel)} (${t.files} file(s) read)`,
        );
      report(ctx, flags.json, { dryRun: true, id: c.id, target: c.target, ...t });
      return 0;
    }

    const nc = await ctx.nats();
    const jsm = await jetstreamManager(nc);
    const targets = await replayTargets(jsm, ctx.topology);
    const mode = targets.get(c.target);
    if (!mode)
      throw new UsageError(
        `unknown replay target "${c.target}": no consumer listens on ${ctx.topology.replayFilter(c.target)}` +
          (targets.size
            ? ` (targets: ${[...targets.keys()].sort().join(', ')})`
            : ' (no replay consumer is running)'),
      );
    if (mode === 'rebuild') {
      if (sel.devices || sel.sensors)
        throw new UsageError(
          `target "${c.target}" rebuilds whole roll-up windows from every reading of the range: --device and --sensor do not apply`,
        );
      if (sel.datasets && !sel.datasets.includes('telemetry'))
        throw new UsageError(
          `target "${c.target}" aggregates telemetry: --dataset detections does not apply`,
        );
      if (sel.to > now)
        throw new UsageError(
          `a rebuild replaces the range with what the archive holds: --to ${new Date(sel.to).toISOString()} is in the future, where live data is still arriving`,
        );
      const first = (await listPartitions(store))
        .filter(
          (p) => p.dataset === 'telemetry' && (!sel.regions || sel.regions.includes(p.region)),
        )
        .map((p) => p.eventDate)
        .sort()[0];
      if (first !== undefined && sel.from < Date.parse(`${first}T00:00:00Z`))
        throw new UsageError(
          `the archive's telemetry starts on ${first} (retention): a rebuild from ${new Date(sel.from).toISOString()} would remove roll-ups it cannot restore; use --from ${first} or later`,
        );
      c = { ...c, rebuild: true, selection: { ...c.selection, datasets: ['telemetry'] } };
      files = files.filter((f) => f.partition.dataset === 'telemetry');
    }
    if (c.committed) {
      ctx.err.write(`replay ${c.id} was already committed; nothing left to do\n`);
      return 0;
    }
    await ensureStream(jsm, { ...ctx.topology.streams.replay, maxAgeMs: REPLAY_MAX_AGE_MS });

    const js = jetstream(nc);
    const done = new Set(c.done);
    const todo = files.filter((f) => !done.has(f.key));
    if (done.size > 0)
      ctx.err.write(`resuming replay ${c.id}: ${done.size} file(s) done, ${todo.length} to go\n`);
    else writeCheckpoint(path, c);
    const rate = new RateLimiter(flags.rate > 0 ? flags.rate : undefined);
    const publisher = new Publisher({ js, topo: ctx.topology }, c, flags['in-flight']);
    const progress = new Progress(
      ctx.err,
      files.reduce((n, f) => n + f.file.rows, 0),
      `replay ${c.id} → ${c.target}`,
    );
    let rowsScanned = files.filter((f) => done.has(f.key)).reduce((n, f) => n + f.file.rows, 0);
    const selection = c.selection;
    for (const f of todo) {
      if (ctx.signal.aborted) break;
      const r = await readBatches(store, f, selection);
      let bytes = 0;
      let events = 0;
      for (const b of r.batches) {
        await rate.take(b.events.length, ctx.signal);
        bytes += await publisher.publish(b);
        events += b.events.length;
        progress.update(rowsScanned, c.events + events);
      }
      await publisher.settle();
      rowsScanned += r.rows;
      c = {
        ...c,
        done: [...c.done, f.key],
        events: c.events + events,
        batches: c.batches + r.batches.length,
        bytes: c.bytes + bytes,
      };
      writeCheckpoint(path, c);
      progress.update(rowsScanned, c.events);
    }
    progress.update(rowsScanned, c.events, true);
    progress.done();
    if (ctx.signal.aborted) {
      ctx.err.write(`interrupted: resume with sluice replay --resume ${path}\n`);
      return 130;
    }
    if (c.events === 0)
      throw new NothingToDoError(
        `the archive holds no event matching ${describeSelection(selection)} (${files.length} file(s) read): nothing was published`,
      );
    let status: RebuildStatus | undefined;
    if (c.rebuild) {
      const commit: RebuildCommit = {
        rebuild: c.id,
        from: selection.from,
        to: selection.to,
        regions: selection.regions ? [...selection.regions] : null,
        messages: c.batches,
      };
      status = await waitForRebuild(ctx, commit, flags.wait);
      if (status?.state === 'committed') {
        c = { ...c, committed: true };
        writeCheckpoint(path, c);
      }
    }
    report(ctx, flags.json, {
      id: c.id,
      target: c.target,
      files: files.length,
      events: c.events,
      batches: c.batches,
      bytes: c.bytes,
      checkpoint: path,
      ...(c.rebuild ? { rebuild: status ?? { state: 'pending' } } : {}),
    });
    if (status?.state === 'failed') return 1;
    return 0;
  } finally {
    await store.close();
  }
}

function report(ctx: CliContext, json: boolean, summary: Record<string, unknown>): void {
  if (json) {
    ctx.out.write(JSON.stringify(summary) + '\n');
    return;
  }
  for (const [k, v] of Object.entries(summary))
    ctx.out.write(`${k.padEnd(14)} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}\n`);
}

export const replayCommand: Command = {
  name: 'replay',
  summary: 'Re-publish archived events to a consumer',
  run,
};
