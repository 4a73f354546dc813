// Small output helpers of the dlq commands: results on ctx.out, progress and notes on ctx.err.
import type { CliContext } from '../context';

/** `2026-11-29T10:00:00.123Z` without the milliseconds when they are 0. */
export function iso(d: Date): string {
  return d.toISOString().replace('.000Z', 'Z');
}

export function say(ctx: CliContext, text: string): void {
  ctx.out.write(`${text}\n`);
}

export function note(ctx: CliContext, text: string): void {
  ctx.err.write(`${text}\n`);
}

export function printJson(ctx: CliContext, value: unknown): void {
  ctx.out.write(`${JSON.stringify(value, null, 2)}\n`);
}
