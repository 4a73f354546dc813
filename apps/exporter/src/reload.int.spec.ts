import { telemetryEvent, detectionEvent } from '@sluice/sinks-core/testing';
import { mongoTestUrl } from '@sluice/sinks-mongodb/testing';
import { natsFixture, sleep, uniqueId, waitFor, type NatsFixture } from '@sluice/testing';
import {
  duplicates,
  exporterHarness,
  FAST,
  metric,
  waitForIds,
  type ExporterHarness,
} from './test-fixtures/harness';

describe('exporter: reloading the destinations file', () => {
  let nats: NatsFixture;
  let h: ExporterHarness;

  beforeAll(async () => {
    nats = await natsFixture();
  });
  beforeEach(async () => {
    h = await exporterHarness(nats);
  });
  afterEach(async () => {
    await h.cleanup();
  });
  afterAll(async () => {
    await nats.cleanup();
  });

  it('adds, changes, removes and re-adds destinations while events flow, refuses a malformed file, and loses nothing', async () => {
    const files = (extra: object = {}) => ({
      name: 'files',
      type: 'file',
      ...FAST,
      options: { dir: h.dir('files') },
      ...extra,
    });
    const warehouse = {
      name: 'warehouse',
      type: 'postgres',
      ...FAST,
      options: { url: h.pg.url(), schema: h.pg.schema },
    };
    const docs = {
      name: 'docs',
      type: 'mongodb',
      ...FAST,
      options: { url: mongoTestUrl(), database: h.mongo.name, writeConcernW: 1 },
    };
    await h.writeConfig({ destinations: [files(), warehouse] });
    const p = await h.start();
    const port = await h.opsPort(p);

    // Events flow the whole time: one batch every 10 ms until every reload is done.
    const published = new Set<string>();
    let flowing = true;
    const publisher = (async () => {
      for (let b = 0; flowing; b++) {
        const events = Array.from({ length: 5 }, (_, i) =>
          i === 0 && b % 7 === 0
            ? detectionEvent(uniqueId(`d${b}`))
            : telemetryEvent(uniqueId(`t${b}`)),
        );
        await h.publish(events);
        for (const e of events) published.add(e.kind!.value.eventId);
        await sleep(10);
      }
    })();
    const reloaded = (re: RegExp) => p.waitForLine(re, 30_000);
    const flowFor = async (n: number) => {
      const target = published.size + n;
      await waitFor('more events published', () => published.size >= target, { timeoutMs: 30_000 });
    };

    await flowFor(50);
    // Add (noticed by the poll).
    await h.writeConfig({ destinations: [files(), warehouse, docs] });
    await reloaded(/"added":\["docs"\].*destinations file reloaded/);
    await flowFor(50);

    // Change (on SIGHUP; the poll may see it first: either way one reload applies it).
    await h.writeConfig({
      destinations: [
        files({ format: 'csv', options: { dir: h.dir('files'), prefix: 'x-{kind}' } }),
        warehouse,
        docs,
      ],
    });
    p.kill('SIGHUP');
    await reloaded(/"changed":\["files"\].*destinations file reloaded/);
    await flowFor(50);

    // Malformed: refused, the running set stays, and it says so in metrics.
    await h.writeText(
      'destinations:\n  - name: files\n    type: file\n    options: { dri: /tmp }\n',
    );
    await reloaded(/destinations file refused/);
    expect(p.lines.find((l) => l.includes('destinations file refused'))).toContain(
      `${h.configFile}: destinations[0].options.dri: is not an option of a file destination`,
    );
    expect(await metric(port, 'sluice_exporter_config_last_reload_successful')).toBe(0);
    expect(await metric(port, 'sluice_exporter_reloads_total', 'result="refused"')).toBe(1);
    await flowFor(50);

    // Remove (its durable stays) ...
    await h.writeConfig({
      destinations: [
        files({ format: 'csv', options: { dir: h.dir('files'), prefix: 'x-{kind}' } }),
        docs,
      ],
    });
    await reloaded(/"removed":\["warehouse"\].*destinations file reloaded/);
    expect(await metric(port, 'sluice_exporter_config_last_reload_successful')).toBe(1);
    const whileRemoved = (await h.pg.storedIds()).length;
    await flowFor(100);
    // ... and nothing reaches a removed destination.
    expect((await h.pg.storedIds()).length).toBe(whileRemoved);

    // Re-added: resumes on its durable, where it stopped.
    await h.writeConfig({
      destinations: [
        files({ format: 'csv', options: { dir: h.dir('files'), prefix: 'x-{kind}' } }),
        warehouse,
        docs,
      ],
    });
    await reloaded(/"added":\["warehouse"\].*destinations file reloaded/);
    await flowFor(50);
    flowing = false;
    await publisher;

    const pgIds = await waitForIds('postgres', () => h.pg.storedIds(), published);
    const mongoIds = await waitForIds('mongodb', () => h.mongo.allIds(), published);
    const fileIds = await waitForIds('files', () => h.fileIds('files'), published);
    expect(pgIds).toHaveLength(published.size);
    expect(mongoIds).toHaveLength(published.size);
    expect(new Set(fileIds)).toEqual(published);
    expect(duplicates(fileIds)).toBe(0);
    expect((await nats.readAll(h.topo.streams.dlq.name)).length).toBe(0);
    expect(await metric(port, 'sluice_exporter_reloads_total', 'result="applied"')).toBe(4);
    expect(await metric(port, 'sluice_exporter_destination_up', 'destination="warehouse"')).toBe(1);
  });
});
