import { createHash } from 'node:crypto';
import type { JetStreamClient } from '@nats-io/jetstream';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { Outcomes, type Delivery, type Outcome, type StoreGate } from '@sluice/actor';
import { decodeBatch } from '@sluice/contracts';
import { isRetriable } from '@sluice/errors';
import { tracer, type Logger } from '@sluice/observability';
import { publishEventDeadLetter } from '@sluice/sinks-core';
import {
  ArchiveCommitAbandonedError,
  ArchiveRecordError,
  partitionKey,
  segmentFileName,
  type FileFormat,
  type PartitionRef,
  updateManifest,
  type ManifestFile,
  bounds,
  rangesOf,
  type ObjectStore,
} from '@sluice/archive';
import { SegmentEvents } from './columns';
import { SegmentEncoder, type EncodeJob } from './encoder';
import type { Journal, PendingSegment } from './journal';
import type { ArchiverMetrics } from './metrics';
import { KIND_NONE, KIND_TELEMETRY, type ScannedBatch } from './wire';

/** Crash points for the crash tests (`ARCHIVER_FAILPOINT`): where a commit halts until killed. */
export const FAILPOINTS = ['before-upload', 'during-upload', 'after-upload', 'before-ack'] as const;
export type Failpoint = (typeof FAILPOINTS)[number];

export interface ArchiverOptions {
  store: ObjectStore;
  journal: Journal;
  /** Tag of the stream incarnation in file names (see `streamTag`). */
  tag: string;
  /** File formats written per partition; the first is the primary. Default `['parquet']`. */
  formats?: FileFormat[];
  /** A partition's rows in the open segment that close it. Default 500 000. */
  maxRows?: number;
  /** Payload bytes of the open segment that close it. Default 64 MiB. */
  maxBytes?: number;
  /** Age of the open segment's first message that closes it. Default 60 s. */
  maxAgeMs?: number;
  /**
   * Handler calls the actor can have outstanding (its batch concurrency): once that many wait on
   * commits, nothing more can arrive, so the open segment closes. Required.
   */
  maxWaitingBatches: number;
  /** Rows per Parquet row group. Default 131 072. */
  rowGroupRows?: number;
  /**
   * Encode cut segments in a worker thread (overlapping the next segment's reading) instead of on the
   * event loop. Default true.
   */
  encodeThread?: boolean;
  /** Longest a commit is retried through a store outage before its messages are nak'ed. Default 10 min. */
  holdOnOutageMs?: number;
  /** The store as the actor sees it: down while commits fail for an outage. */
  gate: StoreGate;
  /** Acknowledged floor of the consumer (stream sequence), folded into the journal. Best effort. */
  ackFloor: () => Promise<number | undefined>;
  /** Where events the archive cannot hold go. */
  dlq: { js: JetStreamClient; service: string; subject: string };
  /** Test-only crash point (see {@link FAILPOINTS}). */
  failpoint?: Failpoint;
  log: Logger;
  metrics: ArchiverMetrics;
}

const MIN_MS = Date.UTC(1970, 0, 1);
const END_MS = Date.UTC(10000, 0, 1);
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

/** An event of a batch the archive cannot hold. */
interface Invalid {
  index: number;
  eventId: string;
  error: Error;
}

