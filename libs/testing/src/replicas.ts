import { spawnService, type ChildService } from './process';

/** One replica of a service: its process and what its `<service> running` log line said. */
export interface Replica {
  proc: ChildService;
  /** Fields of the `<service> running` line (`opsPort`, and the service's other ports). */
  running: Record<string, unknown>;
  opsPort: number;
  /** The process has not exited. */
  alive(): boolean;
  /** Sum of the samples of `name` on its `/metrics` whose labels include `labels`. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

export interface ReplicaSetOptions {
  /** Entry point from the repository root, e.g. `apps/aggregator/src/main.ts`. */
  entry: string;
  /** The service name in its `<service> running` line. */
  service: string;
  /**
   * Environment of every replica. `OPS_PORT=0`, `OPS_HOST=127.0.0.1`, `OTEL_SDK_DISABLED=true` and
   * `LOG_LEVEL=info` unless given.
   */
  env: Record<string, string>;
  /** How long a replica may take to log its running line. Default 90 s. */
  startTimeoutMs?: number;
}

/**
 * Sum of the samples of metric `name` in a Prometheus text exposition whose labels include `labels`
 * (exact label values); 0 when there is none.
 */
export function sumSamples(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const found = Object.fromEntries(
      [...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]),
    );
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

/**
 * Replicas of one service as real processes (`spawnService`) sharing one environment, hence one
 * namespace and one set of durable consumers. `stop()` ends those still running (SIGTERM, then
 * SIGKILL after 10 s).
 */
export class ReplicaSet {
  readonly replicas: Replica[] = [];

  constructor(private readonly opts: ReplicaSetOptions) {}

  /** Starts `n` replicas at once; resolves when each has logged its running line. */
  async start(n = 1): Promise<Replica[]> {
    return Promise.all(Array.from({ length: n }, () => this.startOne()));
  }

  /** Replicas whose process has not exited. */
  live(): Replica[] {
    return this.replicas.filter((r) => r.alive());
  }

  /** SIGKILLs `r`; resolves once it is gone. */
  async kill(r: Replica): Promise<void> {
    r.proc.kill('SIGKILL');
    await r.proc.exited;
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.replicas.map(async (r) => {
        if (!r.alive()) return;
        r.proc.kill('SIGTERM');
        const timer = setTimeout(() => r.proc.kill('SIGKILL'), 10_000);
        await r.proc.exited;
        clearTimeout(timer);
      }),
    );
  }

  private async startOne(): Promise<Replica> {
    const proc = spawnService(this.opts.entry, {
      OPS_PORT: '0',
      OPS_HOST: '127.0.0.1',
      OTEL_SDK_DISABLED: 'true',
      LOG_LEVEL: 'info',
      ...this.opts.env,
    });
    const alive = () => proc.proc.exitCode === null && proc.proc.signalCode === null;
    // Pushed before it is up, so stop() ends one that never gets there too.
    const r: Replica = {
      proc,
      running: {},
      opsPort: 0,
      alive,
      async metric(name, labels = {}) {
        const res = await fetch(`http://127.0.0.1:${r.opsPort}/metrics`);
        return sumSamples(await res.text(), name, labels);
      },
    };
    this.replicas.push(r);
    const line = await proc.waitForLine(
      new RegExp(`${this.opts.service} running`),
      this.opts.startTimeoutMs ?? 90_000,
    );
    r.running = JSON.parse(line) as Record<string, unknown>;
    r.opsPort = Number(r.running['opsPort']);
    return r;
  }
}
