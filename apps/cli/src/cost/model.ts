// The cost model of `sluice cost`: what a fleet's telemetry costs in each store and in CPU, per
// sensor priority tier, from the unit costs the benches measured (tools/bench/data/unit-costs.json).
// Pure arithmetic: no I/O, so a test can check it against a hand calculation.

export const TIERS = ['safety', 'diagnostic', 'bulk'] as const;
export type Tier = (typeof TIERS)[number];

const DAY_S = 86_400;

/** Sensors of one tier on every device of the fleet (or on `devices` of them). */
export interface SensorGroup {
  tier: Tier;
  /** Sensors per device in this group. */
  sensors: number;
  /** Samples per second of each sensor (1 Hz to 1 kHz in the boat fleet). */
  hz: number;
  /** Devices carrying this group. Default: every device of the fleet. */
  devices?: number;
  /** Rolled up by the aggregator into PostgreSQL. Default `true`. */
  rollups?: boolean;
  /** Captured raw into MongoDB (mongo-capture). Default `true`, `false` for the bulk tier. */
  mongo?: boolean;
  /** Archived raw as Parquet (archiver). Default `true`. */
  archive?: boolean;
  /** Exporter destinations receiving every event (one message per event each). Default 0. */
  exports?: number;
  /** Webhook alerts per device per day (threshold, silence, anomaly rules). Default 0. */
  alertsPerDevicePerDay?: number;
  /** Resolutions whose closed windows are pushed by webhook (one delivery per window). Default none. */
  push?: readonly string[];
}

/** One roll-up resolution and how long its rows are kept. */
export interface ResolutionSpec {
  name: string;
  /** Window length. */
  ms: number;
  retentionMs: number;
}

export interface Retention {
  /** TELEMETRY_RAW: INGEST_STREAM_MAX_AGE (the gateway's default 30 d; no byte limit). */
  rawMs: number;
  /** TELEMETRY (clean): dedupe creates it without an age or byte limit; the horizon you set. */
  cleanMs: number;
  /** Raw documents in MongoDB (a TTL index or the owner's policy). */
  mongoMs: number;
  /** Parquet files in the object store (a lifecycle rule). */
  archiveMs: number;
}

export interface Fleet {
  devices: number;
  /** Regions the devices are spread over evenly (region roll-ups are per region and sensor). */
  regions: number;
  groups: readonly SensorGroup[];
  resolutions: readonly ResolutionSpec[];
  retention: Retention;
}

/** The numbers the model multiplies (`value` of each unit-costs.json entry; `null` = not measured). */
export interface UnitCosts {
  protobuf_bytes_per_event: number | null;
  parquet_bytes_per_event: number | null;
  rollup_row_bytes: number | null;
  mongo_document_bytes: number | null;
  gateway_cpu_ms_per_1k_events: number | null;
  dedupe_cpu_ms_per_1k_events: number | null;
  redis_cpu_ms_per_1k_events: number | null;
  aggregator_cpu_ms_per_1k_events: number | null;
  aggregator_postgres_cpu_ms_per_1k_events: number | null;
  archiver_cpu_ms_per_1k_events: number | null;
  mongo_server_cpu_ms_per_1k_documents: number | null;
  webhook_cpu_us_per_delivery: number | null;
}

export const UNIT_COST_NAMES: readonly (keyof UnitCosts)[] = [
  'protobuf_bytes_per_event',
  'parquet_bytes_per_event',
  'rollup_row_bytes',
  'mongo_document_bytes',
  'gateway_cpu_ms_per_1k_events',
  'dedupe_cpu_ms_per_1k_events',
  'redis_cpu_ms_per_1k_events',
  'aggregator_cpu_ms_per_1k_events',
  'aggregator_postgres_cpu_ms_per_1k_events',
  'archiver_cpu_ms_per_1k_events',
  'mongo_server_cpu_ms_per_1k_documents',
  'webhook_cpu_us_per_delivery',
];

