/** What every Sluice error says about itself besides its message. */
export interface ErrorTraits {
  /**
   * Whether the same operation may succeed if tried again unchanged (a store that is down, a
   * timeout). Default `false`: a malformed message or a bad setting fails the same way every time.
   */
  retriable?: boolean;
  /** The HTTP status an API answers with when this error reaches it. Default none (500). */
  httpStatus?: number;
  cause?: unknown;
}

/**
 * The base of every error Sluice throws on purpose. `code` is stable and machine-readable (it is the
 * `type` suffix of an HTTP problem and a metric label); `retriable` tells a consumer loop whether to
 * retry or dead-letter; `httpStatus` tells an API how to answer.
 */
export abstract class SluiceError extends Error {
  abstract readonly code: string;
  readonly retriable: boolean;
  readonly httpStatus: number | undefined;

  constructor(message: string, traits: ErrorTraits = {}) {
    super(message, traits.cause === undefined ? undefined : { cause: traits.cause });
    this.retriable = traits.retriable ?? false;
    this.httpStatus = traits.httpStatus;
  }
}

/** `true` for a {@link SluiceError} marked retriable; `false` for anything else, including plain errors. */
export function isRetriable(err: unknown): boolean {
  return err instanceof SluiceError && err.retriable;
}

/** One problem with one setting. */
export interface ConfigIssue {
  /** The environment variable (or file), e.g. `NATS_URL`. */
  variable: string;
  /** Why its value was refused, in words a deployer can act on. */
  reason: string;
}

/**
 * The one "bad configuration" error: thrown at startup when the environment does not describe a
 * runnable service. Never retriable.
 */
export class ConfigError extends SluiceError {
  override readonly name = 'ConfigError';
  readonly code = 'config_invalid';
  /** Every problem found, the first being (`variable`, `reason`). */
  readonly issues: ConfigIssue[];

  constructor(
    variable: string,
    reason: string,
    more: ConfigIssue[] = [],
    traits: Pick<ErrorTraits, 'cause'> = {},
  ) {
    const issues = [{ variable, reason }, ...more];
    super(
      `invalid configuration: ${issues.map((i) => `${i.variable}: ${i.reason}`).join('; ')}`,
      traits,
    );
    this.issues = issues;
  }

  /** One error naming every issue (at least one). */
  static of(issues: readonly ConfigIssue[]): ConfigError {
    const [first, ...more] = issues;
    if (!first) return new ConfigError('(environment)', 'is invalid');
    return new ConfigError(first.variable, first.reason, more);
  }

  get variable(): string {
    return this.issues[0]!.variable;
  }
}
