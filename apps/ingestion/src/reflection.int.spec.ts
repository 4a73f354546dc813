// gRPC reflection from the built bundle alone: the bundle is copied away from the repository (as in
// the container image: no proto/ folder, only node_modules), started on plain node, and asked by a
// real ServerReflection client what it serves.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  credentials,
  loadPackageDefinition,
  type ClientDuplexStream,
  type GrpcObject,
  type ServiceClientConstructor,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { topology } from '@sluice/contracts';
import { freePort, natsFixture, testUrls, uniqueId, type NatsFixture } from '@sluice/testing';
import { gatewayEnv } from './test-fixtures/gateway';

const ROOT = join(__dirname, '..', '..', '..');

interface ReflectionResponse {
  listServicesResponse?: { service: Array<{ name: string }> };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}

/** A ServerReflection v1 client built from the .proto that ships with @grpc/reflection. */
function reflectionClient(port: number) {
  const protoDir = join(require.resolve('@grpc/reflection/package.json'), '..', 'build', 'proto');
  const def = loadSync('grpc/reflection/v1/reflection.proto', {
    includeDirs: [protoDir],
    keepCase: false,
    longs: Number,
  });
  const pkg = loadPackageDefinition(def) as unknown as { grpc: { reflection: { v1: GrpcObject } } };
  const Ctor = pkg.grpc.reflection.v1['ServerReflection'] as ServiceClientConstructor;
  const client = new Ctor(`127.0.0.1:${port}`, credentials.createInsecure());
  /** One request on its own stream, one response. */
  const ask = (req: Record<string, string>): Promise<ReflectionResponse> =>
    new Promise((resolve, reject) => {
      const call = (
        client['serverReflectionInfo'] as () => ClientDuplexStream<unknown, ReflectionResponse>
      )();
      call.once('data', (res: ReflectionResponse) => {
        resolve(res);
        call.end();
      });
      call.once('error', reject);
      call.write(req);
    });
  return { ask, close: () => client.close() };
}

describe('gRPC reflection of the built gateway', () => {
  let nats: NatsFixture;
  let dir: string;
  let proc: ChildProcess | undefined;

  beforeAll(async () => {
    nats = await natsFixture();
    execFileSync(process.execPath, [join(ROOT, 'tools', 'build', 'build.mjs'), 'apps/ingestion'], {
      cwd: ROOT,
      stdio: 'pipe',
    });
    dir = mkdtempSync(join(tmpdir(), 'sluice-ingestion-bundle-'));
    copyFileSync(join(ROOT, 'dist', 'apps', 'ingestion', 'main.js'), join(dir, 'main.js'));
  });
  afterAll(async () => {
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await once(proc, 'exit');
    }
    rmSync(dir, { recursive: true, force: true });
    await nats.cleanup();
  });

  it('lists the gateway and health services and describes IngestService without any .proto file', async () => {
    // Where the old code looked for the .proto files, relative to the bundle, there are none.
    expect(existsSync(join(dir, '..', '..', '..', 'proto'))).toBe(false);
    const ns = uniqueId('ingrefl');
    nats.track(topology(ns).streams.raw.name);
    const grpcPort = await freePort();
    proc = spawn(process.execPath, [join(dir, 'main.js')], {
      cwd: dir,
      env: {
        ...process.env,
        // The image's layout: the bundle, and the production node_modules to resolve packages from.
        NODE_PATH: join(ROOT, 'node_modules'),
        NATS_URL: testUrls.nats,
        OPS_PORT: '0',
        LOG_LEVEL: 'info',
        OTEL_SDK_DISABLED: 'true',
        ...gatewayEnv(ns, `${'0'.repeat(64)}=*`, {
          INGEST_GRPC_PORT: String(grpcPort),
          INGEST_REGIONS: 'eu-west',
          INGEST_STREAM_LAYOUT: 'shared',
        }),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output: string[] = [];
    const running = new Promise<void>((resolve, reject) => {
      const onData = (b: Buffer) => {
        if (output.length < 1000) output.push(b.toString('utf8'));
        if (/ingestion running/.test(b.toString('utf8'))) resolve();
      };
      proc!.stdout!.on('data', onData);
      proc!.stderr!.on('data', onData);
      proc!.once('exit', (code) =>
        reject(new Error(`the bundle exited (${code}) before running:\n${output.join('')}`)),
      );
    });
    await running;

    const r = reflectionClient(grpcPort);
    try {
      const list = await r.ask({ listServices: '' });
      const names = list.listServicesResponse?.service.map((s) => s.name) ?? [];
      expect(names).toEqual(
        expect.arrayContaining(['sluice.gateway.v1.IngestService', 'grpc.health.v1.Health']),
      );

      const file = await r.ask({ fileContainingSymbol: 'sluice.gateway.v1.IngestService' });
      expect(file.errorResponse).toBeUndefined();
      const protos = (file.fileDescriptorResponse?.fileDescriptorProto ?? []).map((b) =>
        fromBinary(FileDescriptorProtoSchema, b),
      );
      const gateway = protos.find((p) => p.package === 'sluice.gateway.v1');
      const service = gateway?.service.find((s) => s.name === 'IngestService');
      expect(
        service?.method.map((m) => [
          m.name,
          m.inputType,
          m.outputType,
          m.clientStreaming,
          m.serverStreaming,
        ]),
      ).toEqual([
        ['Ingest', '.sluice.gateway.v1.IngestRequest', '.sluice.gateway.v1.IngestAck', true, true],
        [
          'IngestBatch',
          '.sluice.gateway.v1.IngestRequest',
          '.sluice.gateway.v1.IngestAck',
          false,
          false,
        ],
      ]);
      // The types the request refers to are served as well (a client can build an IngestRequest).
      const batch = await r.ask({ fileContainingSymbol: 'sluice.telemetry.v1.EventBatch' });
      expect(batch.errorResponse).toBeUndefined();
      const unknown = await r.ask({ fileContainingSymbol: 'sluice.gateway.v1.NoSuchService' });
      expect(unknown.errorResponse?.errorCode).toBe(5); // NOT_FOUND
    } finally {
      r.close();
    }
    proc.kill('SIGTERM');
    const [code] = (await once(proc, 'exit')) as [number | null];
    expect(code).toBe(0);
  });
});
