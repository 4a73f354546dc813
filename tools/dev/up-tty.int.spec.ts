// `npm start` on a terminal: a live view that redraws in place instead of the log wall, the logs in
// files, and a clean Ctrl-C. Run under a real pseudo-terminal: tmux (on its own server socket).
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

/** tmux on its own server, so the test neither sees nor touches anyone's sessions. */
function tmux(socket: string, ...args: string[]): Promise<string> {
  return new Promise((done, fail) =>
    execFile('tmux', ['-L', socket, ...args], { timeout: 10_000 }, (err, stdout, stderr) =>
      err ? fail(new Error(`tmux ${args[0]}: ${err.message} ${stderr}`)) : done(stdout),
    ),
  );
}

/** The pane's text, trailing blank lines dropped. */
async function capture(socket: string, target: string): Promise<string[]> {
  const lines = (await tmux(socket, 'capture-pane', '-p', '-t', target)).split('\n');
  while (lines.length > 0 && lines.at(-1)!.trim() === '') lines.pop();
  return lines;
}

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** The table row of `name`: [name, pid, state, rate, total, lag, dlq, notes…]. */
const row = (lines: string[], name: string) =>
  lines.find((l) => l.startsWith(`${name} `))?.split(/\s{2,}/);

describe('npm start on a terminal (tmux)', () => {
  const socket = uniqueId('sluice-tty');
  const session = 'up';
  let nats: NatsFixture;
  let logDir: string;
  let socketPath: string | undefined;

  beforeAll(async () => {
    // The test's bootstrap: tmux from the distribution when it is missing (scripts/lib.sh).
    execFileSync(
      'bash',
      ['-c', 'source scripts/lib.sh && { command -v tmux >/dev/null || apt_install tmux tmux; }'],
      { cwd: ROOT, stdio: 'inherit', timeout: 900_000 },
    );
    nats = await natsFixture();
    logDir = mkdtempSync(join(tmpdir(), 'sluice-up-logs-'));
  });
  afterAll(async () => {
    await tmux(socket, 'kill-server').catch(() => undefined);
    if (socketPath) rmSync(socketPath, { force: true }); // tmux leaves it behind
    await nats.cleanup();
    rmSync(logDir, { recursive: true, force: true });
  });

  it('redraws a live view in place, keeps logs in files, and stops every child on Ctrl-C', async () => {
    const ns = uniqueId('uptty');
    for (const s of Object.values(topology(ns).streams)) nats.track(s.name);
    const [httpPort, grpcPort, opsBase] = [await freePort(), await freePort(), await freePort()];
    const env = {
      NATS_URL: testUrls.nats,
      SLUICE_NAMESPACE: ns,
      INGEST_HTTP_PORT: String(httpPort),
      INGEST_GRPC_PORT: String(grpcPort),
      INGEST_AUTH_TOKENS: '',
      NO_COLOR: '1',
      // No Jaeger child: the view and the stop count are of the pipeline's own processes.
      OTEL_SDK_DISABLED: 'true',
    };
    const command = [
      'env',
      ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
      'bash scripts/run.sh start --only ingestion,dedupe',
      `--ops-port-base ${opsBase} --log-dir ${logDir}`,
      // The shell stays a while after: tmux hides the cursor of a dead pane.
      '; echo "up exited with status $?"; sleep 60',
    ].join(' ');
    await tmux(
      socket,
      'new-session',
      '-d',
      '-s',
      session,
      '-x',
      '160',
      '-y',
      '40',
      '-c',
      ROOT,
      command,
    );
    socketPath = (await tmux(socket, 'display-message', '-p', '#{socket_path}')).trim();

    // Both services ready and the simulator sending: numbers on the ingestion row.
    const first = await waitFor(
      'the live view with both services ready and events published',
      async () => {
        const lines = await capture(socket, session);
        const ing = row(lines, 'ingestion');
        return row(lines, 'dedupe')?.[2] === 'ready' &&
          ing?.[2] === 'ready' &&
          Number.parseFloat(ing[4] ?? '') > 0 &&
          row(lines, 'fleet-sim')?.[2] === 'running'
          ? lines
          : undefined;
      },
      { timeoutMs: 180_000, intervalMs: 500 },
    );
    const second = await waitFor(
      'a later frame with other numbers',
      async () => {
        const lines = await capture(socket, session);
        return row(lines, 'ingestion')?.[4] !== row(first, 'ingestion')?.[4] ? lines : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 500 },
    );

    // In place: the same frame shape, the header on the top row, no log line in between.
    expect(second).toHaveLength(first.length);
    for (const frame of [first, second]) {
      expect(frame[0]).toMatch(/^Sluice dev pipeline · up \d+m\d\ds · plaintext/);
      expect(frame[2]).toMatch(/^SERVICE +PID +STATE +RATE\/s +TOTAL +LAG +DLQ +NOTES$/);
      expect(frame.filter((l) => /"level"|^\w+ +\| /.test(l))).toEqual([]);
    }
    expect(second[0]).not.toBe(first[0]); // the uptime moved on
    expect(second.findIndex((l) => l.startsWith('logs '))).toBe(
      first.findIndex((l) => l.startsWith('logs ')),
    );
    expect(row(second, 'fleet-sim')!.join(' ')).toMatch(/accepted\/s=\d+/);
    expect(row(second, 'dedupe')![5]).toMatch(/^\d/); // its consumer's lag, from /metrics

    // The logs went to files instead of the screen.
    expect(readFileSync(join(logDir, 'ingestion.log'), 'utf8')).toMatch(/ingestion running/);
    expect(readFileSync(join(logDir, 'up.log'), 'utf8')).toMatch(/^curl .*\/v1\/events/m);

    const pids = ['ingestion', 'dedupe', 'fleet-sim'].map((n) => Number(row(second, n)![1]));
    for (const pid of pids) expect(isAlive(pid)).toBe(true);

    await tmux(socket, 'send-keys', '-t', session, 'C-c');
    const end = await waitFor(
      'the supervisor to exit',
      async () => {
        const lines = await capture(socket, session);
        return lines.some((l) => l.startsWith('up exited with status')) ? lines : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    expect(end).toContain('up exited with status 0');
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    // The terminal is given back: main screen, cursor shown, the stop reported there.
    const state = await tmux(
      socket,
      'display-message',
      '-p',
      '-t',
      session,
      '#{alternate_on} #{cursor_flag}',
    );
    expect(state.trim()).toBe('0 1');
    expect(end.join('\n')).toMatch(/stopping 3 process\(es\) \(SIGINT\)/);
    expect(end.join('\n')).toMatch(/all stopped/);
  }, 300_000);
});
