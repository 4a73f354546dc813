import { SluiceError } from '@sluice/errors';

/** A lifecycle transition that the state machine does not allow (a programming error). */
export class LifecycleError extends SluiceError {
  override readonly name = 'LifecycleError';
  readonly code = 'lifecycle_illegal';
}
