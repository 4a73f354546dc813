// Segment encoding off the event loop: a worker thread sorts each partition, writes its columns and
// its Parquet (or JSONL.gz) file while the main thread goes on fetching and scanning the next
// segment. The worker runs the very functions the inline path runs (columns.ts), on the segment's
// arena moved to it (not copied) and handed back with the files for the next segment to reuse.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { FileFormat, ParquetOptions } from '@sluice/archive';
import { SluiceError } from '@sluice/errors';
import {
  encodePartition,
  reuseArenaBuffer,
  type SegmentEvents,
  type SegmentPartition,
  type SegmentTransfer,
} from './columns';

/** The encoder thread stopped or failed; the segment's messages are redelivered. */
export class ArchiveEncoderError extends SluiceError {
  override readonly name = 'ArchiveEncoderError';
  readonly code = 'archive_encoder_failed';
}

/** One file to write: a partition of the segment in one format. */
export interface EncodeJob {
  partition: SegmentPartition;
  format: FileFormat;
  opts: ParquetOptions;
}

/** A request to the worker: the segment and, per file, its partition index, format and options. */
export interface EncodeRequest {
  id: number;
  segment: SegmentTransfer;
  jobs: Array<{ partition: number; format: FileFormat; opts: ParquetOptions }>;
}

export type EncodeReply =
  | { ready: true }
  | { id: number; bodies: Uint8Array[]; arena: Uint8Array }
  | { id: number; error: { name: string; message: string; stack?: string } };

/** Runs a request (in the worker thread; also what the inline path amounts to). */
export function runEncodeRequest(req: EncodeRequest): Uint8Array[] {
  const src = { arena: req.segment.arena, messages: req.segment.messages };
  return req.jobs.map((j) =>
    encodePartition(req.segment.partitions[j.partition]!, src, j.format, j.opts),
  );
}

/** Whether `buf` owns its whole ArrayBuffer (then it can be moved to another thread). */
function movable(buf: Uint8Array | Int32Array | Float64Array): boolean {
  return (
    buf.byteOffset === 0 &&
    buf.byteLength === buf.buffer.byteLength &&
    buf.buffer instanceof ArrayBuffer &&
    buf.byteLength > 0
  );
}

/** The arrays of a request or reply that move instead of being copied. */
export function transferList(bufs: Array<Uint8Array | Int32Array | Float64Array>): ArrayBuffer[] {
  const seen = new Set<ArrayBuffer>();
  for (const b of bufs) if (movable(b)) seen.add(b.buffer as ArrayBuffer);
  return [...seen];
}

/** The worker's entry: the bundle's `encode-worker.js` beside main.js, or the source under tsx. */
function workerEntry(): string {
  const built = join(__dirname, 'encode-worker.js');
  return existsSync(built) ? built : join(__dirname, 'cli', 'encode-worker.ts');
}

/**
 * Encodes segments in one worker thread, one request at a time in order of submission. The worker
 * starts on first use, is restarted after a failure, and never keeps the process alive while idle.
 */
export class SegmentEncoder {
  private worker: Worker | undefined;
  private readonly waiting = new Map<
    number,
    { resolve: (b: Uint8Array[]) => void; reject: (e: Error) => void }
  >();
  private next = 1;
  private loaded: Promise<void> | undefined;

  private start(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(workerEntry(), { name: 'archive-encoder' });
    let onLoaded!: () => void;
    let onFailed!: (e: Error) => void;
    this.loaded = new Promise<void>((res, rej) => {
      onLoaded = res;
      onFailed = rej;
    });
    this.loaded.catch(() => undefined);
    w.on('message', (r: EncodeReply) => {
      if ('ready' in r) return onLoaded();
      const wait = this.waiting.get(r.id);
      if (!wait) return;
      this.waiting.delete(r.id);
      if (this.waiting.size === 0) w.unref();
      if ('error' in r) {
        const err = new Error(r.error.message);
        err.name = r.error.name;
        if (r.error.stack) err.stack = r.error.stack;
        wait.reject(err);
        return;
      }
      reuseArenaBuffer(r.arena);
      wait.resolve(r.bodies);
    });
    const fail = (cause: unknown) => {
      if (this.worker === w) this.worker = undefined;
      const err = new ArchiveEncoderError(
        `the archive encoder thread stopped: ${(cause as Error)?.message ?? String(cause)}`,
        { cause },
      );
      onFailed(err);
      for (const wait of this.waiting.values()) wait.reject(err);
      this.waiting.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`exit code ${code}`)));
    w.unref();
    this.worker = w;
    return w;
  }

  /**
   * Starts the worker ahead of the first segment; resolves once its modules and Parquet writer are
   * loaded (rejects with {@link ArchiveEncoderError} if it cannot start).
   */
  async warm(): Promise<void> {
    this.start();
    await this.loaded;
  }

  /**
   * Encodes the jobs' files of a segment (same bytes as {@link SegmentEvents.encode}); the segment's
   * events move to the worker, so the segment is released afterwards whatever the outcome.
   */
  async encode(seg: SegmentEvents, jobs: readonly EncodeJob[]): Promise<Uint8Array[]> {
    const w = this.start();
    const parts = [...seg.partitions.values()];
    const index = new Map(parts.map((p, i) => [p, i]));
    const segment = seg.toTransfer();
    const req: EncodeRequest = {
      id: this.next++,
      segment,
      jobs: jobs.map((j) => ({
        partition: index.get(j.partition)!,
        format: j.format,
        opts: j.opts,
      })),
    };
    const done = new Promise<Uint8Array[]>((resolve, reject) =>
      this.waiting.set(req.id, { resolve, reject }),
    );
    w.ref();
    try {
      w.postMessage(
        req,
        transferList([
          segment.arena,
          ...segment.partitions.flatMap((p) => [
            p.start,
            p.end,
            p.idStart,
            p.idEnd,
            p.msg,
            p.batchIndex,
            p.time,
            p.device,
          ]),
        ]),
      );
    } catch (err) {
      this.waiting.delete(req.id);
      if (this.waiting.size === 0) w.unref();
      throw err;
    } finally {
      seg.release();
    }
    return done;
  }

  /** Stops the worker (pending encodes fail). */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }
}
