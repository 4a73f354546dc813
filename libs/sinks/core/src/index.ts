// Public API of @sluice/sinks-core. Test-only code (the conformance suite, event builders) is behind
// the `@sluice/sinks-core/testing` entry point.
export type {
  RecordSource,
  RejectedRecord,
  Sink,
  SinkHealth,
  SinkRecord,
  WriteResult,
} from './sink';
export {
  RecordRejectedError,
  SinkContractError,
  SinkUnavailableError,
  SinkUnsupportedError,
  SinkWriteTimeoutError,
} from './errors';
export { detectionRecords, flatten, type DetectionRecord, type Flattened } from './records';
export { EVENT_DLQ_HEADERS, publishEventDeadLetter, type EventDeadLetter } from './dead-letter';
export { SINK_METRICS, SinkMetrics } from './metrics';
export { retryDelay, sleepUnlessAborted, withTimeout, type RetryOptions } from './retry';
export { SinkRunner, type SinkRunnerOptions } from './runner';
export {
  csvHeader,
  csvRow,
  CSV_COLUMNS,
  decodeRecord,
  detectionExportRecord,
  encodeJsonRecord,
  encodeProtobufEvent,
  EXPORT_CONTENT_TYPES,
  EXPORT_FORMATS,
  EXPORT_HEADERS,
  EXPORT_SCHEMA_VERSION,
  ExportDecodeError,
  float32,
  InvalidExportRecordError,
  parseCsv,
  recordsFromCsv,
  renderRecord,
  telemetryExportRecord,
  toExportRecord,
  type DetectionExportRecord,
  type ExportFormat,
  type ExportKind,
  type ExportRecord,
  type RenderedRecord,
  type TelemetryExportRecord,
} from './formats';
export { parseSinkOptions } from './options';
export { RecentIds } from './recent-ids';
export { PublishTracker } from './publish-tracker';
export {
  InvalidRouteError,
  NO_DETECTION,
  parseRouteTemplate,
  ROUTE_FIELDS,
  type RouteSyntax,
  type RouteTemplate,
} from './route-template';
