/** One problem with one environment variable. */
export interface ConfigIssue {
  /** The environment variable, e.g. `NATS_URL`. */
  variable: string;
  /** Why its value was refused, in words a deployer can act on. */
  reason: string;
}

/** Thrown once at startup when the environment does not describe a runnable service. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly issues: ConfigIssue[]) {
    super(
      `invalid configuration: ${issues.map((i) => `${i.variable}: ${i.reason}`).join('; ')}`,
    );
  }
}
