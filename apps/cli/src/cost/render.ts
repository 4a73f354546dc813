// `sluice cost` output: tables for people, one JSON object with --json.
import { renderTable } from '../table';
import { CPU_SERVICES, type Estimate, type Fleet, type UnitCosts } from './model';

const DAY = 86_400_000;

/** Decimal SI bytes: 1.23 GB. */
export function formatBytes(n: number | null): string {
  if (n === null) return 'n/a';
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
  let i = 0;
  while (Math.abs(n) >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i === 0 ? Math.round(n) : n.toFixed(n >= 100 ? 0 : n >= 10 ? 1 : 2)} ${units[i]}`;
}

/** Counts: exact below a million, then 1.23 M / G / T. */
export function formatCount(n: number): string {
  if (Math.abs(n) < 1e6) return Math.round(n).toLocaleString('en-US');
  const units = ['M', 'G', 'T', 'P'];
  let i = 0;
  n /= 1e6;
  while (Math.abs(n) >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(n >= 100 ? 0 : n >= 10 ? 1 : 2)} ${units[i]}`;
}

const formatRate = (n: number) => (n < 10 ? n.toFixed(2) : formatCount(n));
const formatCores = (n: number | null) =>
  n === null ? 'n/a' : n < 0.01 && n > 0 ? '<0.01' : n.toFixed(2);
const days = (ms: number) => (ms % DAY === 0 ? `${ms / DAY}d` : `${(ms / 3_600_000).toFixed(1)}h`);

export function renderCostTables(
  fleet: Fleet,
  estimates: readonly Estimate[],
  missing: readonly string[],
  unitCostsFile: string,
): string {
  const r = fleet.retention;
  const out: string[] = [];
  const right = (header: string) => ({ header, align: 'right' as const });
  out.push(
    renderTable(
      [
        { header: 'tier' },
        right('events/s'),
        right(`raw stream (${days(r.rawMs)})`),
        right(`clean stream (${days(r.cleanMs)})`),
        right('PG roll-up rows'),
        right('PG bytes'),
        right(`Mongo docs (${days(r.mongoMs)})`),
        right('Mongo bytes'),
        right(`Parquet (${days(r.archiveMs)})`),
        right('webhooks/day'),
        right('exports/day'),
      ],
      estimates.map((e) => [
        e.tier,
        formatCount(e.eventsPerS),
        formatBytes(e.jetstream.rawBytes),
        formatBytes(e.jetstream.cleanBytes),
        formatCount(e.postgres.rows),
        formatBytes(e.postgres.bytes),
        formatCount(e.mongo.documents),
        formatBytes(e.mongo.bytes),
        formatBytes(e.archive.parquetBytes),
        formatCount(e.webhook.messagesPerDay),
        formatCount(e.export.messagesPerDay),
      ]),
    ),
  );
  out.push('', 'roll-ups in PostgreSQL by resolution');
  out.push(
    renderTable(
      [
        { header: 'tier' },
        { header: 'resolution' },
        right('retention'),
        right('rows/s'),
        right('rows'),
        right('bytes'),
      ],
      estimates.flatMap((e) =>
        e.rollups.map((x) => [
          e.tier,
          x.resolution,
          days(x.retentionMs),
          formatRate(x.rowsPerS),
          formatCount(x.rows),
          formatBytes(x.bytes),
        ]),
      ),
    ),
  );
  out.push('', 'CPU cores per service (machine of docs/BENCHMARKS.md)');
  out.push(
    renderTable(
      [{ header: 'service' }, ...estimates.map((e) => right(e.tier))],
      CPU_SERVICES.map((s) => [s, ...estimates.map((e) => formatCores(e.cpuCores[s]))]),
    ),
  );
  out.push('', `unit costs: ${unitCostsFile}`);
  if (missing.length > 0)
    out.push(
      `not measured yet (n/a above): ${missing.join(', ')}; run the bench named in the file with --record`,
    );
  out.push(
    'not estimated: exporter CPU, nats-server CPU outside the aggregator and archiver, the ROLLUPS and DLQ streams',
  );
  return out.join('\n');
}

export function costJson(
  fleet: Fleet,
  estimates: readonly Estimate[],
  unitCosts: UnitCosts,
  missing: readonly string[],
  unitCostsFile: string,
): Record<string, unknown> {
  return {
    fleet,
    unit_costs: unitCosts,
    unit_costs_file: unitCostsFile,
    unmeasured: missing,
    estimates,
  };
}
