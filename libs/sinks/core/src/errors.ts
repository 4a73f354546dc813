/** A record the destination can never accept; `reason` says what to fix. Goes to the DLQ. */
export class RecordRejectedError extends Error {
  override readonly name: string = 'RecordRejectedError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A sink setting that cannot work; names the setting. Thrown before anything connects. */
export class SinkConfigError extends Error {
  override readonly name = 'SinkConfigError';
  constructor(
    /** The option (or environment variable) at fault. */
    readonly setting: string,
    reason: string,
  ) {
    super(`${setting}: ${reason}`);
  }
}

/** The destination lacks a feature the configuration asks for (found at `connect()`). */
export class SinkUnsupportedError extends Error {
  override readonly name = 'SinkUnsupportedError';
}

/** A write did not finish within the runner's write timeout; retried like any transient failure. */
export class SinkWriteTimeoutError extends Error {
  override readonly name = 'SinkWriteTimeoutError';
  constructor(readonly timeoutMs: number) {
    super(`sink write did not finish within ${timeoutMs} ms`);
  }
}

/** `write()` broke its contract (e.g. a rejected index out of range). */
export class SinkContractError extends Error {
  override readonly name = 'SinkContractError';
}

/** The destination stayed unavailable through the in-process retries: the runner's gate holds the batch until it answers. */
export class SinkUnavailableError extends Error {
  override readonly name = 'SinkUnavailableError';
  constructor(sink: string, options?: { cause?: unknown }) {
    super(`sink ${sink} unavailable: ${(options?.cause as Error | undefined)?.message ?? 'health check failed'}`, options);
  }
}
