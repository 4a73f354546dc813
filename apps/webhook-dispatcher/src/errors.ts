import { PoisonMessageError } from '@sluice/actor';

/** A request the admin API refuses; `status` is the HTTP status to answer with. */
export class ApiError extends Error {
  override readonly name: string = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/** An endpoint URL or resolved address the SSRF policy refuses. */
export class SsrfRefusedError extends Error {
  override readonly name = 'SsrfRefusedError';
  constructor(
    readonly target: string,
    readonly reason: string,
  ) {
    super(`refusing to call ${target}: ${reason}`);
  }
}

/** A `whsec_` secret that is not base64 of 24..64 bytes. */
export class InvalidSecretError extends Error {
  override readonly name = 'InvalidSecretError';
}

/** A delivery message on the deliveries stream that does not follow the delivery format (dead-lettered by the sender's actor). */
export class MalformedDeliveryError extends PoisonMessageError {
  override readonly name = 'MalformedDeliveryError';
}
