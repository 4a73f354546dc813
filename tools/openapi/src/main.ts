// `npm run clients [-- --check | --out <dir>]`: regenerates the typed API clients' generated files
// (libs/clients/<name>/openapi.json and src/gen/schema.ts) from the services' route definitions.
//   --out <dir>  writes the same tree under <dir> instead of the repository
//   --check      regenerates into a temporary folder and exits 1 naming every file that differs
//                from the committed one (CI runs this, as it does for the protobuf code)
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from './documents';
import { generateAll, type GeneratedFile } from './generate';

function write(base: string, files: readonly GeneratedFile[]): void {
  for (const f of files) {
    const target = join(base, f.path);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, f.text);
  }
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { check: { type: 'boolean', default: false }, out: { type: 'string' } },
    strict: true,
  });
  const files = await generateAll();
  if (values.check) {
    const tmp = mkdtempSync(join(tmpdir(), 'sluice-clients-'));
    try {
      write(tmp, files);
      const stale = files.filter((f) => read(join(ROOT, f.path)) !== read(join(tmp, f.path)));
      if (stale.length > 0) {
        for (const f of stale)
          console.error(
            `${f.path} differs from what 'npm run clients' generates (fresh copy: ${join(tmp, f.path)})`,
          );
        console.error("run 'npm run clients' and commit the result");
        return 1;
      }
      console.log(`generated clients match the APIs (${files.map((f) => f.path).join(', ')})`);
      rmSync(tmp, { recursive: true, force: true });
      return 0;
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      throw err;
    }
  }
  const base = values.out ?? ROOT;
  write(base, files);
  for (const f of files) console.log(`wrote ${join(base, f.path)}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
