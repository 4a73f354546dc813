// Three archiver processes on one durable consumer, against the real NATS and a filesystem archive
// read back by libs/archive's reader (what a replay re-publishes). docs/services/archiver.md promises
// exactly once per durable with ONE process on it (`replicas: 1`, strategy Recreate;
// ArchiverDurableShared fires otherwise). This spec pins what three on one durable do instead: while
// none dies they archive what one does; one killed after its journal commit and before its ack may
// have that segment archived a second time by the others (a restarted single process never does,
// crash.int.spec.ts): each process keeps the journal's committed set in memory and reads the shared
// journal only at start.
import { ensureStream } from '@sluice/jetstream';
import { sleep, testUrls, uniqueId, type ChildService, type NatsFixture } from '@sluice/testing';
import type { Topology } from '@sluice/contracts';
import {
  archiveSuite,
  newTopology,
  publishClean,
  readArchive,
  readDataset,
  settled,
  type ArchivedEvent,
} from './test-fixtures/archive';
import { sampleBatches } from './test-fixtures/events';

const DURABLE = 'archiver';

interface Replica {
  proc: ChildService;
  opsPort: number;
}

/** Sum of a metric's samples in a Prometheus text exposition whose labels include `labels`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

const metrics = async (r: Replica) => (await fetch(`http://127.0.0.1:${r.opsPort}/metrics`)).text();

/** An archived event without its file name (segments are cut differently by each run). */
type Row = Omit<ArchivedEvent, 'key'>;

/** Per partition, every archived event (with its message's sequence, batch id and position) by id. */
function rowsByPartition(archive: Map<string, ArchivedEvent[]>): Map<string, Row[]> {
  const id = (r: Row) => r.event.kind!.value.eventId;
  return new Map(
    [...archive]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([p, rows]) => [
        p,
        rows
          .map(({ key: _key, ...r }) => r)
          .sort((a, b) => (id(a) < id(b) ? -1 : id(a) > id(b) ? 1 : 0)),
      ]),
  );
}

