import { SluiceError } from '@sluice/errors';

/** `sluice nats-auth` cannot do what was asked (a bad key file, a connection that may not provision). Exit code 1. */
export class NatsAuthError extends SluiceError {
  override readonly name = 'NatsAuthError';
  readonly code = 'nats_auth';
}
