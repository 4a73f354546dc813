// Three archiver processes on one durable consumer, against the real NATS and a filesystem archive
// read back by libs/archive's reader (what a replay re-publishes). Only the holder of the durable's
// lease (NATS KV) consumes and writes; the others are hot standbys. Whatever happens to the leader
// (it runs alone, it is SIGKILLed with uncommitted work, twice in a row, or between its journal commit
// and its ack, its lease key is deleted under it, it is frozen past its TTL and resumes, or it is
// stopped with SIGTERM) the archive holds exactly what one process alone archives: the same rows per
// partition, every event once. A leader that loses its lease steps down and stays up as a standby.
// Throughout, the processes' leader gauges are sampled together: never more than one says 1.
import { Kvm } from '@nats-io/kv';
import { ensureStream } from '@sluice/jetstream';
import {
  sleep,
  sumSamples,
  testUrls,
  uniqueId,
  waitFor,
  type ChildService,
  type NatsFixture,
} from '@sluice/testing';
import type { Topology } from '@sluice/contracts';
import {
  archiveSuite,
  duplicates,
  newTopology,
  publishClean,
  readArchive,
  readDataset,
  settled,
  type ArchivedEvent,
} from './test-fixtures/archive';
import { sampleBatches } from './test-fixtures/events';
import { LEASE_KEY, leaseBucket } from './lease';

const DURABLE = 'archiver';
const LEADING = /archiver role: leader, consuming/;

interface Replica {
  proc: ChildService;
  opsPort: number;
}

const alive = (r: Replica) => r.proc.proc.exitCode === null && r.proc.proc.signalCode === null;

async function metric(r: Replica, name: string, labels: Record<string, string> = {}) {
  const res = await fetch(`http://127.0.0.1:${r.opsPort}/metrics`);
  return sumSamples(await res.text(), name, labels);
}

const leaderGauge = (r: Replica) => metric(r, 'sluice_archiver_leader', { consumer: DURABLE });

/**
 * Reads every live replica's leader gauge at the same moment, every 50 ms, until stopped. A round
 * where a live replica did not answer is left out (it cannot be judged).
 */
const samplers = new Set<{ stop(): Promise<number[]> }>();

function sampleLeaders(replicas: () => Replica[]) {
  const rounds: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const live = replicas().filter(alive);
      const values = await Promise.all(live.map((r) => leaderGauge(r).catch(() => undefined)));
      if (values.every((v) => v !== undefined) && live.every(alive))
        rounds.push(values.reduce((a, b) => a + b, 0));
      await sleep(50);
    }
  })();
  const sampler = {
    async stop(): Promise<number[]> {
      running = false;
      samplers.delete(sampler);
      await loop;
      return rounds;
    },
  };
  samplers.add(sampler);
  return sampler;
}

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

