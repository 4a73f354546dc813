import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDeviceHasher, createLogger } from '@sluice/observability';
import { Registry } from 'prom-client';
import type { DestinationsFile } from './config';
import { DestinationsConfigError } from './errors';
import type { ApplyResult } from './exporter';
import { ExporterMetrics } from './metrics';
import { Reloader } from './reload';

const log = createLogger({
  service: 'exporter-test',
  level: 'silent',
  hashDeviceId: createDeviceHasher('test-key-0123456789'),
});
const file = (hash: string): DestinationsFile => ({ file: 'f.yaml', hash, destinations: [] });
const none: ApplyResult = { added: [], removed: [], changed: [], unchanged: [], failed: [] };

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('Reloader', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sluice-reload-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function setup(
    load: () => Promise<DestinationsFile>,
    apply: (f: DestinationsFile) => Promise<ApplyResult>,
  ) {
    const registry = new Registry();
    const metrics = new ExporterMetrics(registry);
    let current = 'h0';
    const reloader = new Reloader({
      file: join(dir, 'exporter.yaml'),
      pollMs: 0,
      signal: false,
      load,
      apply: async (f) => {
        const r = await apply(f);
        current = f.hash;
        return r;
      },
      currentHash: () => current,
      log,
      metrics,
    });
    const value = async (name: string, labels = '') =>
      (await registry.getSingleMetricAsString(name))
        .split('\n')
        .find((l) => !l.startsWith('#') && l.includes(labels))
        ?.split(' ')[1];
    return { reloader, value };
  }

  it('runs one reload at a time; calls during one fold into a single reload after it', async () => {
    let loads = 0;
    let active = 0;
    let most = 0;
    const gates: Array<ReturnType<typeof deferred<void>>> = [];
    const { reloader } = setup(
      () => Promise.resolve(file(`h${++loads}`)),
      async () => {
        active++;
        most = Math.max(most, active);
        const g = deferred<void>();
        gates.push(g);
        await g.promise;
        active--;
        return none;
      },
    );
    const first = reloader.reload('a');
    const second = reloader.reload('b');
    const third = reloader.reload('c');
    expect(second).toBe(third);
    await new Promise((r) => setImmediate(r));
    expect(gates).toHaveLength(1);
    gates[0]!.resolve();
    expect((await first).result).toBe('applied');
    await new Promise((r) => setImmediate(r));
    expect(gates).toHaveLength(2);
    gates[1]!.resolve();
    expect((await second).result).toBe('applied');
    expect(loads).toBe(2);
    expect(most).toBe(1);
  });

  it('refuses a malformed file (metric 0, counted) and keeps going; unchanged content applies nothing', async () => {
    let next: () => Promise<DestinationsFile> = () =>
      Promise.reject(
        new DestinationsConfigError('f.yaml', [{ path: 'destinations[0].type', reason: 'bad' }]),
      );
    const applied: string[] = [];
    const { reloader, value } = setup(
      () => next(),
      (f) => {
        applied.push(f.hash);
        return Promise.resolve(none);
      },
    );
    const refused = await reloader.reload('test');
    expect(refused.result).toBe('refused');
    expect(refused.error).toBeInstanceOf(DestinationsConfigError);
    expect(await value('sluice_exporter_config_last_reload_successful')).toBe('0');
    expect(await value('sluice_exporter_reloads_total', 'result="refused"')).toBe('1');
    next = () => Promise.resolve(file('h0'));
    expect((await reloader.reload('test')).result).toBe('unchanged');
    expect(await value('sluice_exporter_config_last_reload_successful')).toBe('1');
    next = () => Promise.resolve(file('h1'));
    expect((await reloader.reload('test')).result).toBe('applied');
    expect(applied).toEqual(['h1']);
  });

  it('the poll reloads when the file changes (and not otherwise); stop() ends it', async () => {
    const path = join(dir, 'exporter.yaml');
    await writeFile(path, 'a');
    let loads = 0;
    const registry = new Registry();
    const reloader = new Reloader({
      file: path,
      pollMs: 20,
      signal: false,
      load: () => Promise.resolve(file(`h${++loads}`)),
      apply: () => Promise.resolve(none),
      currentHash: () => 'h0',
      log,
      metrics: new ExporterMetrics(registry),
    });
    await reloader.start();
    await new Promise((r) => setTimeout(r, 100));
    expect(loads).toBe(0);
    // Replaced whole (temp + rename): a write in place can be seen half done, as two changes.
    await writeFile(`${path}.tmp`, 'bb');
    await rename(`${path}.tmp`, path);
    for (let i = 0; i < 100 && loads === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(loads).toBe(1);
    await reloader.stop();
    await writeFile(path, 'ccc');
    await new Promise((r) => setTimeout(r, 100));
    expect(loads).toBe(1);
  });
  it('a SIGHUP before start() is kept and reloads once started; after stop() it is no longer heard', async () => {
    const path = join(dir, 'exporter.yaml');
    await writeFile(path, 'a');
    let loads = 0;
    const reloader = new Reloader({
      file: path,
      pollMs: 0,
      load: () => Promise.resolve(file(`h${++loads}`)),
      apply: () => Promise.resolve(none),
      currentHash: () => 'h0',
      log,
      metrics: new ExporterMetrics(new Registry()),
    });
    try {
      process.emit('SIGHUP', 'SIGHUP');
      await new Promise((r) => setTimeout(r, 20));
      expect(loads).toBe(0);
      await reloader.start();
      for (let i = 0; i < 100 && loads === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(loads).toBe(1);
    } finally {
      await reloader.stop();
    }
    expect(process.listenerCount('SIGHUP')).toBe(0);
  });
});
