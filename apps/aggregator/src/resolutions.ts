import { parseDurationMs } from '@sluice/config';
import { ConfigError } from '@sluice/errors';

const DAY_MS = 86_400_000;

/** One window length with its storage policy. */
export interface Resolution {
  /** Subject token and column value, e.g. `1s`. */
  readonly name: string;
  readonly ms: number;
  /** Partition span of its roll-up table: daily below one minute, monthly otherwise. */
  readonly partition: 'day' | 'month';
  /** Partitions whose whole span is older than this are dropped. */
  readonly retentionMs: number;
}

const RESOLUTION_PATTERN = /^[1-9][0-9]{0,5}(s|m|h|d)$/;

/** Default retention for a window length: 7 d below 5 s, 30 d below 1 m, 90 d below 1 h, 2 years from 1 h. */
export function defaultRetentionMs(ms: number): number {
  if (ms < 5_000) return 7 * DAY_MS;
  if (ms < 60_000) return 30 * DAY_MS;
  if (ms < 3_600_000) return 90 * DAY_MS;
  return 730 * DAY_MS;
}

/**
 * Parses `AGGREGATOR_RESOLUTIONS` and `AGGREGATOR_RETENTION` into resolutions sorted finest first;
 * retention entries of resolutions that are not configured are ignored.
 */
export function parseResolutions(
  names: readonly string[],
  retention: readonly string[] = [],
): Resolution[] {
  if (names.length === 0)
    throw new ConfigError('AGGREGATOR_RESOLUTIONS', 'must list at least one resolution');
  const overrides = new Map<string, number>();
  for (const item of retention) {
    const [name, value] = item.split('=').map((s) => s.trim());
    const ms = value === undefined ? undefined : parseDurationMs(value);
    if (!name || ms === undefined || ms <= 0) {
      throw new ConfigError(
        'AGGREGATOR_RETENTION',
        `"${item}" must be <resolution>=<duration>, e.g. 1s=7d`,
      );
    }
    overrides.set(name, ms);
  }
  const seen = new Map<number, string>();
  const out: Resolution[] = [];
  for (const name of names) {
    if (!RESOLUTION_PATTERN.test(name)) {
      throw new ConfigError(
        'AGGREGATOR_RESOLUTIONS',
        `"${name}" must be a whole number of s, m, h or d, e.g. 1s, 5s, 1m, 1h`,
      );
    }
    const ms = parseDurationMs(name)!;
    if (ms > DAY_MS || DAY_MS % ms !== 0) {
      throw new ConfigError(
        'AGGREGATOR_RESOLUTIONS',
        `"${name}" must divide one day evenly (windows align to UTC days)`,
      );
    }
    if (seen.has(ms))
      throw new ConfigError('AGGREGATOR_RESOLUTIONS', `"${name}" repeats ${seen.get(ms)}`);
    seen.set(ms, name);
    out.push({
      name,
      ms,
      partition: ms < 60_000 ? 'day' : 'month',
      retentionMs: overrides.get(name) ?? defaultRetentionMs(ms),
    });
  }
  return out.sort((a, b) => a.ms - b.ms);
}

/** Start of the window of length `ms` containing `t` (epoch ms, UTC-aligned). */
export function windowStart(t: number, ms: number): number {
  return t - (((t % ms) + ms) % ms);
}

/** The partition span containing `t`: [start, end) in epoch ms and a name suffix. */
export function partitionSpan(
  t: number,
  span: 'day' | 'month',
): { start: number; end: number; suffix: string } {
  const d = new Date(t);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  const pad = (n: number) => String(n).padStart(2, '0');
  if (span === 'day') {
    const start = Date.UTC(y, m, d.getUTCDate());
    return { start, end: start + DAY_MS, suffix: `${y}${pad(m + 1)}${pad(d.getUTCDate())}` };
  }
  return { start: Date.UTC(y, m, 1), end: Date.UTC(y, m + 1, 1), suffix: `${y}${pad(m + 1)}` };
}

/** Table holding one resolution's roll-ups (itself range-partitioned by window start). */
export function resolutionTable(r: Pick<Resolution, 'name'>): string {
  return `rollups_${r.name}`;
}

/** True when every window of the partition span containing `windowStartMs` has expired at `now`. */
export function isExpired(r: Resolution, windowStartMs: number, now: number): boolean {
  return partitionSpan(windowStartMs, r.partition).end <= now - r.retentionMs;
}
