import { commonSchema } from '@sluice/config';
import { topology } from '@sluice/contracts';
import { spawnService, testUrls, type ChildService } from '@sluice/testing';
import { startRuntime } from './runtime';

const ENTRY = 'libs/runtime/src/test-fixtures/ordered-service.ts';
const env = (extra: Record<string, string> = {}) => ({
  NATS_URL: testUrls.nats,
  OPS_PORT: '0',
  OPS_HOST: '127.0.0.1',
  OTEL_SDK_DISABLED: 'true',
  ...extra,
});
const order = (p: ChildService) =>
  p.lines.filter((l) => l.startsWith('ORDER ')).map((l) => l.slice(6));

describe('runService', () => {
  jest.setTimeout(60_000);
  const procs: ChildService[] = [];
  afterEach(() => {
    for (const p of procs.splice(0)) p.kill();
  });

  it('starts prepare, servers, actors, background in order and stops them in reverse on SIGTERM (exit 0)', async () => {
    const p = spawnService(ENTRY, env());
    procs.push(p);
    await p.waitForLine(/ordered-test running/);
    expect(p.lines.find((l) => l.includes('ordered-test running'))).toMatch(/"apiPort":1234/);
    p.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    expect(order(p)).toEqual([
      'prepare',
      'start api',
      'start actor',
      'start timers',
      'stop api',
      'stop timers',
      'stop actor',
      'stop store',
    ]);
  });

  it('a SIGHUP, while starting or running, neither kills a service that reloads nothing nor stops it', async () => {
    const p = spawnService(ENTRY, env());
    procs.push(p);
    await p.waitForLine(/^ORDER prepare/);
    p.kill('SIGHUP');
    await p.waitForLine(/ordered-test running/);
    p.kill('SIGHUP');
    await p.waitForLine(/SIGHUP: this service has nothing to reload/);
    p.kill('SIGTERM');
    expect(await p.exited).toBe(0);
  });

  it('a failing actor stops everything in order and exits 1', async () => {
    const p = spawnService(ENTRY, env({ FAIL_AT: 'actor' }));
    procs.push(p);
    expect(await p.exited).toBe(1);
    expect(order(p)).toEqual([
      'prepare',
      'start api',
      'start actor',
      'start timers',
      'stop api',
      'stop timers',
      'stop actor',
      'stop store',
    ]);
    expect(p.lines.join('\n')).toMatch(/component failed/);
  });

  it('a failure before serving (prepare, a server) exits 1 and starts nothing after it', async () => {
    const a = spawnService(ENTRY, env({ FAIL_AT: 'prepare' }));
    const b = spawnService(ENTRY, env({ FAIL_AT: 'server' }));
    procs.push(a, b);
    expect([await a.exited, await b.exited]).toEqual([1, 1]);
    expect(order(a)).toEqual(['prepare']);
    expect(order(b)).toEqual(['prepare', 'start api']);
    expect(a.lines.join('\n')).toMatch(/ordered-test failed to start.*prepare broke|prepare broke/);
  });

  it('bad configuration exits 1 naming the variable, before connecting anywhere', async () => {
    const p = spawnService(ENTRY, env({ NATS_URL: 'http://nope' }));
    procs.push(p);
    expect(await p.exited).toBe(1);
    expect(p.lines.join('\n')).toMatch(/invalid configuration: NATS_URL/);
    expect(order(p)).toEqual([]);
  });
});

describe('startRuntime topology', () => {
  jest.setTimeout(30_000);
  const topologyOf = async (extra: Record<string, string>) => {
    const rt = await startRuntime('topology-test', commonSchema, env(extra));
    try {
      return rt.topology;
    } finally {
      await rt.nc.close();
      await rt.tracing.shutdown();
    }
  };

  it('is the namespace’s topology for every region without SLUICE_REGION', async () => {
    const t = await topologyOf({ SLUICE_NAMESPACE: 'rt-topo' });
    expect(t.region).toBeUndefined();
    expect(t.streams).toEqual(topology('rt-topo').streams);
    expect(t.streams.clean).toEqual({
      name: 'RT_TOPO_TELEMETRY',
      subjects: ['rt-topo.telemetry.clean.>'],
    });
  });

  it('is the region’s deployment with SLUICE_REGION, placed on region:<region> by default', async () => {
    const t = await topologyOf({ SLUICE_NAMESPACE: 'rt-topo', SLUICE_REGION: 'eu-west' });
    expect(t.streams.clean).toEqual({
      name: 'RT_TOPO_TELEMETRY_EU_WEST',
      subjects: ['rt-topo.telemetry.clean.eu-west'],
      placementTags: ['region:eu-west'],
    });
    const placed = await topologyOf({
      SLUICE_REGION: 'us-east',
      SLUICE_REGION_PLACEMENT: 'region:us|zone:b',
    });
    expect(placed.streams.rollups).toEqual({
      name: 'ROLLUPS_US_EAST',
      subjects: ['telemetry.rollup.*.us-east'],
      placementTags: ['region:us', 'zone:b'],
    });
  });
});
