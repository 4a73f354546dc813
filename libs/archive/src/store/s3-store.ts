import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { ArchiveStoreError, ArchiveStoreUnavailableError } from '../errors';
import type { FailpointHook, ObjectInfo, ObjectStore, Versioned } from './types';

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket (no leading or trailing `/`); `''` for the bucket root. Default `''`. */
  prefix?: string;
  /** Endpoint of an S3-compatible server (`http://127.0.0.1:8333`); unset for AWS. */
  endpoint?: string;
  /** Region for request signing. Default `us-east-1`. */
  region?: string;
  /** Path-style addressing (`host/bucket/key`), needed by most self-hosted servers. Default false. */
  forcePathStyle?: boolean;
  /** Objects larger than this go up in parts. Default 16 MiB. */
  multipartThresholdBytes?: number;
  /** Size of one part (at least 5 MiB on AWS). Default 8 MiB. */
  partSizeBytes?: number;
  /** Bound on one request. Default 30 s. */
  requestTimeoutMs?: number;
  /** Create the bucket when it is missing (development and tests). Default false. */
  createBucket?: boolean;
  failpoint?: FailpointHook;
}

const TRANSIENT_CODES = new Set([
  'SlowDown',
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeout',
  'RequestTimeTooSkewed',
  'ThrottlingException',
  'TooManyRequests',
]);

function isPreconditionFailure(err: unknown): boolean {
  if (!(err instanceof S3ServiceException)) return false;
  const status = err.$metadata?.httpStatusCode;
  return (
    status === 412 ||
    status === 409 ||
    err.name === 'PreconditionFailed' ||
    err.name === 'ConditionalRequestConflict'
  );
}

function isNotFound(err: unknown): boolean {
  return (
    err instanceof S3ServiceException &&
    (err.name === 'NoSuchKey' || err.name === 'NotFound' || err.$metadata?.httpStatusCode === 404)
  );
}

/** S3 errors: 5xx, throttling and network failures pass; 4xx refusals (auth, no bucket) do not. */
function classify(op: string, key: string, err: unknown): Error {
  if (err instanceof S3ServiceException) {
    const status = err.$metadata?.httpStatusCode ?? 0;
    if (status >= 500 || status === 429 || TRANSIENT_CODES.has(err.name))
      return new ArchiveStoreUnavailableError(op, key, { cause: err });
    return new ArchiveStoreError(op, key, { cause: err });
  }
  // No S3 answer at all: connection refused or reset, timeout, DNS.
  return new ArchiveStoreUnavailableError(op, key, { cause: err });
}

/**
 * The archive in an S3-compatible bucket. Credentials come from the SDK's default chain (environment,
 * shared config/credentials files, web identity, ECS/EC2 metadata). A PutObject or a completed
 * multipart upload is atomic and durable once acknowledged; conditional writes (`If-Match`,
 * `If-None-Match`) give the manifests their compare-and-swap.
 */
export class S3Store implements ObjectStore {
  readonly kind = 's3' as const;
  readonly location: string;
  readonly client: S3Client;
  private readonly prefix: string;
  private bucketChecked = false;

  constructor(private readonly opts: S3StoreOptions) {
    this.prefix = (opts.prefix ?? '').replace(/^\/+|\/+$/g, '');
    this.location = `s3://${opts.bucket}${this.prefix ? `/${this.prefix}` : ''}`;
    this.client = new S3Client({
      region: opts.region ?? 'us-east-1',
      ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
      forcePathStyle: opts.forcePathStyle ?? false,
      // Checksums only where the API requires them: self-hosted servers differ in what they accept.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 2,
      requestHandler: {
        requestTimeout: opts.requestTimeoutMs ?? 30_000,
        connectionTimeout: Math.min(5_000, opts.requestTimeoutMs ?? 30_000),
      },
    });
  }

