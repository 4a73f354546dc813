export { DeviceClient } from './client';
export type { CloseResult, DeviceClientStats } from './client';
export { deviceClientOptions, parseOptions } from './config';
export type { DeviceClientOptions, ResolvedOptions } from './config';
export {
  AckMismatchError,
  AckTimeoutError,
  ClientClosedError,
  DeviceSdkError,
  FlushTimeoutError,
  GatewayStreamError,
} from './errors';
export { DEVICE_SDK_METRICS, RETRY_CAUSES } from './metrics';
export type { RetryCause } from './metrics';
export { DROP_REASONS, PRIORITIES } from './priority';
export type { DropReason, Priority } from './priority';
export { estimateEventBytes } from './size';
export { backoffDelay, retryAfterDelay } from './backoff';
export { PriorityBuffer } from './buffer';
export type { BufferHooks, BufferLimits, SealedBatch } from './buffer';
export {
  bearerMetadata,
  createIngestChannel,
  encodeIngestRequest,
  ingestCredentials,
  openIngestStream,
} from './transport';
export type { IngestChannelOptions, IngestStream, IngestTls } from './transport';
export { measureEmitOverhead } from './overhead';
export type { OverheadOptions, OverheadResult } from './overhead';
