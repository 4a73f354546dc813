// `npm run bench -- sse [--seconds N] [--rate N] [--subscribers N]`: fan-out of GET /v1/stream.
//
// The aggregator's query API with its RollupStream (the shared ROLLUPS subscription fanned out in
// process, apps/aggregator/src/stream.ts) runs in this process on the local NATS; the subscribers run
// in a worker thread, each an SSE connection of its own over node:http with the same filter, so every
// subscriber receives every Rollup. The bench publishes Rollups into the ROLLUPS stream at --rate
// (default 200/s, as the closer would) with the publish time in `last_time`; latency is publish →
// parsed by a subscriber (one clock).
//
// Two phases of seconds/2 each in the same run: the baseline with 1 subscriber, then --subscribers
// (default 1,000). Reported per phase: deliveries/s (events × subscribers), latency p50/p99,
// subscribers cut off as slow (overflow) and events missing, and the event-loop utilization of the
// server's thread.
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { encodeRollup, RollupScope, topology } from '@sluice/contracts';
import { generateToken } from '@sluice/http';
import { ensureStream } from '@sluice/jetstream';
import { createDeviceHasher, createLogger } from '@sluice/observability';
import { testUrls, uniqueId } from '@sluice/testing';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { Registry } from 'prom-client';
// The service code under test, by path (no app barrel).
// eslint-disable-next-line @nx/enforce-module-boundaries
import { startApi } from '../../../../apps/aggregator/src/api';
// eslint-disable-next-line @nx/enforce-module-boundaries
import { parseResolutions } from '../../../../apps/aggregator/src/resolutions';
// eslint-disable-next-line @nx/enforce-module-boundaries
import { RollupStream } from '../../../../apps/aggregator/src/stream';
import { percentile, round, type Bench, type BenchFlags } from '../result';

export const flags: BenchFlags = {
  subscribers: 'subscribers of the fan-out phase (default 1000)',
};

/** The subscribers: n SSE connections, parsing frames, until told to stop. */
const SUBSCRIBERS = `
const { parentPort, workerData: w } = require('node:worker_threads');
const http = require('node:http');
const lat = [];
let received = 0, overflows = 0, ended = 0, connected = 0, failed = 0;
const reqs = [];
for (let i = 0; i < w.n; i++) {
  const req = http.request(w.url, { agent: false, headers: { accept: 'text/event-stream', authorization: 'Bearer ' + w.token } }, (res) => {
    if (res.statusCode !== 200) { failed++; res.resume(); return; }
    res.setEncoding('utf8');
    let buf = '', first = true;
    res.on('data', (chunk) => {
      if (first) { first = false; if (++connected === w.n) parentPort.postMessage({ ready: true }); }
      buf += chunk;
      for (let end = buf.indexOf('\\n\\n'); end >= 0; end = buf.indexOf('\\n\\n')) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        if (block.startsWith('id: ')) {
          received++;
          const m = /"last_time":"([^"]+)"/.exec(block);
          if (m && lat.length < 1000000) lat.push(Date.now() - Date.parse(m[1]));
        } else if (block.startsWith('event: overflow')) overflows++;
      }
    });
    res.on('close', () => { ended++; });
  });
  req.on('error', () => { failed++; });
  req.end();
  reqs.push(req);
}
parentPort.on('message', () => {
  for (const r of reqs) r.destroy();
  parentPort.postMessage({ received, overflows, ended, connected, failed, lat });
});
`;

interface PhaseResult {
  subscribers: number;
  published: number;
  received: number;
  deliveries_per_s: number;
  p50_ms: number;
  p99_ms: number;
  missing: number;
  overflows: number;
  failed_connections: number;
  server_event_loop_utilization: number;
}

