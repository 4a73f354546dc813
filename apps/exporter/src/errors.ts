import { ConfigError, type ConfigIssue } from '@sluice/config';
import { SluiceError } from '@sluice/errors';

/** One problem in the destinations file: where in it (`destinations[2].options.topic`) and why. */
export interface FileIssue {
  /** Path inside the file, or `line 3, column 7` for a syntax error; `(file)` for the file as a whole. */
  path: string;
  reason: string;
}

/**
 * The destinations file (`EXPORTER_CONFIG`) does not describe a runnable exporter. Each issue names the
 * file, the path inside it and the reason: `config/exporter.yaml: destinations[2].options.topic: ...`.
 */
export class DestinationsConfigError extends ConfigError {
  readonly file: string;
  readonly fileIssues: FileIssue[];

  constructor(file: string, issues: readonly FileIssue[]) {
    const all: ConfigIssue[] = (
      issues.length > 0 ? issues : [{ path: '(file)', reason: 'is invalid' }]
    ).map((i) => ({ variable: `${file}: ${i.path}`, reason: i.reason }));
    super(all[0]!.variable, all[0]!.reason, all.slice(1));
    this.file = file;
    this.fileIssues = issues.length > 0 ? [...issues] : [{ path: '(file)', reason: 'is invalid' }];
  }
}

/** A destination could not be started (its sink refused to connect for good, or its consumer failed). */
export class DestinationStartError extends SluiceError {
  override readonly name = 'DestinationStartError';
  readonly code = 'destination_start_failed';
  constructor(
    readonly destination: string,
    options: { cause: unknown; retriable?: boolean },
  ) {
    super(
      `destination ${destination} did not start: ${options.cause instanceof Error ? options.cause.message : String(options.cause)}`,
      { cause: options.cause, retriable: options.retriable ?? true },
    );
  }
}

/** A step of a reload or of a destination's start/stop took longer than its bound. */
export class ExporterTimeoutError extends SluiceError {
  override readonly name = 'ExporterTimeoutError';
  readonly code = 'exporter_timeout';
  constructor(what: string, ms: number) {
    super(`${what} did not finish within ${ms} ms`, { retriable: true });
  }
}
