// The unit costs `sluice cost` multiplies: bytes per event and CPU per event as the benches measured
// them, kept in one file (tools/bench/data/unit-costs.json). A bench run with `--record` writes the
// entries it measures (its module's `unitCosts` export) into that file, each with the bench, the
// command and the date, and leaves the others as they were.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from 'pg';
import type { Db } from 'mongodb';
import type { BenchResult } from './result';

/** The data file, from the sources. */
export const UNIT_COSTS_FILE = join(__dirname, '..', 'data', 'unit-costs.json');

/** One measured number and where it came from. */
export interface UnitCost {
  /** `null`: not measured yet. */
  value: number | null;
  unit: string;
  /** The bench that measures it (`npm run bench -- <bench> --record` updates it). */
  bench: string;
  /** Day of the measurement, `YYYY-MM-DD`. */
  measured: string;
  /** The command or the docs/BENCHMARKS.md rows it comes from. */
  source: string;
  description: string;
}

export interface UnitCostsFile {
  $comment: string;
  entries: Record<string, UnitCost>;
}

/** What a bench measured for one entry: the value, and optionally a note on how. */
export type UnitCostUpdate = Record<string, { value: number; source?: string } | undefined>;

export function readUnitCosts(file = UNIT_COSTS_FILE): UnitCostsFile {
  return JSON.parse(readFileSync(file, 'utf8')) as UnitCostsFile;
}

/**
 * Writes the entries a bench measured into the file (atomically, by rename). Entries must already
 * exist (their unit and description are defined once, in the file); a value that is not a finite
 * positive number is skipped. Returns the names written.
 */
export function recordUnitCosts(
  bench: string,
  command: string,
  updates: UnitCostUpdate,
  opts: { file?: string; today?: string } = {},
): string[] {
  const file = opts.file ?? UNIT_COSTS_FILE;
  const data = readUnitCosts(file);
  const today = opts.today ?? new Date().toISOString().slice(0, 10);
  const written: string[] = [];
  for (const [name, u] of Object.entries(updates)) {
    if (!u || !Number.isFinite(u.value) || u.value <= 0) continue;
    const entry = data.entries[name];
    if (!entry) throw new Error(`unit cost "${name}" is not in ${file}: add it there first`);
    data.entries[name] = {
      ...entry,
      value: u.value,
      bench,
      measured: today,
      source: u.source ? `${command} (${u.source})` : command,
    };
    written.push(name);
  }
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(data, null, 2)}\n`);
  renameSync(tmp, file);
  return written;
}

/** A number field of a bench result, or undefined. */
export function numberOf(r: BenchResult, ...path: string[]): number | undefined {
  let v: unknown = r;
  for (const p of path)
    v = v && typeof v === 'object' ? (v as Record<string, unknown>)[p] : undefined;
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/**
 * Bytes per roll-up row in PostgreSQL: the size of every leaf partition of `rollups` (heap, its
 * free space left by the fillfactor, TOAST and indexes) over the rows they hold.
 */
export async function rollupRowBytes(pg: Client): Promise<number | undefined> {
  const { rows } = await pg.query<{ bytes: string | null; n: string }>(
    `SELECT (SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('rollups') WHERE isleaf) AS bytes,
            (SELECT count(*) FROM rollups) AS n`,
  );
  const bytes = Number(rows[0]?.bytes ?? 0);
  const n = Number(rows[0]?.n ?? 0);
  return n > 0 ? bytes / n : undefined;
}

/** Bytes per document of a MongoDB collection: its storage and index sizes over its documents. */
export async function mongoDocumentBytes(db: Db, collection: string): Promise<number | undefined> {
  const s = (await db.command({ collStats: collection })) as {
    count?: number;
    size?: number;
    storageSize?: number;
    totalIndexSize?: number;
  };
  const n = s.count ?? 0;
  if (n <= 0) return undefined;
  return (Math.max(s.storageSize ?? 0, s.size ?? 0) + (s.totalIndexSize ?? 0)) / n;
}
