// A JetStream cluster of one test on loopback: the current nats-server that scripts/lib.sh builds
// once from the Go module proxy (build_nats_cluster), never the local 2.9 default on 4222.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { uniqueId } from './names';
import { freePort } from './servers';
import { waitFor } from './wait';

const ROOT = join(__dirname, '..', '..', '..');
const LIB = join(ROOT, 'scripts', 'lib.sh');

/**
 * Path of the cluster tests' nats-server: `NATS_CLUSTER_BIN` when set, else the one scripts/lib.sh
 * builds into the cache (the first call builds it: a minute or two, once per machine).
 */
export function natsClusterBin(): string {
  const own = process.env['NATS_CLUSTER_BIN'];
  if (own) return own;
  return execFileSync(
    'bash',
    ['-c', 'source "$1" && build_nats_cluster && nats_cluster_bin', '_', LIB],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 30 * 60_000 },
  ).trim();
}

/** One server of a {@link NatsCluster}. */
export interface NatsClusterNode {
  /** `server_name`, e.g. `n1`: what stream info names as leader and replicas. */
  readonly name: string;
  readonly tags: readonly string[];
  readonly port: number;
  readonly clusterPort: number;
  /** Monitoring (HTTP) port. */
  readonly httpPort: number;
  /** `nats://127.0.0.1:<port>`. */
  readonly url: string;
  /** JetStream store of this node (kept across kill and start). */
  readonly storeDir: string;
  readonly logFile: string;
  /** True while its process runs. */
  readonly running: boolean;
}

/** Options of {@link natsCluster}. */
export interface NatsClusterOptions {
  /** `server_tags` per node; its length is the cluster size. Default 3 untagged nodes. */
  tags?: ReadonlyArray<readonly string[]>;
  /** How long to wait for a node (or the cluster) to be ready. Default 60 s. */
  readyTimeoutMs?: number;
}

/** A private JetStream cluster; every node runs when {@link natsCluster} resolves. */
export interface NatsCluster {
  readonly name: string;
  readonly nodes: readonly NatsClusterNode[];
  /** Every node's client URL, comma-separated (the form `NATS_URL` takes). */
  readonly url: string;
  /** Every node's client URL. */
  readonly servers: string[];
  node(name: string): NatsClusterNode;
  /** SIGKILL: an abrupt crash (store left as the crash leaves it). Resolves once its port is closed. */
  kill(name: string): Promise<void>;
  /** Starts a stopped node on its store; resolves once it reports JetStream healthy (caught up). */
  start(name: string): Promise<void>;
  /** Resolves once every running node reports JetStream healthy and knows the meta leader. */
  ready(): Promise<void>;
  /**
   * Names of the nodes with `bytes` somewhere in a file of their store (message blocks, Raft logs,
   * snapshots): where a message is stored on disk. Stores are not compressed or encrypted.
   */
  nodesStoring(bytes: string | Uint8Array): Promise<string[]>;
  /**
   * `stream` as node `name` holds it (its own replica), from its monitoring endpoint; undefined when
   * the node holds no replica of it.
   */
  streamState(name: string, stream: string): Promise<NodeStreamState | undefined>;
  /** Server name of the current JetStream meta leader, asked of a running node. */
  metaLeader(): Promise<string>;
  /** Kills every node and deletes the stores. */
  destroy(): Promise<void>;
}

/** A stream's state on one node. */
export interface NodeStreamState {
  messages: number;
  bytes: number;
  first_seq: number;
  last_seq: number;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => (s.destroy(), resolve(false)));
    s.connect(port, '127.0.0.1');
  });
}

async function dirContains(dir: string, needle: Buffer): Promise<boolean> {
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    // A file may vanish under a running server (compaction, snapshot rotation).
    const data = await readFile(join(e.parentPath, e.name)).catch(() => undefined);
    if (data?.includes(needle)) return true;
  }
  return false;
}

async function monitor<T>(port: number, path: string): Promise<{ status: number; body: T }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    signal: AbortSignal.timeout(5_000),
  });
  return { status: res.status, body: (await res.json()) as T };
}

interface Jsz {
  meta_cluster?: { leader?: string; cluster_size?: number };
  account_details?: Array<{ stream_detail?: Array<{ name: string; state: NodeStreamState }> }>;
}

interface NodeState {
  readonly name: string;
  readonly tags: readonly string[];
  readonly port: number;
  readonly clusterPort: number;
  readonly httpPort: number;
  readonly url: string;
  readonly storeDir: string;
  readonly logFile: string;
  readonly config: string;
  proc?: ChildProcess | undefined;
}

/**
 * Starts a JetStream cluster of `tags.length` nodes (3 by default) on free loopback ports, each with
 * its own store under one temp dir, and waits until the meta leader is elected and every node's
 * JetStream is healthy. Tags become each node's `server_tags` (e.g. `region:eu-west`), what stream
 * placement matches.
 */
