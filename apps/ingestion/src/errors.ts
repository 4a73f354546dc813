import { SluiceError } from '@sluice/errors';

/** The caller presented no usable credential. gRPC UNAUTHENTICATED, HTTP 401. */
export class AuthenticationError extends SluiceError {
  override readonly name = 'AuthenticationError';
  readonly code = 'unauthenticated';
  constructor(message: string) {
    super(message, { httpStatus: 401 });
  }
}

/** The batch as a whole is unusable (too large, undecodable, no batch id). gRPC INVALID_ARGUMENT, HTTP 400/413. */
export class BatchRejectedError extends SluiceError {
  override readonly name: string = 'BatchRejectedError';
  readonly code: string = 'batch_rejected';
  declare readonly httpStatus: number;
  constructor(
    /** Offending part, e.g. `batch.batch_id`. */
    readonly field: string,
    message: string,
    /** HTTP status to answer with. Default 400. */
    httpStatus = 400,
  ) {
    super(message, { httpStatus });
  }
}

/**
 * The batch id (or `Idempotency-Key`) was already used by this credential, within the duplicate
 * window, for different content. Nothing was stored. gRPC REJECTED, HTTP 409.
 */
export class BatchIdConflictError extends BatchRejectedError {
  override readonly name = 'BatchIdConflictError';
  override readonly code = 'batch_id_conflict';
  constructor(field: string, message: string) {
    super(field, message, 409);
  }
}

/**
 * Nothing was stored; the device should resend the same batch after `retryAfterMs`.
 * `kind` decides the status: `overloaded` → gRPC RESOURCE_EXHAUSTED / HTTP 429 (rate limit, in-flight
 * bytes full), `unavailable` → gRPC UNAVAILABLE / HTTP 503 (NATS down, publish timeout, draining).
 */
export class RetryableError extends SluiceError {
  override readonly name = 'RetryableError';
  readonly code: string;
  constructor(
    readonly kind: 'overloaded' | 'unavailable',
    message: string,
    readonly retryAfterMs: number,
    options?: { cause?: unknown },
  ) {
    super(message, {
      retriable: true,
      httpStatus: kind === 'overloaded' ? 429 : 503,
      cause: options?.cause,
    });
    this.code = kind;
  }
}
