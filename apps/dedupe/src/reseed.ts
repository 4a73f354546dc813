import { randomUUID } from 'node:crypto';
import {
  DeliverPolicy,
  jetstream,
  JetStreamApiCodes,
  JetStreamApiError,
  JetStreamError,
  jetstreamManager,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Topology } from '@sluice/contracts';
import type { Logger } from '@sluice/observability';
import type { ClaimStore, SeedCommit, SeedStart } from './claims';
import {
  ClaimsLostError,
  RedisUnavailableError,
  SeedAbortedError,
  SeedIncompleteError,
} from './errors';
import { ClaimBatch, type ClaimLayout } from './keys';
import type { DedupeMetrics } from './metrics';
import { decodeRawMessage } from './raw-message';

/** Options of a {@link ClaimReseeder}. */
export interface ReseedOptions {
  nc: NatsConnection;
  topology: Topology;
  claims: ClaimStore;
  layout: ClaimLayout;
  /** How far back the clean stream is read: the duplicate horizon to restore (at most `DEDUPE_TTL`). */
  horizonMs: number;
  /**
   * Wait after taking the lease before reading where the clean stream ends: clean publishes of claims
   * made before the loss land first (the handler publishes within half of it or retries). Default 3 s.
   */
  fenceMs?: number;
  /** Lease on the re-seed, refreshed while it runs; another replica takes over when it lapses. Default 15 s. */
  leaseMs?: number;
  /** Claims per seed round trip. Default 32,768. */
  claimsPerCall?: number;
  /** Bytes one fetch of the clean stream may bring (bounds the re-seed's memory). Default 4 MiB. */
  fetchBytes?: number;
  metrics: DedupeMetrics;
  log: Logger;
}

/** What one re-seed did; `seedMs` is the reading and claiming, without the fence. */
export interface ReseedResult {
  outcome: SeedCommit | Exclude<SeedStart, 'started'> | 'failed';
  messages: number;
  claims: number;
  seedMs: number;
}

const FETCH_BYTES = 4 * 1024 * 1024;

/**
 * NATS ends a byte-bounded pull whose next message does not fit with a 409 status, which nats.js
 * raises from a fetch (not from consume) as an error. It ends that fetch, not the re-seed. nats.js
 * exposes the status test only on the status, not on the error, hence the description.
 */