const bench: Bench = async ({ seconds, rate, flags }) => {
  const fanOut = Number(flags['subscribers'] ?? 1000);
  const perSecond = rate ?? 200;
  const phaseS = Math.max(1, seconds / 2);
  const ns = uniqueId('bsse');
  const topo = topology(ns);
  const log = createLogger({
    service: 'bench-sse',
    level: 'warn',
    hashDeviceId: createDeviceHasher('bench-key-0123456789'),
  });
  const nc = await connect({ servers: testUrls.nats, name: 'bench-sse' });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  await ensureStream(jsm, topo.streams.rollups);
  const token = generateToken();
  const hub = new RollupStream({
    nc,
    topology: topo,
    log,
    registry: new Registry(),
    maxClients: fanOut + 10,
  });
  const api = await startApi({
    port: 0,
    queries: {} as never,
    resolutions: parseResolutions(['1s']),
    defaultPoints: 300,
    maxRangePoints: 10_000,
    maxPage: 500,
    tokens: [{ name: 'bench', sha256: token.sha256, claims: '*' }],
    log,
    registry: new Registry(),
    stream: hub,
    maxStreamClients: fanOut + 10,
  });
  const url = `http://127.0.0.1:${api.port}/v1/stream?resolution=1s&region=eu`;
  let seq = 0;

  const phase = async (n: number): Promise<PhaseResult> => {
    const worker = new Worker(SUBSCRIBERS, {
      eval: true,
      workerData: { n, url, token: token.token },
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${n} subscribers not connected in 60 s`)),
        60_000,
      );
      worker.once('message', () => {
        clearTimeout(timer);
        resolve();
      });
      worker.once('error', reject);
    });
    const elu0 = performance.eventLoopUtilization();
    const start = performance.now();
    const end = start + phaseS * 1000;
    let published = 0;
    for (let tick = start; performance.now() < end; tick += 10) {
      const due = Math.floor(((performance.now() - start) / 1000) * perSecond) - published;
      const acks = [];
      for (let i = 0; i < due; i++, published++) {
        const now = new Date();
        acks.push(
          js.publish(
            topo.rollup('1s', 'eu'),
            encodeRollup({
              scope: RollupScope.DEVICE,
              deviceId: `dev-${seq % 1000}`,
              region: 'eu',
              sensorType: 'temp',
              resolution: '1s',
              windowStart: new Date(now.getTime() - 1000),
              windowEnd: now,
              count: 10,
              sum: 200,
              min: 18,
              max: 22,
              avg: 20,
              firstValue: 19,
              firstTime: new Date(now.getTime() - 1000),
              lastValue: 21,
              lastTime: now,
              revision: 1,
              lateCount: 0,
            }),
            { msgID: `${ns}-${seq++}` },
          ),
        );
      }
      await Promise.all(acks);
      const wait = tick + 10 - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    const elapsed = (performance.now() - start) / 1000;
    // What is in flight arrives.
    await new Promise((r) => setTimeout(r, 1_000));
    const elu = performance.eventLoopUtilization(elu0);
    const stats = await new Promise<{
      received: number;
      overflows: number;
      failed: number;
      lat: number[];
    }>((resolve) => {
      worker.once('message', resolve);
      worker.postMessage('stop');
    });
    await worker.terminate();
    const lat = stats.lat.sort((a, b) => a - b);
    return {
      subscribers: n,
      published,
      received: stats.received,
      deliveries_per_s: round(stats.received / elapsed, 0),
      p50_ms: percentile(lat, 50),
      p99_ms: percentile(lat, 99),
      missing: published * n - stats.received,
      overflows: stats.overflows,
      failed_connections: stats.failed,
      server_event_loop_utilization: round(elu.utilization, 3),
    };
  };

  try {
    const baseline = await phase(1);
    const fan = await phase(fanOut);
    return {
      name: 'sse',
      events_per_s: fan.deliveries_per_s,
      p50_ms: fan.p50_ms,
      p99_ms: fan.p99_ms,
      baseline_events_per_s: baseline.deliveries_per_s,
      baseline_p50_ms: baseline.p50_ms,
      baseline_p99_ms: baseline.p99_ms,
      rollups_per_s: perSecond,
      phase_seconds: phaseS,
      phases: [baseline, fan],
    };
  } finally {
    await hub.stop();
    await api.close();
    await jsm.streams.delete(topo.streams.rollups.name).catch(() => undefined);
    await nc.drain().catch(() => undefined);
  }
};

export default bench;
