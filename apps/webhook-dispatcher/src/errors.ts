import { PoisonMessageError } from '@sluice/actor';
import { SluiceError } from '@sluice/errors';

/** An endpoint URL or resolved address the SSRF policy refuses. */
export class SsrfRefusedError extends SluiceError {
  override readonly name = 'SsrfRefusedError';
  readonly code = 'ssrf_refused';
  constructor(
    readonly target: string,
    readonly reason: string,
  ) {
    super(`refusing to call ${target}: ${reason}`, { httpStatus: 422 });
  }
}

/** A `whsec_` secret that is not base64 of 24..64 bytes. */
export class InvalidSecretError extends SluiceError {
  override readonly name = 'InvalidSecretError';
  readonly code = 'secret_invalid';
  constructor(message: string) {
    super(message, { httpStatus: 400 });
  }
}

/** A delivery message on the deliveries stream that does not follow the delivery format (dead-lettered by the sender's actor). */
export class MalformedDeliveryError extends PoisonMessageError {
  override readonly name = 'MalformedDeliveryError';
}
