// The gateway and dedupe as real processes on a real 3-node JetStream cluster (the current nats-server
// that scripts/lib.sh builds; libs/testing natsCluster), NATS_URL naming all three servers:
// - durability: unique events sent over HTTP while the raw stream's leader is SIGKILLed and restarted;
//   every event the gateway acknowledged is in the clean stream exactly once, and both services carry on;
// - residency: with per-region raw streams placed by server tags, each region's events are stored only
//   on that region's servers, and a placement the servers cannot satisfy stops the gateway with a
//   StreamPlacementError naming the region's tag.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { decodeBatch, eventId, topology, type Topology } from '@sluice/contracts';
import { ensureStream } from '@sluice/jetstream';
import {
  natsCluster,
  redisFixture,
  sleep,
  testUrls,
  uniqueId,
  waitFor,
  type NatsCluster,
  type RedisFixture,
} from '@sluice/testing';
import { startService, type Service } from './processes';

const EU = 'region:eu-west';
const US = 'region:us-east';
const DEVICE_TOKEN = randomBytes(24).toString('hex');
const TOKENS = `${createHash('sha256').update(DEVICE_TOKEN).digest('hex')}=*`;

/** One wire event (schema version 1) with a fresh id. */
function wireEvent(device: string, region: string, idPrefix = '') {
  return {
    event_id: `${idPrefix}${randomUUID()}`,
    device_id: device,
    event_time: new Date(Date.now() - 5_000).toISOString(),
    sensor_type: 'temp',
    value: 21.5,
    unit: 'C',
    region,
  };
}

type WireEvent = ReturnType<typeof wireEvent>;

/**
 * POSTs `events` until the gateway acknowledges them all (200), resending the same body after a
 * retryable answer or a broken connection, as a device does: the same body is the same batch id, so
 * a copy stored before the failure is dropped.
 */
async function sendUntilAcked(url: string, events: WireEvent[]): Promise<void> {
  const body = JSON.stringify(events);
  let last = '';
  for (let attempt = 0; attempt < 300; attempt++) {
    try {
      const res = await fetch(`${url}/v1/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${DEVICE_TOKEN}`, 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(30_000),
      });
      const ack = (await res.json()) as { accepted?: number; retry_after_ms?: number };
      if (res.status === 200) {
        if (ack.accepted !== events.length)
          throw new Error(`acknowledged ${ack.accepted} of ${events.length} events`);
        return;
      }
      last = `${res.status} ${JSON.stringify(ack)}`;
      if (res.status !== 503 && res.status !== 429) throw new Error(`gateway answered ${last}`);
      await sleep(Math.min(ack.retry_after_ms ?? 200, 1_000));
    } catch (err) {
      if (String((err as Error).message).startsWith('gateway answered')) throw err;
      if (String((err as Error).message).startsWith('acknowledged')) throw err;
      last = String(err);
      await sleep(200);
    }
  }
  throw new Error(`batch never acknowledged; last answer: ${last}`);
}

/** Every event id in `stream`, once per stored copy (each message is an EventBatch). */
async function storedEventIds(nc: NatsConnection, stream: string): Promise<string[]> {
  const jsm = await jetstreamManager(nc);
  const total = (await jsm.streams.info(stream)).state.messages;
  if (total === 0) return [];
  const consumer = await jetstream(nc).consumers.get(stream);
  const ids: string[] = [];
  let seen = 0;
  const iter = await consumer.fetch({ max_messages: total, expires: 10_000 });
  for await (const m of iter) {
    ids.push(...decodeBatch(m.data).events.map(eventId));
    if (++seen >= total) break;
  }
  return ids;
}

/** Ids that occur more than once. */
function repeated(ids: readonly string[]): string[] {
  const seen = new Set<string>();
  const twice = new Set<string>();
  for (const id of ids) (seen.has(id) ? twice : seen).add(id);
  return [...twice];
}

/** Runs `fn`; a failure carries the last log lines of every service. */
async function withServiceLogs(services: readonly Service[], fn: () => Promise<void>) {
  try {
    await fn();
  } catch (err) {
    const tails = services.map((s) => `--- ${s.name}\n${s.lines.slice(-15).join('\n')}`).join('\n');
    (err as Error).message += `\n${tails}`;
    throw err;
  }
}

