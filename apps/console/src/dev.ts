// What `npm start` (tools/dev/up.ts) needs to run the console: its pages built (once, and again
// when a source under apps/console/web changed) and the address to print.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** The console's port when CONSOLE_PORT is unset (config.ts's default). */
export const CONSOLE_DEFAULT_PORT = 9490;

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/**
 * Builds the pages into `dist/apps/console/public` with Vite unless they are newer than every source
 * under `apps/console/web`; resolves with the folder (the service finds it there by default).
 * @param root the repository root
 */
export async function ensureConsolePages(root: string): Promise<string> {
  const out = join(root, 'dist', 'apps', 'console', 'public');
  const index = join(out, 'index.html');
  const web = join(root, 'apps', 'console', 'web');
  if (existsSync(index) && statSync(index).mtimeMs >= newest(web)) return out;
  await promisify(execFile)(
    process.execPath,
    [
      join(root, 'node_modules', 'vite', 'bin', 'vite.js'),
      'build',
      '--config',
      join(root, 'apps', 'console', 'vite.config.mts'),
    ],
    { cwd: root },
  );
  return out;
}

/** The console's address from the environment `npm start` gives it (its own, usually). */
export function consoleUrl(env: Record<string, string | undefined>): string {
  const host = env['CONSOLE_HOST'] || '127.0.0.1';
  return `http://${host}:${env['CONSOLE_PORT'] || CONSOLE_DEFAULT_PORT}/`;
}
