// The set of running destinations, served to the runtime as one actor: started with the first
// destinations file, changed by `apply()` on every reload, drained together at shutdown.
import { Lifecycle, type LifecycleState, type ServedActor } from '@sluice/runtime';
import type { DestinationsFile, DestinationSpec } from './config';
import { Destination, type DestinationDeps } from './destination';

/** What one `apply()` changed, by destination name. */
export interface ApplyResult {
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
  /** Added or changed destinations that did not start (they are restarted with back-off). */
  failed: Array<{ name: string; error: string }>;
}

export interface DestinationStatus {
  name: string;
  type: string;
  state: string;
  healthy: boolean;
  error?: string;
}

/**
 * Every enabled destination of the destinations file, each on its own durable consumer. Readiness:
 * every enabled destination runs (its consumers pull), healthy or degraded; a destination that is down
 * is held by its own runner and does not make the exporter unready, one that failed to run does.
 */
export class Exporter implements ServedActor {
  readonly lifecycle = new Lifecycle();
  private readonly destinations = new Map<string, Destination>();
  private file: DestinationsFile;
  /** apply() runs one at a time. */
  private op: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly deps: DestinationDeps,
    initial: DestinationsFile,
  ) {
    this.file = initial;
  }

  get state(): LifecycleState {
    return this.lifecycle.state;
  }

  /** The destinations file in force (the last one applied). */
  get current(): DestinationsFile {
    return this.file;
  }

  async start(): Promise<void> {
    const result = await this.apply(this.file);
    this.deps.log.info(
      {
        file: this.file.file,
        destinations: this.status().map((d) => `${d.name} (${d.type}): ${d.state}`),
        failed: result.failed.length > 0 ? result.failed : undefined,
      },
      'destinations started',
    );
    if (!this.lifecycle.terminal && this.lifecycle.state === 'starting')
      this.lifecycle.transition('running');
  }

  /** Drains every destination at once (each bounded by the drain timeout). */
  async stop(): Promise<void> {
    if (this.lifecycle.terminal) return;
    if (this.lifecycle.state !== 'draining') this.lifecycle.transition('draining');
    await this.serial(async () => {
      await Promise.all([...this.destinations.values()].map((d) => d.stop()));
      this.destinations.clear();
    });
    this.lifecycle.transition('stopped');
  }

  isReady(): boolean {
    return (
      this.lifecycle.state === 'running' &&
      [...this.destinations.values()].every((d) => d.isRunning())
    );
  }

  status(): DestinationStatus[] {
    return [...this.destinations.values()].map((d) => ({
      name: d.name,
      type: d.spec.type,
      state: d.state,
      healthy: d.isHealthy(),
      ...(d.lastError ? { error: d.lastError.message } : {}),
    }));
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.op.then(fn, fn);
    this.op = run.catch(() => undefined);
    return run;
  }

  /**
   * Makes the running set match `file`, by destination name: a destination no longer listed (or now
   * disabled) is drained and stopped; a changed one is drained, then started again with its new
   * settings on the same durable consumer (nothing lost, nothing skipped); a new one is started. The
   * others are not touched. Serialised with other calls; bounded by the drain and start timeouts.
   */
  apply(file: DestinationsFile): Promise<ApplyResult> {
    return this.serial(async () => {
      if (this.lifecycle.state === 'draining' || this.lifecycle.terminal)
        return { added: [], removed: [], changed: [], unchanged: [], failed: [] };
      const desired = new Map<string, DestinationSpec>(
        file.destinations.filter((d) => d.enabled).map((d) => [d.name, d]),
      );
      const result: ApplyResult = {
        added: [],
        removed: [],
        changed: [],
        unchanged: [],
        failed: [],
      };
      for (const name of this.destinations.keys())
        if (!desired.has(name)) result.removed.push(name);
      const starts: DestinationSpec[] = [];
      for (const [name, spec] of desired) {
        const running = this.destinations.get(name);
        if (!running) {
          result.added.push(name);
          starts.push(spec);
        } else if (running.spec.fingerprint !== spec.fingerprint) {
          result.changed.push(name);
          starts.push(spec);
        } else result.unchanged.push(name);
      }
      await Promise.all(
        [...result.removed, ...result.changed].map((n) => this.destinations.get(n)!.stop()),
      );
      for (const n of result.removed) this.destinations.delete(n);
      await Promise.all(
        starts.map(async (spec) => {
          const d = new Destination(spec, this.deps);
          this.destinations.set(spec.name, d);
          const err = await d.start();
          if (err) result.failed.push({ name: spec.name, error: err.message });
        }),
      );
      this.file = file;
      return result;
    });
  }
}
