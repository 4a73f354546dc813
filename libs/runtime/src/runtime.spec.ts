import { Counter, Registry } from 'prom-client';
import { Lifecycle, LifecycleError, startOpsServer } from './index';

describe('Lifecycle', () => {
  it('walks starting → running → draining → stopped and reports each change', () => {
    const l = new Lifecycle();
    const seen: string[] = [];
    l.onChange((to, from) => seen.push(`${from}>${to}`));
    l.transition('running');
    l.transition('draining');
    l.transition('stopped');
    expect(seen).toEqual(['starting>running', 'running>draining', 'draining>stopped']);
    expect(l.terminal).toBe(true);
  });
  it('refuses illegal moves and leaves terminal states alone', () => {
    const l = new Lifecycle();
    expect(() => l.transition('stopped')).toThrow(LifecycleError);
    l.transition('failed', new Error('boom'));
    expect(() => l.transition('running')).toThrow('cannot go from failed to running');
  });
  it('whenFailed rejects with the cause', async () => {
    const l = new Lifecycle();
    const failed = l.whenFailed();
    l.transition('running');
    l.transition('failed', new Error('nats gone'));
    await expect(failed).rejects.toThrow('nats gone');
  });
});

describe('ops server', () => {
  it('serves health, readiness per check and Prometheus metrics', async () => {
    const registry = new Registry();
    new Counter({ name: 'sluice_test_total', help: 'x', registers: [registry] }).inc(3);
    let ready = false;
    const ops = await startOpsServer({
      port: 0,
      host: '127.0.0.1',
      registry,
      live: () => true,
      ready: { nats: () => ready, redis: async () => true },
    });
    try {
      const base = `http://127.0.0.1:${ops.port}`;
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      const notReady = await fetch(`${base}/readyz`);
      expect(notReady.status).toBe(503);
      expect(await notReady.json()).toEqual({
        status: 'not ready',
        checks: { nats: false, redis: true },
      });
      ready = true;
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      expect(await (await fetch(`${base}/metrics`)).text()).toMatch(/sluice_test_total 3/);
      expect((await fetch(`${base}/nope`)).status).toBe(404);
    } finally {
      await ops.close();
    }
  });
});
