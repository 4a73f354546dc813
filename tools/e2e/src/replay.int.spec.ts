// `sluice replay` end to end: the archiver, mongo-capture and the aggregator as real processes on
// real NATS, MongoDB-wire and PostgreSQL servers; the CLI as a real process reading the archive the
// archiver wrote.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { CONTENT_TYPES, HEADERS, encodeBatch, topology, type Event } from '@sluice/contracts';
import { publishDurable } from '@sluice/jetstream';
import { detectionEvent, telemetryEvent } from '@sluice/sinks-core/testing';
import {
  createMongoTestDatabase,
  mongoTestUrl,
  type MongoTestDatabase,
} from '@sluice/sinks-mongodb/testing';
import {
  createTestDatabase,
  natsFixture,
  testUrls,
  uniqueId,
  waitFor,
  type NatsFixture,
  type PgDatabase,
  s3ServiceEnv,
  seaweedfs,
} from '@sluice/testing';
import { S3Store } from '@sluice/archive';
import { archiverLeaseStream, runCli, startCli, startService, type Service } from './processes';

const DAY = '2026-11-28';
const at = (hhmmss: string, ms = 0) => new Date(Date.parse(`${DAY}T${hhmmss}Z`) + ms);

describe('sluice replay', () => {
  let nats: NatsFixture;
  const services: Service[] = [];
  const cleanups: Array<() => Promise<void> | void> = [];

  beforeAll(async () => {
    nats = await natsFixture();
  });
  afterEach(async () => {
    await Promise.all(services.splice(0).map((s) => s.stop()));
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(async () => {
    await nats.cleanup();
  });

  function installation(prefix: string, store: 'fs' | 's3' = 'fs') {
    const ns = uniqueId(prefix);
    const topo = topology(ns);
    for (const s of Object.values(topo.streams)) nats.track(s.name);
    nats.track(archiverLeaseStream(ns));
    const dir = mkdtempSync(join(tmpdir(), `${prefix}-archive-`));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    let archiveEnv: Record<string, string> = { ARCHIVER_DIR: dir };
    let archiveArgs = ['--archive', dir];
    if (store === 's3') {
      const s3 = seaweedfs();
      const bucket = `sluice-${ns.replace(/[^a-z0-9]/g, '').slice(0, 40)}`;
      archiveEnv = s3ServiceEnv(s3, bucket);
      archiveArgs = [
        '--archive',
        `s3://${bucket}/`,
        '--s3-endpoint',
        s3.endpoint,
        '--s3-path-style',
      ];
      cleanups.push(async () => {
        const objects = new S3Store({ bucket, endpoint: s3.endpoint, forcePathStyle: true });
        for (const o of await objects.list('')) await objects.delete(o.key);
        await objects.close();
      });
    }
    const env = {
      NATS_URL: testUrls.nats,
      SLUICE_NAMESPACE: ns,
      OPS_PORT: '0',
      LOG_LEVEL: 'info',
    };
    const start = async (name: string, extra: Record<string, string>) => {
      const s = startService(name, { ...env, ...extra });
      services.push(s);
      await s.waitForLog(`${name} running`, 60_000);
      return s;
    };
    const archiver = () =>
      start('archiver', {
        ...archiveEnv,
        ARCHIVER_FILE_MAX_AGE: '300ms',
        ARCHIVER_BATCH_CONCURRENCY: '4',
      });
    const publish = async (region: string, events: Event[], batchId = uniqueId('b')) => {
      await publishDurable(nats.js, topo.clean(region), encodeBatch({ batchId, events }), {
        msgId: batchId,
        contentType: CONTENT_TYPES.EVENT_BATCH,
      });
    };
    const settled = (durable: string, stream = topo.streams.clean.name) =>
      waitFor(
        `${durable} settled`,
        async () => {
          const [c, s] = await Promise.all([
            nats.jsm.consumers.info(stream, durable),
            nats.jsm.streams.info(stream),
          ]);
          return (
            c.num_pending === 0 &&
            c.num_ack_pending === 0 &&
            c.delivered.stream_seq >= s.state.last_seq
          );
        },
        { timeoutMs: 90_000, intervalMs: 200 },
      );
    const replayed = async (id: string) => {
      const out: string[] = [];
      const info = await nats.jsm.streams.info(topo.streams.replay.name).catch(() => undefined);
      if (!info || info.state.messages === 0) return out;
      const oc = await nats.js.consumers.get(topo.streams.replay.name);
      const msgs = await oc.fetch({ max_messages: info.state.messages, expires: 5_000 });
      for await (const m of msgs) {
        if (m.headers?.get(HEADERS.REPLAY_ID) === id) out.push(m.headers.get(HEADERS.MSG_ID));
        if (m.info.pending === 0) break;
      }
      return out;
    };
    const cli = (args: string[]) =>
      runCli(['replay', ...archiveArgs, ...args], {
        NATS_URL: testUrls.nats,
        SLUICE_NAMESPACE: ns,
      });
    return { ns, topo, dir, archiveArgs, env, start, archiver, publish, settled, replayed, cli };
  }

  /** Waves of clean batches: telemetry of two regions, devices and sensors, and detections. */
  async function publishWaves(
    inst: ReturnType<typeof installation>,
    waves: number,
    settle: () => Promise<void>,
  ): Promise<number> {
    let n = 0;
    for (let w = 0; w < waves; w++) {
      for (const region of ['eu-west', 'us-east']) {
        for (let b = 0; b < 4; b++) {
          const events: Event[] = [];
          for (let i = 0; i < 12; i++) {
            const id = `${region}-w${w}-b${b}-e${i}`;
            events.push(
              i % 6 === 5
                ? detectionEvent(id, {
                    region,
                    deviceId: `cam-${b % 2}`,
                    time: at('10:00:00', w * 600_000 + b * 1000 + i),
                  })
                : telemetryEvent(id, {
                    region,
                    deviceId: `boat-${b % 3}`,
                    sensorType: i % 2 ? 'engine_temp' : 'speed',
                    time: at('10:00:00', w * 600_000 + b * 7_000 + i * 333),
                    value: w * 100 + b * 10 + i + 0.25,
                    attributes: { wave: String(w), hull: `h${i % 3}` },
                  }),
            );
            n++;
          }
          await inst.publish(region, events);
        }
      }
      await settle();
    }
    return n;
  }

  async function documents(db: MongoTestDatabase): Promise<Array<Record<string, unknown>>> {
    const out: Array<Record<string, unknown>> = [];
    const colls = await db.db.listCollections({}, { nameOnly: true }).toArray();
    for (const c of colls.map((x) => x.name).sort()) {
      if (c.startsWith('system.') || c.startsWith('sluice_probe_')) continue;
      for (const d of await db.db.collection(c).find({}).sort({ _id: 1 }).toArray()) {
        const doc = { collection: c, ...d } as Record<string, unknown>;
        // The capture time is when this capture stored the document: the one field a replay cannot
        // reproduce by design.
        delete (doc['ingest'] as Record<string, unknown>)['captured_at'];
        out.push(doc);
      }
    }
    return out;
  }

  it('rebuilds a fresh MongoDB capture from the archive, document for document', async () => {
    const inst = installation('rpm');
    const original = await createMongoTestDatabase('rpa');
    const fresh = await createMongoTestDatabase('rpb');
    cleanups.push(
      () => original.drop(),
      () => fresh.drop(),
    );
    const mongo = { MONGO_URL: mongoTestUrl(), MONGO_WRITE_CONCERN: '1' };
    await inst.archiver();
    await inst.start('mongo-capture', { ...mongo, MONGO_DATABASE: original.name });
    const total = await publishWaves(inst, 2, async () => {
      await inst.settled('archiver');
      await inst.settled('mongo-capture');
    });
    // The clean stream's retention has passed: only the archive still holds these events.
    await nats.jsm.streams.purge(inst.topo.streams.clean.name);
    await inst.start('mongo-capture', {
      ...mongo,
      MONGO_DATABASE: fresh.name,
      MONGO_CAPTURE_DURABLE: 'capture-fresh',
      MONGO_CAPTURE_REPLAY_TARGET: 'fresh-capture',
    });

    const run = await inst.cli([
      '--target',
      'fresh-capture',
      '--from',
      `${DAY}`,
      '--to',
      '2026-11-29',
      '--json',
    ]);
    expect(run.code).toBe(0);
    const summary = JSON.parse(run.stdout.trim().split('\n').pop()!) as Record<string, number>;
    expect(summary['events']).toBe(total);

    await waitFor('fresh capture complete', async () => (await fresh.allIds()).length >= total, {
      timeoutMs: 60_000,
    });
    await inst.settled('capture-fresh-replay', inst.topo.streams.replay.name);
    const [a, b] = await Promise.all([documents(original), documents(fresh)]);
    expect(a).toHaveLength(total);
    expect(b).toEqual(a);
  });

  it('rebuilds a roll-up range to what it was, and again without double counting', async () => {
    const inst = installation('rpa');
    const db: PgDatabase = await createTestDatabase('replay');
    cleanups.push(() => db.drop());
    await inst.archiver();
    await inst.start('aggregator', {
      PG_URL: db.url,
      AGGREGATOR_FLUSH_INTERVAL: '100ms',
      AGGREGATOR_CLOSE_INTERVAL: '200ms',
      AGGREGATOR_API_PORT: '0',
    });
    await publishWaves(inst, 2, async () => {
      await inst.settled('archiver');
      await inst.settled('aggregator');
    });
    const pg = new Client({ connectionString: db.url });
    await pg.connect();
    cleanups.push(() => pg.end());
    const from = `${DAY}T10:00:00Z`;
    const to = `${DAY}T11:00:00Z`;
    const snapshot = async () =>
      (
        await pg.query(
          `SELECT resolution, scope, series_key, sensor, extract(epoch from window_start) * 1000 AS ws, region,
                  count::int8::text AS count, sum, min, max, first_value, last_value,
                  extract(epoch from first_time) * 1000 AS ft, extract(epoch from last_time) * 1000 AS lt
           FROM rollups WHERE window_start >= $1 AND window_start < $2 AND NOT derived
           ORDER BY resolution, scope, series_key, sensor, window_start`,
          [from, to],
        )
      ).rows;
    const before = await snapshot();
    expect(before.length).toBeGreaterThan(50);

    // Damage the range: a lost window, a miscounted hour and a window no event of the archive is in.
    await pg.query(
      `DELETE FROM rollups WHERE resolution = '1m' AND scope = 1 AND series_key = 'boat-1'`,
    );
    await pg.query(`UPDATE rollups SET count = count + 5, sum = sum + 1 WHERE resolution = '1h'`);
    await pg.query(
      `INSERT INTO rollups (resolution, scope, series_key, sensor, window_start, region, count, sum, min, max, first_time, first_value, last_time, last_value)
       VALUES ('1m', 1, 'ghost', 'speed', $1, 'eu-west', 3, 3, 1, 1, $1, 1, $1, 1)`,
      [`${DAY}T10:30:00Z`],
    );
    expect(await snapshot()).not.toEqual(before);

    const run = await inst.cli(['--target', 'aggregator', '--from', from, '--to', to, '--json']);
    if (run.code !== 0) throw new Error(run.stderr);
    expect(run.code).toBe(0);
    const summary = JSON.parse(run.stdout.trim().split('\n').pop()!) as {
      rebuild: { state: string; written: number; removed: number };
    };
    expect(summary.rebuild.state).toBe('committed');
    expect(summary.rebuild.removed).toBe(1);
    expect(summary.rebuild.written).toBeGreaterThan(0);
    expect(await snapshot()).toEqual(before);

    // Before the archive's first day the roll-ups cannot be restored: refused, nothing touched.
    const early = await inst.cli(['--target', 'aggregator', '--from', '2026-11-27', '--to', to]);
    expect(early.code).toBe(2);
    expect(early.stderr).toContain("the archive's telemetry starts on 2026-11-28");

    const again = await inst.cli(['--target', 'aggregator', '--from', from, '--to', to, '--json']);
    expect(again.code).toBe(0);
    const second = JSON.parse(again.stdout.trim().split('\n').pop()!) as {
      rebuild: { state: string; written: number; removed: number };
    };
    expect(second.rebuild).toMatchObject({ state: 'committed', written: 0, removed: 0 });
    expect(await snapshot()).toEqual(before);
  });

  it('resumes an interrupted replay from its checkpoint without sending a batch twice (S3)', async () => {
    const inst = installation('rpr', 's3');
    const fresh = await createMongoTestDatabase('rpr');
    cleanups.push(() => fresh.drop());
    await inst.archiver();
    const total = await publishWaves(inst, 3, async () => {
      await inst.settled('archiver');
    });
    await inst.start('mongo-capture', {
      MONGO_URL: mongoTestUrl(),
      MONGO_WRITE_CONCERN: '1',
      MONGO_DATABASE: fresh.name,
      MONGO_CAPTURE_DURABLE: 'capture-r',
      MONGO_CAPTURE_REPLAY_TARGET: 'restore',
    });
    const checkpoint = join(inst.dir, '..', `${inst.ns}-checkpoint.json`);
    cleanups.push(() => rmSync(checkpoint, { force: true }));
    const args = [
      'replay',
      ...inst.archiveArgs,
      '--target',
      'restore',
      '--from',
      DAY,
      '--to',
      '2026-11-29',
    ];
    const env = { NATS_URL: testUrls.nats, SLUICE_NAMESPACE: inst.ns };
    const first = startCli(
      [...args, '--rate', '40', '--id', 'resume-test', '--checkpoint', checkpoint],
      env,
    );
    const read = () =>
      JSON.parse(readFileSync(checkpoint, 'utf8')) as {
        done: string[];
        batches: number;
        events: number;
      };
    await waitFor(
      'a file done',
      () => {
        try {
          return read().done.length >= 1;
        } catch {
          return false;
        }
      },
      { timeoutMs: 60_000 },
    );
    first.proc.kill('SIGINT');
    const stopped = await first.done;
    expect(stopped.code).toBe(130);
    expect(stopped.stderr).toContain(`--resume ${checkpoint}`);
    const partial = read();
    expect(partial.events).toBeLessThan(total);

    const resumed = await runCli(['replay', '--resume', checkpoint, '--json'], env);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain(`${partial.done.length} file(s) done`);
    const end = read();
    expect(end.events).toBe(total);
    // Every batch went out once: the interrupted file's re-sent batches fell inside the stream's
    // duplicate window, and the files done before were not read again.
    const ids = await inst.replayed('resume-test');
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toHaveLength(end.batches);
    await waitFor('restored', async () => (await fresh.allIds()).length >= total, {
      timeoutMs: 60_000,
    });
    expect((await fresh.allIds()).sort()).toHaveLength(total);
  });

  it('refuses bad input with a clear error and publishes nothing', async () => {
    const inst = installation('rpx');
    await inst.archiver();
    const total = await publishWaves(inst, 1, async () => {
      await inst.settled('archiver');
    });
    const range = ['--from', DAY, '--to', '2026-11-29'];

    const dry = await inst.cli(['--target', 'anything', ...range, '--dry-run', '--json']);
    expect(dry.code).toBe(0);
    const d = JSON.parse(dry.stdout.trim().split('\n').pop()!) as Record<string, number>;
    expect(d).toMatchObject({ dryRun: true, events: total });
    expect(d['bytes']).toBeGreaterThan(0);
    expect(d['archiveBytes']).toBeGreaterThan(0);

    const unknown = await inst.cli(['--target', 'nobody', ...range]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown replay target "nobody"');

    const empty = await inst.cli([
      '--target',
      'nobody',
      '--from',
      '2020-01-01',
      '--to',
      '2020-01-02',
    ]);
    expect(empty.code).toBe(3);
    expect(empty.stderr).toContain('no archived events');

    const filtered = await inst.cli([
      '--target',
      'nobody',
      ...range,
      '--device',
      'no-such-boat',
      '--dry-run',
    ]);
    expect(filtered.code).toBe(3);

    const badTime = await inst.cli([
      '--target',
      'nobody',
      '--from',
      'yesterday-ish',
      '--to',
      'now',
    ]);
    expect(badTime.code).toBe(2);
    expect(badTime.stderr).toContain('--from "yesterday-ish" is not a time');

    const badRegion = await inst.cli(['--target', 'nobody', ...range, '--region', 'EU WEST']);
    expect(badRegion.code).toBe(2);
    expect(badRegion.stderr).toContain('--region');

    const unknownFlag = await inst.cli(['--target', 'nobody', ...range, '--devices', 'x']);
    expect(unknownFlag.code).toBe(2);

    const info = await nats.jsm.streams.info(inst.topo.streams.replay.name).catch(() => undefined);
    expect(info?.state.messages ?? 0).toBe(0);
  });
});
