import type { CliContext } from './context';
import { costCommand } from './cost/command';
import { dlqCommand } from './dlq/command';
import { natsAuthCommand } from './nats-auth/command';
import { replayCommand } from './replay/command';

/** One top-level command: `sluice <name> ...`. */
export interface Command {
  readonly name: string;
  /** One line for `sluice --help`. */
  readonly summary: string;
  /** Runs with the arguments after the command name; resolves to the exit code. */
  run(args: string[], ctx: CliContext): Promise<number>;
}

/** Every command, by name. */
export const COMMANDS: Record<string, Command> = {
  replay: replayCommand,
  dlq: dlqCommand,
  'nats-auth': natsAuthCommand,
  cost: costCommand,
};

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  return [
    'usage: sluice <command> [options]   (sluice <command> --help for its options)',
    '',
    'commands:',
    ...Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(width)}  ${c.summary}`),
    '',
    'environment: NATS_URL, NATS_CREDS or NATS_NKEY_SEED_FILE, SLUICE_NAMESPACE (as the services); see docs/CONFIG.md',
  ].join('\n');
}
