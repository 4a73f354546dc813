import type { JsMsg } from '@nats-io/jetstream';
import { context, trace } from '@opentelemetry/api';
import { ensureStream, publishDurable } from '@sluice/jetstream';
import {
  CONTENT_TYPES,
  decodeBatch,
  encodeBatch,
  eventId,
  HEADERS,
  topology,
  type Topology,
} from '@sluice/contracts';
import {
  createDeviceHasher,
  createLogger,
  startMemoryTracing,
  type MemoryTracing,
} from '@sluice/observability';
import {
  natsFixture,
  privateRedis,
  redisFixture,
  spawnService,
  testUrls,
  uniqueId,
  waitFor,
  type ChildService,
  type NatsFixture,
  type PrivateServer,
  type RedisFixture,
} from '@sluice/testing';
import { Registry } from 'prom-client';
import { RedisClaimStore } from './claims';
import { buildDedupe, type DedupeOptions } from './dedupe';
import { connectRedis } from './redis';
import { telemetryEvent } from './test-fixtures/events';

const log = createLogger({
  service: 'dedupe-test',
  level: 'silent',
  hashDeviceId: createDeviceHasher('test-key-0123456789'),
});
const MAIN = 'apps/dedupe/src/main.ts';

describe('dedupe on real NATS and Redis', () => {
  let nats: NatsFixture;
  let redisFx: RedisFixture;
  let tracing: MemoryTracing;
  const cleanups: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    tracing = startMemoryTracing();
    nats = await natsFixture();
    redisFx = await redisFixture();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });
  afterAll(async () => {
    await redisFx.cleanup();
    await nats.cleanup();
    await tracing.shutdown();
  });

  /** A unique namespace: its own raw, clean and DLQ streams (deleted afterwards) and claim key prefix. */
  function newTopology(): Topology {
    const t = topology(uniqueId('dd'));
    for (const s of Object.values(t.streams)) nats.track(s.name);
    return t;
  }

  async function publishRaw(t: Topology, region: string, ids: string[], batchId = uniqueId('b')) {
    const events = ids.map((id) => telemetryEvent(id, region));
    return publishDurable(nats.js, t.raw(region), encodeBatch({ batchId, events }), {
      msgId: batchId,
      contentType: CONTENT_TYPES.EVENT_BATCH,
    });
  }

  interface CleanMessage {
    msgId: string;
    batchId: string;
    subject: string;
    ids: string[];
    msg: JsMsg;
  }

  async function readClean(t: Topology): Promise<CleanMessage[]> {
    const msgs = await nats.readAll(t.streams.clean.name).catch(() => [] as JsMsg[]);
    return msgs.map((msg) => {
      const b = decodeBatch(msg.data);
      return {
        msgId: msg.headers!.get(HEADERS.MSG_ID),
        batchId: b.batchId,
        subject: msg.subject,
        ids: b.events.map(eventId),
        msg,
      };
    });
  }

  /** Waits until the clean stream holds exactly `expected` ids (each once), and checks the msg ids. */
  async function expectExactlyOnce(
    t: Topology,
    expected: string[],
    timeoutMs = 30_000,
  ): Promise<CleanMessage[]> {
    const want = [...new Set(expected)].sort();
    await waitFor(
      `clean stream to hold ${want.length} events`,
      async () => (await readClean(t)).flatMap((m) => m.ids).length >= want.length,
      { timeoutMs },
    );
    // Give a stray duplicate the chance to show up before judging.
    await new Promise((r) => setTimeout(r, 300));
    const final = await readClean(t);
    expect(final.flatMap((m) => m.ids).sort()).toEqual(want);
    expect(new Set(final.map((m) => m.msgId)).size).toBe(final.length);
    for (const m of final) {
      expect(m.msgId).toMatch(new RegExp(`^raw:${t.streams.raw.name}:\\d+$`));
      expect(m.batchId).toBe(m.msgId);
    }
    return final;
  }

  async function consumerSettled(t: Topology, durable = 'dedupe') {
    await waitFor(
      'raw consumer settled',
      async () => {
        const i = await nats.jsm.consumers.info(t.streams.raw.name, durable);
        return i.num_pending === 0 && i.num_ack_pending === 0;
      },
      { timeoutMs: 30_000 },
    );
  }

  async function startInProcess(t: Topology, opts: DedupeOptions & { redisUrl?: string } = {}) {
    const { redis, stoppable } = connectRedis({
      url: opts.redisUrl ?? testUrls.redis,
      commandTimeoutMs: 1_000,
      log,
    });
    const claims = new RedisClaimStore({ redis, ttlMs: 60_000, timeoutMs: 1_000 });
    const registry = new Registry();
    const d = await buildDedupe(
      { nc: nats.nc, topology: t, claims, log, registry },
      {
        keyPrefix: `${redisFx.prefix}${t.namespace}:`,
        ackWaitMs: 3_000,
        backoffMs: [100, 200, 400, 800],
        reseedFenceMs: 1_000,
        ...opts,
      },
    );
    cleanups.push(() => stoppable.stop());
    cleanups.push(() => d.publisher.stop());
    cleanups.push(() => d.recovery.stop());
    for (const a of d.actors) {
      cleanups.push(() => a.stop(5_000));
      await a.start();
    }
    /** Sum of a counter's values matching `labels`. */
    const metric = async (name: string, labels: Record<string, string> = {}) => {
      const m = await registry.getSingleMetric(name)?.get();
      return (m?.values ?? [])
        .filter((v) =>
          Object.entries(labels).every(
            ([k, val]) => (v.labels as Record<string, unknown>)[k] === val,
          ),
        )
        .reduce((sum, v) => sum + v.value, 0);
    };
    return { ...d, redis, claims, registry, metric };
  }

  it('publishes each event once across different batches, resent batches and repeats inside a message', async () => {
    const t = newTopology();
    const dd = await startInProcess(t);
    await publishRaw(t, 'eu', ['e1', 'e2', 'e3']);
    await publishRaw(t, 'eu', ['e3', 'e4', 'e4', 'e5']); // e3 again in another batch, e4 twice in one
    await publishRaw(t, 'us', ['e1', 'e2']); // a resend under a new batch id: nothing new
    const same = uniqueId('b');
    await publishRaw(t, 'eu', ['e6'], same);
    await publishRaw(t, 'eu', ['e6'], same); // device retry with the same batch id: dropped by JetStream
    const clean = await expectExactlyOnce(t, ['e1', 'e2', 'e3', 'e4', 'e5', 'e6']);
    await consumerSettled(t);
    expect(clean).toHaveLength(3);
    expect(clean.map((m) => m.subject)).toEqual([t.clean('eu'), t.clean('eu'), t.clean('eu')]);
    expect(clean.map((m) => m.ids)).toEqual([['e1', 'e2', 'e3'], ['e4', 'e5'], ['e6']]);
    expect(await dd.metric('sluice_dedupe_duplicates_total', { reason: 'claimed' })).toBe(3);
    expect(await dd.metric('sluice_dedupe_duplicates_total', { reason: 'in_message' })).toBe(1);
    expect(await dd.metric('sluice_dedupe_claims_total', { result: 'new' })).toBe(6);
  });

  it('keeps claims in event-time bucket hashes that expire the TTL after the later of bucket end and claim', async () => {
    const t = newTopology();
    const prefix = `${redisFx.prefix}${t.namespace}:`;
    const dd = await startInProcess(t, { claimBucketMs: 60_000, claimShards: 4 });
    const future = new Date(Math.ceil(Date.now() / 60_000) * 60_000 + 3_600_000); // a bucket 1 h ahead
    const long = `long-${'x'.repeat(300)}`;
    const events = [
      telemetryEvent('past-1'),
      telemetryEvent('a\nb'),
      telemetryEvent(long),
      telemetryEvent('future-1', 'eu', 'dev-1', future),
    ];
    const before = Date.now();
    await publishDurable(nats.js, t.raw('eu'), encodeBatch({ batchId: uniqueId('b'), events }), {
      msgId: uniqueId('b'),
      contentType: CONTENT_TYPES.EVENT_BATCH,
    });
    // The same readings again in another batch: every one a duplicate, the newline and long ids too.
    await publishDurable(
      nats.js,
      t.raw('eu'),
      encodeBatch({ batchId: uniqueId('b'), events: [...events].reverse() }),
      { msgId: uniqueId('b'), contentType: CONTENT_TYPES.EVENT_BATCH },
    );
    await expectExactlyOnce(t, ['past-1', 'a\nb', long, 'future-1']);
    await consumerSettled(t);
    const after = Date.now();
    expect(await dd.metric('sluice_dedupe_duplicates_total', { reason: 'claimed' })).toBe(4);

    const all = (await redisFx.redis.keys(`${prefix}*`)).sort();
    expect(all).toContain(`${prefix}claims-epoch`); // the guard the claims were seeded under
    const keys = all.filter((k) => k !== `${prefix}claims-epoch`);
    const pastBucket = Math.floor(1_700_000_000_000 / 60_000) * 60_000;
    expect(
      keys.every((k) =>
        new RegExp(`^${prefix}claims(-h)?:(${pastBucket}|${future.getTime()}):[0-3]$`).test(k),
      ),
    ).toBe(true);
    expect(keys.filter((k) => k.includes('claims-h:'))).toHaveLength(2); // the long id and the newline id
    for (const key of keys) {
      const expireAt = await redisFx.redis.pexpiretime(key);
      if (key.includes(`:${future.getTime()}:`))
        expect(expireAt).toBe(future.getTime() + 60_000 + 60_000); // bucket end + TTL
      else {
        expect(expireAt).toBeGreaterThanOrEqual(before + 60_000); // claim time + TTL: the bucket ended long ago
        expect(expireAt).toBeLessThanOrEqual(after + 60_000);
      }
    }
    // A reading with the same id but an event time in another bucket is another reading: kept.
    await publishDurable(
      nats.js,
      t.raw('eu'),
      encodeBatch({
        batchId: uniqueId('b'),
        events: [telemetryEvent('past-1', 'eu', 'dev-1', new Date(1_700_000_000_000 + 60_000))],
      }),
      { msgId: uniqueId('b'), contentType: CONTENT_TYPES.EVENT_BATCH },
    );
    await waitFor(
      'the re-timed reading',
      async () =>
        (await readClean(t)).flatMap((m) => m.ids).filter((id) => id === 'past-1').length === 2,
    );
  });

  it('re-seeds lost claims with the expiry the originals had, so resends stay duplicates', async () => {
    const t = newTopology();
    const prefix = `${redisFx.prefix}${t.namespace}:`;
    const dd = await startInProcess(t, {
      claimBucketMs: 60_000,
      claimShards: 2,
      probeIntervalMs: 100,
    });
    await publishRaw(t, 'eu', ['rs1', 'rs2', 'rs3']);
    await expectExactlyOnce(t, ['rs1', 'rs2', 'rs3']);
    const publishedBy = Date.now();
    await new Promise((r) => setTimeout(r, 1_500));
    // Redis "loses" every claim and the guard (as FLUSHALL would, for this prefix only).
    const keys = await redisFx.redis.keys(`${prefix}*`);
    await redisFx.redis.del(...keys);
    await publishRaw(t, 'us', ['rs2', 'rs4']); // a resend of rs2 and a new event
    await expectExactlyOnce(t, ['rs1', 'rs2', 'rs3', 'rs4']);
    await consumerSettled(t);
    expect(
      await dd.metric('sluice_dedupe_reseeds_total', { outcome: 'committed' }),
    ).toBeGreaterThanOrEqual(2);
    // The re-seeded hash of the old bucket expires TTL (60 s here) after the publish, not after the seed.
    const claimHashes = (await redisFx.redis.keys(`${prefix}claims:*`)).filter(
      (k) => (k.split(':').at(-2) ?? '') !== String(Math.floor(Date.now() / 60_000) * 60_000),
    );
    expect(claimHashes.length).toBeGreaterThan(0);
    for (const key of claimHashes) {
      const fields = await redisFx.redis.hkeys(key);
      if (!fields.some((f) => f === 'rs1' || f === 'rs3')) continue;
      expect(await redisFx.redis.pexpiretime(key)).toBeLessThanOrEqual(publishedBy + 60_000);
    }
  });

  it('re-seeds a clean stream larger than one fetch, and a message larger than a whole fetch', async () => {
    const t = newTopology();
    const prefix = `${redisFx.prefix}${t.namespace}:`;
    // 2 KiB per fetch: NATS ends most fetches with "message size exceeds maxbytes" (a 409 nats.js
    // raises), and the 60-event message does not fit one fetch at all.
    const dd = await startInProcess(t, { reseedFetchBytes: 2_048, probeIntervalMs: 100 });
    const ids: string[] = [];
    for (let m = 0; m < 12; m++) {
      const batch = [`fx${m}a`, `fx${m}b`, `fx${m}c`];
      ids.push(...batch);
      await publishRaw(t, 'eu', batch);
    }
    const big = Array.from({ length: 60 }, (_, i) => `fxbig-${i}-${'x'.repeat(24)}`);
    ids.push(...big);
    await publishRaw(t, 'eu', big);
    await expectExactlyOnce(t, ids);
    const keys = await redisFx.redis.keys(`${prefix}*`);
    await redisFx.redis.del(...keys);
    const result = await dd.reseed('test');
    expect(result).toMatchObject({ outcome: 'committed', messages: 13, claims: ids.length });
    // Every re-seeded claim holds: resends of old events stay duplicates.
    await publishRaw(t, 'us', ['fx3b', big[7]!, 'fx-new']);
    await expectExactlyOnce(t, [...ids, 'fx-new']);
  });

  it('republishes the claimed events of a redelivered message (claims are already its own)', async () => {
    const t = newTopology();
    const dd = await startInProcess(t);
    // No clean stream: the publish fails after the claims are made, so the raw message is redelivered.
    await nats.jsm.streams.delete(t.streams.clean.name);
    await publishRaw(t, 'eu', ['r1', 'r2']);
    await waitFor(
      'a failed attempt',
      async () => (await dd.metric('sluice_messages_retried_total')) >= 1,
    );
    expect(await dd.metric('sluice_dedupe_claims_total', { result: 'new' })).toBe(2);
    await ensureStream(nats.jsm, { ...t.streams.clean, duplicateWindowMs: 600_000 });
    await expectExactlyOnce(t, ['r1', 'r2']);
    expect(
      await dd.metric('sluice_dedupe_claims_total', { result: 'ours' }),
    ).toBeGreaterThanOrEqual(2);
    expect(await dd.metric('sluice_dedupe_duplicates_total', { reason: 'claimed' })).toBe(0);
  });

  it('dead-letters a malformed raw message and keeps going', async () => {
    const t = newTopology();
    await startInProcess(t);
    await publishRaw(t, 'eu', ['m1']);
    await publishDurable(nats.js, t.raw('eu'), new TextEncoder().encode('{"event_id":"x"}'), {
      msgId: uniqueId('bad'),
      contentType: 'application/json',
    });
    await publishRaw(t, 'eu', ['m2']);
    await expectExactlyOnce(t, ['m1', 'm2']);
    const [letter] = await waitFor('dead letter', async () => {
      const m = await nats.readAll(t.streams.dlq.name);
      return m.length ? m : undefined;
    });
    expect(letter!.subject).toBe(t.dlq('dedupe'));
    expect(letter!.headers!.get(HEADERS.DLQ_ERROR_CLASS)).toBe('PoisonMessageError');
    expect(letter!.headers!.get(HEADERS.DLQ_ERROR)).toMatch(
      /cannot decode sluice.telemetry.v1.EventBatch/,
    );
    await consumerSettled(t);
  });

  it('continues the ingestion trace on the clean message and spans the claim and the publish', async () => {
    const t = newTopology();
    await startInProcess(t);
    const span = trace.getTracer('test').startSpan('ingest');
    await context.with(trace.setSpan(context.active(), span), () => publishRaw(t, 'eu', ['t1']));
    span.end();
    const [clean] = await expectExactlyOnce(t, ['t1']);
    expect(clean!.msg.headers!.get(HEADERS.TRACEPARENT)).toContain(span.spanContext().traceId);
    const names = await waitFor('dedupe spans', () => {
      const n = tracing.exporter
        .getFinishedSpans()
        .filter(
          (s) =>
            s.spanContext().traceId === span.spanContext().traceId || s.name.startsWith('dedupe '),
        )
        .map((s) => s.name);
      return n.includes('dedupe claim') && n.includes('dedupe publish') ? n : undefined;
    });
    expect(names).toContain(`process ${t.raw('eu')}`);
  });

  describe('Redis outage (private Redis)', () => {
    let redis: PrivateServer;
    beforeEach(async () => {
      redis = await privateRedis();
    });
    afterEach(async () => {
      await redis.destroy();
    });

    it('holds work while Redis is down, re-seeds the claims it lost, and publishes every event exactly once', async () => {
      const t = newTopology();
      const dd = await startInProcess(t, { redisUrl: redis.url, probeIntervalMs: 100 });
      await waitFor('redis ready', () => dd.claims.isReady());
      await publishRaw(t, 'eu', ['o1', 'o2']);
      await expectExactlyOnce(t, ['o1', 'o2']);
      await redis.stop();
      await publishRaw(t, 'eu', ['o3', 'o4']);
      await publishRaw(t, 'eu', ['o4', 'o5']); // overlaps the previous message: o4 must still come once
      await publishRaw(t, 'us', ['o6']);
      await waitFor(
        'the gate down',
        async () =>
          (await dd.metric('sluice_store_up', { store: 'redis' })) === 0 &&
          (await dd.metric('sluice_store_errors_total')) >= 1,
      );
      expect(dd.actors.every((a) => !a.isReady())).toBe(true);
      expect((await readClean(t)).flatMap((m) => m.ids).sort()).toEqual(['o1', 'o2']);
      // Held, not nak'ed into the backoff schedule: nothing counts as retried.
      expect(await dd.metric('sluice_messages_retried_total')).toBe(0);
      // The private Redis has no persistence: it comes back empty. The claims of o1 and o2 are
      // re-seeded from the clean stream before anything is claimed, so resends of them are dropped.
      await redis.start();
      await publishRaw(t, 'eu', ['o1', 'o7']);
      await publishRaw(t, 'us', ['o2', 'o6']);
      await expectExactlyOnce(t, ['o1', 'o2', 'o3', 'o4', 'o5', 'o6', 'o7']);
      await consumerSettled(t);
      expect(await dd.metric('sluice_dedupe_pass_through_total')).toBe(0);
      expect(
        await dd.metric('sluice_dedupe_reseeds_total', { outcome: 'committed' }),
      ).toBeGreaterThanOrEqual(2); // at start, and after the restart
      expect(await dd.metric('sluice_dedupe_reseed_claims_total')).toBeGreaterThanOrEqual(2);
      await waitFor('ready again', () => dd.actors.every((a) => a.isReady()));
    });

    it('publishes unclaimed, metered, with DEDUPE_ON_REDIS_DOWN=pass', async () => {
      const t = newTopology();
      const dd = await startInProcess(t, { redisUrl: redis.url, onRedisDown: 'pass' });
      await redis.stop();
      await publishRaw(t, 'eu', ['p1', 'p2', 'p2']);
      await expectExactlyOnce(t, ['p1', 'p2']);
      expect(await dd.metric('sluice_dedupe_pass_through_total')).toBe(2);
    });
  });

  describe('real processes', () => {
    const children: ChildService[] = [];
    afterEach(async () => {
      for (const c of children.splice(0)) {
        c.kill('SIGTERM');
        const timer = setTimeout(() => c.kill('SIGKILL'), 10_000);
        await c.exited;
        clearTimeout(timer);
      }
    });

    function spawnDedupe(t: Topology, env: Record<string, string> = {}): ChildService {
      const child = spawnService(MAIN, {
        NATS_URL: testUrls.nats,
        REDIS_URL: testUrls.redis,
        SLUICE_NAMESPACE: t.namespace,
        DEDUPE_KEY_PREFIX: `${redisFx.prefix}${t.namespace}:`,
        OPS_PORT: '0',
        OPS_HOST: '127.0.0.1',
        OTEL_SDK_DISABLED: 'true',
        LOG_LEVEL: 'info',
        DEDUPE_ACK_WAIT: '2s',
        DEDUPE_CLEAN_DUPLICATE_WINDOW: '2m',
        DEDUPE_BACKOFF: '100ms,200ms,500ms',
        ...env,
      });
      children.push(child);
      return child;
    }

    /** Raw messages whose events overlap their neighbours': ids k*5 .. k*5+9. */
    async function publishOverlapping(t: Topology, messages: number): Promise<string[]> {
      const all: string[] = [];
      for (let k = 0; k < messages; k++) {
        const ids = Array.from({ length: 10 }, (_, i) => `ov-${k * 5 + i}`);
        all.push(...ids);
        await publishRaw(t, k % 2 ? 'eu' : 'us', ids);
      }
      return all;
    }

    for (const point of ['after-claim', 'after-publish'] as const) {
      it(`loses and duplicates nothing when the process is SIGKILLed ${point}`, async () => {
        const t = newTopology();
        await ensureStream(nats.jsm, t.streams.raw);
        const ids = await publishOverlapping(t, 12);
        const first = spawnDedupe(t, { DEDUPE_CRASH_AT: point, DEDUPE_BATCH_MESSAGES: '4' });
        expect(await first.exited).toBe('SIGKILL');
        expect(first.lines.some((l) => l.includes(`SIGKILL at ${point}`))).toBe(true);
        const before = await readClean(t);
        if (point === 'after-claim') expect(before).toHaveLength(0);
        else expect(before.length).toBeGreaterThan(0);

        const second = spawnDedupe(t, { DEDUPE_BATCH_MESSAGES: '4' });
        await second.waitForLine(/dedupe running/);
        await expectExactlyOnce(t, ids);
        await consumerSettled(t);
        const after = await readClean(t);
        // The republished copies of the first process's clean batches were dropped by msg id.
        for (const m of before) expect(after.filter((a) => a.msgId === m.msgId)).toHaveLength(1);
      });
    }

    it('two replicas racing on overlapping batches publish each event once', async () => {
      const t = newTopology();
      await ensureStream(nats.jsm, t.streams.raw);
      const a = spawnDedupe(t, { DEDUPE_BATCH_MESSAGES: '2' });
      const b = spawnDedupe(t, { DEDUPE_BATCH_MESSAGES: '2' });
      await Promise.all([a.waitForLine(/dedupe running/), b.waitForLine(/dedupe running/)]);
      const ids = await publishOverlapping(t, 40);
      await expectExactlyOnce(t, ids).catch((err) => {
        throw new Error(
          `${(err as Error).message}\nreplica a:\n${a.lines.slice(-15).join('\n')}\nreplica b:\n${b.lines.slice(-15).join('\n')}`,
        );
      });
      await consumerSettled(t);
    });
  });
});
