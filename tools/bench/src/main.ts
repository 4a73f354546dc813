// `npm run bench -- <name> [--seconds N] [--rate N] [--key value ...]`: runs tools/bench/src/benches/<name>.ts
// and prints its result as one JSON object on the last line of stdout.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Bench, BenchOptions } from './result';

function parseArgs(argv: string[]): { name: string | undefined; opts: BenchOptions } {
  const [name, ...rest] = argv;
  const flags: Record<string, string> = {};
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument "${a}"`);
    const [k, inline] = a.slice(2).split('=', 2);
    flags[k!] = inline ?? (rest[i + 1] && !rest[i + 1]!.startsWith('--') ? rest[++i]! : 'true');
  }
  const seconds = Number(flags['seconds'] ?? 10);
  const rate = flags['rate'] !== undefined ? Number(flags['rate']) : undefined;
  if (!(seconds > 0)) throw new Error('--seconds must be a positive number');
  if (rate !== undefined && !(rate > 0)) throw new Error('--rate must be a positive number');
  return { name, opts: { seconds, rate, flags } };
}

async function main() {
  const dir = join(__dirname, 'benches');
  const available = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3)) : [];
  const { name, opts } = parseArgs(process.argv.slice(2));
  if (!name || !available.includes(name)) {
    console.error(`usage: npm run bench -- <${available.join('|')}> [--seconds N] [--rate N]`);
    process.exit(2);
  }
  const mod = (await import(join(dir, `${name}.ts`))) as { default: Bench };
  const result = await mod.default(opts);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
