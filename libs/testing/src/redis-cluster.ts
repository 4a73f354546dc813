// A Redis Cluster of one test on loopback: real redis-server processes with cluster mode on, private
// ports, no persistence, joined by `redis-cli --cluster create`. Torn down (processes and files) by
// destroy().
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, portOpen } from './servers';
import { waitFor } from './wait';

const run = promisify(execFile);

/** One server of a {@link RedisCluster}. */
export interface RedisClusterNode {
  readonly port: number;
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
  /** True while its process runs. */
  readonly running: boolean;
  readonly pid: number | undefined;
}

/** Options of {@link redisCluster}. */
export interface RedisClusterOptions {
  /** Masters (at least 3: Redis Cluster needs a majority of masters to fail one over). Default 3. */
  masters?: number;
  /** Replicas per master. Default 1. */
  replicas?: number;
  /**
   * `cluster-node-timeout`: how long a master must be unreachable before its replica is promoted.
   * Default 2000 ms (Redis: 15 s), so failover tests take seconds.
   */
  nodeTimeoutMs?: number;
  /** Extra `redis-server` arguments for every node, e.g. `['--maxmemory-policy', 'allkeys-lru']`. */
  extraArgs?: readonly string[];
}

/** A running cluster; every slot is served when {@link redisCluster} resolves. */
export interface RedisCluster {
  readonly nodes: readonly RedisClusterNode[];
  /** Every node's URL, comma-separated (the form dedupe's REDIS_URL takes with DEDUPE_REDIS_CLUSTER). */
  readonly url: string;
  node(port: number): RedisClusterNode;
  /** Ports of the running masters that serve slots, and of the replicas. */
  roles(): Promise<{ masters: number[]; replicas: number[] }>;
  /** Port of the master serving `slot` now (asked of a running node). */
  masterOf(slot: number): Promise<number>;
  /** The slot map now, from one `CLUSTER NODES`: the port of the master serving each slot. */
  slotMasters(): Promise<(slot: number) => number>;
  /** Port of a running replica of the master on `port`. */
  replicaOf(port: number): Promise<number>;
  /** `redis-cli` on one node (by port), e.g. `cli(p, 'CLUSTER', 'FAILOVER')`; resolves with stdout. */
  cli(port: number, ...args: string[]): Promise<string>;
  /** SIGKILL a node: an abrupt crash. Resolves once its port is closed. */
  kill(port: number): Promise<void>;
  /**
   * Starts a stopped node again, on its `nodes.conf` (it rejoins; without persistence it comes back
   * empty, and as a replica if its master role was taken over meanwhile).
   */
  start(port: number): Promise<void>;
  /**
   * Resolves once every running node reports `cluster_state:ok` and all 16384 slots are served by
   * running masters that agree on it (after a failover: once the promotion is visible everywhere).
   */
  healthy(timeoutMs?: number): Promise<void>;
  /** Kills every node and deletes the files. */
  destroy(): Promise<void>;
}

/** `redis-cli` of the machine (`REDIS_CLI_BIN` to override). */
function cliBin(): string {
  return process.env['REDIS_CLI_BIN'] ?? 'redis-cli';
}

interface NodeState {
  port: number;
  proc: ChildProcess | undefined;
}

