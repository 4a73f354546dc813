import {
  access,
  constants as fsc,
  mkdir,
  readdir,
  readFile,
  rename,
  stat,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  csvHeader,
  csvRow,
  RecentIds,
  recordsFromCsv,
  RecordRejectedError,
  toExportRecord,
  type ExportKind,
  type RejectedRecord,
  type Sink,
  type SinkHealth,
  type SinkRecord,
  type WriteResult,
} from '@sluice/sinks-core';
import { FileNameRefusedError, isNameError, isRetriableFileError } from './errors';
import { fileName, parseFileName, TEMP_SUFFIX } from './naming';
import { resolveFileOptions, type FileSinkOptions, type ResolvedFileOptions } from './options';
import { completeText, Segment, syncDir } from './segment';

interface Group {
  kind: ExportKind;
  lines: string[];
  ids: string[];
  idx: number[];
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Audit files: JSON lines or CSV, optionally gzipped, in `<prefix>-<yyyymmddThhmmssZ>-<seq>.<ext>`
 * files. A file is written as `<name>.tmp` (whole lines, fsynced before `write()` resolves, so what
 * is acked is on disk) and finalised by fsync + rename when it reaches `maxBytes` or `maxAgeMs`, or
 * at `close()`: a reader of the finalised names never sees a partial line. A temp file left by a
 * crash is cut after its last complete line and finalised at the next `connect()`.
 *
 * Files cannot refuse a duplicate: a redelivered record whose id is among the last `recentIds`
 * written (or in a recovered temp file) is skipped; after a restart an older one is appended again,
 * a duplicate recognisable by its `event_id`.
 */
export class FileSink implements Sink {
  readonly name: string;
  readonly options: ResolvedFileOptions;
  private readonly recent: RecentIds;
  private readonly host = hostname();
  private readonly segments = new Map<string, Segment>();
  /** Closed files whose rename failed: retried by the timer, or recovered at the next connect. */
  private readonly unrenamed = new Set<Segment>();
  private readonly nextSeq = new Map<string, number>();
  /** Names this sink may have written: its prefix template with any value in the placeholders. */
  private readonly ownName: RegExp;
  private connected = false;
  private connecting: Promise<void> | undefined;
  private lock: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private lastRotateError: string | undefined;

  /** Validates `options` now; throws ConfigError naming the bad option. */
  constructor(options: FileSinkOptions) {
    this.options = resolveFileOptions(options);
    this.name = this.options.name;
    this.recent = new RecentIds(this.options.recentIds);
    const pattern = this.options.prefix.source
      .split(/(\{[a-z]+\})/)
      .map((part) => (/^\{[a-z]+\}$/.test(part) ? '[A-Za-z0-9_.-]+' : escapeRegExp(part)))
      .join('');
    this.ownName = new RegExp(`^${pattern}$`);
  }

  /** Serialises writes, rotations and close: one file is appended to by one of them at a time. */
  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  connect(): Promise<void> {
    if (this.connected) return Promise.resolve();
    this.connecting ??= this.locked(() => this.open())
      .then(() => {
        this.connected = true;
        const every = Math.max(50, Math.min(this.options.maxAgeMs, 1_000));
        this.timer = setInterval(() => void this.rotateAged(), every);
        this.timer.unref();
      })
      .finally(() => {
        this.connecting = undefined;
      });
    return this.connecting;
  }

  private async open(): Promise<void> {
    await mkdir(this.options.dir, { recursive: true });
    await access(this.options.dir, fsc.W_OK);
    await this.recover();
  }

  /** Finalises the temp files of an earlier run of this sink, cut after their last complete record. */
  private async recover(): Promise<void> {
    const dir = this.options.dir;
    for (const entry of await readdir(dir)) {
      const parsed = parseFileName(entry);
      if (!parsed?.temp || !this.ownName.test(parsed.prefix)) continue;
      const temp = join(dir, entry);
      const final = join(dir, entry.slice(0, -TEMP_SUFFIX.length));
      const bytes = await readFile(temp);
      const text = completeText(bytes, parsed.gzip, parsed.format);
      const records =
        parsed.format === 'csv'
          ? safe(() => recordsFromCsv(text.toString('utf8')))
          : text
              .toString('utf8')
              .split('\n')
              .filter((l) => l)
              .flatMap((l) => safe(() => [JSON.parse(l) as { event_id?: unknown }]));
      for (const r of records) if (typeof r.event_id === 'string') this.recent.add(r.event_id);
      if (records.length === 0) {
        await unlink(temp);
        continue;
      }
      const whole = parsed.gzip ? gzipSync(text, { level: this.options.gzipLevel }) : text;
      if (!whole.equals(bytes)) {
        // Cut short by the crash: the complete part replaces it (atomically) before finalising.
        const part = `${temp}.recovering`;
        await writeFile(part, whole, { flush: true });
        await rename(part, temp);
      }
      await rename(temp, final);
    }
    await syncDir(dir);
  }

