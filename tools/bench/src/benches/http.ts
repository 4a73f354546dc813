// node:http against Fastify for the ingest-shaped hot path, in one run: the same POST handler (a
// JSON body of ~16 KiB with a bearer token, parsed, answered 202) served three ways, each driven in
// turn by the same closed-loop load from a worker thread over loopback keep-alive connections:
//   node_http     node:http with the gateway's body reader (apps/ingestion/src/http-server.ts)
//   fastify       Fastify 5, its JSON parser, no schemas
//   sluice_http   @sluice/http (Fastify + zod body/response schemas, hashed bearer auth, metrics)
// It decides whether the ingest HTTP path and the ops endpoints stay on node:http.
//   npm run bench -- http --seconds 10 [--connections 32] [--body-kib 16]
import { sha256Hex, startHttpApi, defineRoute } from '@sluice/http';
import Fastify from 'fastify';
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Worker } from 'node:worker_threads';
import pino from 'pino';
import { Registry } from 'prom-client';
import { z } from 'zod';
import { round, type Bench, type BenchFlags } from '../result';

export const flags: BenchFlags = {
  connections: 'concurrent keep-alive connections, one request in flight each (default 32)',
  'body-kib': 'request body size in KiB (default 16)',
  warmup: 'seconds of unmeasured load before each variant (default 2)',
};

const TOKEN = 'bench-http-token-0123456789';
const TOKEN_HASH = createHash('sha256').update(TOKEN).digest();
const MAX_BODY = 1024 * 1024;

function body(kib: number): string {
  const events: unknown[] = [];
  let size = 12;
  for (let i = 0; size < kib * 1024; i++) {
    const e = {
      event_id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
      device_id: `D-${i % 100}`,
      event_time: '2026-11-29T17:00:00.000Z',
      sensor_type: 'engine_temp',
      value: 20 + (i % 10),
      unit: 'celsius',
      region: 'eu-west',
    };
    events.push(e);
    size += JSON.stringify(e).length + 1;
  }
  return JSON.stringify({ events });
}

const authorized = (h: string | undefined) => {
  const m = /^Bearer (\S+)$/.exec(h ?? '');
  return !!m && timingSafeEqual(createHash('sha256').update(m[1]!).digest(), TOKEN_HASH);
};

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

