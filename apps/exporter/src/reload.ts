// Reloading the destinations file at run time: on SIGHUP and when a bounded poll sees the file change.
// One reload at a time; requests while one runs are folded into one more run after it. A file that does
// not parse is refused (logged, counted); the running destinations stay as they are.
import { stat } from 'node:fs/promises';
import type { Logger } from '@sluice/observability';
import type { DestinationsFile } from './config';
import { DestinationsConfigError } from './errors';
import type { ApplyResult } from './exporter';
import type { ExporterMetrics, ReloadResult } from './metrics';

export interface ReloaderOptions {
  file: string;
  /** Interval of the change check; 0: no watch (SIGHUP only). */
  pollMs: number;
  load(): Promise<DestinationsFile>;
  apply(file: DestinationsFile): Promise<ApplyResult>;
  /** sha256 of the file in force. */
  currentHash(): string;
  log: Logger;
  metrics: ExporterMetrics;
  /** Listen for SIGHUP. Default true. */
  signal?: boolean;
}

export interface ReloadOutcome {
  result: ReloadResult;
  applied?: ApplyResult;
  error?: Error;
}

/** What the poll compares: a change of any of these reloads (the content hash decides if it changed). */
async function fingerprint(file: string): Promise<string> {
  try {
    const s = await stat(file);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch (err) {
    return `error:${(err as NodeJS.ErrnoException).code ?? 'unknown'}`;
  }
}

export class Reloader {
  private timer: NodeJS.Timeout | undefined;
  private seen: string | undefined;
  private running: Promise<ReloadOutcome> | undefined;
  private queued: Promise<ReloadOutcome> | undefined;
  private stopped = false;
  private polling = false;
  private started = false;
  /** A SIGHUP before start(): the process must not die of it (the default action), and it is honoured at start. */
  private hupBeforeStart = false;
  private readonly onHup = () => {
    if (this.started) void this.reload('SIGHUP');
    else this.hupBeforeStart = true;
  };

  /** Listens for SIGHUP from construction on, so one sent while the service starts is not fatal. */
  constructor(private readonly opts: ReloaderOptions) {
    if (opts.signal !== false) process.on('SIGHUP', this.onHup);
  }

  async start(): Promise<void> {
    this.stopped = false;
    this.seen = await fingerprint(this.opts.file);
    this.started = true;
    if (this.hupBeforeStart) {
      this.hupBeforeStart = false;
      void this.reload('SIGHUP');
    }
    if (this.opts.pollMs > 0) {
      this.timer = setInterval(() => void this.poll(), this.opts.pollMs);
      this.timer.unref();
    }
  }

  /** No reload starts after this; resolves once the one running (if any) is done. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    process.off('SIGHUP', this.onHup);
    await this.queued?.catch(() => undefined);
    await this.running?.catch(() => undefined);
  }

  private async poll(): Promise<void> {
    if (this.polling || this.stopped) return;
    this.polling = true;
    try {
      const now = await fingerprint(this.opts.file);
      if (now === this.seen) return;
      this.seen = now;
      await this.reload('file changed');
    } finally {
      this.polling = false;
    }
  }

  /**
   * Loads the file and applies it. While a reload runs, further calls share one reload queued after
   * it (which reads the file as it is then): at most one runs and one waits.
   */
  reload(reason: string): Promise<ReloadOutcome> {
    if (this.stopped) return Promise.resolve({ result: 'unchanged' });
    if (!this.running) {
      this.running = this.run(reason).finally(() => (this.running = undefined));
      return this.running;
    }
    this.queued ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.queued = undefined;
        return this.reload(reason);
      });
    return this.queued;
  }

  private async run(reason: string): Promise<ReloadOutcome> {
    const { log, metrics } = this.opts;
    let file: DestinationsFile;
    try {
      file = await this.opts.load();
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      metrics.reloads.inc({ result: 'refused' });
      metrics.lastReloadSuccessful.set(0);
      log.error(
        {
          err: e,
          reason,
          issues: e instanceof DestinationsConfigError ? e.fileIssues : undefined,
        },
        'destinations file refused; the running destinations stay as they are',
      );
      return { result: 'refused', error: e };
    }
    if (file.hash === this.opts.currentHash()) {
      metrics.reloads.inc({ result: 'unchanged' });
      metrics.lastReloadSuccessful.set(1);
      log.info({ reason }, 'destinations file unchanged');
      return { result: 'unchanged' };
    }
    const applied = await this.opts.apply(file);
    const result: ReloadResult = applied.failed.length > 0 ? 'partial' : 'applied';
    metrics.reloads.inc({ result });
    metrics.lastReloadSuccessful.set(1);
    metrics.lastReloadTime.set(Date.now() / 1000);
    log[result === 'applied' ? 'info' : 'warn'](
      { reason, ...applied },
      result === 'applied'
        ? 'destinations file reloaded'
        : 'destinations file reloaded; some destinations did not start',
    );
    return { result, applied };
  }
}