  private key(key: string): string {
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  private unkey(full: string): string {
    return this.prefix ? full.slice(this.prefix.length + 1) : full;
  }

  /** Creates the bucket once when `createBucket` is set; a no-op otherwise. */
  async ensureBucket(): Promise<void> {
    if (this.bucketChecked || !this.opts.createBucket) return;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.opts.bucket }));
    } catch (err) {
      if (!isNotFound(err)) throw classify('head-bucket', this.opts.bucket, err);
      try {
        await this.client.send(new CreateBucketCommand({ Bucket: this.opts.bucket }));
      } catch (e) {
        if (!(
          e instanceof S3ServiceException &&
          (e.name === 'BucketAlreadyOwnedByYou' || e.name === 'BucketAlreadyExists')
        ))
          throw classify('create-bucket', this.opts.bucket, e);
      }
    }
    this.bucketChecked = true;
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    await this.ensureBucket();
    if (body.length > (this.opts.multipartThresholdBytes ?? 16 * 1024 * 1024))
      return this.putMultipart(key, body);
    try {
      const sending = this.client.send(
        new PutObjectCommand({
          Bucket: this.opts.bucket,
          Key: this.key(key),
          Body: body,
          ContentLength: body.length,
        }),
      );
      sending.catch(() => undefined);
      // "Killed during the upload": the request is in flight, its answer never read.
      if (this.opts.failpoint) await this.opts.failpoint('during-put');
      await sending;
    } catch (err) {
      throw classify('put', key, err);
    }
  }

  /** Parts in order; on any failure the upload is aborted (best effort) so no parts linger. */
  private async putMultipart(key: string, body: Uint8Array): Promise<void> {
    const partSize = Math.max(5 * 1024 * 1024, this.opts.partSizeBytes ?? 8 * 1024 * 1024);
    let uploadId: string | undefined;
    try {
      const created = await this.client.send(
        new CreateMultipartUploadCommand({ Bucket: this.opts.bucket, Key: this.key(key) }),
      );
      uploadId = created.UploadId;
      const parts: Array<{ ETag: string; PartNumber: number }> = [];
      for (let off = 0, n = 1; off < body.length; off += partSize, n++) {
        const chunk = body.subarray(off, Math.min(body.length, off + partSize));
        const res = await this.client.send(
          new UploadPartCommand({
            Bucket: this.opts.bucket,
            Key: this.key(key),
            UploadId: uploadId,
            PartNumber: n,
            Body: chunk,
            ContentLength: chunk.length,
          }),
        );
        parts.push({ ETag: res.ETag!, PartNumber: n });
        // "Killed during the upload": some parts stored, the object not yet there.
        if (n === 1 && this.opts.failpoint) await this.opts.failpoint('during-put');
      }
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.opts.bucket,
          Key: this.key(key),
          UploadId: uploadId,
          MultipartUpload: { Parts: parts },
        }),
      );
    } catch (err) {
      if (uploadId)
        await this.client
          .send(
            new AbortMultipartUploadCommand({
              Bucket: this.opts.bucket,
              Key: this.key(key),
              UploadId: uploadId,
            }),
          )
          .catch(() => undefined);
      throw err instanceof ArchiveStoreError || err instanceof ArchiveStoreUnavailableError
        ? err
        : classify('put', key, err);
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    return (await this.getVersioned(key))?.body;
  }

  async getVersioned(key: string): Promise<Versioned | undefined> {
    await this.ensureBucket();
    try {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.opts.bucket, Key: this.key(key) }),
      );
      const body = await res.Body!.transformToByteArray();
      return { body, version: res.ETag ?? '' };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw classify('get', key, err);
    }
  }

  async putIfVersion(key: string, body: Uint8Array, expected: string | null): Promise<boolean> {
    await this.ensureBucket();
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.opts.bucket,
          Key: this.key(key),
          Body: body,
          ContentLength: body.length,
          ...(expected === null ? { IfNoneMatch: '*' } : { IfMatch: expected }),
        }),
      );
      return true;
    } catch (err) {
      if (isPreconditionFailure(err)) return false;
      // If-Match on an object deleted meanwhile.
      if (expected !== null && isNotFound(err)) return false;
      throw classify('put-if', key, err);
    }
  }

  async delete(key: string): Promise<void> {
    await this.ensureBucket();
    try {
      await this.client.send(
        new DeleteObjectCommand({ Bucket: this.opts.bucket, Key: this.key(key) }),
      );
    } catch (err) {
      if (isNotFound(err)) return;
      throw classify('delete', key, err);
    }
  }

  async list(prefix: string, limit = 100_000): Promise<ObjectInfo[]> {
    await this.ensureBucket();
    const out: ObjectInfo[] = [];
    let token: string | undefined;
    try {
      // Bounded by `limit`: each page is at most 1000 keys.
      for (let page = 0; page < Math.ceil(limit / 1000) + 1; page++) {
        const res = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.opts.bucket,
            Prefix: this.key(prefix),
            ContinuationToken: token,
          }),
        );
        for (const o of res.Contents ?? [])
          if (o.Key && out.length < limit)
            out.push({
              key: this.unkey(o.Key),
              size: o.Size ?? 0,
              modifiedMs: o.LastModified?.getTime() ?? 0,
            });
        token = res.IsTruncated ? res.NextContinuationToken : undefined;
        if (!token || out.length >= limit) break;
      }
    } catch (err) {
      throw classify('list', prefix, err);
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async listPrefixes(prefix: string): Promise<string[]> {
    await this.ensureBucket();
    const out: string[] = [];
    let token: string | undefined;
    const p = prefix && !prefix.endsWith('/') ? `${prefix}/` : prefix;
    try {
      for (let page = 0; page < 1000; page++) {
        const res = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.opts.bucket,
            Prefix: this.key(p),
            Delimiter: '/',
            ContinuationToken: token,
          }),
        );
        for (const c of res.CommonPrefixes ?? []) if (c.Prefix) out.push(this.unkey(c.Prefix));
        token = res.IsTruncated ? res.NextContinuationToken : undefined;
        if (!token) break;
      }
    } catch (err) {
      throw classify('list', prefix, err);
    }
    return out.sort();
  }

  async probe(): Promise<void> {
    try {
      if (this.opts.createBucket) {
        this.bucketChecked = false;
        await this.ensureBucket();
      } else {
        await this.client.send(new HeadBucketCommand({ Bucket: this.opts.bucket }));
      }
    } catch (err) {
      throw err instanceof ArchiveStoreError || err instanceof ArchiveStoreUnavailableError
        ? err
        : classify('probe', this.opts.bucket, err);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
