// Public API of @sluice/sinks-amqp. The test topology is behind `@sluice/sinks-amqp/testing`.
export {
  AmqpDeclareError,
  AmqpUnavailableError,
  isRetriableAmqpError,
  UnroutableRecordError,
} from './errors';
export {
  amqpSinkOptionsSchema,
  resolveAmqpOptions,
  type AmqpSinkOptions,
  type ResolvedAmqpOptions,
} from './options';
export { AmqpSink } from './sink';
export { parseRoutingKeyTemplate, ROUTING_KEY_SYNTAX } from './templates';
