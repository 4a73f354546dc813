import { writeSync } from 'node:fs';
import type { CrashPoint } from './config';

/**
 * FAULT INJECTION FOR TESTS ONLY (DEDUPE_CRASH_AT, refused in production). The first time the
 * handler reaches the configured point the process SIGKILLs itself: no drain, no ack, no cleanup,
 * exactly like a power cut there. The crash tests restart the service without the variable and
 * check that every event still reaches the clean stream exactly once.
 */
export function crashPoints(at: CrashPoint | undefined): (point: CrashPoint) => void {
  let fired = false;
  return (point) => {
    if (at !== point || fired) return;
    fired = true;
    // Synchronous so the line is out before the process dies.
    writeSync(2, `dedupe fault injection: SIGKILL at ${point}\n`);
    process.kill(process.pid, 'SIGKILL');
  };
}
