// Build one project with esbuild: an application's src/main.ts into dist/<root>/main.js (each
// src/cli/<name>.ts into <name>.js), a library's
// src/index.ts into dist/<root>/index.js. npm packages stay external (node_modules); @sluice/* libraries
// are compiled in, since workspaces consume each other as source. Types are the typecheck target's job.
import { build } from 'esbuild';
import { cpSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = process.argv[2];
if (!root) throw new Error('usage: node tools/build/build.mjs <projectRoot> [outdir]');
const project = JSON.parse(readFileSync(join(root, 'project.json'), 'utf8'));
// Default dist/<root>; another folder inside the repository (tests) still resolves node_modules.
const outdir = process.argv[3] ?? join('dist', root);

const app = project.projectType === 'application';
const entry = join(root, 'src', app ? 'main.ts' : 'index.ts');
if (!existsSync(entry)) throw new Error(`${entry} is missing`);
const options = {
  bundle: true,
  platform: 'node',
  target: 'node24',
  format: 'cjs',
  sourcemap: true,
  // Also what lets the instrumentation preload patch pg, ioredis, mongodb and grpc-js: it hooks
  // `require`, which a package inlined into the bundle never goes through.
  packages: 'external',
  tsconfig: 'tsconfig.base.json',
  logLevel: 'warning',
};
const main = await build({
  ...options,
  entryPoints: [entry],
  outfile: join(outdir, app ? 'main.js' : 'index.js'),
  metafile: true,
});
// Every application ships the OpenTelemetry instrumentation preload beside its main.js:
// `node --require dist/apps/<app>/preload.js dist/apps/<app>/main.js`.
if (app) {
  const preload = join('libs', 'observability', 'src', 'preload.ts');
  await build({ ...options, entryPoints: [preload], outfile: join(outdir, 'preload.js') });
}
// An application's commands besides the service, `src/cli/<name>.ts`, become `<name>.js` beside
// main.js (e.g. `node dist/apps/aggregator/migrate.js`, the migrate Job).
const cli = join(root, 'src', 'cli');
if (app && existsSync(cli)) {
  for (const f of readdirSync(cli).filter((f) => f.endsWith('.ts') && !f.endsWith('.spec.ts')))
    await build({
      ...options,
      entryPoints: [join(cli, f)],
      outfile: join(outdir, f.replace(/\.ts$/, '.js')),
    });
}
// Versioned SQL and other run-time assets travel with the bundle.
const migrations = join(root, 'migrations');
if (app && existsSync(migrations))
  cpSync(migrations, join(outdir, 'migrations'), { recursive: true });
// So do the migrations of the sink libraries compiled into it: libs/sinks/<name>/migrations becomes
// migrations/sinks-<name> (where such a lib looks beside the bundle).
if (app) {
  const sinks = new Set(
    Object.keys(main.metafile.inputs)
      .map((f) => /^libs\/sinks\/([^/]+)\/src\//.exec(f.replace(/\\/g, '/'))?.[1])
      .filter((n) => n !== undefined),
  );
  for (const name of sinks) {
    const dir = join('libs', 'sinks', name, 'migrations');
    if (existsSync(dir))
      cpSync(dir, join(outdir, 'migrations', `sinks-${name}`), { recursive: true });
  }
}
