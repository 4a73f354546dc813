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
  const e = err as { code?: unknown; message?: unknown } | undefined;
  const code = typeof e?.code === 'string' ? e.code : '';
  // 08 connection, 40 serialization/deadlock, 53 resources, 57 operator intervention (shutdown), 55P03 lock timeout.
  if (/^(08|40|53|57)/.test(code) || code === '55P03') return true;
  if (
    ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH'].includes(code)
  )
    return true;
  const msg = typeof e?.message === 'string' ? e.message : '';
  return /Connection terminated|connection timeout|Client has encountered a connection error|not queryable|timeout exceeded when trying to connect/i.test(
    msg,
  );
}
