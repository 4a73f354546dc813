// `npm start -- --no-sim` must leave a new user with a usable device token: the supervisor prints
// one with ready-to-paste curl and grpcurl commands, which this test runs as printed.
import { execFile } from 'node:child_process';
import { credentials, Metadata } from '@grpc/grpc-js';
import {
  IngestRequest,
  IngestServiceClient,
  IngestStatus,
  topology,
  type IngestAck,
} from '@sluice/contracts';
import {
  freePort,
  natsFixture,
  spawnService,
  testUrls,
  uniqueId,
  type ChildService,
  type NatsFixture,
} from '@sluice/testing';

function bash(script: string): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('bash', ['-c', script], { timeout: 20_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
    ),
  );
}

describe('npm start -- --no-sim', () => {
  let nats: NatsFixture;
  let up: ChildService | undefined;

  beforeAll(async () => {
    nats = await natsFixture();
  });
  afterAll(async () => {
    if (up) {
      up.kill('SIGTERM');
      await up.exited;
    }
    await nats.cleanup();
  });

  it('prints a device token with curl and grpcurl commands that work as pasted', async () => {
    const ns = uniqueId('up');
    const [httpPort, grpcPort] = [await freePort(), await freePort()];
    nats.track(topology(ns).streams.raw.name);
    const env: Record<string, string> = {
      NATS_URL: testUrls.nats,
      SLUICE_NAMESPACE: ns,
      INGEST_HTTP_PORT: String(httpPort),
      INGEST_GRPC_PORT: String(grpcPort),
      INGEST_AUTH_TOKENS: '', // empty counts as unset: the supervisor makes the credentials
      NO_COLOR: '1',
    };
    up = spawnService('tools/dev/up.ts', env);
    const tokenLine = await up.waitForLine(/device token for D-789: [0-9a-f]{48}/);
    const token = /([0-9a-f]{48})/.exec(tokenLine)![1]!;
    const curl = await up.waitForLine(/^curl .*\/v1\/events/);
    const queryCurl = await up.waitForLine(/^curl .*\/v1\/devices/);
    expect(await up.waitForLine(/ archive +\S+/)).toMatch(/tmp\/archive/);
    const grpcurl = await up.waitForLine(/^grpcurl /);
    await up.waitForLine(/ingestion running/, 150_000);
    expect(curl).toContain(`http://127.0.0.1:${httpPort}/v1/events`);
    expect(curl).toContain(`Bearer ${token}`);

    // HTTP: the printed command, run by bash as a user would paste it.
    const answer = JSON.parse(await bash(curl)) as { status: string; accepted: number };
    expect(answer).toMatchObject({ status: 'OK', accepted: 1 });

    // The query API's printed command, with the region-scoped dev token.
    await up.waitForLine(/aggregator running/, 150_000);
    const devices = JSON.parse(await bash(queryCurl)) as { items: unknown[] };
    expect(Array.isArray(devices.items)).toBe(true);

    // gRPC: grpcurl is not installed here; a shell function stands in for it and hands its -d JSON
    // and header to a real client, so the quoting and the JSON shape are what is checked.
    const args = (await bash(`grpcurl() { printf '%s\\0' "$@"; }; ${grpcurl}`))
      .split('\0')
      .filter(Boolean);
    expect(args).toEqual([
      '-plaintext',
      '-H',
      `authorization: Bearer ${token}`,
      '-d',
      expect.any(String),
      `127.0.0.1:${grpcPort}`,
      'sluice.gateway.v1.IngestService/IngestBatch',
    ]);
    const request = IngestRequest.fromJSON(JSON.parse(args[4]!));
    expect(request.batch?.events[0]?.kind?.value).toMatchObject({
      deviceId: 'D-789',
      sensorType: 'temperature',
      value: 21.4,
    });
    const client = new IngestServiceClient(`127.0.0.1:${grpcPort}`, credentials.createInsecure());
    try {
      const md = new Metadata();
      md.set('authorization', args[2]!.replace(/^authorization: /, ''));
      const ack = await new Promise<IngestAck>((resolve, reject) =>
        client.ingestBatch(request, md, (err, a) => (err ? reject(err) : resolve(a!))),
      );
      expect(ack).toMatchObject({ status: IngestStatus.OK, accepted: 1 });
    } finally {
      client.close();
    }
  }, 240_000);
});
