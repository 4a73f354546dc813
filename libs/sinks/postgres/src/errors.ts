import { DatabaseError } from 'pg';
import { ConfigError, SluiceError } from '@sluice/errors';
import { RecordRejectedError, SinkUnsupportedError } from '@sluice/sinks-core';

/**
 * SQLSTATEs that mean "this row can never be stored as it is": a data exception (class 22: a NUL
 * character, a number out of range), an integrity violation (class 23: NOT NULL, CHECK) or a
 * program limit (54000: an index row larger than a B-tree page allows).
 */
export function isRowError(err: unknown): err is DatabaseError {
  if (!(err instanceof DatabaseError) || !err.code) return false;
  return err.code.startsWith('22') || err.code.startsWith('23') || err.code === '54000';
}

/** PostgreSQL refused one record's row; the message is the server's reason and SQLSTATE. */
export class RowRejectedError extends RecordRejectedError {
  override readonly name = 'RowRejectedError';
  override readonly code = 'pg_row_rejected';
  constructor(
    /** SQLSTATE, e.g. `22021` (invalid byte sequence). */
    readonly sqlState: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`PostgreSQL refused the row (SQLSTATE ${sqlState}): ${reason}`, options);
  }
}

/** A write failed as a whole for a reason that may pass (connection lost, server restarting). */
export class PgTransientError extends SluiceError {
  override readonly name = 'PgTransientError';
  readonly code = 'pg_transient';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { retriable: true, cause: options?.cause });
  }
}

/**
 * Transient unless known to be permanent: a server that is away, timeouts, a dropped table while an
 * operator restores it and unknown errors retry (bounded by the runner's delivery limit, then DLQ),
 * because dead-lettering good data for an infrastructure problem is worse than waiting. Bad options,
 * a changed or missing migration file and refused rows are permanent.
 */
export function isRetriablePgError(error: unknown): boolean {
  if (error instanceof RecordRejectedError) return false;
  if (error instanceof ConfigError || error instanceof SinkUnsupportedError) return false;
  if (error instanceof SluiceError) return error.retriable;
  return true;
}
