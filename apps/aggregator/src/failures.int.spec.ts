import { sleep, spawnService, tcpProxy, waitFor, type TcpProxy } from '@sluice/testing';
import {
  chunk,
  expectSame,
  generate,
  harness,
  reference,
  stored,
  totalCount,
  unsettled,
  type Harness,
} from './test-fixtures/harness';

const RES = ['1s', '5s'];

describe('failures: process kill between commit and ack, PostgreSQL outage', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await harness({ AGGREGATOR_RESOLUTIONS: RES.join(','), AGGREGATOR_RETENTION: '' });
  });
  afterAll(async () => {
    await h.cleanup();
  });

  it('a SIGKILL after the commit and before the ack changes nothing after redelivery', async () => {
    const t0 = Math.floor(Date.now() / 60_000) * 60_000 - 300_000;
    const readings = generate({ t0, spanMs: 10_000, devices: 2, perSeries: 50, seed: 11 });
    const messages = chunk(readings, 10);
    for (let i = 0; i < messages.length; i++) await h.publish(`raw:K:${i}`, messages[i]!);

    const env = {
      ...h.env,
      AGGREGATOR_DURABLE: 'crash',
      AGGREGATOR_FLUSH_MAX_MESSAGES: '10',
      AGGREGATOR_FLUSH_INTERVAL: '50ms',
      LOG_LEVEL: 'info',
    };
    const doomed = spawnService('apps/aggregator/src/main.ts', {
      ...env,
      AGGREGATOR_FAULT: 'kill-after-commit:1',
    });
    // tsx re-raises the child's signal as exit code 128 + 9.
    expect(await doomed.exited).toBe('SIGKILL');
    const committed = Number(
      (await h.sql<{ n: string }>('SELECT count(*) AS n FROM applied_messages'))[0]!.n,
    );
    expect(committed).toBeGreaterThan(0);
    expect(committed).toBeLessThan(messages.length);
    // Committed but not acked: every message is still owed to the consumer.
    expect(await unsettled(h, 'crash')).toBe(messages.length);

    const survivor = spawnService('apps/aggregator/src/main.ts', env);
    try {
      const running = await survivor.waitForLine(/aggregator running/, 60_000);
      const opsPort = (JSON.parse(running) as { opsPort: number }).opsPort;
      await waitFor('all settled', async () => (await unsettled(h, 'crash')) === 0, {
        timeoutMs: 60_000,
      });
      expect(await totalCount(h)).toBe(readings.length);
      expectSame(await stored(h), reference(readings, RES));
      const metrics = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
      const skipped =
        /sluice_aggregator_messages_total\{outcome="already_applied"[^}]*\} (\d+)/.exec(metrics);
      expect(Number(skipped?.[1])).toBe(committed);
    } finally {
      survivor.kill('SIGTERM');
      await survivor.exited;
    }
  });

  describe('PostgreSQL down, then back', () => {
    let proxy: TcpProxy;
    let h: Harness;
    beforeAll(async () => {
      h = await harness({ AGGREGATOR_RESOLUTIONS: RES.join(','), AGGREGATOR_RETENTION: '' });
      proxy = await tcpProxy(Number(new URL(h.db.url).port || 5432));
    });
    afterAll(async () => {
      await h.cleanup();
      await proxy.close();
    });

    it('loses nothing and doubles nothing', async () => {
      const url = new URL(h.db.url);
      url.port = String(proxy.port);
      const agg = await h.start({
        PG_URL: url.toString(),
        AGGREGATOR_DURABLE: 'outage',
        AGGREGATOR_STORE_RETRY: '2s',
      });
      const t0 = Math.floor(Date.now() / 60_000) * 60_000 - 240_000;
      const readings = generate({ t0, spanMs: 10_000, devices: 2, perSeries: 60, seed: 12 });
      const messages = chunk(readings, 10);
      const half = Math.floor(messages.length / 2);
      for (let i = 0; i < half; i++) await h.publish(`raw:O:${i}`, messages[i]!);
      const firstPart = messages.slice(0, half).flat();
      await waitFor('first half', async () => (await totalCount(h)) === firstPart.length);

      proxy.cut();
      for (let i = half; i < messages.length; i++) await h.publish(`raw:O:${i}`, messages[i]!);
      // Longer than AGGREGATOR_STORE_RETRY: held batches go back to the server and are redelivered.
      await sleep(4_000);
      expect(await totalCount(h)).toBe(firstPart.length);
      expect(await unsettled(h, 'outage')).toBeGreaterThan(0);
      proxy.restore();

      await waitFor(
        'everything applied after the outage',
        async () => (await unsettled(h, 'outage')) === 0,
        { timeoutMs: 60_000 },
      );
      expect(await totalCount(h)).toBe(readings.length);
      expectSame(await stored(h), reference(readings, RES));
      // One outage, seen by the gate (logged once), and over.
      expect(agg.gate.outages).toBeGreaterThanOrEqual(1);
      expect(agg.gate.isUp()).toBe(true);
    });
  });
});