class Deferred {
  readonly promise: Promise<void>;
  resolve!: () => void;
  reject!: (err: Error) => void;
  constructor() {
    this.promise = new Promise<void>((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    this.promise.catch(() => undefined);
  }
}

/** The messages gathered since the last cut; committed together, acknowledged together. */
class Segment {
  readonly events: SegmentEvents;
  constructor(arenaBytes?: number) {
    this.events = new SegmentEvents(arenaBytes);
  }
  readonly seqs = new Set<number>();
  bytes = 0;
  oldestStoredAt = Number.POSITIVE_INFINITY;
  openedAt = 0;
  readonly done = new Deferred();

  get empty(): boolean {
    return this.seqs.size === 0;
  }
}

interface EncodedFile {
  partition: PartitionRef;
  key: string;
  body: Uint8Array;
  entry: ManifestFile;
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

function storedAt(d: Delivery<ScannedBatch>): number {
  return Math.floor(d.msg.info.timestampNanos / 1e6);
}

/**
 * Buffers clean events into segments and commits each segment as one file per partition and format.
 * A message is acknowledged only once the segment holding its events is committed: files durable,
 * manifests updated, and its sequence recorded in the journal. See docs/services/archiver.md.
 */
export class Archiver {
  private segment = new Segment();
  /** Segments cut and not yet committed, by the sequences they hold (a redelivery joins its wait). */
  private readonly inCommit = new Map<number, Segment>();
  private commitChain: Promise<void> = Promise.resolve();
  private waitingCalls = 0;
  private closing = false;
  /** Set by {@link abort}: every batch is handed back, nothing more is committed. */
  private aborted: Error | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly tracer = tracer('@sluice/archiver');
  /** Encodes cut segments in a worker thread while this one goes on reading the next. */
  private readonly encoder: SegmentEncoder | undefined;
  private readonly formats: FileFormat[];
  private readonly log: Logger;
  private readonly m: ArchiverMetrics;
  private readonly limits: { rows: number; bytes: number; ageMs: number };

  constructor(private readonly opts: ArchiverOptions) {
    this.formats = opts.formats?.length ? opts.formats : ['parquet'];
    this.encoder = opts.encodeThread === false ? undefined : new SegmentEncoder();
    this.log = opts.log;
    this.m = opts.metrics;
    this.limits = {
      rows: opts.maxRows ?? 500_000,
      bytes: opts.maxBytes ?? 64 * 1024 * 1024,
      ageMs: opts.maxAgeMs ?? 60_000,
    };
  }

  /** Starts the encoder thread (resolves once it is loaded), the age check and the buffer gauges. */
  async start(): Promise<void> {
    await this.encoder?.warm();
    clearInterval(this.timer);
    this.closing = false;
    this.timer = setInterval(
      () => this.tick(),
      Math.max(50, Math.min(1_000, Math.floor(this.limits.ageMs / 4))),
    );
    this.timer.unref();
  }

  /**
   * Closes the open segment and waits (bounded) for every commit; afterwards each new batch commits
   * at once. Run before the actor drains, so the batches it waits for can settle.
   */
  async flushAndClose(deadlineMs = 20_000): Promise<void> {
    this.closing = true;
    clearInterval(this.timer);
    this.cut();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.commitChain,
      new Promise<void>((r) => (timer = setTimeout(r, deadlineMs))),
    ]);
    clearTimeout(timer);
  }

  /**
   * The lease is lost: the open segment and every segment not committed fail with `err` (their
   * batches settle as retries, so their messages are redelivered to the next leader), later batches
   * are handed back at once, and the encoder thread stops. Resolves once the commit in progress has
   * ended (its writes are refused by the fenced store), so no write of this archiver is in flight.
   */
  async abort(err: Error): Promise<void> {
    this.aborted ??= err;
    this.closing = true;
    clearInterval(this.timer);
    const open = this.segment;
    this.segment = new Segment(0);
    open.done.reject(err);
    if (!open.empty) open.events.release();
    for (const s of new Set(this.inCommit.values())) s.done.reject(err);
    await this.commitChain;
    await this.encoder?.close();
    this.gauges();
  }

  /** The actor's batch handler. */
  async handle(deliveries: ReadonlyArray<Delivery<ScannedBatch>>): Promise<Outcome[]> {
    const aborted = this.aborted;
    if (aborted) return deliveries.map(() => Outcomes.retry(aborted));
    const outcomes: Array<Outcome | undefined> = new Array(deliveries.length);
    const waits = new Map<Segment, number[]>();
    const seg = this.segment;
    for (let i = 0; i < deliveries.length; i++) {
      const d = deliveries[i]!;
      if (this.opts.journal.isCommitted(d.seq)) {
        // Archived before a crash (or a lost ack): acknowledge without writing it again.
        this.m.duplicatesSkipped.inc();
        outcomes[i] = Outcomes.ack();
        continue;
      }
      const already = seg.seqs.has(d.seq) ? seg : this.inCommit.get(d.seq);
      if (already) {
        // Redelivered while its first delivery is still buffered or committing: settle with it.
        (waits.get(already) ?? waits.set(already, []).get(already)!).push(i);
        continue;
      }
      const invalid = this.invalidOf(d.value);
      if (invalid.length > 0) {
        try {
          // Rare: the generated decoder's batch, which the dead letters carry events of.
          const batch = decodeBatch(d.msg.data);
          await Promise.all(
            invalid.map((r) =>
              publishEventDeadLetter(this.opts.dlq.js, {
                service: this.opts.dlq.service,
                subject: this.opts.dlq.subject,
                msg: d.msg,
                batch,
                index: r.index,
                eventId: r.eventId,
                error: r.error,
              }),
            ),
          );
        } catch (err) {
          // Nothing of this message joins the segment: its dead letters must exist before its ack.
          this.log.error(
            { err, seq: d.seq },
            'dead-letter publish failed; the message will be redelivered',
          );
          outcomes[i] = Outcomes.retry(asError(err));
          continue;
        }
        for (const r of invalid) {
          this.m.eventsRejected.inc({ error_class: r.error.name });
          this.log.warn({ seq: d.seq, index: r.index, err: r.error }, 'event dead-lettered');
        }
      }
      if (invalid.length === d.value.count) {
        outcomes[i] = Outcomes.ack();
        continue;
      }
      this.add(seg, d, invalid);
      (waits.get(seg) ?? waits.set(seg, []).get(seg)!).push(i);
    }
    if (waits.size === 0) return outcomes as Outcome[];
    this.waitingCalls++;
    try {
      if (this.closing || this.full(seg)) this.cut();
      await Promise.all(
        [...waits].map(async ([s, idx]) => {
          try {
            await s.done.promise;
            for (const i of idx) outcomes[i] = Outcomes.ack();
          } catch (err) {
            for (const i of idx) outcomes[i] = Outcomes.retry(asError(err));
          }
        }),
      );
    } finally {
      this.waitingCalls--;
    }
    return outcomes as Outcome[];
  }

  /** The events of a batch that the archive cannot hold, with the reason (empty for almost all). */
  private invalidOf(b: ScannedBatch): Invalid[] {
    const out: Invalid[] = [];
    for (let index = 0; index < b.count; index++) {
      const kind = b.kind[index]!;
      const t = b.time[index]!;
      if (
        kind !== KIND_NONE &&
        b.idEnd[index]! > b.idStart[index]! &&
        b.deviceId[index] !== '' &&
        t >= MIN_MS &&
        t < END_MS
      )
        continue;
      const eventId = utf8.decode(b.bytes.subarray(b.idStart[index]!, b.idEnd[index]!));
      const why =
        kind === KIND_NONE
          ? 'event has no kind: exactly one of "telemetry" or "detection" must be set'
          : !eventId
            ? 'event has an empty event_id'
            : b.deviceId[index] === ''
              ? `event ${eventId} has an empty device_id`
              : Number.isNaN(t)
                ? `event ${eventId} has no ${kind === KIND_TELEMETRY ? 'event_time' : 'frame_time'}`
                : `event ${eventId} has a time outside years 1970-9999`;
      out.push({ index, eventId, error: new ArchiveRecordError(why) });
    }
    return out;
  }

  /** Adds a message's valid events to the segment (the invalid ones are dead-lettered already). */
  private add(seg: Segment, d: Delivery<ScannedBatch>, invalid: readonly Invalid[]): void {
    if (seg.empty) seg.openedAt = Date.now();
    const at = storedAt(d);
    seg.seqs.add(d.seq);
    seg.bytes += d.msg.data.length;
    seg.oldestStoredAt = Math.min(seg.oldestStoredAt, at);
    seg.events.add(
      d.value,
      {
        stream: d.msg.info.stream,
        seq: d.seq,
        storedAt: at,
        subjectRegion: () => d.subject.split('.').pop() ?? '',
      },
      new Set(invalid.map((r) => r.index)),
    );
    this.gauges();
  }

  private fill(seg: Segment): number {
    if (seg.empty) return 0;
    return Math.min(
      1,
      Math.max(
        seg.events.maxPartitionRows / this.limits.rows,
        seg.bytes / this.limits.bytes,
        (Date.now() - seg.openedAt) / this.limits.ageMs,
      ),
    );
  }

  private full(seg: Segment): boolean {
    // Every handler slot of the actor waits on a commit: nothing more can arrive before one settles.
    return this.fill(seg) >= 1 || this.waitingCalls >= this.opts.maxWaitingBatches;
  }

  private tick(): void {
    if (!this.segment.empty && this.full(this.segment)) this.cut();
    this.gauges();
  }

  private gauges(): void {
    const seg = this.segment;
    this.m.bufferRows.set(seg.events.rows);
    this.m.bufferBytes.set(seg.bytes);
    this.m.bufferFill.set(this.fill(seg));
    let oldest = seg.oldestStoredAt;
    for (const s of this.inCommit.values()) oldest = Math.min(oldest, s.oldestStoredAt);
    this.m.oldestUnflushedAge.set(
      Number.isFinite(oldest) ? Math.max(0, (Date.now() - oldest) / 1000) : 0,
    );
  }

  /** Closes the open segment and queues its commit (commits run one at a time, in order). */
  private cut(): void {
    const seg = this.segment;
    if (seg.empty) return;
    // Sized like the one it follows (bounded by the byte limit): the arena need not grow by copies.
    this.segment = new Segment(
      Math.min(Math.ceil(seg.events.arena.length * 1.25), this.limits.bytes + (4 << 20)),
    );
    for (const s of seg.seqs) this.inCommit.set(s, seg);
    this.commitChain = this.commitChain.then(async () => {
      try {
        await this.commitWithRetry(seg);
        seg.done.resolve();
      } catch (err) {
        seg.done.reject(asError(err));
      } finally {
        for (const s of seg.seqs) if (this.inCommit.get(s) === seg) this.inCommit.delete(s);
        this.gauges();
      }
    });
    this.gauges();
  }

  private async commitWithRetry(seg: Segment): Promise<void> {
    if (this.aborted) throw this.aborted;
    const holdUntil = Date.now() + (this.opts.holdOnOutageMs ?? 600_000);
    // Encoded once: a retry after an outage writes the very same bytes under the very same names.
    const files = await this.encode(seg);
    // Bounded by the hold deadline (each round waits for the gate's probe); the cap stops a pathological loop.
    for (let attempt = 1; attempt <= 100_000; attempt++) {
      try {
        await this.commit(seg, files);
        return;
      } catch (err) {
        const retriable = isRetriable(err);
        this.m.commitFailures.inc({ retriable: String(retriable) });
        if (!retriable || this.closing || Date.now() >= holdUntil) {
          this.log.error(
            { err, messages: seg.seqs.size, attempt },
            'archive commit failed; its messages will be redelivered',
          );
          throw retriable
            ? new ArchiveCommitAbandonedError(
                this.closing ? 'shutting down' : 'store outage outlasted ARCHIVER_HOLD_ON_OUTAGE',
                { cause: err },
              )
            : asError(err);
        }
        if (this.opts.gate.failure(err)) {
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([
            this.opts.gate.whenUp(),
            new Promise<void>((r) => (timer = setTimeout(r, Math.max(0, holdUntil - Date.now())))),
          ]);
          clearTimeout(timer);
        } else {
          this.log.warn({ err, attempt }, 'archive commit failed; retrying');
          await new Promise((r) => setTimeout(r, Math.min(5_000, 100 * 2 ** Math.min(attempt, 6))));
        }
      }
    }
    throw new ArchiveCommitAbandonedError('too many attempts');
  }

  /** One file per partition and format; rows sorted by (device_id, event time, event_id). */
  private async encode(seg: Segment): Promise<EncodedFile[]> {
    const now = new Date().toISOString();
    const jobs: EncodeJob[] = [];
    const out: Array<{
      partition: PartitionRef;
      key: string;
      entry: Omit<ManifestFile, 'bytes' | 'sha256'>;
    }> = [];
    for (const p of seg.events.sorted()) {
      const ev = p.events;
      const { min: first, max: last } = bounds(p.seqs);
      for (const format of this.formats) {
        jobs.push({
          partition: p,
          format,
          opts: {
            rowGroupRows: this.opts.rowGroupRows,
            metadata: {
              'sluice.first_seq': String(first),
              'sluice.last_seq': String(last),
              'sluice.stream_tag': this.opts.tag,
            },
          },
        });
        const name = segmentFileName(this.opts.tag, first, last, format);
        out.push({
          partition: p.ref,
          key: `${p.key}/${name}`,
          entry: {
            name,
            format,
            rows: ev.length,
            minEventTime: new Date(ev.minTime).toISOString(),
            maxEventTime: new Date(ev.maxTime).toISOString(),
            firstSeq: first,
            lastSeq: last,
            writtenAt: now,
            origin: 'segment',
          },
        });
      }
    }
    // The events move to the encoder thread; only the files come back.
    const bodies = this.encoder
      ? await this.encoder.encode(seg.events, jobs)
      : jobs.map((j) => seg.events.encode(j.partition, j.format, j.opts));
    seg.events.release();
    return out.map(({ partition, key, entry: e }, i) => {
      const body = bodies[i]!;
      const entry: ManifestFile = {
        name: e.name,
        format: e.format,
        rows: e.rows,
        bytes: body.length,
        sha256: createHash('sha256').update(body).digest('hex'),
        minEventTime: e.minEventTime,
        maxEventTime: e.maxEventTime,
        firstSeq: e.firstSeq,
        lastSeq: e.lastSeq,
        writtenAt: e.writtenAt,
        origin: e.origin,
      };
      return { partition, key, body, entry };
    });
  }

  /**
   * The commit protocol: (1) journal intent naming every object, (2) the objects, (3) the partition
   * manifests, (4) the journal marks the sequences archived. The caller acknowledges afterwards. A
   * crash before (4) leaves an intent that the next commit (or start) undoes; a crash after (4)
   * leaves only unacknowledged messages the journal already knows.
   */
  private async commit(seg: Segment, files: EncodedFile[]): Promise<void> {
    const span = this.tracer.startSpan('archive commit', {
      kind: SpanKind.INTERNAL,
      attributes: {
        'sluice.archive.messages': seg.seqs.size,
        'sluice.archive.rows': seg.events.rows,
        'sluice.archive.files': files.length,
      },
    });
    const end = this.m.commitDuration.startTimer();
    try {
      if (this.opts.journal.hasPending) {
        const removed = await this.opts.journal.recover();
        this.m.segmentsRecovered.inc();
        this.log.warn({ objects: removed }, 'undid an interrupted segment commit');
      }
      const seqs = rangesOf(seg.seqs);
      const pending: PendingSegment = {
        seqs,
        objects: files.map((f) => ({ partition: f.partition, key: f.key, name: f.entry.name })),
        startedAt: new Date().toISOString(),
      };
      await this.opts.journal.begin(pending);
      await this.halt('before-upload');
      let i = 0;
      for (const f of files) {
        // The second file (or the only one, half-written) is where "killed during the upload" halts.
        if (this.opts.failpoint === 'during-upload' && (i === 1 || files.length === 1))
          this.armed = true;
        await this.opts.store.put(f.key, f.body);
        this.armed = false;
        i++;
      }
      await this.halt('after-upload');
      const byPartition = new Map<string, EncodedFile[]>();
      for (const f of files) {
        const k = partitionKey(f.partition);
        (byPartition.get(k) ?? byPartition.set(k, []).get(k)!).push(f);
      }
      for (const group of byPartition.values()) {
        const names = new Set(group.map((f) => f.entry.name));
        await updateManifest(this.opts.store, group[0]!.partition, (m) => [
          ...m.files.filter((x) => !names.has(x.name)),
          ...group.map((f) => f.entry),
        ]);
      }
      await this.opts.journal.commit(seqs, await this.opts.ackFloor().catch(() => undefined));
      for (const f of files) {
        this.m.filesWritten.inc({ dataset: f.partition.dataset, format: f.entry.format });
        this.m.bytesWritten.inc(
          { dataset: f.partition.dataset, format: f.entry.format },
          f.body.length,
        );
        if (f.entry.format === this.formats[0])
          this.m.rowsWritten.inc({ dataset: f.partition.dataset }, f.entry.rows);
      }
      this.log.debug(
        { messages: seg.seqs.size, rows: seg.events.rows, files: files.length },
        'segment committed',
      );
      await this.halt('before-ack');
    } catch (err) {
      const e = asError(err);
      span.recordException(e);
      span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
      throw err;
    } finally {
      end();
      span.end();
    }
  }

  private armed = false;

  /** The store's hook: halts inside a data upload when `during-upload` is armed. */
  readonly storeFailpoint = async (point: string): Promise<void> => {
    if (this.armed && point === 'during-put') await this.halt('during-upload');
  };

  private async halt(point: Failpoint): Promise<void> {
    if (this.opts.failpoint !== point) return;
    this.log.warn({ failpoint: point }, `failpoint ${point} reached: halting until killed`);
    this.log.flush?.();
    await new Promise<never>(() => undefined);
  }
}
