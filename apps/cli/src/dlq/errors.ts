import { SluiceError } from '@sluice/errors';
import type { Refusal } from './plan';

/**
 * Some selected dead letters cannot go back to the service that gave up, and only to it (see
 * planRedrive). Nothing was sent or deleted: narrow the selection. Exit code 1.
 */
export class RedriveRefusedError extends SluiceError {
  override readonly name = 'RedriveRefusedError';
  readonly code = 'dlq_redrive_refused';

  constructor(
    /** The first refusals (at most 1000). */
    readonly refusals: readonly Refusal[],
    /** How many letters were refused in all. */
    readonly total: number,
  ) {
    super(
      `${total} selected dead letter${total === 1 ? '' : 's'} cannot be redriven; nothing was sent or deleted. ` +
        'Narrow the selection (e.g. --service, --seq) to the letters that can.',
    );
  }
}

/**
 * A publish or delete failed part-way. Letters before it were handled; it and the rest stay in the
 * DLQ, and running the same command again continues (copies already stored are dropped as
 * duplicates inside the duplicate window). Exit code 1.
 */
export class RedriveFailedError extends SluiceError {
  override readonly name = 'RedriveFailedError';
  readonly code = 'dlq_redrive_failed';

  constructor(
    readonly seq: number,
    cause: unknown,
  ) {
    super(
      `redrive stopped at dead letter ${seq}: ${cause instanceof Error ? cause.message : String(cause)}. ` +
        'It and the letters after it are still in the DLQ; run the same command again to continue.',
      { cause, retriable: true },
    );
  }
}