describe('archiver: 3 replicas on one durable, one leader', () => {
  const suite = archiveSuite();
  afterEach(async () => {
    for (const s of [...samplers]) await s.stop();
  });
  // Deterministic events and batch ids, published alike (same order, so same sequences) to every run.
  const batches = sampleBatches(uniqueId('rep'), 300, 20);
  const total = batches.reduce((n, b) => n + b.events.length, 0);
  const allIds = batches.flatMap((b) => b.events.map((e) => e.kind!.value.eventId)).sort();
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

  /** The first replica started leads (it is alone); two standbys join it. */
  async function three(env: Record<string, string>, firstEnv: Record<string, string> = {}) {
    const first = await start({ ...env, ...firstEnv });
    await first.proc.waitForLine(LEADING, 30_000);
    return [first, await start(env), await start(env)];
  }

  /** Publishes batches [from, to), a few ms apart, so segments are cut as they come. */
  async function publish(
    nats: NatsFixture,
    t: Topology,
    from = 0,
    to = batches.length,
    published = { n: 0 },
  ) {
    for (let i = from; i < to; i++) {
      const b = batches[i]!;
      await publishClean(nats, t, b.region, b.events, `batch-${i}`);
      published.n++;
      await sleep(5);
    }
  }

  /** The archive is exactly the single process's: same rows per partition, nothing twice, no orphan file. */
  async function expectSameAsOne(w: Awaited<ReturnType<typeof world>>) {
    const archive = await readArchive(w.store);
    expect(rowsByPartition(archive)).toEqual(single);
    const listed = [...archive.values()].flat().map((r) => r.event.kind!.value.eventId);
    expect(duplicates(listed)).toEqual([]);
    expect(listed.sort()).toEqual(allIds);
    // Read as a glob, not through the manifests: an orphan or a second copy would count.
    const glob = [
      ...(await readDataset(w.dir, 'telemetry')),
      ...(await readDataset(w.dir, 'detections')),
    ].map((r) => r.event_id as string);
    expect(duplicates(glob)).toEqual([]);
    expect(glob.sort()).toEqual(allIds);
  }

  /** The replica among `rs` that has logged that it leads (the error shows their last lines). */
  async function nextLeader(rs: Replica[], timeoutMs = 60_000): Promise<Replica> {
    try {
      return await waitFor(
        'a standby leading',
        () => rs.find((r) => r.proc.lines.some((l) => LEADING.test(l))),
        { timeoutMs, intervalMs: 50 },
      );
    } catch (err) {
      throw new Error(
        `${(err as Error).message}; last lines:\n${rs.map((r) => r.proc.lines.slice(-15).join('\n')).join('\n---\n')}`,
      );
    }
  }

  /** How many times `r` has logged that it leads. */
  const timesLed = (r: Replica) => r.proc.lines.filter((l) => LEADING.test(l)).length;

  /** Waits until `r` holds events not yet committed. */
  async function holding(r: Replica): Promise<void> {
    await waitFor(
      'the leader holding uncommitted events',
      async () => ((await metric(r, 'sluice_archiver_buffer_rows')) > 0 ? true : undefined),
      { timeoutMs: 30_000, intervalMs: 10 },
    );
  }

  /** SIGKILLs the leader as soon as it holds events not yet committed. */
  async function killHolding(r: Replica): Promise<void> {
    await waitFor(
      'the leader holding uncommitted events',
      async () => ((await metric(r, 'sluice_archiver_buffer_rows')) > 0 ? true : undefined),
      { timeoutMs: 30_000, intervalMs: 10 },
    );
    await suite.children.kill(r.proc);
  }

  beforeAll(async () => {
    // The reference: one archiver alone on the same events.
    const w = await world('arepone');
    await start(w.env);
    await publish(suite.nats, w.t);
    await settled(suite.nats, w.t, DURABLE);
    single = rowsByPartition(await readArchive(w.store));
    await suite.children.stopAll();
    await w.store.close();
    expect([...single.values()].flat()).toHaveLength(total);
  }, 300_000);

  it('none killed: the archive is what one process makes; the leader alone consumes, the standbys are ready', async () => {
    const w = await world('arepthree');
    const replicas = await three(w.env);
    const sampler = sampleLeaders(() => replicas);
    await publish(suite.nats, w.t);
    await settled(suite.nats, w.t, DURABLE);
    const rounds = await sampler.stop();

    await expectSameAsOne(w);
    expect(Math.max(...rounds)).toBe(1);
    expect(await Promise.all(replicas.map(leaderGauge))).toEqual([1, 0, 0]);
    const processed = await Promise.all(
      replicas.map((r) => metric(r, 'sluice_messages_processed_total', { consumer: DURABLE })),
    );
    expect(processed).toEqual([batches.length, 0, 0]);
    for (const r of replicas) {
      const res = await fetch(`http://127.0.0.1:${r.opsPort}/readyz`);
      expect(res.status).toBe(200);
    }
    for (const r of replicas.slice(1))
      expect(r.proc.lines.some((l) => l.includes('archiver role: standby'))).toBe(true);
    await w.store.close();
  }, 300_000);

  it('the leader killed between its journal commit and its ack: a standby takes over from the journal, every event once', async () => {
    const w = await world('arepack');
    // The leader halts its first commit between the journal's record of it and the ack, until killed.
    const replicas = await three(w.env, { ARCHIVER_FAILPOINT: 'before-ack', LOG_LEVEL: 'debug' });
    const [victim, ...survivors] = replicas as [Replica, Replica, Replica];
    const sampler = sampleLeaders(() => replicas);
    const published = { n: 0 };
    const publishing = publish(suite.nats, w.t, 0, batches.length, published);
    await victim.proc.waitForLine(/failpoint before-ack reached/, 60_000);
    const committed = victim.proc.lines.filter((l) => l.includes('segment committed'));
    expect(committed).toHaveLength(1);
    const segmentRows = (JSON.parse(committed[0]!) as { rows: number }).rows;
    await suite.children.kill(victim.proc);
    const publishedAtKill = published.n;
    const atKill = [...(await readArchive(w.store)).values()].flat().length;
    expect(atKill).toBe(segmentRows);

    const next = await nextLeader(survivors);
    await publishing;
    await settled(suite.nats, w.t, DURABLE);
    const rounds = await sampler.stop();

    await expectSameAsOne(w);
    expect(Math.max(...rounds)).toBe(1);
    // The victim's committed segment was known from the journal: acknowledged, not written again.
    expect(await metric(next, 'sluice_archiver_duplicate_messages_total')).toBeGreaterThan(0);
    expect(await Promise.all(survivors.map(leaderGauge))).toEqual(
      survivors.map((r) => (r === next ? 1 : 0)),
    );
    console.info(
      `killed at ${publishedAtKill} of ${batches.length} messages published with ${segmentRows} events committed and unacknowledged`,
    );
    await w.store.close();
  }, 300_000);

  it('the leader SIGKILLed with uncommitted events, then its successor too: the last one archives every event once', async () => {
    const w = await world('arepkill');
    const replicas = await three(w.env);
    const sampler = sampleLeaders(() => replicas);
    const third = Math.floor(batches.length / 3);

    let leader = replicas[0]!;
    let publishing = publish(suite.nats, w.t, 0, third);
    await killHolding(leader);
    await publishing;
    leader = await nextLeader(replicas.filter(alive));

    publishing = publish(suite.nats, w.t, third, 2 * third);
    await killHolding(leader);
    await publishing;
    leader = await nextLeader(replicas.filter(alive));

    await publish(suite.nats, w.t, 2 * third);
    await settled(suite.nats, w.t, DURABLE);
    const rounds = await sampler.stop();

    await expectSameAsOne(w);
    expect(Math.max(...rounds)).toBe(1);
    const left = replicas.filter(alive);
    expect(left).toHaveLength(1);
    expect(left[0]).toBe(leader);
    expect(await leaderGauge(leader)).toBe(1);
    await w.store.close();
  }, 300_000);

  it('the lease key deleted under the leader: it stops writing and steps down to standby, a replica takes over, every event once', async () => {
    const w = await world('areplost');
    const replicas = await three(w.env);
    const [first] = replicas as [Replica, Replica, Replica];
    const sampler = sampleLeaders(() => replicas);
    const half = Math.floor(batches.length / 2);
    const publishing = publish(suite.nats, w.t, 0, half);
    await holding(first);
    const ledBefore = replicas.map(timesLed);
    await (
      await new Kvm(suite.nats.nc).open(leaseBucket(w.t.namespace, DURABLE))
    ).delete(LEASE_KEY);
    await first.proc.waitForLine(/archiver role: standby again/, 60_000);
    expect(first.proc.lines.some((l) => l.includes('archiver role: lost the lease'))).toBe(true);
    expect(alive(first)).toBe(true);
    await publishing;
    // Whichever replica acquires the deleted key next (the deposed one too) leads from then on.
    const next = await waitFor(
      'a replica leading after the deletion',
      () => replicas.find((r, i) => timesLed(r) > ledBefore[i]!),
      { timeoutMs: 60_000, intervalMs: 50 },
    );
    await publish(suite.nats, w.t, half);
    await settled(suite.nats, w.t, DURABLE);
    const rounds = await sampler.stop();

    await expectSameAsOne(w);
    expect(Math.max(...rounds)).toBe(1);
    // It took over a key deleted by hand: it waited a whole TTL before writing.
    expect(next.proc.lines.some((l) => l.includes('deleted by hand'))).toBe(true);
    expect(await leaderGauge(next)).toBe(1);
    expect(replicas.every(alive)).toBe(true);
    await w.store.close();
  }, 300_000);

  it('the leader frozen past its TTL (SIGSTOP) with uncommitted events: a standby takes over; resumed, the old leader steps down without exiting, and leads again once the other stops, every event once', async () => {
    const w = await world('arepstall');
    const env = { ...w.env, ARCHIVER_LEASE_TTL: '2s' };
    const first = await start(env);
    await first.proc.waitForLine(LEADING, 30_000);
    const second = await start(env);
    const replicas = [first, second];
    const sampler = sampleLeaders(() => replicas);
    const third = Math.floor(batches.length / 3);
    const publishing = publish(suite.nats, w.t, 0, third);
    await holding(first);
    // What a saturated machine does to its renewals, for as long as it takes a standby to lead.
    first.proc.kill('SIGSTOP');
    try {
      await nextLeader([second]);
    } finally {
      first.proc.kill('SIGCONT');
    }
    await first.proc.waitForLine(/archiver role: standby again/, 60_000);
    expect(first.proc.lines.some((l) => l.includes('archiver role: lost the lease'))).toBe(true);
    expect(alive(first)).toBe(true);
    expect(await leaderGauge(first)).toBe(0);
    expect(await metric(first, 'sluice_archiver_lease_step_downs_total')).toBe(1);
    await publishing;
    await publish(suite.nats, w.t, third, 2 * third);

    // The second stops and releases the lease: the first, still the same process, leads again.
    second.proc.kill('SIGTERM');
    expect(await second.proc.exited).toBe(0);
    await waitFor('the first leading again', () => timesLed(first) >= 2, {
      timeoutMs: 60_000,
      intervalMs: 50,
    });
    await publish(suite.nats, w.t, 2 * third);
    await settled(suite.nats, w.t, DURABLE);
    const rounds = await sampler.stop();

    await expectSameAsOne(w);
    expect(Math.max(...rounds)).toBe(1);
    expect(await leaderGauge(first)).toBe(1);
    await w.store.close();
  }, 300_000);

  it('the leader stopped with SIGTERM drains and releases the lease: a standby takes over without waiting for it to expire', async () => {
    const w = await world('arepterm');
    // A lease that would take a minute to expire: only the release lets a standby in sooner.
    const env = { ...w.env, ARCHIVER_LEASE_TTL: '60s' };
    const replicas = await three(env);
    const sampler = sampleLeaders(() => replicas);
    const half = Math.floor(batches.length / 2);
    await publish(suite.nats, w.t, 0, half);

    const [first, ...rest] = replicas as [Replica, Replica, Replica];
    first.proc.kill('SIGTERM');
    const next = await nextLeader(rest, 30_000);
    expect(await first.proc.exited).toBe(0);
    expect(first.proc.lines.some((l) => l.includes('released the lease after draining'))).toBe(
      true,
    );

    await publish(suite.nats, w.t, half);
    await settled(suite.nats, w.t, DURABLE);
    const rounds = await sampler.stop();
    await expectSameAsOne(w);
    expect(Math.max(...rounds)).toBe(1);
    expect(await leaderGauge(next)).toBe(1);
    await w.store.close();
  }, 300_000);
});
