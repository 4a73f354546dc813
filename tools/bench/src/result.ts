import type { UnitCostUpdate } from './unit-costs';

/** The JSON object every benchmark prints as its last line of stdout (DESIGN.md §7). */
export interface BenchResult {
  name: string;
  events_per_s?: number;
  p50_ms?: number;
  p99_ms?: number;
  /** The ceiling measured in the same run (e.g. raw JetStream publish of the same bytes). */
  baseline_events_per_s?: number;
  [extra: string]: unknown;
}

/** Options every benchmark understands. */
export interface BenchOptions {
  /** Measurement length. */
  seconds: number;
  /** Offered load in events/s; undefined = as fast as possible. */
  rate?: number | undefined;
  /** The bench's own `--key value` flags (those it declares in its `flags` export), as strings. */
  flags: Record<string, string>;
  /** `--record`: write the unit costs measured to tools/bench/data/unit-costs.json. Default false. */
  record?: boolean;
}

export type Bench = (opts: BenchOptions) => Promise<BenchResult>;

/** The extra flags a bench accepts: name (without `--`) to a one-line help. Any other flag is an error. */
export type BenchFlags = Readonly<Record<string, string>>;

/** What a module under benches/ exports. */
export interface BenchModule {
  default: Bench;
  /** Extra flags; none when absent. */
  flags?: BenchFlags;
  /** `--seconds` when not given. Default 10. */
  defaultSeconds?: number;
  /** The entries of tools/bench/data/unit-costs.json this bench's result measures (`--record`). */
  unitCosts?: (result: BenchResult) => UnitCostUpdate;
}

/** Percentile of a sample (nearest rank); 0 for an empty sample. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/** Rounds for printing. */
export const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;
