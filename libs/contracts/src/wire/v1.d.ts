import type { VersionParserFactory } from './versions';
export declare const createV1Parser: VersionParserFactory;