/** Starts a private Redis Cluster (`masters` × (1 + `replicas`) nodes) and waits until it serves every slot. */
export async function redisCluster(opts: RedisClusterOptions = {}): Promise<RedisCluster> {
  const masters = opts.masters ?? 3;
  const replicas = opts.replicas ?? 1;
  if (masters < 3) throw new RangeError('a Redis Cluster needs at least 3 masters');
  const dir = mkdtempSync(join(tmpdir(), 'sluice-redis-cluster-'));
  const nodes: NodeState[] = [];
  for (let i = 0; i < masters * (1 + replicas); i++)
    nodes.push({ port: await freePort(), proc: undefined });
  const byPort = (port: number) => {
    const n = nodes.find((x) => x.port === port);
    if (!n) throw new Error(`no node on port ${port} in this cluster`);
    return n;
  };

  const startNode = async (n: NodeState) => {
    if (n.proc) return;
    const p = spawn(
      process.env['REDIS_SERVER_BIN'] ?? 'redis-server',
      [
        '--bind',
        '127.0.0.1',
        '--port',
        String(n.port),
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(dir, `nodes-${n.port}.conf`),
        '--cluster-node-timeout',
        String(opts.nodeTimeoutMs ?? 2_000),
        // A replica is promoted however long it was cut off from its master (tests kill masters).
        '--cluster-replica-validity-factor',
        '0',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        // One directory for all nodes: a full resync's RDB must not be another node's.
        '--dbfilename',
        `dump-${n.port}.rdb`,
        '--logfile',
        join(dir, `redis-${n.port}.log`),
        ...(opts.extraArgs ?? []),
      ],
      { stdio: 'ignore' },
    );
    n.proc = p;
    p.once('exit', () => {
      if (n.proc === p) n.proc = undefined;
    });
    await waitFor(`redis cluster node on port ${n.port}`, () => portOpen(n.port), {
      timeoutMs: 20_000,
    });
  };

  const cli = async (port: number, ...args: string[]) =>
    (await run(cliBin(), ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 30_000 }))
      .stdout;

  /** `CLUSTER NODES` of a running node: per node, its port, flags and slot ranges. */
  const clusterNodes = async (port: number) =>
    (await cli(port, 'CLUSTER', 'NODES'))
      .trim()
      .split('\n')
      .map((line) => {
        const f = line.split(' ');
        return {
          port: Number(/:(\d+)@/.exec(f[1]!)?.[1]),
          flags: f[2]!.split(','),
          slots: f.slice(8).filter((s) => /^\d/.test(s)),
        };
      });
  const anyRunning = () => {
    const n = nodes.find((x) => x.proc);
    if (!n) throw new Error('no node of the cluster is running');
    return n.port;
  };

  const cluster: RedisCluster = {
    nodes: nodes.map((n) => ({
      port: n.port,
      url: `redis://127.0.0.1:${n.port}`,
      get running() {
        return n.proc !== undefined;
      },
      get pid() {
        return n.proc?.pid;
      },
    })),
    url: nodes.map((n) => `redis://127.0.0.1:${n.port}`).join(','),
    node(port) {
      byPort(port);
      return cluster.nodes.find((n) => n.port === port)!;
    },
    cli,
    async roles() {
      const all = await clusterNodes(anyRunning());
      const running = (p: number) => byPort(p).proc !== undefined;
      return {
        masters: all
          .filter((n) => n.flags.includes('master') && !n.flags.includes('fail') && n.slots.length)
          .map((n) => n.port)
          .filter(running),
        replicas: all
          .filter((n) => n.flags.includes('slave') && !n.flags.includes('fail'))
          .map((n) => n.port)
          .filter(running),
      };
    },
    async masterOf(slot) {
      return (await cluster.slotMasters())(slot);
    },
    async slotMasters() {
      const owner = new Int32Array(16_384);
      for (const n of await clusterNodes(anyRunning())) {
        if (!n.flags.includes('master') || n.flags.includes('fail')) continue;
        for (const range of n.slots) {
          const [a, b] = range.split('-').map(Number);
          owner.fill(n.port, a!, (b ?? a!) + 1);
        }
      }
      return (slot) => {
        if (!owner[slot]) throw new Error(`no master serves slot ${slot}`);
        return owner[slot]!;
      };
    },
    async replicaOf(port) {
      const out = await cli(anyRunning(), 'CLUSTER', 'NODES');
      const id = out
        .split('\n')
        .find((l) => l.split(' ')[1]?.startsWith(`127.0.0.1:${port}@`))
        ?.split(' ')[0];
      const replica = out
        .split('\n')
        .map((l) => l.split(' '))
        .find((f) => f[3] === id && f[2]?.includes('slave') && !f[2].includes('fail'));
      const p = Number(/:(\d+)@/.exec(replica?.[1] ?? '')?.[1]);
      if (!id || !p || !byPort(p).proc) throw new Error(`no running replica of ${port}`);
      return p;
    },
    async kill(port) {
      const n = byPort(port);
      const p = n.proc;
      if (!p) return;
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await exited;
      n.proc = undefined;
      await waitFor(`redis port ${port} closed`, async () => !(await portOpen(port)), {
        timeoutMs: 10_000,
      });
    },
    async start(port) {
      await startNode(byPort(port));
    },
    async healthy(timeoutMs = 60_000) {
      await waitFor(
        'redis cluster healthy (cluster_state:ok on every node, all slots on running masters)',
        async () => {
          for (const n of nodes) {
            if (!n.proc) continue;
            if (!/cluster_state:ok/.test(await cli(n.port, 'CLUSTER', 'INFO'))) return false;
          }
          const { masters: up } = await cluster.roles();
          let served = 0;
          for (const n of await clusterNodes(anyRunning())) {
            if (!up.includes(n.port)) continue;
            for (const range of n.slots) {
              const [a, b] = range.split('-').map(Number);
              served += (b ?? a!) - a! + 1;
            }
          }
          return served === 16_384;
        },
        { timeoutMs, intervalMs: 200 },
      );
    },
    async destroy() {
      await Promise.all(nodes.map((n) => cluster.kill(n.port)));
      rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    await Promise.all(nodes.map(startNode));
    await run(
      cliBin(),
      [
        '--cluster',
        'create',
        ...nodes.map((n) => `127.0.0.1:${n.port}`),
        '--cluster-replicas',
        String(replicas),
        '--cluster-yes',
      ],
      { timeout: 60_000 },
    );
    await cluster.healthy();
    // Every replica attached and in sync, so a failover can promote it.
    await waitFor(
      'redis cluster replicas attached and in sync',
      async () => {
        const { replicas: attached } = await cluster.roles();
        if (attached.length !== masters * replicas) return false;
        for (const port of attached)
          if (!/master_link_status:up/.test(await cli(port, 'INFO', 'replication'))) return false;
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
  return cluster;
}
