import { resolve } from 'node:path';
import { ConfigError } from '@sluice/errors';
import type { Config } from '../config';
import { FsStore } from './fs-store';
import { S3Store } from './s3-store';
import type { FailpointHook, ObjectStore } from './types';

export { FsStore, type FsStoreOptions } from './fs-store';
export { S3Store, type S3StoreOptions } from './s3-store';
export type { FailpointHook, ObjectInfo, ObjectStore, Versioned } from './types';

/** The store the settings describe. Throws {@link ConfigError} when `s3` lacks a bucket. */
export function createStore(c: Config, failpoint?: FailpointHook): ObjectStore {
  if (c.ARCHIVER_STORE === 'fs')
    return new FsStore({ root: resolve(c.ARCHIVER_DIR), ...(failpoint ? { failpoint } : {}) });
  if (!c.ARCHIVER_S3_BUCKET)
    throw new ConfigError('ARCHIVER_S3_BUCKET', 'is required when ARCHIVER_STORE=s3');
  return new S3Store({
    bucket: c.ARCHIVER_S3_BUCKET,
    prefix: c.ARCHIVER_S3_PREFIX,
    ...(c.ARCHIVER_S3_ENDPOINT ? { endpoint: c.ARCHIVER_S3_ENDPOINT } : {}),
    region: c.ARCHIVER_S3_REGION,
    forcePathStyle: c.ARCHIVER_S3_FORCE_PATH_STYLE,
    createBucket: c.ARCHIVER_S3_CREATE_BUCKET,
    multipartThresholdBytes: c.ARCHIVER_S3_MULTIPART_THRESHOLD,
    partSizeBytes: c.ARCHIVER_S3_PART_SIZE,
    requestTimeoutMs: c.ARCHIVER_S3_REQUEST_TIMEOUT,
    ...(failpoint ? { failpoint } : {}),
  });
}
