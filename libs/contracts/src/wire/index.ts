export { withoutSchemaVersion } from './canonical';
export {
  DEFAULT_WIRE_LIMITS,
  InvalidWireOptionsError,
  type UnknownFieldPolicy,
  type WireLimits,
  type WireParserOptions,
} from './options';
export { createWireParser, parseWireBody, parseWireEvent, type WireParser } from './parser';
export type { FieldError, IndexedWireResult, WireBodyResult, WireResult } from './result';
export { SUPPORTED_SCHEMA_VERSIONS, type SchemaVersion } from './versions';
export { wirePath, type V1TimeField } from './paths';
