// Public API of @sluice/contracts. Generated names are re-exported one by one: every generated
// file declares its own protobufPackage/DeepPartial/MessageFns, so `export *` would collide.
export {
  BoundingBox,
  Detection,
  DetectionEvent,
  Event,
  EventBatch,
  TelemetryEvent,
} from './gen/sluice/telemetry/v1/telemetry';
export type { DeepPartial, MessageFns } from './gen/sluice/telemetry/v1/telemetry';
export {
  Rollup,
  RollupScope,
  rollupScopeFromJSON,
  rollupScopeToJSON,
} from './gen/sluice/telemetry/v1/rollup';
export { DeadLetter } from './gen/sluice/ops/v1/dead_letter';
export {
  EventRejection,
  IngestAck,
  IngestRequest,
  IngestServiceClient,
  IngestServiceService,
  IngestStatus,
  SamplingAdvice,
  TierAdvice,
  ingestStatusFromJSON,
  ingestStatusToJSON,
} from './gen/sluice/gateway/v1/gateway';
export type { IngestServiceServer } from './gen/sluice/gateway/v1/gateway';
/** The FileDescriptorSet of proto/ (base64), for gRPC reflection without the .proto files. */
export { FILE_DESCRIPTOR_SET_BASE64 } from './gen/descriptor-set';

export * from './replay';
export * from './subjects';
export * from './codec';
export * from './wire/index';
export * from './topology';
export * from './proto-reader';
export * from './alerts';
export * from './sampling';
