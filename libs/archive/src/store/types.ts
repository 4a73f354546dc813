/** One listed object. */
export interface ObjectInfo {
  key: string;
  size: number;
  /** Last modification, epoch ms. */
  modifiedMs: number;
}

/** A stored object's content together with the version a compare-and-swap must name. */
export interface Versioned {
  body: Uint8Array;
  /** Opaque: the ETag on S3, the content's SHA-256 on the filesystem. */
  version: string;
}

/**
 * Where the archive lives. Keys are `/`-separated relative paths (`telemetry/region=eu/…`). Every
 * write is atomic for readers: an object is either absent or whole, never partial.
 */
export interface ObjectStore {
  /** Human-readable location for logs: `file:///var/lib/…` or `s3://bucket/prefix`. */
  readonly location: string;
  /** `fs` or `s3`. */
  readonly kind: 'fs' | 's3';
  /** Writes `body` at `key`, replacing any previous object; durable once resolved. */
  put(key: string, body: Uint8Array): Promise<void>;
  /** The object, or `undefined` when there is none. */
  get(key: string): Promise<Uint8Array | undefined>;
  getVersioned(key: string): Promise<Versioned | undefined>;
  /**
   * Compare-and-swap: writes `body` only if the object's version is still `expected` (`null`: only if
   * there is no object). Resolves false when another writer got there first.
   */
  putIfVersion(key: string, body: Uint8Array, expected: string | null): Promise<boolean>;
  /** Removes the object; a missing one is fine. */
  delete(key: string): Promise<void>;
  /** Every object under `prefix` (recursive), sorted by key; bounded by `limit` (default 100 000). */
  list(prefix: string, limit?: number): Promise<ObjectInfo[]>;
  /** The immediate "sub-folders" of `prefix` (ending in `/`), sorted. */
  listPrefixes(prefix: string): Promise<string[]>;
  /** A cheap round trip; throws {@link ArchiveStoreUnavailableError} when the store does not answer. */
  probe(): Promise<void>;
  close(): Promise<void>;
}

/** A named point in a write where a crash test can stop the process (see `ARCHIVER_FAILPOINT`). */
export type FailpointHook = (point: string) => Promise<void>;
