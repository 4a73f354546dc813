// `npm run bench -- alerts [--seconds N] [--rate N] [--devices N]`: alert latency of the watch service.
//
// The watch service runs as built for production (one esbuild bundle on plain node) on the local NATS
// and PostgreSQL (a database of its own), silence threshold max(5 × interval, 1 s), anomaly rules on
// 1s roll-ups. Probes, one clock:
// - silence: probe devices report every 100 ms and stop one after another; latency = the silence
//   alert seen on the ALERTS stream − (last arrival + threshold), i.e. what the rule adds to the
//   threshold itself (the sweep interval, 200 ms here, bounds it from below);
// - anomaly: probe series get 25 quiet 1s roll-ups, then a spike; latency = alert seen − spike published.
// Two phases of seconds/2 each in the same run: the baseline with no background traffic, then the
// same probes under --rate (default 20 000) background readings/s from --devices (default 2 000)
// devices in batches of 100, as dedupe would publish them.
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  alertsTopology,
  decodeAlert,
  encodeBatch,
  encodeRollup,
  RollupScope,
  TelemetryEvent,
  topology,
  type Alert,
} from '@sluice/contracts';
import { createTestDatabase, testUrls, uniqueId } from '@sluice/testing';
import { performance } from 'node:perf_hooks';
import { startBuiltApp } from '../built-app';
import { percentile, round, type Bench, type BenchFlags } from '../result';

export const flags: BenchFlags = {
  devices: 'devices of the background traffic (default 2000)',
};

const THRESHOLD_MS = 1_000;

