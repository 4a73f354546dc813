// Three exporter processes on one destinations file (docs/services/exporter.md, Scaling): each
// destination's durable is shared by the three. Against the real NATS and PostgreSQL, and a file
// destination with a folder per replica (the file names one process writes must be its own), their
// outcome is one exporter's: the same event_ids with the same records, none twice in PostgreSQL,
// duplicates in files only as repeats of a record under its event_id; also with one of them SIGKILLed
// mid-run.
import { join } from 'node:path';
import type { Event } from '@sluice/contracts';
import type { ExportRecord } from '@sluice/sinks-core';
import { detectionEvent, telemetryEvent } from '@sluice/sinks-core/testing';
import {
  natsFixture,
  uniqueId,
  waitFor,
  type ChildService,
  type NatsFixture,
} from '@sluice/testing';
import {
  duplicates,
  exporterHarness,
  FAST,
  metric,
  waitForIds,
  type ExporterHarness,
} from './test-fixtures/harness';

const REPLICAS = 3;
/** Names each process's folder of the file destination (`${…}` in the destinations file). */
const REPLICA_VAR = 'SLUICE_TEST_REPLICA';
const PROCESSED = 'sluice_messages_processed_total';
const DESTINATIONS = ['files', 'warehouse'] as const;

/** `batches` clean batches of `size` events: telemetry of 7 devices, a frame first in every fifth. */
function workload(prefix: string, batches: number, size: number): Event[][] {
  return Array.from({ length: batches }, (_, b) =>
    Array.from({ length: size }, (_, i) => {
      const id = `${prefix}-${b}-${i}`;
      return i === 0 && b % 5 === 0
        ? detectionEvent(id, { deviceId: `cam-${b % 3}` })
        : telemetryEvent(id, {
            deviceId: `dev-${(b + i) % 7}`,
            value: b * 10 + i / 4,
            time: new Date(Date.UTC(2026, 10, 1, 12) + b * 1_000 + i),
          });
    }),
  );
}

const byId = (rs: ExportRecord[]) =>
  [...rs].sort((a, b) => (a.event_id < b.event_id ? -1 : a.event_id > b.event_id ? 1 : 0));

/** What one run left at its destinations. */
interface Outcome {
  /** PostgreSQL's records, sorted by event_id (a repeat would show as a second entry). */
  pg: ExportRecord[];
  /** Every line of every replica's files, in no particular order. */
  files: ExportRecord[];
}

