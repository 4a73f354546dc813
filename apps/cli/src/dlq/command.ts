// `sluice dlq <ls|show|redrive|purge>`: the dead letters of every service, on the DLQ stream.
import type { Command } from '../commands';
import type { CliContext } from '../context';
import { UsageError } from '../errors';
import { runLs } from './ls';
import { DLQ_USAGE } from './options';
import { runPurge } from './purge';
import { runRedrive } from './redrive';
import { runShow } from './show';

const SUBCOMMANDS: Record<string, (args: string[], ctx: CliContext) => Promise<number>> = {
  ls: runLs,
  show: runShow,
  redrive: runRedrive,
  purge: runPurge,
};

export const dlqCommand: Command = {
  name: 'dlq',
  summary: 'Dead letters of every service: ls, show, redrive, purge',
  async run(args, ctx) {
    const [sub, ...rest] = args;
    if (sub === '--help' || sub === '-h' || sub === 'help') {
      ctx.out.write(`${DLQ_USAGE}\n`);
      return 0;
    }
    if (sub === undefined) throw new UsageError('name a dlq subcommand', DLQ_USAGE);
    const run = Object.hasOwn(SUBCOMMANDS, sub) ? SUBCOMMANDS[sub] : undefined;
    if (!run) throw new UsageError(`unknown dlq subcommand "${sub}"`, DLQ_USAGE);
    return run(rest, ctx);
  },
};
