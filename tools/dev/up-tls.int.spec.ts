// `npm start -- --tls`: the supervisor makes (or reuses) the development CA, the gateway and the query
// API serve TLS with its certificate, the fleet simulator trusts it, and the printed curl commands
// carry --cacert. Checked against the real pipeline (gateway → dedupe → aggregator) fed by fleet-sim.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { get as httpsGet } from 'node:https';
import { join, resolve } from 'node:path';
import { topology } from '@sluice/contracts';
import {
  freePort,
  natsFixture,
  testUrls,
  uniqueId,
  waitFor,
  type NatsFixture,
} from '@sluice/testing';

const ROOT = resolve(__dirname, '..', '..');

function bash(script: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) =>
    execFile('bash', ['-c', script], { cwd: ROOT, timeout: 20_000 }, (err, stdout, stderr) =>
      done({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

/** up.ts with `args`, its output lines kept for {@link waitForLine}. */
function startUp(args: string[], env: Record<string, string>) {
  const proc: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', 'tools/dev/up.ts', ...args],
    {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const lines: string[] = [];
  const onData = (buf: Buffer) => lines.push(...buf.toString('utf8').split('\n').filter(Boolean));
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<void>((r) => proc.on('exit', () => r()));
  const waitForLine = async (re: RegExp, timeoutMs = 60_000): Promise<string> => {
    let found: string | undefined;
    await waitFor(
      `a line matching ${re}`,
      () => (found = lines.find((l) => re.test(l))) !== undefined || proc.exitCode !== null,
      { timeoutMs, intervalMs: 100 },
    );
    if (found === undefined)
      throw new Error(`up exited before ${re}:\n${lines.slice(-30).join('\n')}`);
    return found;
  };
  return { proc, lines, exited, waitForLine };
}

describe('npm start -- --tls', () => {
  let nats: NatsFixture;
  let up: ReturnType<typeof startUp> | undefined;

  beforeAll(async () => {
    nats = await natsFixture();
  });
  afterAll(async () => {
    if (up && up.proc.exitCode === null) {
      up.proc.kill('SIGTERM');
      await up.exited;
    }
    await nats.cleanup();
  });

  it('serves the gateway and query API over TLS only, trusted through the dev CA, with fleet-sim data', async () => {
    const ns = uniqueId('uptls');
    const region = uniqueId('r');
    for (const s of Object.values(topology(ns).streams)) nats.track(s.name);
    const [httpPort, grpcPort, apiPort, consolePort, opsBase] = [
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    const started = new Date(Date.now() - 1000);
    up = startUp(
      [
        '--tls',
        '--only',
        'ingestion,dedupe,aggregator,console',
        '--ops-port-base',
        String(opsBase),
      ],
      {
        NATS_URL: testUrls.nats,
        SLUICE_NAMESPACE: ns,
        INGEST_REGIONS: region,
        INGEST_HTTP_PORT: String(httpPort),
        INGEST_GRPC_PORT: String(grpcPort),
        AGGREGATOR_API_PORT: String(apiPort),
        CONSOLE_PORT: String(consolePort),
        INGEST_AUTH_TOKENS: '', // empty counts as unset: the supervisor makes the credentials
        AGGREGATOR_API_TOKENS: '',
        NO_COLOR: '1',
      },
    );
    const caLine = await up.waitForLine(/development CA (\S+)/);
    const caFile = /development CA (\S+)/.exec(caLine)![1]!;
    expect(caFile).toBe(join('tmp', 'dev-tls', 'ca.crt'));
    const queryCurl = await up.waitForLine(/^curl .*\/v1\/devices/);
    const eventCurl = await up.waitForLine(/^curl .*\/v1\/events/);
    const grpcurl = await up.waitForLine(/^grpcurl /);
    expect(queryCurl).toContain(`--cacert ${caFile} `);
    expect(queryCurl).toContain(`'https://127.0.0.1:${apiPort}/v1/devices?limit=5'`);
    expect(eventCurl).toContain(`https://127.0.0.1:${httpPort}/v1/events`);
    expect(grpcurl).toContain(`-cacert ${caFile} `);
    expect(grpcurl).not.toContain('-plaintext');
    await up.waitForLine(/aggregator running/, 150_000);
    await up.waitForLine(/ingestion running/, 150_000);
    await up.waitForLine(/console running/, 150_000);

    // The gateway's HTTPS listener: the printed command, as pasted, with the CA.
    const sent = await bash(eventCurl);
    expect(sent.code).toBe(0);
    expect(JSON.parse(sent.stdout)).toMatchObject({ status: 'OK', accepted: 1 });

    // The query API over HTTPS with the printed command, as pasted.
    const listed = await bash(queryCurl);
    expect(listed.code).toBe(0);
    expect(Array.isArray((JSON.parse(listed.stdout) as { items: unknown[] }).items)).toBe(true);

    // The fleet simulator (gRPC over TLS, --ca) feeds the pipeline: roll-ups of this run's own
    // region, from this run's time on, come back from the query API over HTTPS. (engine_temp: only
    // the simulator sends it; the curl event above is a temperature.)
    const token = /Bearer ([0-9a-f]{48})/.exec(queryCurl)![1]!;
    const seriesUrl = `https://127.0.0.1:${apiPort}/v1/series?region=${region}&sensor=engine_temp&resolution=1s&from=${started.toISOString()}&to=${new Date(Date.now() + 60_000).toISOString()}`;
    let points: Array<{ time: string; count: number }> = [];
    await waitFor(
      'roll-ups of this run',
      async () => {
        const r = await bash(
          `curl -sS --cacert ${caFile} -H "authorization: Bearer ${token}" '${seriesUrl}'`,
        );
        points =
          r.code === 0 ? ((JSON.parse(r.stdout) as { points?: typeof points }).points ?? []) : [];
        return points.length > 0;
      },
      { timeoutMs: 90_000, intervalMs: 1000 },
    );
    expect(points[0]!.count).toBeGreaterThan(0);
    expect(Date.parse(points[0]!.time)).toBeGreaterThanOrEqual(started.getTime() - 1000);

    // The web console reaches the query API over HTTPS too (the supervisor points it there and makes
    // it trust the dev CA).
    const viaConsole = await fetch(
      `http://127.0.0.1:${consolePort}/api/query/v1/series?${new URL(seriesUrl).searchParams}`,
      { headers: { authorization: `Bearer ${token}` } },
    );
    expect(viaConsole.status).toBe(200);
    expect(((await viaConsole.json()) as { points: unknown[] }).points.length).toBeGreaterThan(0);

    // Plain HTTP to the HTTPS port gets no answer.
    await expect(
      fetch(`http://127.0.0.1:${apiPort}/v1/devices`, {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(5000),
      }),
    ).rejects.toThrow();

    // Without the dev CA, verification fails: curl (exit 60) and Node's TLS client.
    const noCa = await bash(queryCurl.replace(`--cacert ${caFile} `, ''));
    expect(noCa.code).toBe(60);
    expect(noCa.stderr).toMatch(/certificate/i);
    const nodeErr = await new Promise<NodeJS.ErrnoException>((done) =>
      httpsGet(`https://127.0.0.1:${apiPort}/v1/devices`, (res) => {
        res.resume();
        done(new Error(`answered ${res.statusCode}`));
      }).on('error', done),
    );
    expect(nodeErr.code).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  }, 300_000);
});
