import { LifecycleError } from './errors';

export type LifecycleState = 'starting' | 'running' | 'draining' | 'stopped' | 'failed';

const ALLOWED: Record<LifecycleState, LifecycleState[]> = {
  starting: ['running', 'draining', 'failed'],
  running: ['draining', 'failed'],
  draining: ['stopped', 'failed'],
  stopped: [],
  failed: [],
};

/** Numeric encoding for the `sluice_lifecycle_state` gauge. */
export const STATE_CODE: Record<LifecycleState, number> = {
  starting: 0,
  running: 1,
  draining: 2,
  stopped: 3,
  failed: 4,
};

/** Explicit state machine `starting → running → draining → stopped | failed`; illegal moves throw. */
export class Lifecycle {
  private current: LifecycleState = 'starting';
  private readonly listeners: Array<
    (to: LifecycleState, from: LifecycleState, cause?: unknown) => void
  > = [];
  failure: unknown;

  get state(): LifecycleState {
    return this.current;
  }

  /** Ends in `stopped` or `failed`: nothing will run again. */
  get terminal(): boolean {
    return this.current === 'stopped' || this.current === 'failed';
  }

  onChange(listener: (to: LifecycleState, from: LifecycleState, cause?: unknown) => void): void {
    this.listeners.push(listener);
  }

  /** Rejects with the cause once the state becomes `failed`; never settles otherwise. */
  whenFailed(): Promise<never> {
    return new Promise<never>((_, reject) => {
      if (this.current === 'failed') return reject(this.failure);
      this.onChange((to, _from, cause) => {
        if (to === 'failed') reject(cause ?? new Error('failed'));
      });
    });
  }

  transition(to: LifecycleState, cause?: unknown): void {
    const from = this.current;
    if (!ALLOWED[from].includes(to)) throw new LifecycleError(`cannot go from ${from} to ${to}`);
    this.current = to;
    if (to === 'failed') this.failure = cause;
    for (const l of this.listeners) l(to, from, cause);
  }
}
