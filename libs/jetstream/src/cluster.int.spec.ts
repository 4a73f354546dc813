// The platform's stream provisioning on a real 3-node JetStream cluster (the current nats-server that
// scripts/lib.sh builds, as libs/testing natsCluster runs it): R3 streams, placement by server tags,
// typed refusals, and an R3 stream keeping what it acknowledged through a SIGKILLed leader.
import {
  jetstream,
  jetstreamManager,
  type ConsumerInfo,
  type JetStreamClient,
  type JetStreamManager,
  type StreamInfo,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { topology } from '@sluice/contracts';
import {
  natsCluster,
  natsFixture,
  uniqueId,
  uniqueStreamName,
  waitFor,
  type NatsCluster,
  type NatsFixture,
} from '@sluice/testing';
import { ensureConsumer, ensureStream, StreamPlacementError } from './provisioning';

const EU = 'region:eu-west';
const US = 'region:us-east';

/** Leader and followers of a stream or consumer, sorted. */
function peers(info: StreamInfo | ConsumerInfo): string[] {
  return [info.cluster?.leader ?? '', ...(info.cluster?.replicas ?? []).map((r) => r.name)]
    .filter(Boolean)
    .sort();
}

/** Waits until the stream reports a leader and `n` peers in all (followers are listed once known). */
async function placed(jsm: JetStreamManager, stream: string, n: number): Promise<string[]> {
  return waitFor(`${stream} placed on ${n} servers`, async () => {
    const p = peers(await jsm.streams.info(stream));
    return p.length === n ? p : undefined;
  });
}

describe('stream provisioning on a 3-node JetStream cluster (real nats-server processes)', () => {
  let cluster: NatsCluster;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let js: JetStreamClient;

  beforeAll(async () => {
    // Two servers in eu-west, one in us-east. The first run on a machine builds nats-server.
    cluster = await natsCluster({ tags: [[EU], [EU], [US]] });
    nc = await connect({ servers: cluster.servers, name: 'cluster-spec' });
    jsm = await jetstreamManager(nc);
    js = jetstream(nc);
  }, 30 * 60_000);

  afterAll(async () => {
    await nc?.close();
    await cluster?.destroy();
  }, 60_000);

  it('creates the topology streams with 3 replicas, one on every server, and their consumers replicated too', async () => {
    const t = topology(uniqueId('r3'));
    for (const s of [t.streams.raw, t.streams.clean]) {
      await ensureStream(jsm, { ...s, replicas: 3 });
      await ensureStream(jsm, { ...s, replicas: 3 }); // a second replica starting: idempotent
      const info = await jsm.streams.info(s.name);
      expect(info.config.num_replicas).toBe(3);
      expect(await placed(jsm, s.name, 3)).toEqual(['n1', 'n2', 'n3']);
    }
    await ensureConsumer(jsm, t.streams.raw.name, { durable: 'dedupe' });
    const consumer = await waitFor('consumer on 3 servers', async () => {
      const c = await jsm.consumers.info(t.streams.raw.name, 'dedupe');
      return peers(c).length === 3 ? c : undefined;
    });
    expect(peers(consumer)).toEqual(['n1', 'n2', 'n3']);
  });

  it('places each region-tagged stream only on that region’s servers, and stores its messages nowhere else', async () => {
    const eu = { name: uniqueStreamName('RAW_EU'), subjects: [`${uniqueId('eu')}.>`] };
    const us = { name: uniqueStreamName('RAW_US'), subjects: [`${uniqueId('us')}.>`] };
    await ensureStream(jsm, { ...eu, replicas: 2, placementTags: [EU] });
    await ensureStream(jsm, { ...us, replicas: 1, placementTags: [US] });
    expect(await placed(jsm, eu.name, 2)).toEqual(['n1', 'n2']);
    expect(await placed(jsm, us.name, 1)).toEqual(['n3']);
    expect((await jsm.streams.info(eu.name)).config.placement?.tags).toEqual([EU]);

    const euMarker = uniqueId('eu-reading');
    const usMarker = uniqueId('us-reading');
    await js.publish(eu.subjects[0]!.replace('>', 'd1'), euMarker);
    await js.publish(us.subjects[0]!.replace('>', 'd1'), usMarker);
    expect(
      await waitFor('eu marker on n1 and n2', async () => {
        const on = await cluster.nodesStoring(euMarker);
        return on.length === 2 ? on : undefined;
      }),
    ).toEqual(['n1', 'n2']);
    expect(
      await waitFor('us marker on n3', async () => {
        const on = await cluster.nodesStoring(usMarker);
        return on.length === 1 ? on : undefined;
      }),
    ).toEqual(['n3']);
    expect(await cluster.nodesStoring(euMarker)).toEqual(['n1', 'n2']);
  });

  it('refuses a placement no set of servers satisfies with a StreamPlacementError naming the stream and tag', async () => {
    const cases = [
      { tags: ['region:ap-south'], replicas: 1 }, // nobody has the tag
      { tags: [US], replicas: 2 }, // one us-east server for two replicas
      { tags: [], replicas: 5 }, // three servers for five replicas
    ];
    for (const c of cases) {
      const name = uniqueStreamName('UNPLACEABLE');
      const err = await ensureStream(jsm, {
        name,
        subjects: [`${uniqueId('x')}.>`],
        replicas: c.replicas,
        placementTags: c.tags,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StreamPlacementError);
      const p = err as StreamPlacementError;
      expect(p).toMatchObject({
        stream: name,
        replicas: c.replicas,
        tags: c.tags,
        code: 'stream_placement_unsatisfiable',
      });
      expect(p.message).toContain(`stream ${name} cannot be placed`);
      for (const tag of c.tags) expect(p.message).toContain(tag);
      await expect(jsm.streams.info(name)).rejects.toThrow(/stream not found/i);
    }
  });

  it('refuses to grow an existing region stream past its region’s servers, and leaves it as it was', async () => {
    const us = { name: uniqueStreamName('RAW_US'), subjects: [`${uniqueId('us')}.>`] };
    await ensureStream(jsm, { ...us, replicas: 1, placementTags: [US] });
    const err = await ensureStream(jsm, { ...us, replicas: 2, placementTags: [US] }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StreamPlacementError);
    expect((err as Error).message).toContain(US);
    const info = await jsm.streams.info(us.name);
    expect(info.config.num_replicas).toBe(1);
    expect(peers(info)).toEqual(['n3']);
  });

  it('keeps the replicas and placement an operator gave a stream when a service’s spec leaves them unset', async () => {
    const clean = { name: uniqueStreamName('CLEAN'), subjects: [`${uniqueId('clean')}.>`] };
    const eu = { name: uniqueStreamName('CLEAN_EU'), subjects: [`${uniqueId('eu')}.>`] };
    await ensureStream(jsm, { ...clean, replicas: 3 });
    await ensureStream(jsm, { ...eu, replicas: 2, placementTags: [EU] });
    // A service starting with its own spec (no replicas, no placement) updates the other settings.
    await ensureStream(jsm, { ...clean, duplicateWindowMs: 600_000 });
    await ensureStream(jsm, { ...eu, duplicateWindowMs: 600_000 });
    const c = await jsm.streams.info(clean.name);
    expect(c.config.num_replicas).toBe(3);
    expect(c.config.duplicate_window).toBe(600_000 * 1e6);
    const e = await jsm.streams.info(eu.name);
    expect(e.config.num_replicas).toBe(2);
    expect(e.config.placement?.tags).toEqual([EU]);
    expect(e.config.duplicate_window).toBe(600_000 * 1e6);
    expect(await placed(jsm, eu.name, 2)).toEqual(['n1', 'n2']);
    // Set explicitly, they change.
    await ensureStream(jsm, { ...clean, replicas: 1 });
    expect((await jsm.streams.info(clean.name)).config.num_replicas).toBe(1);
  });

  it('keeps every acknowledged message of an R3 stream through its leader’s SIGKILL and restart', async () => {
    const s = { name: uniqueStreamName('R3_KILL'), subjects: [`${uniqueId('k')}.>`], replicas: 3 };
    await ensureStream(jsm, s);
    await placed(jsm, s.name, 3);
    const subject = s.subjects[0]!.replace('>', 'd1');
    const acked: number[] = [];
    const publish = async (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        // As a client does: a publish that fails (its leader died) is resent under the same msg id
        // until acknowledged; a copy stored before the failure is dropped as a duplicate.
        await waitFor(
          `ack of message ${i}`,
          () => js.publish(subject, String(i), { msgID: `m${i}`, timeout: 2_000 }),
          { timeoutMs: 60_000, intervalMs: 100 },
        );
        acked.push(i);
      }
    };
    await publish(0, 200);
    const leader = (await jsm.streams.info(s.name)).cluster!.leader!;
    await cluster.kill(leader);
    await waitFor('a new stream leader', async () => {
      const l = (await jsm.streams.info(s.name)).cluster?.leader;
      return l && l !== leader ? l : undefined;
    });
    await publish(200, 400);
    await cluster.start(leader);
    await publish(400, 500);

    // Every server, the restarted one included, ends up holding every acknowledged message once.
    for (const node of cluster.nodes) {
      const state = await waitFor(`${s.name} caught up on ${node.name}`, async () => {
        const st = await cluster.streamState(node.name, s.name);
        return st && st.messages >= acked.length ? st : undefined;
      });
      expect(state.messages).toBe(acked.length);
    }
    const stored = await readBodies(s.name);
    expect(stored).toEqual(acked.map(String));
  });

  /** Every message body of `stream`, in stream order. */
  async function readBodies(stream: string): Promise<string[]> {
    const total = (await jsm.streams.info(stream)).state.messages;
    const consumer = await js.consumers.get(stream);
    const out: string[] = [];
    const iter = await consumer.fetch({ max_messages: total, expires: 5_000 });
    for await (const m of iter) {
      out.push(m.string());
      if (out.length >= total) break;
    }
    return out;
  }
});

describe('stream provisioning on the single local server', () => {
  let nats: NatsFixture;
  beforeAll(async () => {
    nats = await natsFixture();
  });
  afterAll(() => nats.cleanup());

  it('refuses 3 replicas with a StreamPlacementError rather than a bare API error', async () => {
    const name = nats.track(uniqueStreamName('R3_SINGLE'));
    const err = await ensureStream(nats.jsm, {
      name,
      subjects: [`${uniqueId('single')}.>`],
      replicas: 3,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StreamPlacementError);
    expect((err as Error).message).toContain(
      `stream ${name} cannot be placed: it needs 3 replicas`,
    );
  });
});
