// The gateway and dedupe as real processes on a real 3-node JetStream cluster (the current nats-server
// that scripts/lib.sh builds; libs/testing natsCluster), NATS_URL naming all three servers:
// - durability: unique events sent over HTTP while the raw stream's leader is SIGKILLed and restarted;
//   every event the gateway acknowledged is in the clean stream exactly once, and both services carry on;
// - residency: with per-region raw streams placed by server tags, each region's events are stored only
//   on that region's servers, and a placement the servers cannot satisfy stops the gateway with a
//   StreamPlacementError naming the region's tag;
// - regional deployments: a dedupe and an archiver per region (SLUICE_REGION) keep each region's clean
//   stream on its own servers too, so a region's events are stored on no other server.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

  it('keeps each regional deployment’s raw and clean streams, and their messages, on that region’s servers only', async () => {
    const t = topology(uniqueId('reg'));
    const regions = [
      { region: 'eu-west', tag: EU, servers: ['n1', 'n2'] },
      { region: 'us-east', tag: US, servers: ['n3'] },
    ] as const;
    const deployment = (r: (typeof regions)[number]) =>
      topology(t.namespace, { region: r.region, placementTags: [r.tag] });
    // The operator gives eu-west's clean stream both eu-west servers; us-east's is created by its
    // dedupe (one replica), placed by SLUICE_REGION's default tag.
    await ensureStream(jsm, { ...deployment(regions[0]).streams.clean, replicas: 2 });
    const archiveDir = await mkdtemp(join(tmpdir(), 'sluice-regional-archive-'));
    const gateway = start(
      'ingestion',
      gatewayEnv(t, {
        INGEST_REGIONS: 'eu-west,us-east',
        INGEST_STREAM_LAYOUT: 'per-region',
        INGEST_PLACEMENT: `eu-west=${EU},us-east=${US}`,
        INGEST_STREAM_REPLICAS: '1',
      }),
    );
    const all: Service[] = [gateway];
    try {
      await withServiceLogs(all, async () => {
        const listening = await gateway.waitForLog('ingestion listening', 180_000);
        const url = `http://127.0.0.1:${String(listening['httpPort'])}`;
        const rawOf = (region: string) =>
          (listening['streams'] as string[]).find((s) =>
            s.endsWith(`_${region.toUpperCase().replace('-', '_')}`),
          )!;
        for (const r of regions) {
          const env = {
            ...common(t),
            SLUICE_REGION: r.region,
            // eu-west names its tag; us-east takes the default, region:<SLUICE_REGION>.
            ...(r.region === 'eu-west' ? { SLUICE_REGION_PLACEMENT: r.tag } : {}),
          };
          const dedupe = start('dedupe', {
            ...env,
            REDIS_URL: testUrls.redis,
            DEDUPE_KEY_PREFIX: redis.prefix,
            DEDUPE_STREAMS: rawOf(r.region),
          });
          // A consumer service as it is, bound to its region's clean stream by SLUICE_REGION alone.
          const archiver = start('archiver', {
            ...env,
            ARCHIVER_DIR: join(archiveDir, r.region),
            ARCHIVER_DURABLE: `archiver-${r.region}`,
            ARCHIVER_FILE_MAX_AGE: '1s',
          });
          all.push(dedupe, archiver);
          // Five processes start on a shared machine: give each more than the default minute.
          await dedupe.waitForLog('dedupe running', 180_000);
          await archiver.waitForLog('archiver running', 180_000);
        }

        const sent = new Map<string, WireEvent[]>();
        for (const r of regions) {
          const prefix = `${uniqueId(`${r.region}-only`)}-`;
          const events = Array.from({ length: 25 }, (_, i) =>
            wireEvent(`dev-${r.region}-${i % 5}`, r.region, prefix),
          );
          sent.set(r.region, events);
          await sendUntilAcked(url, events.slice(0, 10));
          await sendUntilAcked(url, events.slice(10));
        }

        for (const r of regions) {
          const dt = deployment(r);
          const events = sent.get(r.region)!;
          const ids = events.map((e) => e.event_id).sort();
          const raw = rawOf(r.region);
          const clean = dt.streams.clean.name;
          expect(clean).toBe(`${t.streams.clean.name}_${r.region.toUpperCase().replace('-', '_')}`);
          const cleanIds = await waitFor(
            `${clean} holds every ${r.region} event`,
            async () => {
              const got = await storedEventIds(nc, clean);
              return got.length >= ids.length ? got : undefined;
            },
            { timeoutMs: 60_000, intervalMs: 250 },
          );
          expect(cleanIds.sort()).toEqual(ids);
          expect((await storedEventIds(nc, raw)).sort()).toEqual(ids);

          // Stream info: each stream's leader and replicas are the region's servers only.
          const serversOf = async (stream: string) => {
            const info = await jsm.streams.info(stream);
            expect([stream, info.config.placement?.tags]).toEqual([stream, [r.tag]]);
            return [info.cluster?.leader, ...(info.cluster?.replicas ?? []).map((x) => x.name)]
              .filter((n): n is string => n !== undefined)
              .sort();
          };
          const rawServers = await serversOf(raw);
          const cleanServers = await serversOf(clean);
          expect((await jsm.streams.info(clean)).config.subjects).toEqual([t.clean(r.region)]);
          expect(rawServers).toHaveLength(1);
          expect(r.servers).toContain(rawServers[0]);
          expect(cleanServers).toEqual([...r.servers]);

          // Each server's monitoring endpoint: only the region's servers hold a replica, with every
          // message; the others hold none.
          for (const node of cluster.nodes) {
            for (const [stream, holders] of [
              [raw, rawServers],
              [clean, cleanServers],
            ] as const) {
              const total = (await jsm.streams.info(stream)).state.messages;
              const state = holders.includes(node.name)
                ? await waitFor(`${stream} on ${node.name}`, async () => {
                    const x = await cluster.streamState(node.name, stream);
                    return x && x.messages >= total ? x : undefined;
                  })
                : await cluster.streamState(node.name, stream);
              expect([node.name, stream, state?.messages]).toEqual([
                node.name,
                stream,
                holders.includes(node.name) ? total : undefined,
              ]);
            }
          }

          // On disk: every event id of the region is in its servers' stores, and in no other's.
          for (const e of events)
            expect([e.event_id, await cluster.nodesStoring(e.event_id)]).toEqual([
              e.event_id,
              [...new Set([...rawServers, ...cleanServers])].sort(),
            ]);

          // The region's archiver consumed (and acknowledged) its region's clean stream only.
          const durable = `archiver-${r.region}`;
          const c = await waitFor(
            `${durable} settled ${clean}`,
            async () => {
              const x = await jsm.consumers.info(clean, durable);
              return x.num_pending === 0 && x.num_ack_pending === 0 && x.delivered.stream_seq > 0
                ? x
                : undefined;
            },
            { timeoutMs: 120_000, intervalMs: 250 },
          );
          expect(c.config.filter_subject).toBe(t.clean(r.region));
        }
        // No service made a clean or roll-up stream for every region.
        for (const shared of [t.streams.clean.name, t.streams.rollups.name])
          await expect(jsm.streams.info(shared)).rejects.toThrow(/stream not found/);
        for (const s of all) expect([s.name, s.proc.exitCode]).toEqual([s.name, null]);
      });
    } finally {
      await Promise.all(all.map((s) => s.stop()));
      await rm(archiveDir, { recursive: true, force: true });
    }
  }, 600_000);

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
