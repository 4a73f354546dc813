import { SluiceError } from '@sluice/errors';

/** A message that can never be processed (malformed, violates the contract): dead-letter it. */
export class PoisonMessageError extends SluiceError {
  override readonly name: string = 'PoisonMessageError';
  readonly code: string = 'message_poison';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { cause: options?.cause, httpStatus: 400 });
  }
}

/** The actor retried a message as many times as it is allowed to. */
export class RetriesExhaustedError extends SluiceError {
  override readonly name = 'RetriesExhaustedError';
  readonly code = 'retries_exhausted';
  constructor(
    readonly deliveryCount: number,
    readonly lastError?: Error,
  ) {
    super(
      `gave up after ${deliveryCount} deliveries${lastError ? `: ${lastError.name}: ${lastError.message}` : ''}`,
      {
        cause: lastError,
      },
    );
  }
}

/** A handler broke its contract (e.g. returned the wrong number of outcomes). */
export class HandlerContractError extends SluiceError {
  override readonly name = 'HandlerContractError';
  readonly code = 'handler_contract';
}
