import { ConfigError, SluiceError } from '@sluice/errors';
import { RecordRejectedError, SinkUnsupportedError } from '@sluice/sinks-core';

/** Errors of creating a file that say the name is impossible here (its records go to the DLQ). */
const NAME_ERRORS = new Set(['ENAMETOOLONG', 'EILSEQ']);

export function isNameError(err: unknown): boolean {
  return NAME_ERRORS.has((err as NodeJS.ErrnoException | undefined)?.code ?? '');
}

/** The file system refused the name of the file a record belongs in (e.g. too long). */
export class FileNameRefusedError extends RecordRejectedError {
  override readonly name = 'FileNameRefusedError';
  override readonly code = 'file_name_refused';
}

/**
 * The file being written is no longer where it was (its folder moved away, unmounted, or the file
 * deleted): nothing more is appended to it until it is back. Retried.
 */
export class FileGoneError extends SluiceError {
  override readonly name = 'FileGoneError';
  readonly code = 'file_gone';
  constructor(path: string, reason: string, options?: { cause?: unknown }) {
    super(`file ${path} ${reason}`, { retriable: true, cause: options?.cause });
  }
}

/**
 * Transient unless known to be permanent: a full disk, a folder that is away, permissions being fixed
 * all retry (bounded by the runner's delivery limit, then DLQ). Bad options and refused records are
 * permanent.
 */
export function isRetriableFileError(error: unknown): boolean {
  if (error instanceof RecordRejectedError) return false;
  if (error instanceof ConfigError || error instanceof SinkUnsupportedError) return false;
  return true;
}
