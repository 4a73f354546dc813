import { constants as fsc } from 'node:fs';
import { open, rename, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { constants as zc, gunzipSync } from 'node:zlib';
import { FileGoneError } from './errors';
import { TEMP_SUFFIX } from './naming';

/**
 * One file being written: `<name>.tmp` until {@link finalize} fsyncs it and renames it to `<name>`.
 * Every append is whole lines, fsynced before it resolves; nothing else ever writes to it.
 */
export class Segment {
  /** Bytes on disk. */
  bytes = 0;
  lastWrite = Date.now();
  readonly opened = Date.now();
  private closed = false;

  private constructor(
    readonly dir: string,
    /** The finalised name. */
    readonly name: string,
    private readonly fh: FileHandle,
    private readonly identity: { dev: number; ino: number },
  ) {}

  get tempPath(): string {
    return join(this.dir, this.name + TEMP_SUFFIX);
  }

  get finalPath(): string {
    return join(this.dir, this.name);
  }

  /** Creates `<name>.tmp` exclusively; EEXIST when that name is taken. */
  static async create(dir: string, name: string): Promise<Segment> {
    const fh = await open(
      join(dir, name + TEMP_SUFFIX),
      fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_APPEND,
      0o644,
    );
    try {
      const s = await fh.stat();
      return new Segment(dir, name, fh, { dev: s.dev, ino: s.ino });
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Throws {@link FileGoneError} unless the temp name still leads to this file: appending to a file
   * whose folder moved away or was unmounted, or that someone deleted, would hide the records.
   */
  async checkInPlace(): Promise<void> {
    let s;
    try {
      s = await stat(this.tempPath);
    } catch (err) {
      throw new FileGoneError(this.tempPath, `is not there (${(err as Error).message})`, {
        cause: err,
      });
    }
    if (s.dev !== this.identity.dev || s.ino !== this.identity.ino)
      throw new FileGoneError(this.tempPath, 'was replaced by another file');
  }

  /** Appends `data` (whole lines, or a whole gzip member) and fsyncs it. */
  async append(data: Buffer): Promise<void> {
    await this.checkInPlace();
    let off = 0;
    while (off < data.length) {
      const { bytesWritten } = await this.fh.write(data, off, data.length - off);
      off += bytesWritten;
    }
    await this.fh.datasync();
    this.bytes += data.length;
    this.lastWrite = Date.now();
  }

  /** fsync, close, rename to the final name, fsync the folder: readers see the whole file or nothing. */
  async finalize(): Promise<void> {
    await this.checkInPlace();
    if (!this.closed) {
      await this.fh.sync();
      await this.close();
    }
    await rename(this.tempPath, this.finalPath);
    await syncDir(this.dir);
  }

  /** True once the handle is closed: nothing more can be appended, only the rename is left. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Closes the handle, leaving the temp file for the recovery of the next start. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
  }
}

export async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, fsc.O_RDONLY);
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/**
 * Length of the complete records at the start of `data`: up to the last newline (for CSV, the last
 * one outside a quoted field). A file cut short by a crash is read up to there.
 */
export function completeLength(data: Buffer, format: 'jsonl' | 'csv'): number {
  if (format === 'jsonl') return data.lastIndexOf(0x0a) + 1;
  let end = 0;
  let quoted = false;
  for (let i = 0; i < data.length; i++) {
    const b = data[i]!;
    if (b === 0x22) quoted = !quoted;
    else if (b === 0x0a && !quoted) end = i + 1;
  }
  return end;
}

/**
 * The text of the complete records of a file this sink wrote, finalised or not: gunzipped (a gzip
 * file cut short is read as far as it goes) and cut after the last complete record.
 */
export function completeText(bytes: Buffer, gzip: boolean, format: 'jsonl' | 'csv'): Buffer {
  const data = gzip ? gunzipSync(bytes, { finishFlush: zc.Z_SYNC_FLUSH }) : bytes;
  return data.subarray(0, completeLength(data, format));
}