export async function natsCluster(opts: NatsClusterOptions = {}): Promise<NatsCluster> {
  const bin = natsClusterBin();
  const tags = opts.tags ?? [[], [], []];
  const readyTimeoutMs = opts.readyTimeoutMs ?? 60_000;
  const clusterName = uniqueId('sluice-cluster');
  const dir = mkdtempSync(join(tmpdir(), 'sluice-nats-cluster-'));
  const ports = new Set<number>();
  const take = async () => {
    for (;;) {
      const p = await freePort();
      if (!ports.has(p)) return (ports.add(p), p);
    }
  };
  const states: NodeState[] = [];
  for (const [i, nodeTags] of tags.entries()) {
    const name = `n${i + 1}`;
    const port = await take();
    states.push({
      name,
      tags: nodeTags,
      port,
      clusterPort: await take(),
      httpPort: await take(),
      url: `nats://127.0.0.1:${port}`,
      storeDir: join(dir, name, 'store'),
      logFile: join(dir, name, 'server.log'),
      config: join(dir, name, 'server.conf'),
    });
  }
  const routes = states.map((s) => `nats-route://127.0.0.1:${s.clusterPort}`);
  for (const s of states) {
    mkdirSync(s.storeDir, { recursive: true });
    // JSON is valid NATS configuration.
    const conf = {
      server_name: s.name,
      listen: `127.0.0.1:${s.port}`,
      http: `127.0.0.1:${s.httpPort}`,
      server_tags: s.tags,
      log_file: s.logFile,
      jetstream: { store_dir: s.storeDir, max_memory_store: 256 * 1024 * 1024 },
      cluster: {
        name: clusterName,
        listen: `127.0.0.1:${s.clusterPort}`,
        routes: routes.filter((r) => !r.endsWith(`:${s.clusterPort}`)),
      },
    };
    writeFileSync(s.config, JSON.stringify(conf, null, 2));
  }

  const byName = (name: string): NodeState => {
    const s = states.find((x) => x.name === name);
    if (!s)
      throw new Error(
        `no node ${name} in cluster ${clusterName} (${states.map((x) => x.name).join(', ')})`,
      );
    return s;
  };
  const healthy = async (s: NodeState): Promise<boolean> => {
    if (!s.proc) return false;
    const [health, jsz] = await Promise.all([
      monitor<{ status: string }>(s.httpPort, '/healthz'),
      monitor<Jsz>(s.httpPort, '/jsz'),
    ]);
    return health.status === 200 && Boolean(jsz.body.meta_cluster?.leader);
  };
  const spawnNode = (s: NodeState) => {
    const p = spawn(bin, ['-c', s.config], { stdio: 'ignore' });
    s.proc = p;
    p.once('exit', () => {
      if (s.proc === p) s.proc = undefined;
    });
  };
  const waitHealthy = (s: NodeState) =>
    waitFor(
      `nats node ${s.name} (port ${s.port}, log ${s.logFile}) JetStream healthy`,
      () => healthy(s),
      {
        timeoutMs: readyTimeoutMs,
        intervalMs: 200,
      },
    );
  const kill = async (s: NodeState) => {
    const p = s.proc;
    if (!p) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
    await waitFor(
      `nats node ${s.name} port ${s.port} closed`,
      async () => !(await portOpen(s.port)),
      {
        timeoutMs: 10_000,
      },
    );
  };

  const view = (s: NodeState): NatsClusterNode => ({
    name: s.name,
    tags: s.tags,
    port: s.port,
    clusterPort: s.clusterPort,
    httpPort: s.httpPort,
    url: s.url,
    storeDir: s.storeDir,
    logFile: s.logFile,
    get running() {
      return s.proc !== undefined;
    },
  });
  const cluster: NatsCluster = {
    name: clusterName,
    nodes: states.map(view),
    url: states.map((s) => s.url).join(','),
    servers: states.map((s) => s.url),
    node: (name) => view(byName(name)),
    kill: (name) => kill(byName(name)),
    async start(name) {
      const s = byName(name);
      if (s.proc) return;
      spawnNode(s);
      await waitHealthy(s);
    },
    async ready() {
      await Promise.all(states.filter((s) => s.proc).map(waitHealthy));
    },
    async nodesStoring(bytes) {
      const needle = Buffer.from(bytes);
      const hits = await Promise.all(states.map((s) => dirContains(s.storeDir, needle)));
      return states.filter((_, i) => hits[i]).map((s) => s.name);
    },
    async streamState(name, stream) {
      const { body } = await monitor<Jsz>(byName(name).httpPort, '/jsz?accounts=true&streams=true');
      return body.account_details
        ?.flatMap((a) => a.stream_detail ?? [])
        .find((d) => d.name === stream)?.state;
    },
    async metaLeader() {
      for (const s of states.filter((x) => x.proc)) {
        const leader = (await monitor<Jsz>(s.httpPort, '/jsz').catch(() => undefined))?.body
          .meta_cluster?.leader;
        if (leader) return leader;
      }
      throw new Error(`no running node of cluster ${clusterName} knows a meta leader`);
    },
    async destroy() {
      await Promise.all(states.map(kill));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    for (const s of states) spawnNode(s);
    await cluster.ready();
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
  return cluster;
}