describe('gateway and dedupe on a 3-node JetStream cluster (real processes)', () => {
  let cluster: NatsCluster;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let redis: RedisFixture;
  const services: Service[] = [];

  const common = (t: Topology) => ({
    SLUICE_NAMESPACE: t.namespace,
    SLUICE_ENV: 'test',
    NATS_URL: cluster.url,
    OPS_PORT: '0',
    OPS_HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
  });
  const gatewayEnv = (t: Topology, env: Record<string, string>) => ({
    ...common(t),
    REDIS_URL: testUrls.redis,
    INGEST_HOST: '127.0.0.1',
    INGEST_HTTP_PORT: '0',
    INGEST_GRPC_PORT: '0',
    INGEST_AUTH_TOKENS: TOKENS,
    INGEST_DRAIN_GRACE: '200ms',
    ...env,
  });
  const start = (name: string, env: Record<string, string>) => {
    const s = startService(name, env);
    services.push(s);
    return s;
  };

  beforeAll(async () => {
    // The first run on a machine builds nats-server (a minute or two).
    cluster = await natsCluster({ tags: [[EU], [EU], [US]] });
    nc = await connect({ servers: cluster.servers, name: 'nats-cluster-e2e' });
    jsm = await jetstreamManager(nc);
    redis = await redisFixture();
  }, 30 * 60_000);

  afterAll(async () => {
    await Promise.all(services.map((s) => s.stop()));
    await redis?.cleanup();
    await nc?.close();
    await cluster?.destroy();
  }, 60_000);

  it('loses no acknowledged event and stores none twice while the raw stream’s leader is SIGKILLed and restarted', async () => {
    const t = topology(uniqueId('clu'));
    // The operator provisions the clean and DLQ streams with 3 replicas; dedupe's own provisioning
    // leaves their replicas as they are. The gateway makes the raw stream R3 itself.
    await ensureStream(jsm, { ...t.streams.clean, replicas: 3 });
    await ensureStream(jsm, { ...t.streams.dlq, replicas: 3 });
    const gateway = start('ingestion', gatewayEnv(t, { INGEST_STREAM_REPLICAS: '3' }));
    const gatewayUrl = `http://127.0.0.1:${String((await gateway.waitForLog('ingestion listening'))['httpPort'])}`;
    await gateway.waitForLog('ingestion running');
    const dedupe = start('dedupe', {
      ...common(t),
      REDIS_URL: testUrls.redis,
      DEDUPE_KEY_PREFIX: redis.prefix,
    });
    await withServiceLogs([gateway, dedupe], async () => {
      await dedupe.waitForLog('dedupe running');
      const raw = t.streams.raw.name;
      const clean = t.streams.clean.name;
      for (const s of [raw, clean]) {
        const info = await jsm.streams.info(s);
        expect(info.config.num_replicas).toBe(3);
      }

      const BATCHES = 160;
      const PER_BATCH = 50;
      const batches = Array.from({ length: BATCHES }, (_, b) =>
        Array.from({ length: PER_BATCH }, (_, i) =>
          wireEvent(`dev-${(b * 7 + i) % 40}`, 'eu-west'),
        ),
      );
      const victim = (await jsm.streams.info(raw)).cluster!.leader!;
      // The victim dies once a quarter of the batches are acknowledged (others are in flight), is
      // started again at half, and the last quarter is sent only once it has rejoined.
      let killed: Promise<void> | undefined;
      let restarted: Promise<void> | undefined;
      let ackedBatches = 0;
      const acked: string[] = [];
      let next = 0;
      const sender = async () => {
        for (let b = next++; b < BATCHES; b = next++) {
          if (b >= (BATCHES * 3) / 4) {
            await waitFor('the victim restarting', () => restarted !== undefined, {
              timeoutMs: 300_000,
            });
            await restarted;
          }
          await sendUntilAcked(gatewayUrl, batches[b]!);
          acked.push(...batches[b]!.map((e) => e.event_id));
          ackedBatches++;
          if (!killed && ackedBatches >= BATCHES / 4) killed = cluster.kill(victim);
          if (killed && !restarted && ackedBatches >= BATCHES / 2)
            restarted = killed.then(() => cluster.start(victim));
        }
      };
      await Promise.all(Array.from({ length: 4 }, sender));
      await restarted;
      expect(killed).toBeDefined();
      expect(acked).toHaveLength(BATCHES * PER_BATCH);

      // Dedupe has settled everything the raw stream holds.
      await waitFor(
        'dedupe settled the raw stream',
        async () => {
          const [c, s] = await Promise.all([
            jsm.consumers.info(raw, 'dedupe'),
            jsm.streams.info(raw),
          ]);
          return (
            c.num_pending === 0 &&
            c.num_ack_pending === 0 &&
            c.delivered.stream_seq >= s.state.last_seq
          );
        },
        { timeoutMs: 300_000, intervalMs: 250 },
      );
      const ids = await storedEventIds(nc, clean);
      expect(repeated(ids)).toEqual([]);
      const stored = new Set(ids);
      expect(acked.filter((id) => !stored.has(id))).toEqual([]);
      expect(stored.size).toBe(acked.length);

      // The restarted server holds its replica of both streams again, like the others.
      const cleanCount = (await jsm.streams.info(clean)).state.messages;
      const rawCount = (await jsm.streams.info(raw)).state.messages;
      for (const node of cluster.nodes) {
        for (const [s, n] of [
          [raw, rawCount],
          [clean, cleanCount],
        ] as const) {
          const st = await waitFor(`${s} caught up on ${node.name}`, async () => {
            const x = await cluster.streamState(node.name, s);
            return x && x.messages >= n ? x : undefined;
          });
          expect(st.messages).toBe(n);
        }
      }
      // Both services carried on through the outage.
      for (const s of [gateway, dedupe]) {
        expect(s.proc.exitCode).toBeNull();
        expect(s.proc.signalCode).toBeNull();
      }
    });
  }, 600_000);

  it('stores each region’s events only on the servers tagged with that region', async () => {
    const t = topology(uniqueId('res'));
    const gateway = start(
      'ingestion',
      gatewayEnv(t, {
        INGEST_REGIONS: 'eu-west,us-east',
        INGEST_STREAM_LAYOUT: 'per-region',
        INGEST_PLACEMENT: `eu-west=${EU},us-east=${US}`,
        INGEST_STREAM_REPLICAS: '1',
      }),
    );
    await withServiceLogs([gateway], async () => {
      const listening = await gateway.waitForLog('ingestion listening');
      const url = `http://127.0.0.1:${String(listening['httpPort'])}`;
      const streams = listening['streams'] as string[];
      const euStream = streams.find((s) => s.endsWith('_EU_WEST'))!;
      const usStream = streams.find((s) => s.endsWith('_US_EAST'))!;

      const euPrefix = `${uniqueId('eu-only')}-`;
      const usPrefix = `${uniqueId('us-only')}-`;
      const euEvents = Array.from({ length: 20 }, () => wireEvent('dev-eu', 'eu-west', euPrefix));
      const usEvents = Array.from({ length: 20 }, () => wireEvent('dev-us', 'us-east', usPrefix));
      await sendUntilAcked(url, euEvents);
      await sendUntilAcked(url, usEvents);

      const servers = async (stream: string) => {
        const info = await jsm.streams.info(stream);
        expect(info.config.placement?.tags).toEqual([stream === euStream ? EU : US]);
        return [info.cluster?.leader, ...(info.cluster?.replicas ?? []).map((r) => r.name)];
      };
      const euServers = await servers(euStream);
      expect(euServers).toHaveLength(1);
      expect(['n1', 'n2']).toContain(euServers[0]);
      expect(await servers(usStream)).toEqual(['n3']);
      expect((await storedEventIds(nc, euStream)).sort()).toEqual(
        euEvents.map((e) => e.event_id).sort(),
      );
      expect((await storedEventIds(nc, usStream)).sort()).toEqual(
        usEvents.map((e) => e.event_id).sort(),
      );

      // On disk: each region's event ids are in the stores of its own servers only.
      for (const e of euEvents.slice(0, 3))
        expect(await cluster.nodesStoring(e.event_id)).toEqual(euServers);
      for (const e of usEvents.slice(0, 3))
        expect(await cluster.nodesStoring(e.event_id)).toEqual(['n3']);
    });
  }, 300_000);

  it('refuses to start when a region’s placement cannot hold the replicas, naming the region’s tag', async () => {
    const t = topology(uniqueId('unp'));
    // Two replicas per region, and only one server is tagged us-east.
    const gateway = start(
      'ingestion',
      gatewayEnv(t, {
        INGEST_REGIONS: 'eu-west,us-east',
        INGEST_STREAM_LAYOUT: 'per-region',
        INGEST_PLACEMENT: `eu-west=${EU},us-east=${US}`,
        INGEST_STREAM_REPLICAS: '2',
      }),
    );
    await withServiceLogs([gateway], async () => {
      const fatal = await gateway.waitForLog('ingestion failed to start');
      const err = fatal['err'] as { type?: string; message?: string; code?: string };
      expect(err.type).toBe('StreamPlacementError');
      expect(err.code).toBe('stream_placement_unsatisfiable');
      expect(err.message).toContain('_US_EAST cannot be placed: it needs 2 replicas');
      expect(err.message).toContain(US);
      await waitFor('the gateway exited', () => gateway.proc.exitCode !== null);
      expect(gateway.proc.exitCode).toBe(1);
    });
  }, 120_000);
});