describe('archiver: 3 processes on one durable', () => {
  const suite = archiveSuite();
  // Deterministic events and batch ids, published alike (same order, so same sequences) to every run.
  const batches = sampleBatches(uniqueId('rep'), 300, 20);
  const total = batches.reduce((n, b) => n + b.events.length, 0);
  let single: Map<string, Row[]>;

  async function world(prefix: string) {
    const t = newTopology(suite.nats, prefix);
    const target = suite.target('fs', prefix);
    await ensureStream(suite.nats.jsm, t.streams.clean);
    const env = {
      NATS_URL: testUrls.nats,
      SLUICE_NAMESPACE: t.namespace,
      ARCHIVER_DURABLE: DURABLE,
      // Many small segments, and messages of a killed process back soon.
      ARCHIVER_FILE_MAX_AGE: '300ms',
      ARCHIVER_BATCH_MESSAGES: '8',
      ARCHIVER_ACK_WAIT: '3s',
      ...target.storeEnv,
    };
    return { t, ...target, env };
  }

  async function start(env: Record<string, string>): Promise<Replica> {
    const proc = await suite.children.start(env);
    const line = await proc.waitForLine(/archiver running/);
    return { proc, opsPort: (JSON.parse(line) as { opsPort: number }).opsPort };
  }

  /** Publishes every batch, a few ms apart, so each replica's pulls get a share as they come. */
  async function publishAll(nats: NatsFixture, t: Topology, published = { n: 0 }) {
    for (const [i, b] of batches.entries()) {
      await publishClean(nats, t, b.region, b.events, `batch-${i}`);
      published.n++;
      await sleep(5);
    }
  }

  const archivedIds = (a: Map<string, ArchivedEvent[]>) =>
    [...a.values()].flat().map((r) => r.event.kind!.value.eventId);

  beforeAll(async () => {
    // The reference: one archiver alone on the same events.
    const w = await world('arepone');
    await start(w.env);
    await publishAll(suite.nats, w.t);
    await settled(suite.nats, w.t, DURABLE);
    single = rowsByPartition(await readArchive(w.store));
    await suite.children.stopAll();
    await w.store.close();
    expect([...single.values()].flat()).toHaveLength(total);
  }, 300_000);

  it('none killed: they archive what one does, each taking part, and each shows as running on the durable (what ArchiverDurableShared counts)', async () => {
    const w = await world('arepthree');
    const replicas = [await start(w.env), await start(w.env), await start(w.env)];
    await publishAll(suite.nats, w.t);
    await settled(suite.nats, w.t, DURABLE);

    const archive = await readArchive(w.store);
    expect(rowsByPartition(archive)).toEqual(single);
    // No orphan beside the listed files either.
    const glob = [
      ...(await readDataset(w.dir, 'telemetry')),
      ...(await readDataset(w.dir, 'detections')),
    ].map((r) => r.event_id as string);
    expect(glob.sort()).toEqual(archivedIds(archive).sort());

    const texts = await Promise.all(replicas.map(metrics));
    const processed = texts.map((x) =>
      sample(x, 'sluice_messages_processed_total', { consumer: DURABLE }),
    );
    expect(processed.reduce((a, b) => a + b, 0)).toBe(batches.length);
    expect(processed.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
    // count by (consumer) (sluice_lifecycle_state{service="archiver"} == 1) > 1
    const running = texts.map((x) =>
      sample(x, 'sluice_lifecycle_state', { service: 'archiver', consumer: DURABLE }),
    );
    expect(running).toEqual([1, 1, 1]);
    await w.store.close();
  }, 300_000);

  it('one killed after its journal commit and before its ack: nothing lost; the others may archive that segment again, and nothing else', async () => {
    const w = await world('arepkill');
    const replicas = [
      await start(w.env),
      // Halts its first commit between the journal's record of it and the ack, until killed.
      await start({ ...w.env, ARCHIVER_FAILPOINT: 'before-ack', LOG_LEVEL: 'debug' }),
      await start(w.env),
    ];
    const victim = replicas[1]!;
    const published = { n: 0 };
    const publishing = publishAll(suite.nats, w.t, published);
    await victim.proc.waitForLine(/failpoint before-ack reached/, 60_000);
    const committed = victim.proc.lines.filter((l) => l.includes('segment committed'));
    expect(committed).toHaveLength(1);
    const segmentRows = (JSON.parse(committed[0]!) as { rows: number }).rows;
    victim.proc.kill('SIGKILL');
    expect(await victim.proc.exited).toBe('SIGKILL');
    const atKill = archivedIds(await readArchive(w.store)).length;
    expect(atKill).toBeGreaterThanOrEqual(segmentRows);
    expect(atKill).toBeLessThan(total);
    await publishing;
    await settled(suite.nats, w.t, DURABLE);

    const after = rowsByPartition(await readArchive(w.store));
    const id = (r: Row) => r.event.kind!.value.eventId;
    expect([...after.keys()]).toEqual([...single.keys()]);
    let twice = 0;
    for (const [p, rows] of after) {
      // Every event is in its partition, with its message's sequence, batch id and position...
      expect(rows.filter((r, i) => i === 0 || id(r) !== id(rows[i - 1]!))).toEqual(single.get(p));
      // ...and a second copy is the same row, identifiable by event_id.
      for (let i = 1; i < rows.length; i++) {
        if (id(rows[i]!) !== id(rows[i - 1]!)) continue;
        expect(rows[i]).toEqual(rows[i - 1]);
        twice++;
      }
    }
    // Only the killed process's committed segment can be there twice (its later messages were never
    // written), at most once more: the redelivered messages land in the survivors' segments, and a
    // file of theirs replaces the victim's only when it happens to get the same name (same first and
    // last sequence in that partition). One process restarted would skip it (crash.int.spec.ts).
    expect(twice).toBeLessThanOrEqual(segmentRows);

    const survivors = [replicas[0]!, replicas[2]!];
    const processed = await Promise.all(
      survivors.map(async (r) =>
        sample(await metrics(r), 'sluice_messages_processed_total', { consumer: DURABLE }),
      ),
    );
    expect(processed.every((n) => n > 0)).toBe(true);
    console.info(
      `killed at ${published.n} of ${batches.length} messages published, ${atKill} of ${total} events archived; ${twice} of its segment's ${segmentRows} archived twice`,
    );
    await w.store.close();
  }, 300_000);
});
