// `sluice nats-auth <generate|provision>`: one NATS user per service, allowed only the subjects and
// consumers that service uses, and the streams and consumers an admin provisions for them.
import type { Command } from '../commands';
import type { CliContext } from '../context';
import { UsageError } from '../errors';
import { runGenerate } from './generate';
import { NATS_AUTH_USAGE } from './options';
import { runProvision } from './provision';

const SUBCOMMANDS: Record<string, (args: string[], ctx: CliContext) => Promise<number>> = {
  generate: runGenerate,
  provision: runProvision,
};

export const natsAuthCommand: Command = {
  name: 'nats-auth',
  summary: 'Per-service NATS users and permissions: generate, provision',
  async run(args, ctx) {
    const [sub, ...rest] = args;
    if (sub === '--help' || sub === '-h' || sub === 'help') {
      ctx.out.write(`${NATS_AUTH_USAGE}\n`);
      return 0;
    }
    if (sub === undefined) throw new UsageError('name a nats-auth subcommand', NATS_AUTH_USAGE);
    const run = Object.hasOwn(SUBCOMMANDS, sub) ? SUBCOMMANDS[sub] : undefined;
    if (!run) throw new UsageError(`unknown nats-auth subcommand "${sub}"`, NATS_AUTH_USAGE);
    return run(rest, ctx);
  },
};
