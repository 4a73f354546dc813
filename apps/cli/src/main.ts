// `sluice`, the operator CLI: parses the environment once, dispatches to one command and maps its
// typed errors to exit codes (1 failure, 2 usage, 3 nothing selected, 130 interrupted).
import { loadConfig } from '@sluice/config';
import { COMMANDS, usage } from './commands';
import { config } from './config';
import { createContext } from './context';
import { exitCodeOf, UsageError } from './errors';

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name === undefined ? 2 : 0;
  }
  const entry = COMMANDS[name];
  if (!entry) throw new UsageError(`unknown command "${name}"`, usage());
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const ctx = createContext(loadConfig(config), abort.signal);
  try {
    const code = await entry.run(args, ctx);
    return abort.signal.aborted && code === 0 ? 130 : code;
  } finally {
    await ctx.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const e = err instanceof Error ? err : new Error(String(err));
    process.stderr.write(`sluice: ${e.message}\n`);
    if (err instanceof UsageError && err.usage) process.stderr.write(`\n${err.usage}\n`);
    process.exitCode = exitCodeOf(err);
  },
);
