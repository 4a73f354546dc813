/** Polls `check` until it returns a truthy value or `timeoutMs` passes (then throws with `what`). */
export declare function waitFor<T>(what: string, check: () => T | undefined | null | false | Promise<T | undefined | null | false>, { timeoutMs, intervalMs }?: {
    timeoutMs?: number;
    intervalMs?: number;
}): Promise<T>;
export declare const sleep: (ms: number) => Promise<void>;
