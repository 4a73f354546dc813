import { SluiceError } from '@sluice/errors';

/** Redis could not answer a claim round trip (down, timed out, refused the command). Retriable. */
export class RedisUnavailableError extends SluiceError {
  override readonly name: string = 'RedisUnavailableError';
  readonly code: string = 'redis_unavailable';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { retriable: true, httpStatus: 503, cause: options?.cause });
  }
}

/** A raw stream listed in DEDUPE_STREAMS does not exist. */
export class StreamMissingError extends SluiceError {
  override readonly name = 'StreamMissingError';
  readonly code = 'stream_missing';
  constructor(readonly stream: string) {
    super(`DEDUPE_STREAMS: stream "${stream}" does not exist (create it, or fix the name)`);
  }
}

/** Why the claims in Redis cannot be trusted: no guard, another Redis run (restart, failover), evictions. */
export type ClaimsLostReason = 'missing' | 'restarted' | 'evicted' | 'unverifiable';

/**
 * Redis answers but no longer holds (all) the claims: it restarted empty or from an older snapshot,
 * failed over, was flushed, or evicted keys. Nothing is claimed until a re-seed from the clean stream
 * commits. Retriable, like an outage.
 */
const LOST_CAUSE: Record<Exclude<ClaimsLostReason, 'unverifiable'>, string> = {
  missing: 'no seed guard: Redis started empty or was flushed',
  restarted: 'Redis restarted or failed over since the claims were seeded',
  evicted: 'Redis evicted keys',
};

export class ClaimsLostError extends RedisUnavailableError {
  override readonly name = 'ClaimsLostError';
  override readonly code = 'claims_lost';
  constructor(readonly reason: ClaimsLostReason) {
    super(
      reason === 'unverifiable'
        ? 'redis claims cannot be verified: this Redis reports no run_id or evicted_keys in INFO, so a loss of claims would go unnoticed; use a Redis that does, or set DEDUPE_RESEED=false to trust it'
        : `redis claims are not trusted (${LOST_CAUSE[reason]}); waiting for a re-seed from the clean stream`,
    );
  }
}

/** Redis is configured so that claims could silently disappear (e.g. an evicting `maxmemory-policy`). */
export class RedisConfigError extends SluiceError {
  override readonly name = 'RedisConfigError';
  readonly code = 'redis_misconfigured';
  constructor(message: string) {
    super(message);
  }
}

/** A re-seed's lease is gone (it lapsed, or Redis lost it): its claims stop and the seed starts over. */
export class SeedAbortedError extends RedisUnavailableError {
  override readonly name = 'SeedAbortedError';
  override readonly code = 'seed_aborted';
  constructor() {
    super('the re-seed lease was lost (it lapsed, or Redis lost it)');
  }
}

/** A re-seed read less of the clean stream than it must (a short read): it is not committed. */
export class SeedIncompleteError extends SluiceError {
  override readonly name = 'SeedIncompleteError';
  readonly code = 'seed_incomplete';
  constructor(message: string) {
    super(message, { retriable: true });
  }
}
