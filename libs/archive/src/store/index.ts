import { resolve } from 'node:path';
import { FsStore } from './fs-store';
import { S3Store, type S3StoreOptions } from './s3-store';
import type { FailpointHook, ObjectStore } from './types';

export { FsStore, type FsStoreOptions } from './fs-store';
export { S3Store, type S3StoreOptions } from './s3-store';
export type { FailpointHook, ObjectInfo, ObjectStore, Versioned } from './types';

/** Where an archive lives: a local folder, or an S3-compatible bucket. */
export type StoreSettings =
  | { kind: 'fs'; /** Folder, resolved against the working directory. */ dir: string }
  | ({ kind: 's3' } & Omit<S3StoreOptions, 'failpoint'>);

/** The store the settings describe. */
export function createStore(settings: StoreSettings, failpoint?: FailpointHook): ObjectStore {
  if (settings.kind === 'fs')
    return new FsStore({ root: resolve(settings.dir), ...(failpoint ? { failpoint } : {}) });
  const { kind: _kind, ...s3 } = settings;
  return new S3Store({ ...s3, ...(failpoint ? { failpoint } : {}) });
}
