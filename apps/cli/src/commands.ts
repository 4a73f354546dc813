import type { CliContext } from './context';

/** One top-level command: `sluice <name> ...`. */
export interface Command {
  readonly name: string;
  /** One line for `sluice --help`. */
  readonly summary: string;
  /** Runs with the arguments after the command name; resolves to the exit code. */
  run(args: string[], ctx: CliContext): Promise<number>;
}

/** Loaded on demand so `sluice dlq` does not load the archive reader and the other way round. */
export const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  replay: {
    summary: 'Re-publish archived events to a consumer (rebuild MongoDB, re-export, rebuild roll-ups)',
    load: async () => (await import('./replay/command')).replayCommand,
  },
  dlq: {
    summary: 'Dead letters of every service: ls, show, redrive, purge',
    load: async () => (await import('./dlq/command')).dlqCommand,
  },
};

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  return [
    'usage: sluice <command> [options]   (sluice <command> --help for its options)',
    '',
    'commands:',
    ...Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(width)}  ${c.summary}`),
    '',
    'environment: NATS_URL, NATS_CREDS, SLUICE_NAMESPACE (as the services); see docs/CONFIG.md',
  ].join('\n');
}
