import { SluiceError } from '@sluice/errors';

/**
 * The archive store did not answer or refused for a transient reason (connection refused, timeout,
 * 5xx, throttling): the commit is retried once the store answers again.
 */
export class ArchiveStoreUnavailableError extends SluiceError {
  override readonly name = 'ArchiveStoreUnavailableError';
  readonly code = 'archive_store_unavailable';
  constructor(operation: string, key: string, options: { cause?: unknown } = {}) {
    super(
      `archive store unavailable: ${operation} ${key}: ${(options.cause as Error | undefined)?.message ?? 'no answer'}`,
      { retriable: true, cause: options.cause },
    );
  }
}

/** The store refused an operation for good (access denied, no such bucket): fix the settings. */
export class ArchiveStoreError extends SluiceError {
  override readonly name = 'ArchiveStoreError';
  readonly code = 'archive_store_error';
  constructor(operation: string, key: string, options: { cause?: unknown } = {}) {
    super(
      `archive store refused ${operation} ${key}: ${(options.cause as Error | undefined)?.message ?? 'unknown error'}`,
      { cause: options.cause },
    );
  }
}

/** An event the archive cannot hold (no kind, no id, no device, no time): dead-lettered alone. */
export class ArchiveRecordError extends SluiceError {
  override readonly name = 'ArchiveRecordError';
  readonly code = 'archive_record_invalid';
}

/** A manifest or journal in the store is not what this archiver wrote (corrupt, or a newer format). */
export class ArchiveStateError extends SluiceError {
  override readonly name = 'ArchiveStateError';
  readonly code = 'archive_state_invalid';
}

/**
 * A compare-and-swap on a manifest kept losing to other writers past its attempt bound; retriable
 * (the next pass tries again).
 */
export class ArchiveConflictError extends SluiceError {
  override readonly name = 'ArchiveConflictError';
  readonly code = 'archive_conflict';
  constructor(key: string, attempts: number) {
    super(`manifest ${key} changed under ${attempts} attempts in a row; giving up for now`, {
      retriable: true,
    });
  }
}

/** A commit was held through a store outage past `ARCHIVER_HOLD_ON_OUTAGE`: its messages are nak'ed. */
export class ArchiveCommitAbandonedError extends SluiceError {
  override readonly name = 'ArchiveCommitAbandonedError';
  readonly code = 'archive_commit_abandoned';
  constructor(reason: string, options: { cause?: unknown } = {}) {
    super(`archive commit abandoned: ${reason}`, { retriable: true, cause: options.cause });
  }
}
