import { type ChildProcess } from 'node:child_process';
/** A real child process running a TypeScript entry point with tsx, for crash and restart tests. */
export interface ChildService {
    proc: ChildProcess;
    /** Every stdout/stderr line so far. */
    lines: string[];
    /** Resolves with the first line (past or future) matching `re`; rejects after `timeoutMs`. */
    waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
    /** Resolves with the exit code (or signal name). */
    exited: Promise<number | string>;
    kill(signal?: NodeJS.Signals): void;
}
/** Spawns `tsx <entry>` from the repository root with `env` added to the environment. */
export declare function spawnService(entry: string, env: Record<string, string>): ChildService;
