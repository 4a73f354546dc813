import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

/** The repository root. */
export const ROOT = join(__dirname, '..', '..', '..');

/**
 * Builds `apps/<app>` as production does (tools/build/build.mjs: one esbuild bundle) and runs it on
 * plain node: tsx's source-map hooks make every Error (nats.js creates one per request) several times
 * dearer, which would be measured instead of the service.
 */
export function startBuiltApp(
  app: string,
  env: Record<string, string>,
  stdio: 'pipe' | 'inherit-stderr' = 'pipe',
): ChildProcess {
  execFileSync(process.execPath, [join(ROOT, 'tools/build/build.mjs'), `apps/${app}`], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  return spawn(process.execPath, [join(ROOT, 'dist', 'apps', app, 'main.js')], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: stdio === 'pipe' ? ['ignore', 'pipe', 'pipe'] : ['ignore', 'ignore', 'inherit'],
  });
}