function isMaxBytesEnd(err: unknown): boolean {
  return (
    err instanceof JetStreamError &&
    (err as JetStreamError & { code?: unknown }).code === 409 &&
    /message size exceeds maxbytes/i.test(err.message)
  );
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Owner of a clean batch's events: the raw message it was published for (`raw:<stream>:<seq>`). */
export function ownerOfClean(batchId: string, cleanSeq: number): string {
  return batchId.startsWith('raw:') ? batchId.slice(4) : `clean:${cleanSeq}`;
}

/**
 * Rebuilds the claims from the clean stream, which is the record of every event already published:
 * each clean batch's events are claimed for the raw message that published them, so a redelivery of
 * that message still finds them `ours` and any other resend finds them `theirs`. One replica holds the
 * lease; claim calls everywhere fail with `ClaimsLostError` until the new guard is committed, so
 * nothing passes dedupe unchecked meanwhile. The commit fails when Redis restarted or evicted during
 * the seed (its claims would be incomplete), and the seed starts over.
 */
export class ClaimReseeder {
  private running: Promise<ReseedResult> | undefined;
  private stopped = false;

  constructor(private readonly opts: ReseedOptions) {}

  /** Starts a re-seed in this process unless one is running here; returns at once. */
  ensure(reason: string): void {
    void this.reseed(reason);
  }

  /** Runs a re-seed (or joins the one running here) and resolves with what it did. */
  reseed(reason: string): Promise<ReseedResult> {
    if (this.stopped)
      return Promise.resolve({ outcome: 'aborted', messages: 0, claims: 0, seedMs: 0 });
    this.running ??= this.run(reason).finally(() => (this.running = undefined));
    return this.running;
  }

  /** Lets a re-seed in progress end at its next step. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }

  private async run(reason: string): Promise<ReseedResult> {
    const { claims, layout, metrics, log } = this.opts;
    const leaseMs = this.opts.leaseMs ?? 15_000;
    const token = randomUUID();
    const result: ReseedResult = { outcome: 'failed', messages: 0, claims: 0, seedMs: 0 };
    let start: SeedStart;
    try {
      start = await claims.beginSeed(layout.prefix, token, leaseMs);
    } catch (err) {
      log.debug({ err }, 're-seed could not start (redis unavailable)');
      return result;
    }
    // Another replica holds the lease, or the guard is valid again.
    if (start !== 'started') return { ...result, outcome: start };
    log.warn(
      { reason, horizonMs: this.opts.horizonMs },
      'redis claims lost: re-seeding them from the clean stream; nothing is deduplicated until it completes',
    );
    const refresh = setInterval(
      () => {
        claims.refreshSeed(layout.prefix, token, leaseMs).catch(() => undefined);
      },
      Math.max(500, Math.floor(leaseMs / 3)),
    );
    try {
      await sleep(this.opts.fenceMs ?? 3_000);
      const started = Date.now();
      const seeded = await this.seed(token);
      if (seeded === undefined) {
        result.outcome = 'aborted';
        return result;
      }
      Object.assign(result, seeded, { seedMs: Date.now() - started });
      result.outcome = await claims.commitSeed(layout.prefix, token);
      const fields = {
        reason,
        messages: result.messages,
        claims: result.claims,
        seedMs: result.seedMs,
      };
      if (result.outcome === 'committed') {
        metrics.reseedClaims.inc(result.claims);
        metrics.reseedMessages.inc(result.messages);
        metrics.reseedSeconds.inc(result.seedMs / 1000);
        log.warn(
          {
            ...fields,
            claimsPerSecond: Math.round(result.claims / Math.max(0.001, result.seedMs / 1000)),
          },
          'redis claims re-seeded; deduplicating again',
        );
      } else
        log.warn(
          { ...fields, outcome: result.outcome },
          're-seed not committed (redis changed during it); it starts over',
        );
    } catch (err) {
      log.warn({ err }, 're-seed failed; it starts over when redis answers');
    } finally {
      clearInterval(refresh);
      // Committed or changed: the commit ended the lease. Otherwise free it for the next attempt now.
      if (result.outcome === 'failed' || result.outcome === 'aborted')
        await claims.releaseSeed(layout.prefix, token).catch(() => undefined);
      metrics.reseeds.inc({ reason, outcome: result.outcome });
    }
    return result;
  }

  /** Claims every event of the clean stream within the horizon; undefined when the lease was lost. */
  private async seed(token: string): Promise<{ messages: number; claims: number } | undefined> {
    const { nc, topology, claims, layout } = this.opts;
    const stream = topology.streams.clean.name;
    const jsm = await jetstreamManager(nc);
    let endSeq: number;
    try {
      endSeq = (await jsm.streams.info(stream)).state.last_seq;
    } catch (err) {
      // No clean stream yet: nothing was ever published, so there is nothing to claim.
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)
        return { messages: 0, claims: 0 };
      throw err;
    }
    if (endSeq === 0) return { messages: 0, claims: 0 };
    const from = new Date(Date.now() - this.opts.horizonMs - (this.opts.fenceMs ?? 3_000));
    const consumer = await jetstream(nc).consumers.get(stream, {
      deliver_policy: DeliverPolicy.StartTime,
      opt_start_time: from.toISOString(),
    });
    const perCall = this.opts.claimsPerCall ?? 32_768;
    let batch = new ClaimBatch(layout);
    // Latest publish time of the batch's messages: re-seeded claims expire when the originals would.
    let publishedMs = 0;
    let messages = 0;
    let total = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      // A passing Redis hiccup must not throw away hours of seeding: a few tries in place.
      for (let attempt = 1; ; attempt++) {
        try {
          await claims.claim(batch, { seedToken: token, claimedAtMs: publishedMs || Date.now() });
          break;
        } catch (err) {
          if (
            attempt >= 5 ||
            err instanceof SeedAbortedError ||
            err instanceof ClaimsLostError ||
            !(err instanceof RedisUnavailableError)
          )
            throw err;
          await sleep(200 * attempt);
        }
      }
      total += batch.length;
      batch = new ClaimBatch(layout);
      publishedMs = 0;
    };
    try {
      if ((await consumer.info(true)).num_pending === 0) return { messages: 0, claims: 0 };
      let seq = 0;
      let idle = 0;
      // Bounded: a round reads at least one message, or counts towards the 3 idle rounds that end
      // the loop (complete, or SeedIncompleteError).
      // A message larger than a whole fetch's bytes is read on its own (one message, no byte bound).
      let oversized = false;
      while (seq < endSeq && !this.stopped) {
        const iter = await consumer.fetch(
          oversized
            ? { max_messages: 1, expires: 2_000 }
            : { max_bytes: this.opts.fetchBytes ?? FETCH_BYTES, expires: 2_000 },
        );
        oversized = false;
        let got = 0;
        try {
          for await (const m of iter) {
            got++;
            seq = m.seq;
            if (m.seq > endSeq) break;
            messages++;
            let scanned;
            try {
              scanned = decodeRawMessage(m, topology);
            } catch {
              continue; // a clean batch dedupe did not write; nothing to claim for it
            }
            publishedMs = Math.max(publishedMs, Math.floor(Number(m.info.timestampNanos) / 1e6));
            const owner = batch.owner(ownerOfClean(scanned.batchId, m.seq));
            for (let i = 0; i < scanned.ids.length; i++)
              batch.add(scanned.ids[i]!, scanned.times[i]!, owner);
            if (batch.length >= perCall) await flush();
            if (seq >= endSeq) break;
          }
        } catch (err) {
          if (!isMaxBytesEnd(err)) throw err;
          if (got === 0) {
            oversized = true;
            continue;
          }
        }
        if (got > 0) {
          idle = 0;
          continue;
        }
        if (++idle < 3) continue;
        // Nothing arrives: done only if the server has nothing below endSeq left for this consumer
        // (the rest expired or was deleted); a short read must never commit a guard.
        const info = await consumer.info(false);
        if (info.num_pending === 0 || info.delivered.stream_seq >= endSeq) break;
        throw new SeedIncompleteError(
          `re-seed read the clean stream up to ${seq} of ${endSeq}, then nothing for 3 fetches (${info.num_pending} pending)`,
        );
      }
      await flush();
    } catch (err) {
      if (err instanceof SeedAbortedError) return undefined;
      throw err;
    } finally {
      await consumer.delete().catch(() => undefined);
    }
    return this.stopped ? undefined : { messages, claims: total };
  }
}
