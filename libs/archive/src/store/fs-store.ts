import { createHash, randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { ArchiveStoreError, ArchiveStoreUnavailableError } from '../errors';
import type { FailpointHook, ObjectInfo, ObjectStore, Versioned } from './types';

export interface FsStoreOptions {
  /** Root folder of the archive (created if missing). */
  root: string;
  /** How long a manifest lock may be held before another writer takes it over. Default 30 s. */
  lockStaleMs?: number;
  /** How long a writer waits for a manifest lock. Default 10 s. */
  lockWaitMs?: number;
  failpoint?: FailpointHook;
}

const TMP_MARK = '.tmp-';

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

function isTmp(name: string): boolean {
  return name.startsWith('.') && name.includes(TMP_MARK);
}

/** Errors of the disk that may pass (full, busy, too many open files) versus refusals for good. */
function classify(op: string, key: string, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (
    code === 'ENOSPC' ||
    code === 'EMFILE' ||
    code === 'ENFILE' ||
    code === 'EBUSY' ||
    code === 'EAGAIN' ||
    code === 'EIO' ||
    code === 'ESTALE'
  ) {
    return new ArchiveStoreUnavailableError(op, key, { cause: err });
  }
  return new ArchiveStoreError(op, key, { cause: err });
}

async function fsyncDir(dir: string): Promise<void> {
  const h = await fs.open(dir, constants.O_RDONLY);
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/**
 * The embedded default: the archive in a local folder. A write goes to a hidden temp file in the
 * target folder, is fsync'ed, renamed over the target (atomic on POSIX) and the folder fsync'ed, so
 * after a crash an object is either the old one, the new one, or absent; never partial.
 */
export class FsStore implements ObjectStore {
  readonly kind = 'fs' as const;
  readonly location: string;

  constructor(private readonly opts: FsStoreOptions) {
    this.location = `file://${opts.root}`;
  }

  private path(key: string): string {
    if (key.split('/').some((p) => p === '..' || p === ''))
      throw new ArchiveStoreError('resolve', key, {
        cause: new Error('keys are relative paths without empty or ".." parts'),
      });
    return join(this.opts.root, ...key.split('/'));
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    const target = this.path(key);
    const dir = dirname(target);
    const tmp = join(
      dir,
      `.${target.slice(dir.length + 1)}${TMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`,
    );
    try {
      const created = await fs.mkdir(dir, { recursive: true });
      const h = await fs.open(tmp, 'w');
      try {
        if (this.opts.failpoint && body.length > 1) {
          // Half the bytes on disk, then the crash point: "killed during the upload".
          const half = Math.floor(body.length / 2);
          await h.write(body, 0, half);
          await h.sync();
          await this.opts.failpoint('during-put');
          await h.write(body, half, body.length - half);
        } else {
          await h.write(body, 0, body.length);
        }
        await h.sync();
      } finally {
        await h.close();
      }
      await fs.rename(tmp, target);
      await fsyncDir(dir);
      // A folder made for this write must itself survive a crash: fsync the parents it was made in.
      if (created) {
        for (
          let d = dir;
          d.length > this.opts.root.length && d.startsWith(this.opts.root);
          d = dirname(d)
        )
          await fsyncDir(dirname(d));
      }
    } catch (err) {
      await fs.rm(tmp, { force: true }).catch(() => undefined);
      throw classify('put', key, err);
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    try {
      return await fs.readFile(this.path(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw classify('get', key, err);
    }
  }

  async getVersioned(key: string): Promise<Versioned | undefined> {
    const body = await this.get(key);
    return body === undefined ? undefined : { body, version: sha256(body) };
  }

  /** Serialised by a lock file beside the object (O_EXCL create), taken over when older than `lockStaleMs`. */
  async putIfVersion(key: string, body: Uint8Array, expected: string | null): Promise<boolean> {
    const lock = `${this.path(key)}.lock`;
    await fs.mkdir(dirname(lock), { recursive: true }).catch((err) => {
      throw classify('lock', key, err);
    });
    const staleMs = this.opts.lockStaleMs ?? 30_000;
    const waitUntil = Date.now() + (this.opts.lockWaitMs ?? 10_000);
    for (let attempt = 0; ; attempt++) {
      try {
        const h = await fs.open(lock, 'wx');
        await h.writeFile(`${process.pid} ${new Date().toISOString()}\n`);
        await h.close();
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw classify('lock', key, err);
        const st = await fs.stat(lock).catch(() => undefined);
        if (st && Date.now() - st.mtimeMs > staleMs) {
          // Left by a writer that died holding it (a lock is held for milliseconds).
          await fs.rm(lock, { force: true });
          continue;
        }
        if (Date.now() > waitUntil)
          throw new ArchiveStoreUnavailableError('lock', key, {
            cause: new Error(
              `lock ${lock} held for more than ${this.opts.lockWaitMs ?? 10_000} ms`,
            ),
          });
        await new Promise((r) => setTimeout(r, Math.min(200, 5 * 2 ** Math.min(attempt, 5))));
      }
    }
    try {
      const current = await this.getVersioned(key);
      if ((current?.version ?? null) !== expected) return false;
      await this.put(key, body);
      return true;
    } finally {
      await fs.rm(lock, { force: true });
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await fs.rm(this.path(key), { force: true });
    } catch (err) {
      throw classify('delete', key, err);
    }
  }

  async list(prefix: string, limit = 100_000): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    const base = prefix.replace(/\/+$/, '');
    const start = base ? this.path(base) : this.opts.root;
    const walk = async (dir: string): Promise<void> => {
      let entries: import('node:fs').Dirent[];
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (
          (err as NodeJS.ErrnoException).code === 'ENOENT' ||
          (err as NodeJS.ErrnoException).code === 'ENOTDIR'
        )
          return;
        throw classify('list', prefix, err);
      }
      for (const e of entries) {
        if (out.length >= limit) return;
        const p = join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if (!isTmp(e.name) && !e.name.endsWith('.lock')) {
          const st = await fs.stat(p).catch(() => undefined);
          if (st)
            out.push({
              key: relative(this.opts.root, p).split(sep).join('/'),
              size: st.size,
              modifiedMs: st.mtimeMs,
            });
        }
      }
    };
    await walk(start);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async listPrefixes(prefix: string): Promise<string[]> {
    const base = prefix.replace(/\/+$/, '');
    try {
      const entries = await fs.readdir(base ? this.path(base) : this.opts.root, {
        withFileTypes: true,
      });
      return entries
        .filter((e) => e.isDirectory())
        .map((e) => `${base ? `${base}/` : ''}${e.name}/`)
        .sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw classify('list', prefix, err);
    }
  }

  /** Removes a prefix's now-empty folders (after retention deleted its objects). */
  async removeEmptyDirs(prefix: string): Promise<void> {
    const start = this.path(prefix.replace(/\/+$/, ''));
    const prune = async (dir: string): Promise<boolean> => {
      let entries: import('node:fs').Dirent[];
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch {
        return false;
      }
      let empty = true;
      for (const e of entries) {
        if (e.isDirectory() && (await prune(join(dir, e.name)))) continue;
        empty = false;
      }
      if (empty) await fs.rmdir(dir).catch(() => undefined);
      return empty;
    };
    await prune(start);
  }

  /** Deletes temp files older than `olderThanMs` left by writes a crash interrupted. */
  async sweepTemp(olderThanMs: number): Promise<number> {
    let removed = 0;
    const walk = async (dir: string): Promise<void> => {
      const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of entries) {
        const p = join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if (isTmp(e.name)) {
          const st = await fs.stat(p).catch(() => undefined);
          if (st && Date.now() - st.mtimeMs > olderThanMs) {
            await fs.rm(p, { force: true });
            removed++;
          }
        }
      }
    };
    await walk(this.opts.root);
    return removed;
  }

  async probe(): Promise<void> {
    try {
      await fs.mkdir(this.opts.root, { recursive: true });
      await fs.access(this.opts.root, constants.W_OK);
    } catch (err) {
      throw new ArchiveStoreUnavailableError('probe', this.opts.root, { cause: err });
    }
  }

  async close(): Promise<void> {
    // Nothing held open: every operation opens and closes its own file handles.
  }
}
