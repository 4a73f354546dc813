import { isConnectionLoss } from '@sluice/actor';
import { SluiceError } from '@sluice/errors';

/** A derived-series expression that does not parse; `position` is the 0-based character offset. */
export class ExpressionError extends SluiceError {
  override readonly name = 'ExpressionError';
  readonly code = 'expression_invalid';
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(`${message} at position ${position}`);
  }
}

/** A query API parameter the caller must fix; rendered as HTTP 400 naming the parameter. */
export class BadParameterError extends SluiceError {
  override readonly name = 'BadParameterError';
  readonly code = 'bad_parameter';
  constructor(
    readonly parameter: string,
    message: string,
  ) {
    super(message, { httpStatus: 400 });
  }
}

/** PostgreSQL cannot take the flush now (unreachable, shutting down, out of resources): the batch is held until it answers. */
export class StoreUnavailableError extends SluiceError {
  override readonly name = 'StoreUnavailableError';
  readonly code = 'store_unavailable';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { retriable: true, httpStatus: 503, cause: options?.cause });
  }
}

/** Transient errors of two transactions meeting (deadlock, serialization failure, lock timeout): retried at once. */
export function isStoreContention(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && (/^40/.test(code) || code === '55P03');
}

/** PostgreSQL error codes and network failures that a later attempt can get past. */
export function isTransientStoreError(err: unknown): boolean {
  return isConnectionLoss(err) || isStoreContention(err);
}
