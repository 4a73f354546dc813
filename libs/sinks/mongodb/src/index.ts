// Public API of @sluice/sinks-mongodb. Test databases are behind `@sluice/sinks-mongodb/testing`.
export {
  detectionDocument,
  InvalidDocumentError,
  telemetryDocument,
  toDocument,
  type DetectionDocument,
  type IngestMeta,
  type TelemetryDocument,
} from './documents';
export {
  DOCUMENT_ERROR_CODES,
  DocumentEncodingError,
  DocumentRejectedError,
  DUPLICATE_KEY,
  isRetriableMongoError,
  TransientWriteError,
} from './errors';
export {
  assertDatabaseName,
  InvalidCollectionNameError,
  parseCollectionTemplate,
  TEMPLATE_FIELDS,
  type CollectionTemplate,
  type TemplateKind,
} from './naming';
export { resolveMongoOptions, type MongoSinkOptions, type ResolvedMongoOptions } from './options';
export { MongoSink } from './sink';
