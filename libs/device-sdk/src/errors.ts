import { SluiceError } from '@sluice/errors';

/** Base of the errors the device SDK reports. */
export abstract class DeviceSdkError extends SluiceError {}

/** flush() passed its deadline with events emitted before it still unacknowledged. */
export class FlushTimeoutError extends DeviceSdkError {
  override readonly name = 'FlushTimeoutError';
  readonly code = 'flush_timeout';
  constructor(
    /** Events emitted before flush() was called that are still buffered. */
    readonly remaining: number,
    timeoutMs: number,
  ) {
    super(
      `flush: ${remaining} event(s) still unacknowledged after ${timeoutMs} ms (the gateway is slow or unreachable; see stats().lastError)`,
      { retriable: true },
    );
  }
}

/** flush() on a client that close() has finished: nothing more will be sent. */
export class ClientClosedError extends DeviceSdkError {
  override readonly name = 'ClientClosedError';
  readonly code = 'client_closed';
  constructor() {
    super('the device client is closed');
  }
}

/**
 * The Ingest stream to the gateway failed (connection refused or lost, the gateway draining,
 * RESOURCE_EXHAUSTED, a bad token). Reported through `onError` and `stats().lastError`; the client
 * reconnects by itself after a back-off, resending what was not acknowledged.
 */
export class GatewayStreamError extends DeviceSdkError {
  override readonly name = 'GatewayStreamError';
  readonly code: string;
  constructor(
    /** gRPC status code (e.g. 14 UNAVAILABLE, 8 RESOURCE_EXHAUSTED, 16 UNAUTHENTICATED). */
    readonly grpcCode: number,
    details: string,
    /** Back-off the gateway asked for (`retry-after-ms`), if any. */
    readonly retryAfterMs: number | undefined,
    cause?: unknown,
  ) {
    super(`Ingest stream failed (gRPC status ${grpcCode}): ${details}`, {
      retriable: true,
      cause,
    });
    this.code = grpcCode === 16 ? 'gateway_unauthenticated' : 'gateway_stream_failed';
  }
}

/** No ack for a batch within `ackTimeoutMs`: the stream is abandoned and the batch resent. */
export class AckTimeoutError extends DeviceSdkError {
  override readonly name = 'AckTimeoutError';
  readonly code = 'ack_timeout';
  constructor(batchId: string, timeoutMs: number) {
    super(`no ack for batch ${batchId} within ${timeoutMs} ms; reconnecting and resending`, {
      retriable: true,
    });
  }
}

/** The gateway answered out of order (an ack for another batch): the stream is abandoned. */
export class AckMismatchError extends DeviceSdkError {
  override readonly name = 'AckMismatchError';
  readonly code = 'ack_mismatch';
  constructor(expected: string | undefined, got: string) {
    super(
      `the gateway acknowledged batch ${JSON.stringify(got)} where ${expected === undefined ? 'no batch' : JSON.stringify(expected)} was expected; reconnecting and resending`,
      { retriable: true },
    );
  }
}