describe('exporter: 3 replicas behave as one', () => {
  let nats: NatsFixture;
  let h: ExporterHarness;
  // Deterministic events, published alike to every run (each in a namespace of its own).
  const batches = workload(uniqueId('rep'), 600, 8);
  const ids = new Set(batches.flat().map((e) => e.kind!.value.eventId));
  let single: Outcome;

  /** One message per write (the kill test's run lasts long enough to land in it). */
  const settings = { ...FAST, batch: { max_messages: 1, linger: 0 } };

  async function configure(x: ExporterHarness): Promise<void> {
    await x.writeConfig({
      destinations: [
        {
          name: 'files',
          type: 'file',
          ...settings,
          options: { dir: join(x.dir('out'), `\${${REPLICA_VAR}}`) },
        },
        {
          name: 'warehouse',
          type: 'postgres',
          ...settings,
          options: { url: x.pg.url(), schema: x.pg.schema },
        },
      ],
    });
  }

  const startReplica = (x: ExporterHarness, i: number) => x.start({ [REPLICA_VAR]: `r${i}` });

  async function fileRecords(x: ExporterHarness): Promise<ExportRecord[]> {
    const out: ExportRecord[] = [];
    for (let i = 0; i < REPLICAS; i++) out.push(...(await x.fileRecords(join('out', `r${i}`))));
    return out;
  }

  async function publishAll(x: ExporterHarness): Promise<void> {
    for (const b of batches) await x.publish(b);
  }

  /** Waits until both destinations hold every event id; returns what they hold then. */
  async function outcome(x: ExporterHarness, timeoutMs = 120_000): Promise<Outcome> {
    await waitForIds('postgres', () => x.pg.storedIds(), ids, timeoutMs);
    await waitForIds(
      'files',
      async () => (await fileRecords(x)).map((r) => r.event_id),
      ids,
      timeoutMs,
    );
    return { pg: byId(await x.pg.records()), files: await fileRecords(x) };
  }

  /** The single replica's outcome, and file duplicates only as the same record under its event_id. */
  function expectSameAsSingle(o: Outcome): void {
    expect(o.pg.map((r) => r.event_id)).toEqual(single.pg.map((r) => r.event_id));
    expect(o.pg).toEqual(single.pg);
    const ref = new Map(single.files.map((r) => [r.event_id, r]));
    expect(new Set(o.files.map((r) => r.event_id))).toEqual(new Set(ref.keys()));
    for (const r of o.files) expect(r).toEqual(ref.get(r.event_id));
  }

  /** Messages each process acknowledged, per destination. */
  async function processed(ports: number[]): Promise<Record<string, number[]>> {
    const out: Record<string, number[]> = {};
    for (const d of DESTINATIONS)
      out[d] = await Promise.all(
        ports.map(async (p) => (await metric(p, PROCESSED, `consumer="exporter-${d}"`)) ?? 0),
      );
    return out;
  }

  beforeAll(async () => {
    nats = await natsFixture();
    // The reference: one exporter alone, on the same destinations file and events.
    const ref = await exporterHarness(nats);
    try {
      await configure(ref);
      await startReplica(ref, 0);
      await publishAll(ref);
      single = await outcome(ref);
    } finally {
      await ref.cleanup();
    }
    expect(single.pg).toHaveLength(ids.size);
    expect(duplicates(single.files.map((r) => r.event_id))).toBe(0);
  }, 240_000);

  beforeEach(async () => {
    h = await exporterHarness(nats);
    await configure(h);
  });
  afterEach(async () => {
    await h.cleanup();
  });
  afterAll(async () => {
    await nats.cleanup();
  });

  it('exports what one exporter does: the same records by event_id at PostgreSQL and in files, each replica taking part', async () => {
    const procs = await Promise.all(Array.from({ length: REPLICAS }, (_, i) => startReplica(h, i)));
    const ports = await Promise.all(procs.map((p) => h.opsPort(p)));
    await publishAll(h);
    const o = await outcome(h);
    expectSameAsSingle(o);
    expect(o.pg).toHaveLength(ids.size);
    // Every message was acknowledged once per destination, by replicas sharing the work.
    const done = await processed(ports);
    for (const d of DESTINATIONS) {
      expect(done[d]!.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(batches.length);
      expect(done[d]!.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
    }
    console.info(
      `3 replicas: messages per replica ${JSON.stringify(done)}, ${duplicates(o.files.map((r) => r.event_id))} duplicate file line(s)`,
    );
  }, 240_000);

  it('one replica SIGKILLed mid-run: nothing lost, none twice in PostgreSQL, file repeats are the same record', async () => {
    const procs: ChildService[] = await Promise.all(
      Array.from({ length: REPLICAS }, (_, i) => startReplica(h, i)),
    );
    const ports = await Promise.all(procs.map((p) => h.opsPort(p)));
    const victim = 1;
    const publishing = publishAll(h);
    // Killed once it has stored some of its share, while the run goes on.
    await waitFor(
      'the victim storing',
      async () =>
        ((await metric(ports[victim]!, PROCESSED, 'consumer="exporter-warehouse"')) ?? 0) > 0,
      { timeoutMs: 60_000, intervalMs: 20 },
    );
    procs[victim]!.kill('SIGKILL');
    expect(await procs[victim]!.exited).toBe('SIGKILL');
    const atKill = new Set(await h.pg.storedIds()).size;
    expect(atKill).toBeGreaterThan(0);
    expect(atKill).toBeLessThan(ids.size);
    await publishing;

    // The survivors take over what the victim held unacknowledged (back after retry.ack_wait).
    // Its folder is read as its recovery will keep it: whole lines of the temp file it was writing.
    const o = await outcome(h, 180_000);
    expectSameAsSingle(o);
    expect(o.pg).toHaveLength(ids.size);
    const live = ports.filter((_, i) => i !== victim);
    const after = await processed(live);
    for (const d of DESTINATIONS) expect(after[d]!.every((n) => n > 0)).toBe(true);
    console.info(
      `SIGKILL at ${atKill} of ${ids.size} rows: survivors acked ${JSON.stringify(after)}, ${duplicates(o.files.map((r) => r.event_id))} duplicate file line(s)`,
    );
  }, 300_000);
});
