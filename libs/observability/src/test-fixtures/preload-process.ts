// A real process for the preload test, started with the instrumentation preload ahead of it (the
// way `npm start` and the image start a service). It starts tracing as the runtime does (service name
// and OTLP endpoint from argv/env), then uses pg, ioredis, mongodb, node:http and grpc-js inside a
// root span and outside any span, prints {traceId, ...} and exits after flushing.
import { randomUUID } from 'node:crypto';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { trace } from '@opentelemetry/api';
import Redis from 'ioredis';
import { MongoClient } from 'mongodb';
import pg, { Pool } from 'pg';
import { createDeviceHasher } from '../device-hash';
import { createLogger } from '../logger';
import { markSelfTraced } from '../self-traced';
import { startTracing, tracer } from '../tracing';

const env = process.env;

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    req.on('error', reject);
    req.end();
  });
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as AddressInfo).port;
}

// One unary method per name, bytes in and out.
const identity = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
const method = (service: string, name: string) => ({
  path: `/${service}/${name}`,
  requestStream: false,
  responseStream: false,
  requestSerialize: identity.serialize,
  requestDeserialize: identity.deserialize,
  responseSerialize: identity.serialize,
  responseDeserialize: identity.deserialize,
});
const definition = {
  Echo: method('fixture.Echo', 'Echo'),
  IngestBatch: method('fixture.Echo', 'IngestBatch'),
};

async function main() {
  const tracing = startTracing({
    service: process.argv[2] ?? 'preload-fixture',
    otlpEndpoint: env['OTEL_EXPORTER_OTLP_ENDPOINT'],
    disabled: env['OTEL_SDK_DISABLED'] === 'true',
  });
  const lines: string[] = [];
  const log = createLogger({
    service: 'preload-fixture',
    hashDeviceId: createDeviceHasher('a-test-key-of-16+chars'),
    destination: { write: (l: string) => void lines.push(l) } as never,
  });
  const pool = new Pool({
    connectionString: env['PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test',
  });
  const redis = new Redis(env['REDIS_URL'] ?? 'redis://127.0.0.1:6379', { lazyConnect: true });
  await redis.connect();
  const mongo = new MongoClient(env['MONGO_URL'] ?? 'mongodb://127.0.0.1:27017');
  await mongo.connect();
  const seen: Record<string, IncomingHttpHeaders> = {};
  const handler = (req: { url?: string; headers: IncomingHttpHeaders }, res: { end(): void }) => {
    seen[req.url ?? ''] = req.headers;
    res.end();
  };
  const plain = createServer(handler);
  const own = markSelfTraced(createServer(handler));
  const [plainPort, ownPort] = [await listen(plain), await listen(own)];
  const grpcServer = new grpc.Server();
  grpcServer.addService(definition, {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
      cb(null, call.request),
    IngestBatch: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
      cb(null, call.request),
  });
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  const Client = grpc.makeGenericClientConstructor(definition, 'Echo');
  const grpcClient = new Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
  const client = grpcClient as unknown as Record<
    string,
    (req: Buffer, cb: (e: Error | null, r?: Buffer) => void) => void
  >;
  const unary = (name: string) =>
    new Promise<void>((resolve, reject) =>
      client[name]!.call(client, Buffer.from('x'), (e) => (e ? reject(e) : resolve())),
    );
  const key = `preload-fixture:${randomUUID()}`;

  // Outside any span: none of these may be traced (no parent), but the plain server's request is.
  await pool.query('SELECT 1 AS outside');
  await redis.get(key);
  await get(plainPort, '/outside');

  const traceId = await tracer('fixture').startActiveSpan('root', async (root) => {
    log.info('inside the root span');
    await pool.query('SELECT $1::text AS inside', ['secret-value']);
    await redis.set(key, 'secret-value', 'EX', 10);
    await mongo.db('preload_fixture').collection('c').findOne({ device_id: 'secret-value' });
    await get(plainPort, '/inside');
    await get(plainPort, '/healthz');
    await get(ownPort, '/self-traced');
    await get(plainPort, '/carries-traceparent', {
      traceparent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`,
    });
    await unary('Echo');
    await unary('IngestBatch');
    root.end();
    return root.spanContext().traceId;
  });
  await redis.del(key);
  grpcClient.close();
  grpcServer.forceShutdown();
  await Promise.all([pool.end(), redis.quit(), mongo.close()]);
  await Promise.all([new Promise((r) => plain.close(r)), new Promise((r) => own.close(r))]);
  console.log(
    JSON.stringify({
      traceId,
      providerRegistered:
        trace.getTracer('x').startSpan('probe').spanContext().traceId !== '0'.repeat(32),
      logLine: JSON.parse(lines[0] ?? '{}') as Record<string, unknown>,
      receivedTraceparent: seen['/inside']?.['traceparent'],
      pgPatched: '__wrapped' in pg.Client.prototype.query,
    }),
  );
  await tracing.shutdown();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
