/** The caller presented no usable credential. gRPC UNAUTHENTICATED, HTTP 401. */
export class AuthenticationError extends Error {
  override readonly name = 'AuthenticationError';
}

/** The batch as a whole is unusable (too large, undecodable, no batch id). gRPC INVALID_ARGUMENT, HTTP 400/413. */
export class BatchRejectedError extends Error {
  override readonly name: string = 'BatchRejectedError';
  constructor(
    /** Offending part, e.g. `batch.batch_id`. */
    readonly field: string,
    message: string,
    /** HTTP status to answer with. */
    readonly httpStatus = 400,
  ) {
    super(message);
  }
}

/**
 * The batch id (or `Idempotency-Key`) was already used by this credential, within the duplicate
 * window, for different content. Nothing was stored. gRPC REJECTED, HTTP 409.
 */
export class BatchIdConflictError extends BatchRejectedError {
  override readonly name = 'BatchIdConflictError';
  constructor(field: string, message: string) {
    super(field, message, 409);
  }
}

/**
 * Nothing was stored; the device should resend the same batch after `retryAfterMs`.
 * `kind` decides the status: `overloaded` → gRPC RESOURCE_EXHAUSTED / HTTP 429 (rate limit, in-flight
 * bytes full), `unavailable` → gRPC UNAVAILABLE / HTTP 503 (NATS down, publish timeout, draining).
 */
export class RetryableError extends Error {
  override readonly name = 'RetryableError';
  constructor(
    readonly kind: 'overloaded' | 'unavailable',
    message: string,
    readonly retryAfterMs: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Unusable configuration found at start (names the variable). */
export class IngestConfigError extends Error {
  override readonly name = 'IngestConfigError';
}
