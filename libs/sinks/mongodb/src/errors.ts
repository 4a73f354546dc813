import { MongoParseError } from 'mongodb';
import { ConfigError, SluiceError } from '@sluice/errors';
import { RecordRejectedError, SinkUnsupportedError } from '@sluice/sinks-core';

/**
 * Write error codes that mean "this document can never be stored as it is": the record is rejected
 * (DLQ) while the rest of the batch is written. 11000 (duplicate key) is success, not listed here.
 * Any other write error code retries the whole batch (idempotent by `_id`).
 */
export const DOCUMENT_ERROR_CODES: ReadonlyMap<number, string> = new Map([
  [2, 'BadValue'],
  [9, 'FailedToParse'],
  [14, 'TypeMismatch'],
  [22, 'InvalidBSON'],
  [52, 'DollarPrefixedFieldName'],
  [55, 'InvalidDBRef'],
  [57, 'DottedFieldName'],
  [121, 'DocumentValidationFailure'],
  [10334, 'BSONObjectTooLarge'],
  [17280, 'KeyTooLong'],
  [17419, 'DocumentTooLarge'],
]);

export const DUPLICATE_KEY = 11000;

/** The server refused one document; the message is the server's reason. */
export class DocumentRejectedError extends RecordRejectedError {
  override readonly name = 'DocumentRejectedError';
  override readonly code = 'document_rejected';
  constructor(
    /** MongoDB's error code, e.g. 121 (DocumentValidationFailure). */
    readonly mongoCode: number,
    reason: string,
  ) {
    super(
      `MongoDB refused the document (code ${mongoCode} ${DOCUMENT_ERROR_CODES.get(mongoCode) ?? ''}): ${reason}`.replace(
        ' )',
        ')',
      ),
    );
  }
}

/** The driver cannot encode a document (too large for the server, invalid key): never sent. */
export class DocumentEncodingError extends RecordRejectedError {
  override readonly name = 'DocumentEncodingError';
  override readonly code = 'document_encoding';
}

/** A write error that is neither a duplicate nor a document problem (e.g. a failover): retry. */
export class TransientWriteError extends SluiceError {
  override readonly name = 'TransientWriteError';
  readonly code = 'mongo_transient_write';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { retriable: true, cause: options?.cause });
  }
}

/**
 * Transient unless known to be permanent: the store being away, timeouts, auth while an operator fixes
 * credentials and unknown server errors all retry (bounded by the runner's delivery limit, then DLQ),
 * because dead-lettering good data for an infrastructure problem is worse than waiting.
 */
export function isRetriableMongoError(error: unknown): boolean {
  if (error instanceof RecordRejectedError) return false;
  if (error instanceof ConfigError || error instanceof SinkUnsupportedError) return false;
  if (error instanceof MongoParseError) return false;
  return true;
}
