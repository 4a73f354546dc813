// Public API of @sluice/sinks-file. Test folders and the file reader are behind `@sluice/sinks-file/testing`.
export { FileGoneError, FileNameRefusedError, isNameError, isRetriableFileError } from './errors';
export {
  fileName,
  fileStamp,
  parseFileName,
  parsePrefixTemplate,
  PREFIX_FIELDS,
  TEMP_SUFFIX,
  type PrefixField,
  type PrefixTemplate,
} from './naming';
export {
  fileSinkOptionsSchema,
  resolveFileOptions,
  type FileSinkOptions,
  type ResolvedFileOptions,
} from './options';
export { completeLength, completeText } from './segment';
export { FileSink } from './sink';
