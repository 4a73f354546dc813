import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

/** A real child process running a TypeScript entry point with tsx, for crash and restart tests. */
export interface ChildService {
  proc: ChildProcess;
  /** Every stdout/stderr line so far. */
  lines: string[];
  /** Resolves with the first line (past or future) matching `re`; rejects after `timeoutMs`. */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves with the exit code, or the signal name (e.g. `SIGKILL`) when a signal ended it. */
  exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
}

const ROOT = join(__dirname, '..', '..', '..');

/**
 * Runs `node --import tsx <entry>` from the repository root with `env` added to the environment. One
 * process, not the `tsx` CLI: that one runs the program in a child and cannot forward SIGKILL, so a
 * "killed" service would live on as an orphan.
 */
export function spawnService(entry: string, env: Record<string, string>): ChildService {
  const proc = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters: Array<{ re: RegExp; resolve: (l: string) => void }> = [];
  const onData = (buf: Buffer) => {
    for (const line of buf.toString('utf8').split('\n')) {
      if (!line) continue;
      if (lines.length < 50_000) lines.push(line);
      for (const w of [...waiters]) {
        if (w.re.test(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<number | string>((resolve) =>
    proc.on('exit', (code, sig) => resolve(code ?? sig ?? -1)),
  );
  return {
    proc,
    lines,
    exited,
    kill: (signal = 'SIGKILL') => void proc.kill(signal),
    waitForLine(re, timeoutMs = 30_000) {
      const seen = lines.find((l) => re.test(l));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const t = setTimeout(
          () =>
            reject(
              new Error(
                `no line matching ${re} within ${timeoutMs} ms; last lines:\n${lines.slice(-20).join('\n')}`,
              ),
            ),
          timeoutMs,
        );
        waiters.push({ re, resolve: (l) => (clearTimeout(t), resolve(l)) });
      });
    },
  };
}
