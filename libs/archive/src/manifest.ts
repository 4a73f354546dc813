import { ArchiveConflictError, ArchiveStateError } from './errors';
import { manifestKey, type FileFormat, type PartitionRef } from './layout';
import type { ObjectStore } from './store/types';

export const MANIFEST_FORMAT = 'sluice-archive-manifest/1';

/** One file of a partition as the manifest records it. */
export interface ManifestFile {
  name: string;
  format: FileFormat;
  rows: number;
  bytes: number;
  /** SHA-256 of the object's bytes, hex. */
  sha256: string;
  /** Smallest and largest event time in the file (ISO 8601, UTC). */
  minEventTime: string;
  maxEventTime: string;
  /** Stream sequences of the first and last message whose events the file holds. */
  firstSeq: number;
  lastSeq: number;
  writtenAt: string;
  /** `segment` for files the archiver wrote, `compaction` for merged ones. */
  origin: 'segment' | 'compaction';
}

/**
 * The manifest of one partition: the files that make it up. It is the partition's source of truth:
 * a reader that wants a consistent snapshot reads the files it lists. Replaced atomically, by
 * compare-and-swap, so the archiver and a compaction pass never lose each other's updates.
 */
export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  dataset: PartitionRef['dataset'];
  region: string;
  eventDate: string;
  /** Incremented by every update. */
  version: number;
  files: ManifestFile[];
  /** Rows of the Parquet files (JSONL copies hold the same rows and are not counted twice; without Parquet, of the JSONL files). */
  rows: number;
  minEventTime: string | null;
  maxEventTime: string | null;
  updatedAt: string;
}

export function emptyManifest(p: PartitionRef): Manifest {
  return {
    format: MANIFEST_FORMAT,
    dataset: p.dataset,
    region: p.region,
    eventDate: p.eventDate,
    version: 0,
    files: [],
    rows: 0,
    minEventTime: null,
    maxEventTime: null,
    updatedAt: new Date(0).toISOString(),
  };
}

function parse(p: PartitionRef, body: Uint8Array): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(Buffer.from(body).toString('utf8')) as Manifest;
  } catch (err) {
    throw new ArchiveStateError(`manifest ${manifestKey(p)} is not JSON`, { cause: err });
  }
  if (m.format !== MANIFEST_FORMAT || !Array.isArray(m.files))
    throw new ArchiveStateError(
      `manifest ${manifestKey(p)} has format ${String(m.format)}, expected ${MANIFEST_FORMAT}`,
    );
  return m;
}

export async function readManifest(
  store: ObjectStore,
  p: PartitionRef,
): Promise<{ manifest: Manifest; version: string | null }> {
  const got = await store.getVersioned(manifestKey(p));
  return got
    ? { manifest: parse(p, got.body), version: got.version }
    : { manifest: emptyManifest(p), version: null };
}

function totals(m: Manifest): Manifest {
  const primary = m.files.some((f) => f.format === 'parquet') ? 'parquet' : 'jsonl.gz';
  const parquet = m.files.filter((f) => f.format === primary);
  const times = m.files.flatMap((f) => [f.minEventTime, f.maxEventTime]).sort();
  return {
    ...m,
    rows: parquet.reduce((n, f) => n + f.rows, 0),
    minEventTime: times[0] ?? null,
    maxEventTime: times[times.length - 1] ?? null,
  };
}

/**
 * Read-modify-write of a partition's manifest by compare-and-swap, retried (bounded) while other
 * writers win. `change` gets the current manifest and returns the new file list, or `undefined` to
 * leave it as it is. Resolves with the manifest now stored.
 */
export async function updateManifest(
  store: ObjectStore,
  p: PartitionRef,
  change: (current: Manifest) => ManifestFile[] | undefined,
  maxAttempts = 20,
): Promise<Manifest> {
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    const { manifest, version } = await readManifest(store, p);
    const files = change(manifest);
    if (files === undefined) return manifest;
    const next = totals({
      ...manifest,
      version: manifest.version + 1,
      files: [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
      updatedAt: new Date().toISOString(),
    });
    if (
      await store.putIfVersion(
        manifestKey(p),
        Buffer.from(JSON.stringify(next, null, 2) + '\n', 'utf8'),
        version,
      )
    )
      return next;
    await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
  }
  throw new ArchiveConflictError(manifestKey(p), maxAttempts);
}