/** CPU cores per service, `null` where the unit cost is not measured. */
export const CPU_SERVICES = [
  'gateway',
  'dedupe',
  'redis',
  'aggregator',
  'postgres',
  'archiver',
  'mongodb',
  'webhook-dispatcher',
] as const;
export type CpuService = (typeof CPU_SERVICES)[number];

export interface RollupEstimate {
  resolution: string;
  retentionMs: number;
  /** Rows written per second (device and region scope). */
  rowsPerS: number;
  /** Rows held at steady state (rows per second × retention). */
  rows: number;
  bytes: number | null;
}

/** What one tier (or the whole fleet) costs at steady state. */
export interface Estimate {
  tier: Tier | 'total';
  eventsPerS: number;
  jetstream: { rawBytes: number | null; cleanBytes: number | null };
  rollups: RollupEstimate[];
  postgres: { rows: number; bytes: number | null };
  mongo: { documents: number; bytes: number | null };
  archive: { events: number; parquetBytes: number | null };
  webhook: { messagesPerDay: number };
  export: { messagesPerDay: number };
  cpuCores: Record<CpuService, number | null>;
}

const mul = (a: number, b: number | null) => (b === null ? null : a * b);
const add = (a: number | null, b: number | null) => (a === null || b === null ? null : a + b);

/** Cores from a per-1,000-units CPU cost in ms: units/s × ms / 1,000 (per unit) / 1,000 (ms → s). */
const cores = (unitsPerS: number, msPer1k: number | null) =>
  msPer1k === null ? null : (unitsPerS * msPer1k) / 1e6;

/** Rows a series writes per second at a resolution: one per window that has a reading. */
function rowsPerSecond(readingsPerS: number, r: ResolutionSpec): number {
  return Math.min(readingsPerS, 1000 / r.ms);
}

/** The estimate of one sensor group. */
function estimateGroup(fleet: Fleet, g: SensorGroup, u: UnitCosts): Estimate {
  const devices = g.devices ?? fleet.devices;
  const eventsPerS = devices * g.sensors * g.hz;
  const rollups = g.rollups ?? true;
  const mongo = g.mongo ?? g.tier !== 'bulk';
  const archive = g.archive ?? true;
  const { retention } = fleet;

  const rollupRows: RollupEstimate[] = fleet.resolutions.map((r) => {
    if (!rollups)
      return { resolution: r.name, retentionMs: r.retentionMs, rowsPerS: 0, rows: 0, bytes: 0 };
    // Device scope: one series per device and sensor. Region scope: one per region and sensor,
    // fed by the devices of the region.
    const deviceRows = devices * g.sensors * rowsPerSecond(g.hz, r);
    const regionRows =
      fleet.regions * g.sensors * rowsPerSecond((devices / fleet.regions) * g.hz, r);
    const rowsPerS = deviceRows + regionRows;
    const rows = rowsPerS * (r.retentionMs / 1000);
    return {
      resolution: r.name,
      retentionMs: r.retentionMs,
      rowsPerS,
      rows,
      bytes: mul(rows, u.rollup_row_bytes),
    };
  });
  const pgRows = rollupRows.reduce((n, r) => n + r.rows, 0);

  const mongoDocs = mongo ? eventsPerS * (retention.mongoMs / 1000) : 0;
  const archived = archive ? eventsPerS * (retention.archiveMs / 1000) : 0;
  const pushPerS = (g.push ?? []).reduce((n, name) => {
    const r = fleet.resolutions.find((x) => x.name === name);
    return r ? n + devices * g.sensors * rowsPerSecond(g.hz, r) : n;
  }, 0);
  const alertsPerS = (devices * (g.alertsPerDevicePerDay ?? 0)) / DAY_S;
  const deliveriesPerS = pushPerS + alertsPerS;

  return {
    tier: g.tier,
    eventsPerS,
    jetstream: {
      rawBytes: mul(eventsPerS * (retention.rawMs / 1000), u.protobuf_bytes_per_event),
      cleanBytes: mul(eventsPerS * (retention.cleanMs / 1000), u.protobuf_bytes_per_event),
    },
    rollups: rollupRows,
    postgres: {
      rows: pgRows,
      bytes: rollups ? mul(pgRows, u.rollup_row_bytes) : 0,
    },
    mongo: { documents: mongoDocs, bytes: mongo ? mul(mongoDocs, u.mongo_document_bytes) : 0 },
    archive: {
      events: archived,
      parquetBytes: archive ? mul(archived, u.parquet_bytes_per_event) : 0,
    },
    webhook: { messagesPerDay: deliveriesPerS * DAY_S },
    export: { messagesPerDay: eventsPerS * (g.exports ?? 0) * DAY_S },
    cpuCores: {
      gateway: cores(eventsPerS, u.gateway_cpu_ms_per_1k_events),
      dedupe: cores(eventsPerS, u.dedupe_cpu_ms_per_1k_events),
      redis: cores(eventsPerS, u.redis_cpu_ms_per_1k_events),
      aggregator: rollups ? cores(eventsPerS, u.aggregator_cpu_ms_per_1k_events) : 0,
      postgres: rollups ? cores(eventsPerS, u.aggregator_postgres_cpu_ms_per_1k_events) : 0,
      archiver: archive ? cores(eventsPerS, u.archiver_cpu_ms_per_1k_events) : 0,
      mongodb: mongo ? cores(eventsPerS, u.mongo_server_cpu_ms_per_1k_documents) : 0,
      // µs per delivery: deliveries/s × µs / 1e6.
      'webhook-dispatcher':
        u.webhook_cpu_us_per_delivery === null
          ? null
          : (deliveriesPerS * u.webhook_cpu_us_per_delivery) / 1e6,
    },
  };
}