async function nodeHttp(): Promise<{ port: number; close(): Promise<void> }> {
  // The gateway's reader (apps/ingestion/src/http-server.ts): 'data' events, bounded, one concat.
  const readBody = (req: IncomingMessage): Promise<string> =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let n = 0;
      req.on('data', (c: Buffer) => {
        n += c.length;
        if (n > MAX_BODY) reject(new Error('too large'));
        else chunks.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(chunks, n).toString('utf8')));
      req.on('error', reject);
    });
  const server = createServer((req, res) => {
    if (req.method !== 'POST' || req.url !== '/v1/events') return void res.writeHead(404).end();
    if (!authorized(req.headers.authorization)) return void res.writeHead(401).end();
    readBody(req).then(
      (text) => {
        const parsed = JSON.parse(text) as { events?: unknown };
        if (!Array.isArray(parsed.events)) return void res.writeHead(400).end();
        const out = JSON.stringify({ accepted: parsed.events.length });
        res
          .writeHead(202, {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(out),
          })
          .end(out);
      },
      () => res.writeHead(400).end(),
    );
  });
  server.requestTimeout = 30_000;
  const port = await listen(server);
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function bareFastify(): Promise<{ port: number; close(): Promise<void> }> {
  const app = Fastify({ logger: false, bodyLimit: MAX_BODY });
  app.post('/v1/events', async (req, reply) => {
    if (!authorized(req.headers.authorization)) return reply.code(401).send();
    const events = (req.body as { events?: unknown }).events;
    if (!Array.isArray(events)) return reply.code(400).send();
    return reply.code(202).send({ accepted: events.length });
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
}

async function sluiceHttp(): Promise<{ port: number; close(): Promise<void> }> {
  const api = await startHttpApi({
    service: 'bench',
    title: 'bench',
    version: '1',
    port: 0,
    bodyLimitBytes: MAX_BODY,
    log: pino({ level: 'warn' }),
    registry: new Registry(),
    auth: { tokens: [{ name: 'bench', sha256: sha256Hex(TOKEN), claims: '*' }] },
    routes: [
      defineRoute({
        method: 'POST',
        path: '/v1/events',
        operationId: 'ingest',
        summary: 'ingest',
        body: z.object({ events: z.array(z.unknown()).max(10_000) }),
        status: 202,
        response: z.object({ accepted: z.number().int() }),
        handler: async ({ body: b }) => ({ accepted: b.events.length }),
      }),
    ],
  });
  return { port: api.port, close: () => api.close() };
}

// The load generator, in a worker thread (its own event loop and core): `connections` loops, each
// POSTing the body on its own keep-alive socket and waiting for the answer.
const LOAD = `
const { parentPort, workerData: w } = require('node:worker_threads');
const http = require('node:http');
const agent = new http.Agent({ keepAlive: true, maxSockets: w.connections });
const payload = Buffer.from(w.body);
const headers = { 'content-type': 'application/json', 'content-length': payload.length, authorization: 'Bearer ' + w.token };
function once() {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = http.request({ host: '127.0.0.1', port: w.port, path: '/v1/events', method: 'POST', agent, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve({ ok: res.statusCode === 202, ms: performance.now() - t0 }));
    });
    req.on('error', () => resolve({ ok: false, ms: performance.now() - t0 }));
    req.end(payload);
  });
}
(async () => {
  const warmEnd = performance.now() + w.warmupS * 1000;
  const end = warmEnd + w.seconds * 1000;
  const lat = [];
  let ok = 0, failed = 0;
  let measuredStart = 0;
  await Promise.all(Array.from({ length: w.connections }, async () => {
    while (performance.now() < end) {
      const r = await once();
      if (performance.now() < warmEnd) continue;
      if (!measuredStart) measuredStart = performance.now();
      if (r.ok) { ok++; if (lat.length < 2000000) lat.push(r.ms); } else failed++;
    }
  }));
  agent.destroy();
  parentPort.postMessage({ ok, failed, lat, elapsed: (performance.now() - warmEnd) / 1000 });
})();
`;

interface Sample {
  requests_per_s: number;
  p50_ms: number;
  p99_ms: number;
  failed: number;
  /** CPU seconds of the server process per 1000 requests (user + system). */
  server_cpu_ms_per_request: number;
}

async function drive(
  port: number,
  o: { seconds: number; warmupS: number; connections: number; body: string },
): Promise<Sample> {
  const cpu0 = process.cpuUsage();
  const worker = new Worker(LOAD, { eval: true, workerData: { port, token: TOKEN, ...o } });
  const r = await new Promise<{ ok: number; failed: number; lat: number[]; elapsed: number }>(
    (resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    },
  );
  await worker.terminate();
  const cpu = process.cpuUsage(cpu0);
  const lat = r.lat.sort((a, b) => a - b);
  const at = (p: number) =>
    lat[Math.min(lat.length - 1, Math.max(0, Math.ceil((p / 100) * lat.length) - 1))] ?? 0;
  return {
    requests_per_s: round(r.ok / r.elapsed, 0),
    p50_ms: round(at(50), 3),
    p99_ms: round(at(99), 3),
    failed: r.failed,
    // Includes the worker's CPU (process.cpuUsage is per process); same load shape for every variant.
    server_cpu_ms_per_request: round(
      (cpu.user + cpu.system) / 1000 / Math.max(1, r.ok + r.failed),
      4,
    ),
  };
}

const bench: Bench = async (opts) => {
  const connections = Number(opts.flags['connections'] ?? 32);
  const kib = Number(opts.flags['body-kib'] ?? 16);
  const warmupS = Number(opts.flags['warmup'] ?? 2);
  if (!(connections >= 1 && connections <= 512)) throw new Error('--connections must be 1..512');
  if (!(kib >= 1 && kib <= 512)) throw new Error('--body-kib must be 1..512');
  const payload = body(kib);
  const load = { seconds: opts.seconds, warmupS, connections, body: payload };
  const results: Record<string, Sample> = {};
  for (const [name, start] of [
    ['node_http', nodeHttp],
    ['fastify', bareFastify],
    ['sluice_http', sluiceHttp],
  ] as const) {
    const server = await start();
    try {
      results[name] = await drive(server.port, load);
    } finally {
      await server.close();
    }
  }
  const node = results['node_http']!;
  const kit = results['sluice_http']!;
  return {
    name: 'http',
    events_per_s: kit.requests_per_s,
    p50_ms: kit.p50_ms,
    p99_ms: kit.p99_ms,
    baseline_events_per_s: node.requests_per_s,
    unit: 'requests (one 16 KiB-class JSON POST each)',
    seconds_per_variant: opts.seconds,
    warmup_s: warmupS,
    connections,
    body_bytes: Buffer.byteLength(payload),
    node_http: node,
    fastify: results['fastify'],
    sluice_http: kit,
    fastify_vs_node_throughput: round(results['fastify']!.requests_per_s / node.requests_per_s, 3),
    sluice_http_vs_node_throughput: round(kit.requests_per_s / node.requests_per_s, 3),
  };
};

export default bench;
