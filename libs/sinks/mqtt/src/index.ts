// Public API of @sluice/sinks-mqtt. The test subscriber is behind `@sluice/sinks-mqtt/testing`.
export {
  isRetriableMqttError,
  MqttUnavailableError,
  PublishRefusedError,
  TRANSIENT_REASON_CODES,
} from './errors';
export {
  mqttSinkOptionsSchema,
  resolveMqttOptions,
  type MqttSinkOptions,
  type ResolvedMqttOptions,
} from './options';
export { MqttSink } from './sink';
export { parseTopicTemplate, TOPIC_SYNTAX } from './templates';
