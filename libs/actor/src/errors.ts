/** A message that can never be processed (malformed, violates the contract): dead-letter it. */
export class PoisonMessageError extends Error {
  override readonly name: string = 'PoisonMessageError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The actor retried a message as many times as it is allowed to. */
export class RetriesExhaustedError extends Error {
  override readonly name = 'RetriesExhaustedError';
  constructor(readonly deliveryCount: number, readonly lastError?: Error) {
    super(
      `gave up after ${deliveryCount} deliveries${lastError ? `: ${lastError.name}: ${lastError.message}` : ''}`,
    );
  }
}

/** A handler broke its contract (e.g. returned the wrong number of outcomes). */
export class HandlerContractError extends Error {
  override readonly name = 'HandlerContractError';
}

/** A lifecycle transition that the state machine does not allow. */
export class LifecycleError extends Error {
  override readonly name = 'LifecycleError';
}