interface PhaseResult {
  background_events_per_s: number;
  background_published: number;
  silence_probes: number;
  silence_alerts: number;
  silence_p50_ms: number;
  silence_p99_ms: number;
  anomaly_probes: number;
  anomaly_alerts: number;
  anomaly_p50_ms: number;
  anomaly_p99_ms: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const bench: Bench = async ({ seconds, rate, flags }) => {
  const perSecond = rate ?? 20_000;
  const devices = Number(flags['devices'] ?? 2000);
  const phaseS = Math.max(1.5, seconds / 2);
  const ns = uniqueId('balert');
  const topo = topology(ns);
  const alerts = alertsTopology(ns);
  const db = await createTestDatabase('bench_alerts');
  const nc: NatsConnection = await connect({ servers: testUrls.nats, name: 'bench-alerts' });
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const proc = startBuiltApp('watch', {
    NATS_URL: testUrls.nats,
    SLUICE_NAMESPACE: ns,
    PG_URL: db.url,
    OPS_PORT: '0',
    OPS_HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    OTEL_SDK_DISABLED: 'true',
    WATCH_SILENCE_FACTOR: '5',
    WATCH_SILENCE_FLOOR: `${THRESHOLD_MS}ms`,
    WATCH_SILENCE_SCOPE: 'device',
    WATCH_SWEEP_INTERVAL: '200ms',
    WATCH_ANOMALY_RESOLUTION: '1s',
    WATCH_ANOMALY_MIN_HISTORY: '20',
  });
  const seen = new Map<string, number>();
  let seq = 0;
  try {
    // Ready once ALERTS exists (the service creates it in prepare).
    for (let i = 0; ; i++) {
      try {
        await jsm.streams.info(alerts.stream.name);
        await jsm.consumers.info(topo.streams.clean.name, 'watch-clean');
        break;
      } catch (err) {
        if (i > 600 || proc.exitCode !== null)
          throw new Error(`watch did not start: ${String(err)}`);
        await sleep(100);
      }
    }
    await sleep(1_000);
    const sub = nc.subscribe(alerts.filter());
    void (async () => {
      for await (const m of sub) {
        const a: Alert = decodeAlert(m.data);
        const key = `${a.kind}|${a.deviceId}`;
        if (!seen.has(key)) seen.set(key, Date.now());
      }
    })();

    const reading = (deviceId: string, at: number) => ({
      kind: {
        $case: 'telemetry' as const,
        value: TelemetryEvent.fromPartial({
          eventId: `${ns}-${seq++}`,
          deviceId,
          eventTime: new Date(at),
          sensorType: 'temp',
          value: 20,
          region: 'eu',
          schemaVersion: 2,
        }),
      },
    });
    const publishBatch = (events: ReturnType<typeof reading>[]) =>
      js.publish(topo.clean('eu'), encodeBatch({ batchId: `${ns}-b${seq}`, events }), {
        msgID: `${ns}-m${seq++}`,
      });

    const phase = async (name: string, background: number): Promise<PhaseResult> => {
      const probes = Math.max(2, Math.floor(phaseS - 2));
      const stopAt = new Map<string, number>();
      const live = new Set(Array.from({ length: probes }, (_, i) => `${name}-probe-${i}`));
      const start = performance.now();
      const end = start + phaseS * 1000;
      let published = 0;
      let nextProbeTick = start;
      const spikes = new Map<string, number>();
      let window = 0;
      const windowBase = Math.floor(Date.now() / 1000) * 1000 - 60_000;
      let nextWindow = start;
      while (performance.now() < end) {
        const now = performance.now();
        const acks: Array<Promise<unknown>> = [];
        if (background > 0) {
          const due = Math.floor(((now - start) / 1000) * background) - published;
          for (let n = 0; n < due; n += 100) {
            const at = Date.now();
            const size = Math.min(100, due - n);
            acks.push(
              publishBatch(
                Array.from({ length: size }, (_, i) =>
                  reading(`${name}-dev-${(published + n + i) % devices}`, at),
                ),
              ),
            );
          }
          published += due;
        }
        if (now >= nextProbeTick) {
          nextProbeTick += 100;
          const at = Date.now();
          // Probe i stops after (1 + i) s of reports.
          for (const id of live) {
            const i = Number(id.slice(id.lastIndexOf('-') + 1));
            if (now - start > 1_000 + i * 1000) {
              live.delete(id);
              continue;
            }
            stopAt.set(id, at);
            acks.push(publishBatch([reading(id, at)]));
          }
        }
        if (now >= nextWindow) {
          nextWindow += 50;
          // Anomaly probes: one roll-up per 50 ms per series, 25 quiet then a spike.
          const w = window++;
          const series = Math.floor(w / 26);
          const k = w % 26;
          const spike = k === 25;
          const deviceId = `${name}-engine-${series}`;
          if (spike) spikes.set(deviceId, Date.now());
          acks.push(
            js.publish(
              topo.rollup('1s', 'eu'),
              encodeRollup({
                scope: RollupScope.DEVICE,
                deviceId,
                region: 'eu',
                sensorType: 'temp',
                resolution: '1s',
                windowStart: new Date(windowBase + k * 1000),
                windowEnd: new Date(windowBase + (k + 1) * 1000),
                count: 10,
                sum: 0,
                min: 0,
                max: 0,
                avg: spike ? 100 : 20 + ((k * 7) % 5) / 10,
                firstValue: 0,
                lastValue: 0,
                revision: 1,
                lateCount: 0,
              }),
              { msgID: `${ns}-r${seq++}` },
            ),
          );
        }
        await Promise.all(acks);
        await sleep(10);
      }
      const elapsed = (performance.now() - start) / 1000;
      // Alerts still on their way arrive (the last probe's threshold included).
      await sleep(THRESHOLD_MS + 3_000);
      const silence: number[] = [];
      for (const [id, at] of stopAt) {
        const alertAt = seen.get(`silence|${id}`);
        if (alertAt !== undefined && !live.has(id)) silence.push(alertAt - (at + THRESHOLD_MS));
      }
      const anomaly: number[] = [];
      for (const [id, at] of spikes) {
        const alertAt = seen.get(`anomaly|${id}`);
        if (alertAt !== undefined) anomaly.push(alertAt - at);
      }
      silence.sort((a, b) => a - b);
      anomaly.sort((a, b) => a - b);
      return {
        background_events_per_s: round(published / elapsed, 0),
        background_published: published,
        silence_probes: stopAt.size - live.size,
        silence_alerts: silence.length,
        silence_p50_ms: percentile(silence, 50),
        silence_p99_ms: percentile(silence, 99),
        anomaly_probes: spikes.size,
        anomaly_alerts: anomaly.length,
        anomaly_p50_ms: percentile(anomaly, 50),
        anomaly_p99_ms: percentile(anomaly, 99),
      };
    };

    const baseline = await phase('idle', 0);
    const loaded = await phase('load', perSecond);
    sub.unsubscribe();
    return {
      name: 'alerts',
      events_per_s: loaded.background_events_per_s,
      p50_ms: loaded.silence_p50_ms,
      p99_ms: loaded.silence_p99_ms,
      baseline_p50_ms: baseline.silence_p50_ms,
      baseline_p99_ms: baseline.silence_p99_ms,
      anomaly_p50_ms: loaded.anomaly_p50_ms,
      anomaly_p99_ms: loaded.anomaly_p99_ms,
      baseline_anomaly_p50_ms: baseline.anomaly_p50_ms,
      baseline_anomaly_p99_ms: baseline.anomaly_p99_ms,
      phase_seconds: phaseS,
      phases: { baseline, loaded },
    };
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => (proc.exitCode !== null ? r(undefined) : proc.once('exit', r)));
    for (const s of [...Object.values(topo.streams).map((x) => x.name), alerts.stream.name])
      await jsm.streams.delete(s).catch(() => undefined);
    await nc.drain().catch(() => undefined);
    await db.drop();
  }
};

export default bench;
