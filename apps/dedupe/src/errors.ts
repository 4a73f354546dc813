/** Redis could not answer a claim round trip (down, timed out, refused the command). Retriable. */
export class RedisUnavailableError extends Error {
  override readonly name = 'RedisUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A raw stream listed in DEDUPE_STREAMS does not exist. */
export class StreamMissingError extends Error {
  override readonly name = 'StreamMissingError';
  constructor(readonly stream: string) {
    super(`DEDUPE_STREAMS: stream "${stream}" does not exist (create it, or fix the name)`);
  }
}
