import { SluiceError } from '@sluice/errors';

/** A command line the CLI cannot act on: unknown command or flag, malformed value. Exit code 2. */
export class UsageError extends SluiceError {
  override readonly name = 'UsageError';
  readonly code = 'usage';

  constructor(
    message: string,
    /** The usage text of the command, printed after the message. */
    readonly usage?: string,
  ) {
    super(message);
  }
}

/**
 * A well-formed request that selects nothing or names something that does not exist (a range with no
 * data, an unknown target or dead letter). Nothing was changed. Exit code 3.
 */
export class NothingToDoError extends SluiceError {
  override readonly name = 'NothingToDoError';
  readonly code = 'nothing_to_do';
}

/** The exit code of an error that ends a command. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError) return 2;
  if (err instanceof NothingToDoError) return 3;
  return 1;
}
