/** `prefix-<time>-<random>` in lower case: safe as a subject token, key prefix or database name. */
export declare function uniqueId(prefix?: string): string;
/** Upper-case variant for JetStream stream and consumer names (no `.`, `*`, `>`). */
export declare function uniqueStreamName(prefix?: string): string;
