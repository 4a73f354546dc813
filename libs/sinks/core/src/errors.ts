import { SluiceError } from '@sluice/errors';

/** A record the destination can never accept; `reason` says what to fix. Goes to the DLQ. */
export class RecordRejectedError extends SluiceError {
  override readonly name: string = 'RecordRejectedError';
  readonly code: string = 'record_rejected';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { cause: options?.cause });
  }
}

/** The destination lacks a feature the configuration asks for (found at `connect()`). */
export class SinkUnsupportedError extends SluiceError {
  override readonly name = 'SinkUnsupportedError';
  readonly code = 'sink_unsupported';
}

/** A write did not finish within the runner's write timeout; retried like any transient failure. */
export class SinkWriteTimeoutError extends SluiceError {
  override readonly name = 'SinkWriteTimeoutError';
  readonly code = 'sink_write_timeout';
  constructor(readonly timeoutMs: number) {
    super(`sink write did not finish within ${timeoutMs} ms`, { retriable: true });
  }
}

/** `write()` broke its contract (e.g. a rejected index out of range). */
export class SinkContractError extends SluiceError {
  override readonly name = 'SinkContractError';
  readonly code = 'sink_contract';
}

/** The destination stayed unavailable through the in-process retries: the runner's gate holds the batch until it answers. */
export class SinkUnavailableError extends SluiceError {
  override readonly name = 'SinkUnavailableError';
  readonly code = 'sink_unavailable';
  constructor(sink: string, options?: { cause?: unknown }) {
    super(
      `sink ${sink} unavailable: ${(options?.cause as Error | undefined)?.message ?? 'health check failed'}`,
      {
        retriable: true,
        cause: options?.cause,
      },
    );
  }
}
