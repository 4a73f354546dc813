import type { VersionParserFactory } from './versions';
export declare const createV2Parser: VersionParserFactory;
