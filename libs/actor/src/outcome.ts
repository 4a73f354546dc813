/** What the actor does with one message after the handler has seen it. */
export type Outcome =
  | { readonly type: 'ack' }
  /** Redeliver after `delayMs` (default: the actor's backoff for this delivery count). */
  | { readonly type: 'retry'; readonly delayMs?: number; readonly error?: Error }
  /** Can never succeed: publish to the DLQ with provenance, then `term()`. */
  | { readonly type: 'dead'; readonly error: Error };

const ACK: Outcome = { type: 'ack' };

export const Outcomes = {
  ack: (): Outcome => ACK,
  retry: (error?: Error, delayMs?: number): Outcome => ({
    type: 'retry',
    ...(error ? { error } : {}),
    ...(delayMs !== undefined ? { delayMs } : {}),
  }),
  dead: (error: Error): Outcome => ({ type: 'dead', error }),
};
