export { AsyncPublisher, type AsyncPublisherOptions } from './async-publisher';
export {
  connectNats,
  isBindOnly,
  natsOptionsOf,
  natsTls,
  setBindOnly,
  type NatsOptions,
  type NatsTls,
} from './connect';
export { originalHeaders, publishDeadLetter, type DeadLetterContext } from './dead-letter';
export { classifyNatsError, isRetriableNatsFailure, type NatsFailure } from './errors';
export {
  ensureConsumer,
  ensureStream,
  NotProvisionedError,
  StreamPlacementError,
  type EnsureStreamOptions,
} from './provisioning';
export { messageHeaders, publishDurable, type PublishOptions } from './publish';
export type { ConsumerSpec, StreamSpec } from './specs';
