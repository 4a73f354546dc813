import type { Logger } from '@sluice/observability';

/** Something `runUntilSignal` stops in order on shutdown. */
export interface Stoppable {
  name: string;
  stop(): Promise<void>;
}

export interface RunOptions {
  logger: Logger;
  /** Stopped in array order on SIGTERM/SIGINT (e.g. servers, then actors, then connections). */
  stoppables: Stoppable[];
  /** Resolves or rejects when a component fails by itself; a rejection shuts down with exit 1. */
  failure?: Promise<unknown>;
  /** Hard limit for the whole shutdown. Default 30 s. */
  shutdownDeadlineMs?: number;
  /** Injected for tests. Default `process.exit`. */
  exit?: (code: number) => void;
}

/** Installs signal handlers and stops everything in order once; exits 0 on a clean stop. */
export function runUntilSignal(opts: RunOptions): {
  shutdown: (reason: string, code?: number) => Promise<void>;
} {
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  let shuttingDown: Promise<void> | undefined;
  const shutdown = (reason: string, code = 0): Promise<void> => {
    shuttingDown ??= (async () => {
      opts.logger.info({ reason }, 'shutting down');
      const hard = setTimeout(() => {
        opts.logger.error('shutdown deadline passed; exiting');
        exit(code || 1);
      }, opts.shutdownDeadlineMs ?? 30_000);
      hard.unref();
      let exitCode = code;
      for (const s of opts.stoppables) {
        try {
          await s.stop();
        } catch (err) {
          exitCode = exitCode || 1;
          opts.logger.error({ err, component: s.name }, 'stop failed');
        }
      }
      clearTimeout(hard);
      opts.logger.info({ code: exitCode }, 'stopped');
      opts.logger.flush?.();
      exit(exitCode);
    })();
    return shuttingDown;
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  opts.failure?.then(
    () => undefined,
    (err) => {
      opts.logger.fatal({ err }, 'component failed');
      void shutdown('failure', 1);
    },
  );
  return { shutdown };
}
