import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, Socket, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './wait';

/** A free TCP port on 127.0.0.1 (bound and released; fine for tests). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Whether something accepts TCP connections on 127.0.0.1:`port` now. */
export async function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => (s.destroy(), resolve(false)));
    s.connect(port, '127.0.0.1');
  });
}

/**
 * A server process owned by one test (its own port and data dir) that the test may stop and start
 * again: for "store down, then back" tests without disturbing the shared local services.
 */
export interface PrivateServer {
  port: number;
  url: string;
  start(): Promise<void>;
  /** The server process's pid while it runs (for SIGSTOP/SIGCONT), else undefined. */
  readonly pid: number | undefined;
  /**
   * Resolves once the running process has exited by itself (e.g. after Redis `SHUTDOWN NOSAVE`) and
   * its port is closed; at once when it is not running. Then `start()` runs a new one.
   */
  exited(timeoutMs?: number): Promise<void>;
  /** SIGKILL by default: an abrupt outage. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Stop and delete the data dir. */
  destroy(): Promise<void>;
}

function privateServer(
  kind: string,
  cmd: string,
  args: (port: number, dir: string) => string[],
  url: (port: number) => string,
  port: number,
): PrivateServer {
  const dir = mkdtempSync(join(tmpdir(), `sluice-${kind}-`));
  let proc: ChildProcess | undefined;
  const server: PrivateServer = {
    port,
    url: url(port),
    async start() {
      if (proc) return;
      const p = spawn(cmd, args(port, dir), { stdio: 'ignore' });
      proc = p;
      p.once('exit', () => {
        if (proc === p) proc = undefined;
      });
      await waitFor(`${kind} on port ${port}`, () => portOpen(port), { timeoutMs: 20_000 });
    },
    get pid() {
      return proc?.pid;
    },
    async exited(timeoutMs = 10_000) {
      const p = proc;
      if (p) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          new Promise((r) => p.once('exit', r)),
          new Promise(
            (_, reject) =>
              (timer = setTimeout(
                () =>
                  reject(new Error(`${kind} on port ${port} did not exit within ${timeoutMs} ms`)),
                timeoutMs,
              )),
          ),
        ]).finally(() => clearTimeout(timer));
      }
      await waitFor(`${kind} port ${port} closed`, async () => !(await portOpen(port)), {
        timeoutMs,
      });
    },
    async stop(signal = 'SIGKILL') {
      const p = proc;
      if (!p) return;
      const exited = new Promise((r) => p.once('exit', r));
      p.kill(signal);
      await exited;
      proc = undefined;
      await waitFor(`${kind} port ${port} closed`, async () => !(await portOpen(port)), {
        timeoutMs: 10_000,
      });
    },
    async destroy() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

/**
 * A private `nats-server -js` (file store in a temp dir, kept across stop/start). `extraArgs` are
 * added to its command line, e.g. `['--tls', '--tlscert', cert, '--tlskey', key]`.
 */
export async function privateNats(extraArgs: readonly string[] = []): Promise<PrivateServer> {
  const s = privateServer(
    'nats',
    process.env['NATS_SERVER_BIN'] ?? 'nats-server',
    (port, dir) => ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir, ...extraArgs],
    (port) => `nats://127.0.0.1:${port}`,
    await freePort(),
  );
  await s.start();
  return s;
}

/**
 * A private `redis-server` without persistence (an outage loses its keys, as a real crash would).
 * `extraArgs` are added to its command line, e.g. `['--maxmemory-policy', 'allkeys-lru']`.
 */
export async function privateRedis(extraArgs: readonly string[] = []): Promise<PrivateServer> {
  const s = privateServer(
    'redis',
    process.env['REDIS_SERVER_BIN'] ?? 'redis-server',
    (port, dir) => [
      '--bind',
      '127.0.0.1',
      '--port',
      String(port),
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      ...extraArgs,
    ],
    (port) => `redis://127.0.0.1:${port}`,
    await freePort(),
  );
  await s.start();
  return s;
}

/**
 * A TCP proxy in front of a real server: `cut()` drops every connection and refuses new ones (the
 * store is "down" for the client), `restore()` lets traffic through again.
 */
export interface TcpProxy {
  port: number;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function tcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  let up = true;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    if (!up) return void client.destroy();
    const upstream = new Socket();
    sockets.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    upstream.connect(targetPort, targetHost, () => {
      client.pipe(upstream);
      upstream.pipe(client);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    cut() {
      up = false;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    restore() {
      up = true;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
