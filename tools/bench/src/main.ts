// `npm run bench -- <name> [--seconds N] [--rate N] [--<flag> value ...]`: runs tools/bench/src/benches/<name>.ts
// and prints its result as one JSON object on the last line of stdout. Each bench declares its extra
// flags (its `flags` export); any other flag is an error (util.parseArgs, strict). With `--record`, the
// unit costs the bench measures (its `unitCosts` export) are written to tools/bench/data/unit-costs.json.
import { join } from 'node:path';
import { parseArgs as parseCli, type ParseArgsOptionsConfig } from 'node:util';
import type { BenchModule, BenchOptions } from './result';
import { recordUnitCosts } from './unit-costs';

/** The benches: each is benches/<name>.ts, loaded only when it runs. */
const BENCHES: readonly string[] = [
  'aggregate',
  'alerts',
  'archive',
  'console',
  'dedupe',
  'export',
  'http',
  'ingest',
  'mongo',
  'pipeline',
  'sampling',
  'sse',
  'webhook',
];

/** A bad command line; `help` is true for --help (exit 0, not 2). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(
    message: string,
    readonly help = false,
  ) {
    super(message);
  }
}

const usage = (extra = '') =>
  `usage: npm run bench -- <${BENCHES.join('|')}> [--seconds N] [--rate N] [--record]${extra}\n` +
  `  npm run bench -- <name> --help lists the bench's own flags`;

/** Parses the arguments after the bench's name, with the flags that bench declares. */
export function parseBenchArgs(name: string, mod: BenchModule, argv: string[]): BenchOptions {
  const own = mod.flags ?? {};
  const options: ParseArgsOptionsConfig = {
    seconds: { type: 'string' },
    rate: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
    record: { type: 'boolean' },
  };
  for (const flag of Object.keys(own)) options[flag] = { type: 'string' };
  const ownUsage = Object.entries(own)
    .map(([flag, help]) => `\n  --${flag.padEnd(22)} ${help}`)
    .join('');
  const benchUsage = `usage: npm run bench -- ${name} [--seconds N] [--rate N] [--record]${ownUsage}`;
  let values: Record<string, string | boolean | Array<string | boolean> | undefined>;
  try {
    ({ values } = parseCli({ args: argv, options, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${benchUsage}`);
  }
  if (values['help']) throw new UsageError(benchUsage, true);
  const seconds = Number(values['seconds'] ?? mod.defaultSeconds ?? 10);
  const rate = values['rate'] !== undefined ? Number(values['rate']) : undefined;
  if (!(seconds > 0))
    throw new UsageError(`--seconds must be a positive number, got "${String(values['seconds'])}"`);
  if (rate !== undefined && !(rate > 0))
    throw new UsageError(`--rate must be a positive number, got "${String(values['rate'])}"`);
  const flags: Record<string, string> = {};
  for (const flag of Object.keys(own))
    if (typeof values[flag] === 'string') flags[flag] = values[flag];
  return { seconds, rate, flags, ...(values['record'] === true ? { record: true } : {}) };
}

async function main() {
  const [name, ...rest] = process.argv.slice(2);
  if (name === '--help' || name === '-h') {
    console.log(usage());
    process.exit(0);
  }
  if (!name || !BENCHES.includes(name)) {
    console.error(name ? `unknown bench "${name}"\n${usage()}` : usage());
    process.exit(2);
  }
  const mod = (await import(join(__dirname, 'benches', `${name}.ts`))) as BenchModule;
  let opts: BenchOptions;
  try {
    opts = parseBenchArgs(name, mod, rest);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    (err.help ? console.log : console.error)(err.message);
    process.exit(err.help ? 0 : 2);
  }
  const result = await mod.default(opts);
  if (opts.record) {
    if (!mod.unitCosts) console.error(`bench ${name} measures no unit costs: nothing recorded`);
    else {
      const written = recordUnitCosts(
        name,
        `npm run bench -- ${name} ${rest.join(' ')}`.trim(),
        mod.unitCosts(result),
      );
      console.error(`recorded unit costs: ${written.join(', ') || '(none measured in this run)'}`);
    }
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
