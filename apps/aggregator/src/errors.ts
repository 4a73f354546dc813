import { isConnectionLoss } from '@sluice/actor';
/** A setting that parses but cannot be used; names the environment variable. */
export class InvalidSettingError extends Error {
  override readonly name = 'InvalidSettingError';
  constructor(
    readonly variable: string,
    readonly reason: string,
  ) {
    super(`${variable}: ${reason}`);
  }
}

/** A derived-series expression that does not parse; `position` is the 0-based character offset. */
export class ExpressionError extends Error {
  override readonly name = 'ExpressionError';
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(`${message} at position ${position}`);
  }
}

/** A query API parameter the caller must fix; rendered as HTTP 400 naming the parameter. */
export class BadParameterError extends Error {
  override readonly name = 'BadParameterError';
  constructor(
    readonly parameter: string,
    message: string,
  ) {
    super(message);
  }
}

/** PostgreSQL cannot take the flush now (unreachable, shutting down, out of resources): the batch is held until it answers. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
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
