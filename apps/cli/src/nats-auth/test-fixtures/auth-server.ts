// A nats-server of one test file configured with the users `sluice nats-auth generate` wrote: its own
// loopback port, JetStream in a temporary store, the generated auth.conf included; and the real
// `sluice` executable to generate and provision with.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/nats-core';
import { PermissionViolationError } from '@nats-io/nats-core';
import { connectNats } from '@sluice/jetstream';
import { freePort, portOpen, waitFor } from '@sluice/testing';

const ROOT = join(__dirname, '..', '..', '..', '..', '..');

/** Runs `bin/sluice` with `env` added; resolves with its exit code and output. */
export function sluice(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      'bash',
      [join(ROOT, 'apps/cli/bin/sluice'), ...args],
      { cwd: ROOT, env: { ...process.env, ...env }, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, out: stdout, err: stderr });
      },
    );
  });
}

/** `KEY=value` lines of a generated `<user>.env`. */
export function readEnvFile(file: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return env;
}

/** A connection as one generated user, with the permission violations the server reported to it. */
export interface UserConnection {
  nc: NatsConnection;
  /** Every permission violation so far (publish, subscribe), in order. */
  violations: PermissionViolationError[];
  /** Publishes once without a reply and resolves with whether the server refused it. */
  publishRefused(subject: string): Promise<boolean>;
}

export interface AuthServer {
  url: string;
  /** The folder generate wrote to (seeds, env files, auth.conf, secrets.yaml). */
  dir: string;
  /** NATS_URL plus the generated `<user>.env`: what a service runs with as `user`. */
  env(user: string): Record<string, string>;
  /** Connects as `user` with its seed, inbox prefix and provisioning switch. */
  connect(user: string): Promise<UserConnection>;
  /** The server's log lines so far. */
  log(): string;
  stop(): Promise<void>;
}

/**
 * Generates the users with `generateArgs` (in `SLUICE_NAMESPACE=namespace`), then starts a
 * nats-server that includes their auth.conf.
 */
export async function startAuthServer(
  namespace: string,
  generateArgs: string[],
): Promise<AuthServer> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-nats-auth-'));
  const gen = await sluice(['nats-auth', 'generate', '--out', dir, ...generateArgs], {
    SLUICE_NAMESPACE: namespace,
  });
  if (gen.code !== 0) throw new Error(`generate failed (${gen.code}): ${gen.err}`);
  const port = await freePort();
  writeFileSync(
    join(dir, 'server.conf'),
    [
      `listen: 127.0.0.1:${port}`,
      `jetstream { store_dir: ${JSON.stringify(join(dir, 'js'))} }`,
      'include "auth.conf"',
      '',
    ].join('\n'),
  );
  const logs: string[] = [];
  const proc: ChildProcess = spawn(
    process.env['NATS_SERVER_BIN'] ?? 'nats-server',
    ['-c', join(dir, 'server.conf')],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const keep = (b: Buffer) => logs.length < 5_000 && logs.push(b.toString('utf8'));
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  await waitFor(`nats-server on port ${port}`, () => proc.exitCode === null && portOpen(port), {
    timeoutMs: 20_000,
  }).catch((err: Error) => {
    throw new Error(`${err.message}\n${logs.join('')}`);
  });
  const url = `nats://127.0.0.1:${port}`;
  const connections: NatsConnection[] = [];
  const env = (user: string): Record<string, string> => ({
    NATS_URL: url,
    ...readEnvFile(join(dir, `${user}.env`)),
  });
  return {
    url,
    dir,
    env,
    async connect(user) {
      const e = env(user);
      const nc = await connectNats({
        servers: url,
        name: `test-${user}`,
        nkeySeedFile: e['NATS_NKEY_SEED_FILE'],
        inboxPrefix: e['NATS_INBOX_PREFIX'],
        provision: e['NATS_PROVISION'] !== 'false',
        waitOnFirstConnect: false,
      });
      connections.push(nc);
      const violations: PermissionViolationError[] = [];
      void (async () => {
        for await (const s of nc.status()) {
          if (s.type === 'error' && s.error instanceof PermissionViolationError)
            violations.push(s.error);
        }
      })();
      return {
        nc,
        violations,
        async publishRefused(subject) {
          const before = violations.length;
          nc.publish(subject);
          // The server answers a refused PUB with -ERR before the PONG of this flush.
          await nc.flush();
          await new Promise((r) => setImmediate(r));
          return violations
            .slice(before)
            .some((v) => v.operation === 'publish' && v.subject === subject);
        },
      };
    },
    log: () => logs.join(''),
    async stop() {
      for (const nc of connections) await nc.close().catch(() => undefined);
      proc.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