  async close(deadline: number): Promise<void> {
    await this.connecting?.catch(() => undefined);
    clearInterval(this.timer);
    this.timer = undefined;
    if (!this.connected) return;
    this.connected = false;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.locked(() => this.finalizeAll()).catch(() => undefined),
      new Promise<void>((r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now())))),
    ]);
    clearTimeout(timer);
  }

  /**
   * Finalises `seg`, open under `key`. When that fails before the handle is closed (its folder is
   * away), the file stays open for more appends; after (the rename failed), it waits in `unrenamed`.
   */
  private async finish(key: string, seg: Segment): Promise<void> {
    try {
      await seg.finalize();
      this.unrenamed.delete(seg);
    } catch (err) {
      if (seg.isClosed) this.unrenamed.add(seg);
      throw err;
    } finally {
      if (seg.isClosed && this.segments.get(key) === seg) this.segments.delete(key);
    }
  }

  /** Finalises every file; one that cannot be (its folder is away) is closed and left for recovery. */
  private async finalizeAll(): Promise<void> {
    for (const [key, seg] of [...this.segments]) {
      await this.finish(key, seg).catch(() => undefined);
      this.segments.delete(key);
      await seg.close().catch(() => undefined);
    }
    this.unrenamed.clear();
  }

  async health(): Promise<SinkHealth> {
    if (!this.connected) return { ok: false, detail: 'not connected' };
    try {
      const s = await stat(this.options.dir);
      if (!s.isDirectory()) return { ok: false, detail: `${this.options.dir} is not a folder` };
      await access(this.options.dir, fsc.W_OK);
      for (const seg of this.segments.values()) await seg.checkInPlace();
    } catch (err) {
      return { ok: false, detail: message(err) };
    }
    return this.lastRotateError
      ? { ok: false, detail: `finalising a file failed: ${this.lastRotateError}` }
      : { ok: true };
  }

  isRetriable(error: unknown): boolean {
    return isRetriableFileError(error);
  }

  async write(records: ReadonlyArray<SinkRecord>): Promise<WriteResult> {
    await this.connect();
    return this.locked(() => this.writeLocked(records));
  }

  private async writeLocked(records: ReadonlyArray<SinkRecord>): Promise<WriteResult> {
    const o = this.options;
    const rejected: RejectedRecord[] = [];
    const groups = new Map<string, Group>();
    const first = new Map<string, number>();
    const copies: Array<{ index: number; of: number }> = [];
    records.forEach((r, index) => {
      if (this.recent.has(r.id)) return;
      const seen = first.get(r.id);
      if (seen !== undefined) return void copies.push({ index, of: seen });
      first.set(r.id, index);
      try {
        const rec = toExportRecord(r.event);
        const key = o.prefix.render({ kind: rec.kind, region: rec.region, host: this.host });
        let g = groups.get(key);
        if (!g) groups.set(key, (g = { kind: rec.kind, lines: [], ids: [], idx: [] }));
        g.lines.push(o.format === 'jsonl' ? `${JSON.stringify(rec)}\n` : csvRow(rec));
        g.ids.push(r.id);
        g.idx.push(index);
      } catch (err) {
        if (!(err instanceof RecordRejectedError)) throw err;
        rejected.push({ index, error: err });
      }
    });
    for (const [key, g] of groups) {
      try {
        await this.append(key, g);
      } catch (err) {
        if (!isNameError(err)) throw err;
        const error = new FileNameRefusedError(
          `the file system refused a file name for prefix "${key}": ${message(err)}`,
          { cause: err },
        );
        for (const index of g.idx) rejected.push({ index, error });
      }
    }
    for (const c of copies) {
      const r = rejected.find((x) => x.index === c.of);
      if (r) rejected.push({ index: c.index, error: r.error });
    }
    return { rejected };
  }

  private encode(text: string): Buffer {
    const raw = Buffer.from(text, 'utf8');
    return this.options.gzip ? gzipSync(raw, { level: this.options.gzipLevel }) : raw;
  }

  /** Appends a group's lines to the open file of its prefix, rotating first when they would not fit. */
  private async append(key: string, g: Group): Promise<void> {
    const body = g.lines.join('');
    let seg = this.segments.get(key);
    let chunk = this.encode(body);
    if (seg && seg.bytes > 0 && seg.bytes + chunk.length > this.options.maxBytes) {
      await this.finish(key, seg);
      seg = undefined;
    }
    if (!seg) {
      seg = await this.openSegment(key);
      if (this.options.format === 'csv') chunk = this.encode(csvHeader(g.kind) + body);
    }
    await seg.append(chunk);
    for (const id of g.ids) this.recent.add(id);
  }

  private async openSegment(key: string): Promise<Segment> {
    if (this.segments.size >= this.options.maxOpenFiles) {
      const [oldKey, oldest] = [...this.segments].reduce((a, b) =>
        a[1].lastWrite <= b[1].lastWrite ? a : b,
      );
      await this.finish(oldKey, oldest);
    }
    const dir = this.options.dir;
    let seq = this.nextSeq.get(key) ?? (await this.highestSeq(key)) + 1;
    for (let attempt = 0; ; attempt++) {
      try {
        const seg = await Segment.create(
          dir,
          fileName(key, new Date(), seq, this.options.extension),
        );
        this.nextSeq.set(key, seq + 1);
        this.segments.set(key, seg);
        return seg;
      } catch (err) {
        // Taken (another writer in the folder, or a finalised file of this second): the next number.
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 1_000) throw err;
        seq++;
      }
    }
  }

  private async highestSeq(prefix: string): Promise<number> {
    let max = 0;
    for (const entry of await readdir(this.options.dir)) {
      const p = parseFileName(entry);
      if (p?.prefix === prefix) max = Math.max(max, p.seq);
    }
    return max;
  }

  /** Finalises the files older than `maxAgeMs`; run by the sink's timer. */
  private rotateAged(): Promise<void> {
    return this.locked(async () => {
      const now = Date.now();
      let failed: string | undefined;
      const due = [
        ...[...this.unrenamed].map((seg) => ['', seg] as const),
        ...[...this.segments].filter(([, seg]) => now - seg.opened >= this.options.maxAgeMs),
      ];
      for (const [key, seg] of due) {
        await this.finish(key, seg).catch((err: unknown) => (failed = message(err)));
      }
      this.lastRotateError = failed;
    });
  }
}

function safe<T>(fn: () => T[]): T[] {
  try {
    return fn();
  } catch {
    return [];
  }
}
