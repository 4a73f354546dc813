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

/** The variables a key-encryption key of the signing secrets comes from. */
export type SecretKeyVariable =
  'WEBHOOK_SECRET_KEYS' | 'WEBHOOK_SECRET_KEYS_FILE' | '(development default)';

/** A stored signing secret encrypted under a key id that no configured key has. */
export class SecretKeyUnknownError extends SluiceError {
  override readonly name = 'SecretKeyUnknownError';
  readonly code = 'secret_key_unknown';
  constructor(
    readonly keyId: string,
    readonly subscriptionId: string,
  ) {
    super(
      `the secret of subscription ${subscriptionId} is encrypted under key "${keyId}", which neither WEBHOOK_SECRET_KEYS nor WEBHOOK_SECRET_KEYS_FILE lists`,
    );
  }
}

/**
 * A stored signing secret its key does not decrypt: the key configured under that id is not the one
 * it was encrypted with, or the row was altered (or copied from another subscription).
 */
export class SecretUndecryptableError extends SluiceError {
  override readonly name = 'SecretUndecryptableError';
  readonly code = 'secret_undecryptable';
  constructor(
    readonly keyId: string,
    readonly subscriptionId: string,
    /** Where the key under `keyId` was configured. */
    readonly variable: SecretKeyVariable,
  ) {
    super(
      `key "${keyId}" of ${variable} does not decrypt the secret of subscription ${subscriptionId}: not the key it was encrypted with, or the row was altered`,
    );
  }
}
