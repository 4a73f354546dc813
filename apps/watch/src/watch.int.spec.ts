// Watch end to end against the real NATS and PostgreSQL, with the real webhook dispatcher process
// delivering alerts to an HTTP receiver on 127.0.0.1: silence and recovery through a replica killed
// (SIGKILL) mid-episode and restarted, each webhook-id delivered once; a backlog upload raising no
// stale alert; anomaly alerts on injected spikes in the roll-ups and none on noise.
import {
  alertsTopology,
  encodeBatch,
  encodeRollup,
  Rollup,
  RollupScope,
  TelemetryEvent,
  topology,
} from '@sluice/contracts';
import { publishDurable } from '@sluice/jetstream';
import {
  createTestDatabase,
  natsFixture,
  sleep,
  spawnService,
  testUrls,
  uniqueId,
  waitFor,
  type ChildService,
  type NatsFixture,
  type PgDatabase,
} from '@sluice/testing';
import { Client } from 'pg';
import {
  startAlertReceiver,
  type AlertReceiver,
  type ReceivedWebhook,
} from './test-fixtures/receiver';

const TOKEN = 'test-admin-token-0123456789';
const REGION = 'r1';

describe('watch: silence, recovery and anomaly alerts delivered by the dispatcher', () => {
  let nats: NatsFixture;
  let watchDb: PgDatabase;
  let hookDb: PgDatabase;
  let receiver: AlertReceiver;
  let dispatcher: ChildService;
  const ns = uniqueId('wch');
  const topo = topology(ns);
  const watchers: ChildService[] = [];
  let seq = 0;
  let restore: (() => Promise<unknown>) | undefined;
  let pg: Client | undefined;

  afterEach(async () => {
    await restore?.();
    restore = undefined;
  }, 180_000);

  function startWatch(extra: Record<string, string> = {}): Promise<ChildService> {
    const proc = spawnService('apps/watch/src/main.ts', {
      ...extra,
      NATS_URL: testUrls.nats,
      SLUICE_NAMESPACE: ns,
      OPS_PORT: '0',
      OPS_HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      OTEL_SDK_DISABLED: 'true',
      PG_URL: watchDb.url,
      // Readings every 200 ms: silent after 5 × 200 ms, but never under 1.5 s.
      WATCH_SILENCE_FACTOR: '5',
      WATCH_SILENCE_FLOOR: '1500ms',
      WATCH_SWEEP_INTERVAL: '200ms',
      WATCH_ANOMALY_RESOLUTION: '1s',
      WATCH_ANOMALY_MIN_HISTORY: '10',
    });
    watchers.push(proc);
    return proc.waitForLine(/watch running/, 90_000).then(() => proc);
  }

  beforeAll(async () => {
    nats = await natsFixture();
    [watchDb, hookDb, receiver] = await Promise.all([
      createTestDatabase('watch_int'),
      createTestDatabase('watch_hooks'),
      startAlertReceiver(),
    ]);
    const prefix = ns.toUpperCase().replace(/-/g, '_');
    for (const s of [
      ...Object.values(topo.streams).map((x) => x.name),
      alertsTopology(ns).stream.name,
      `${prefix}_WEBHOOK_DELIVERIES`,
      `${prefix}_WEBHOOK_OPS`,
    ])
      nats.track(s);
    // The watch service owns ALERTS; start it first so the dispatcher binds to it.
    await startWatch();
    dispatcher = spawnService('apps/webhook-dispatcher/src/main.ts', {
      NATS_URL: testUrls.nats,
      SLUICE_NAMESPACE: ns,
      OPS_PORT: '0',
      OPS_HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      OTEL_SDK_DISABLED: 'true',
      PG_URL: hookDb.url,
      WEBHOOK_SHARED_STATE: 'local',
      WEBHOOK_ADMIN_PORT: '0',
      WEBHOOK_ADMIN_HOST: '127.0.0.1',
      WEBHOOK_ADMIN_TOKEN: TOKEN,
      WEBHOOK_SSRF_ALLOW_CIDRS: '127.0.0.0/8',
      WEBHOOK_SUBSCRIPTION_REFRESH: '300ms',
    });
    const line = await dispatcher.waitForLine(/webhook-dispatcher running/, 90_000);
    const { adminPort } = JSON.parse(line) as { adminPort: number };
    const res = await fetch(`http://127.0.0.1:${adminPort}/v1/subscriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url: receiver.url, filter: { type: 'alert' } }),
    });
    expect(res.status).toBe(201);
    await startWatch();
  }, 240_000);

  afterAll(async () => {
    for (const p of [...watchers, dispatcher]) p?.kill('SIGKILL');
    await Promise.all([...watchers, dispatcher].filter(Boolean).map((p) => p.exited));
    await pg?.end().catch(() => undefined);
    await receiver?.close();
    await nats?.cleanup();
    await Promise.all([watchDb?.drop(), hookDb?.drop()]);
  });

  /** Publishes one clean batch (as dedupe would) of readings of `deviceId`. */
  async function publish(
    deviceId: string,
    readings: Array<{ sensor: string; at: number; value?: number }>,
  ) {
    const events = readings.map((r) => ({
      kind: {
        $case: 'telemetry' as const,
        value: TelemetryEvent.fromPartial({
          eventId: uniqueId('ev'),
          deviceId,
          eventTime: new Date(r.at),
          sensorType: r.sensor,
          value: r.value ?? 1,
          unit: 'C',
          region: REGION,
          schemaVersion: 2,
        }),
      },
    }));
    await publishDurable(
      nats.js,
      topo.clean(REGION),
      encodeBatch({ batchId: uniqueId('b'), events }),
      {
        msgId: `test:${++seq}`,
        contentType: 'application/x-protobuf',
      },
    );
  }

  /** Live readings of `deviceId` every 200 ms until `stop()`. */
  function live(deviceId: string, sensors = ['temp', 'rpm']) {
    let on = true;
    const loop = (async () => {
      while (on) {
        const now = Date.now();
        await publish(
          deviceId,
          sensors.map((sensor) => ({ sensor, at: now })),
        );
        await sleep(200);
      }
    })();
    return {
      stop: async () => {
        on = false;
        await loop;
      },
    };
  }

  const of = (deviceId: string, type?: string) =>
    receiver.received.filter(
      (w) => w.alert['device_id'] === deviceId && (type === undefined || w.type === type),
    );
  const series = (ws: ReceivedWebhook[]) =>
    ws.map((w) => `${w.type}|${String(w.alert['sensor_type'])}`).sort();

  function expectEachIdOnce(ws: ReceivedWebhook[]) {
    const ids = ws.map((w) => w.webhookId);
    expect(new Set(ids).size).toBe(ids.length);
  }

  it('silence, then recovery, through a replica killed mid-episode and restarted: each webhook-id once', async () => {
    const boat = live('boat-1');
    await sleep(3_000);
    await boat.stop();
    // The device and both sensors go silent.
    await waitFor('three silence alerts', () => of('boat-1', 'alert.silence.v1').length >= 3, {
      timeoutMs: 20_000,
    });
    const silence = of('boat-1', 'alert.silence.v1');
    expect(series(silence)).toEqual([
      'alert.silence.v1|null',
      'alert.silence.v1|rpm',
      'alert.silence.v1|temp',
    ]);
    const temp = silence.find((w) => w.alert['sensor_type'] === 'temp')!;
    expect(temp.alert['usual_interval_ms']).toBeGreaterThan(150);
    // Every 200 ms plus the publish's own time (more on a loaded machine).
    expect(temp.alert['usual_interval_ms']).toBeLessThan(1000);
    expect(temp.alert['threshold_ms']).toBeCloseTo(
      Math.max(1500, 5 * (temp.alert['usual_interval_ms'] as number)),
      6,
    );

    // Mid-episode: one replica is SIGKILLed, and started again.
    const victim = watchers[0]!;
    victim.kill('SIGKILL');
    await victim.exited;
    await startWatch();
    await sleep(1_500);

    const back = live('boat-1');
    await waitFor('three recovery alerts', () => of('boat-1', 'alert.recovery.v1').length >= 3, {
      timeoutMs: 20_000,
    });
    await sleep(2_000);
    await boat.stop();
    await back.stop();
    const all = of('boat-1');
    expect(series(all)).toEqual([
      'alert.recovery.v1|null',
      'alert.recovery.v1|rpm',
      'alert.recovery.v1|temp',
      'alert.silence.v1|null',
      'alert.silence.v1|rpm',
      'alert.silence.v1|temp',
    ]);
    expectEachIdOnce(all);
    const rec = all.find(
      (w) => w.type === 'alert.recovery.v1' && w.alert['sensor_type'] === 'temp',
    )!;
    expect(rec.alert['episode_start']).toBe(temp.alert['episode_start']);
    expect(rec.alert['silent_ms']).toBeGreaterThan(1500);
  }, 90_000);

  it('a replica killed between publishing silence alerts and committing them: the re-raise has the same ids, delivered once', async () => {
    // Only a replica that dies right after publishing runs while boat-4 goes silent.
    const normal = watchers.filter((p) => p.proc.exitCode === null && p.proc.signalCode === null);
    const doomed = await startWatch({ WATCH_FAILPOINT: 'sweep-after-publish' });
    for (const p of normal) p.kill('SIGTERM');
    await Promise.all(normal.map((p) => p.exited));
    // The next tests get their two replicas back whatever happens here.
    restore = () => Promise.all([startWatch(), startWatch()]);
    const boat = live('boat-4', ['temp']);
    await sleep(2_500);
    await boat.stop();
    // Nothing here signals it: SIGKILL is the failpoint's (its log line may die unflushed with it).
    expect(await doomed.exited).toBe('SIGKILL');
    // Its transaction never committed: the next replica finds the series still due and raises again.
    const next = await startWatch();
    const opsPort = (JSON.parse(await next.waitForLine(/watch running/)) as { opsPort: number })
      .opsPort;
    await waitFor(
      'the re-raise',
      async () => {
        const text = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
        return /sluice_watch_alerts_total\{[^}]*kind="silence"[^}]*\} [2-9]/.test(text);
      },
      { timeoutMs: 20_000 },
    );
    await waitFor('boat-4 silence delivered', () => of('boat-4').length >= 2, {
      timeoutMs: 20_000,
    });
    await sleep(2_000);
    const boat4 = of('boat-4');
    expect(series(boat4)).toEqual(['alert.silence.v1|null', 'alert.silence.v1|temp']);
    expectEachIdOnce(boat4);
    // Both the crashed and the surviving raise reached the stream under one id each.
    const stored = (await nats.readAll(alertsTopology(ns).stream.name)).filter(
      (m) => (JSON.parse(m.string()) as { deviceId: string }).deviceId === 'boat-4',
    );
    expect(stored).toHaveLength(2);
    await startWatch();
    restore = undefined;
  }, 180_000);

  it('a backlog upload after an outage is a recovery, never a stale silence alert', async () => {
    const boat = live('boat-2', ['depth']);
    await sleep(2_500);
    await boat.stop();
    const offlineAt = Date.now();
    await waitFor('silence of boat-2', () => of('boat-2', 'alert.silence.v1').length >= 2, {
      timeoutMs: 20_000,
    });
    await sleep(1_000);
    // Back in port: the readings taken offline (every 200 ms, old event times) arrive at once...
    const backlog = [];
    for (let t = offlineAt + 200; t < Date.now(); t += 200)
      backlog.push({ sensor: 'depth', at: t });
    await publish('boat-2', backlog);
    // ...and the boat reports live again.
    const again = live('boat-2', ['depth']);
    await waitFor('recovery of boat-2', () => of('boat-2', 'alert.recovery.v1').length >= 2, {
      timeoutMs: 20_000,
    });
    await sleep(4_000);
    // Taken while boat-2 still reports (once it stops, it is rightly silent again).
    const boat2 = of('boat-2');
    await again.stop();

    // A boat first heard of through an hour of backlog (event times an hour old), then live.
    const hourAgo = Date.now() - 3600_000;
    await publish(
      'boat-3',
      Array.from({ length: 360 }, (_, i) => ({ sensor: 'depth', at: hourAgo + i * 10_000 })),
    );
    const boat3 = live('boat-3', ['depth']);
    await sleep(4_000);
    await boat3.stop();

    expect(series(boat2)).toEqual([
      'alert.recovery.v1|depth',
      'alert.recovery.v1|null',
      'alert.silence.v1|depth',
      'alert.silence.v1|null',
    ]);
    expectEachIdOnce(boat2);
    expect(of('boat-3')).toEqual([]);
  }, 90_000);

  it('anomaly: an injected spike in the roll-ups raises one alert with value, baseline and score; noise none', async () => {
    const start = Math.floor(Date.now() / 1000) * 1000 - 100_000;
    let x = 12345;
    const noise = () => {
      x = (x * 1103515245 + 12345) % 2147483648;
      return x / 2147483648 - 0.5;
    };
    const rollup = (deviceId: string, i: number, avg: number, revision = 1) =>
      Rollup.fromPartial({
        scope: RollupScope.DEVICE,
        region: REGION,
        deviceId,
        sensorType: 'temp',
        resolution: '1s',
        windowStart: new Date(start + i * 1000),
        windowEnd: new Date(start + (i + 1) * 1000),
        count: 10,
        sum: avg * 10,
        min: avg,
        max: avg,
        avg,
        revision,
      });
    let n = 0;
    const send = (r: Rollup) =>
      publishDurable(nats.js, topo.rollup('1s', REGION), encodeRollup(r), {
        msgId: `rollup:${++n}`,
        contentType: 'application/x-protobuf',
      });
    const c = (pg = new Client({ connectionString: watchDb.url }));
    await c.connect();
    const judged = async (i: number) =>
      (
        await c.query<{ n: string }>(
          `SELECT count(*) AS n FROM watch_baselines WHERE resolution = '1s' AND last_window >= $1`,
          [new Date(start + i * 1000)],
        )
      ).rows[0]!.n === '2';
    // A window after the one before was judged, as the aggregator closes them (a resolution apart).
    for (let i = 0; i < 60; i++) {
      await send(rollup('engine-a', i, i === 40 ? 45 : 20 + noise()));
      await send(rollup('engine-b', i, 20 + noise()));
      await waitFor(`window ${i} judged`, () => judged(i), { intervalMs: 10 });
    }
    // A late revision of the spike's window re-states it: no second alert.
    await send(rollup('engine-a', 40, 44, 2));
    // And a redelivered window (same content, new message) is not judged twice.
    await send(rollup('engine-a', 40, 45));
    await waitFor('the anomaly alert', () => of('engine-a').length >= 1, { timeoutMs: 20_000 });
    await sleep(2_000);
    const a = of('engine-a');
    expect(a).toHaveLength(1);
    expect(a[0]!.type).toBe('alert.anomaly.v1');
    expect(a[0]!.alert).toMatchObject({
      kind: 'anomaly',
      rule: 'anomaly:1s',
      sensor_type: 'temp',
      window_start: new Date(start + 40_000).toISOString(),
      value: 45,
    });
    expect(a[0]!.alert['baseline_mean']).toBeGreaterThan(19.5);
    expect(a[0]!.alert['baseline_mean']).toBeLessThan(20.5);
    expect(a[0]!.alert['baseline_std']).toBeGreaterThan(0);
    expect(a[0]!.alert['score']).toBeGreaterThan(5);
    expect(of('engine-b')).toEqual([]);

    // The baselines are in PostgreSQL: a replica that takes over continues from them.
    {
      const { rows } = await c.query<{ device_id: string; n: number }>(
        `SELECT device_id, n FROM watch_baselines WHERE resolution = '1s' ORDER BY device_id`,
      );
      expect(rows).toEqual([
        { device_id: 'engine-a', n: 60 },
        { device_id: 'engine-b', n: 60 },
      ]);
    }
  }, 90_000);
});