function sum(
  tier: Estimate['tier'],
  parts: readonly Estimate[],
  resolutions: readonly ResolutionSpec[],
): Estimate {
  const s = (f: (e: Estimate) => number) => parts.reduce((n, e) => n + f(e), 0);
  const sn = (f: (e: Estimate) => number | null) =>
    parts.reduce<number | null>((n, e) => add(n, f(e)), 0);
  const cpu = {} as Record<CpuService, number | null>;
  for (const svc of CPU_SERVICES) cpu[svc] = sn((e) => e.cpuCores[svc]);
  return {
    tier,
    eventsPerS: s((e) => e.eventsPerS),
    jetstream: {
      rawBytes: sn((e) => e.jetstream.rawBytes),
      cleanBytes: sn((e) => e.jetstream.cleanBytes),
    },
    rollups: resolutions.map((r, i) => ({
      resolution: r.name,
      retentionMs: r.retentionMs,
      rowsPerS: s((e) => e.rollups[i]!.rowsPerS),
      rows: s((e) => e.rollups[i]!.rows),
      bytes: sn((e) => e.rollups[i]!.bytes),
    })),
    postgres: { rows: s((e) => e.postgres.rows), bytes: sn((e) => e.postgres.bytes) },
    mongo: { documents: s((e) => e.mongo.documents), bytes: sn((e) => e.mongo.bytes) },
    archive: {
      events: s((e) => e.archive.events),
      parquetBytes: sn((e) => e.archive.parquetBytes),
    },
    webhook: { messagesPerDay: s((e) => e.webhook.messagesPerDay) },
    export: { messagesPerDay: s((e) => e.export.messagesPerDay) },
    cpuCores: cpu,
  };
}

/** The estimate per tier present in the fleet, in tier order, then the total. */
export function estimateCosts(fleet: Fleet, u: UnitCosts): Estimate[] {
  const groups = fleet.groups.map((g) => estimateGroup(fleet, g, u));
  const tiers = TIERS.filter((t) => fleet.groups.some((g) => g.tier === t)).map((t) =>
    sum(
      t,
      groups.filter((e) => e.tier === t),
      fleet.resolutions,
    ),
  );
  return [...tiers, sum('total', groups, fleet.resolutions)];
}

/** Unit costs the estimate needed but the data file does not have yet. */
export function unmeasured(u: UnitCosts): (keyof UnitCosts)[] {
  return UNIT_COST_NAMES.filter((k) => u[k] === null);
}
