import type { NatsConnection } from '@nats-io/nats-core';
import { topology, type Topology } from '@sluice/contracts';
import { regionalDeploymentOf } from '@sluice/config';
import { connectNats, natsOptionsOf } from '@sluice/jetstream';
import type { Config } from './config';

/** What every command gets: settings, the installation's topology, output streams and NATS on demand. */
export interface CliContext {
  readonly config: Config;
  readonly topology: Topology;
  /** Results (tables, JSON): stdout. */
  readonly out: NodeJS.WritableStream;
  /** Progress and diagnostics: stderr. */
  readonly err: NodeJS.WritableStream;
  /** Connects once, on first use; closed when the command ends. */
  nats(): Promise<NatsConnection>;
  /** Aborted on SIGINT/SIGTERM: a command stops at its next safe point (checkpoint written). */
  readonly signal: AbortSignal;
}

export function createContext(
  config: Config,
  signal: AbortSignal,
  io: { out: NodeJS.WritableStream; err: NodeJS.WritableStream } = {
    out: process.stdout,
    err: process.stderr,
  },
): CliContext & { close(): Promise<void> } {
  let nc: Promise<NatsConnection> | undefined;
  return {
    config,
    topology: topology(config.SLUICE_NAMESPACE ?? '', regionalDeploymentOf(config)),
    ...io,
    signal,
    nats() {
      nc ??= connectNats({
        ...natsOptionsOf(config),
        name: 'sluice-cli',
        waitOnFirstConnect: false,
      });
      return nc;
    },
    async close() {
      if (!nc) return;
      const c = await nc.catch(() => undefined);
      await c?.drain().catch(() => undefined);
    },
  };
}
