// The inputs of `sluice cost`: one sensor group from flags (or several with --group), or a fleet file
// (JSON or YAML) with tier mixes; retention and resolutions default to what the services default to.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { ParseArgsOptionsConfig } from 'node:util';
import { parseDurationMs, z } from '@sluice/config';
import { parse as parseYaml } from 'yaml';
import { intFlag, listFlag, parseCommandLine } from '../args';
import { UsageError } from '../errors';
import {
  TIERS,
  UNIT_COST_NAMES,
  type Fleet,
  type ResolutionSpec,
  type Retention,
  type SensorGroup,
  type UnitCosts,
} from './model';

const DAY = 86_400_000;

/** The aggregator's defaults (AGGREGATOR_RESOLUTIONS, AGGREGATOR_RETENTION of apps/aggregator/src/config.ts). */
export const DEFAULT_RESOLUTIONS = ['1s', '5s', '1m', '1h'];
export const DEFAULT_RESOLUTION_RETENTION: Record<string, number> = {
  '1s': 7 * DAY,
  '5s': 30 * DAY,
  '1m': 90 * DAY,
  '1h': 730 * DAY,
};
/** The aggregator's default retention for a window length without an entry (resolutions.ts). */
function defaultRetentionMs(ms: number): number {
  if (ms < 5_000) return 7 * DAY;
  if (ms < 60_000) return 30 * DAY;
  if (ms < 3_600_000) return 90 * DAY;
  return 730 * DAY;
}

/**
 * Store retention defaults: raw = INGEST_STREAM_MAX_AGE's default (30 d); the clean stream has no
 * limit by default, so its horizon is assumed equal; MongoDB 30 d; the archive a year.
 */
export const DEFAULT_RETENTION: Retention = {
  rawMs: 30 * DAY,
  cleanMs: 30 * DAY,
  mongoMs: 30 * DAY,
  archiveMs: 365 * DAY,
};

export const COST_USAGE = `usage: sluice cost [--devices N] [--sensors M] [--hz F] [--tier T] [options]
       sluice cost --fleet <fleet.yaml|fleet.json> [options]

Estimates, per sensor priority tier (safety, diagnostic, bulk), the steady-state cost of a fleet:
JetStream buffer bytes, roll-up rows and bytes per resolution in PostgreSQL, raw documents and bytes
in MongoDB, Parquet archive bytes, webhook and export messages per day, and CPU cores per service.
The bytes and CPU per event are the benches' measurements in tools/bench/data/unit-costs.json
(see docs/COSTS.md).

one sensor group from flags
  --devices <n>            devices (default 1)
  --sensors <m>            sensors per device (default 1)
  --hz <f>                 samples per second per sensor (default 1; 0.001 to 100000)
  --tier <t>               safety, diagnostic or bulk (default diagnostic)
  --regions <n>            regions the devices are spread over (default 1)
  --group <tier:sensors:hz[:options]>
                           a further group on the same devices, repeatable, e.g. bulk:4:1000:nomongo;
                           options +-separated: nomongo, mongo, norollups, noarchive, exports=N,
                           alerts=N (per device per day), push=1m|1h
  --exports <n>            exporter destinations receiving every event of the flag group (default 0)
  --alerts-per-day <n>     webhook alerts per device per day of the flag group (default 0)
  --push <res,...>         resolutions pushed by webhook on window close for the flag group

or a fleet file (YAML or JSON; see docs/COSTS.md)
  --fleet <file>           devices, regions, groups, resolutions, retention

both
  --retention <k=d,...>    raw, clean, mongo, archive and per resolution (1s=7d ...); defaults
                           raw=30d clean=30d mongo=30d archive=365d ${DEFAULT_RESOLUTIONS.map((r) => `${r}=${DEFAULT_RESOLUTION_RETENTION[r]! / DAY}d`).join(' ')}
  --resolutions <r,...>    roll-up resolutions (default ${DEFAULT_RESOLUTIONS.join(',')}, the aggregator's)
  --unit-costs <file>      the unit costs (default tools/bench/data/unit-costs.json of this checkout)
  --json                   one JSON object instead of tables
  --help`;

const options: ParseArgsOptionsConfig = {
  devices: { type: 'string' },
  sensors: { type: 'string' },
  hz: { type: 'string' },
  tier: { type: 'string' },
  regions: { type: 'string' },
  group: { type: 'string', multiple: true },
  exports: { type: 'string' },
  'alerts-per-day': { type: 'string' },
  push: { type: 'string', multiple: true },
  fleet: { type: 'string' },
  retention: { type: 'string', multiple: true },
  resolutions: { type: 'string' },
  'unit-costs': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

const hzValue = z
  .number()
  .min(0.001, 'must be at least 0.001')
  .max(100_000, 'must be at most 100000');
const hzFlag = z
  .string()
  .regex(/^\d+(\.\d+)?$/, 'must be a number of samples per second')
  .transform(Number)
  .pipe(hzValue)
  .default(1);

const schema = z.object({
  devices: intFlag({ min: 1, max: 100_000_000, default: 1 }),
  sensors: intFlag({ min: 1, max: 100_000, default: 1 }),
  hz: hzFlag,
  tier: z.enum(TIERS, { error: `must be one of ${TIERS.join(', ')}` }).default('diagnostic'),
  regions: intFlag({ min: 1, max: 10_000, default: 1 }),
  group: z.array(z.string()).optional(),
  exports: intFlag({ min: 0, max: 100, default: 0 }),
  'alerts-per-day': intFlag({ min: 0, max: 1_000_000, default: 0 }),
  push: listFlag(16).optional(),
  fleet: z.string().optional(),
  retention: listFlag(64).optional(),
  resolutions: listFlag(16).optional(),
  'unit-costs': z.string().optional(),
  json: z.boolean().optional(),
  help: z.boolean().optional(),
});

export interface CostOptions {
  fleet: Fleet;
  unitCosts: UnitCosts;
  unitCostsFile: string;
  json: boolean;
}

function duration(where: string, raw: unknown): number {
  const ms = typeof raw === 'string' || typeof raw === 'number' ? parseDurationMs(raw) : undefined;
  if (ms === undefined || ms <= 0)
    throw new UsageError(
      `${where}: ${JSON.stringify(raw)} is not a duration (30d, 12h, 90m)`,
      COST_USAGE,
    );
  return ms;
}

/** `raw=2d,1s=3d,...` over the defaults; unknown keys are errors. */
function applyRetention(
  entries: Record<string, unknown>,
  retention: Retention,
  perResolution: Map<string, number>,
  resolutionNames: readonly string[],
  where: string,
): void {
  const keys: Record<string, keyof Retention> = {
    raw: 'rawMs',
    clean: 'cleanMs',
    mongo: 'mongoMs',
    archive: 'archiveMs',
  };
  for (const [k, v] of Object.entries(entries)) {
    const ms = duration(`${where} ${k}`, v);
    if (Object.hasOwn(keys, k)) retention[keys[k]!] = ms;
    else if (resolutionNames.includes(k)) perResolution.set(k, ms);
    else
      throw new UsageError(
        `${where}: unknown key "${k}" (raw, clean, mongo, archive or a resolution: ${resolutionNames.join(', ')})`,
        COST_USAGE,
      );
  }
}

function resolutionsOf(
  names: readonly string[],
  perResolution: Map<string, number>,
): ResolutionSpec[] {
  return names
    .map((name) => {
      const ms = /^[1-9]\d{0,5}(s|m|h|d)$/.test(name) ? parseDurationMs(name) : undefined;
      if (ms === undefined)
        throw new UsageError(
          `resolution "${name}" must be a whole number of s, m, h or d`,
          COST_USAGE,
        );
      return {
        name,
        ms,
        retentionMs:
          perResolution.get(name) ?? DEFAULT_RESOLUTION_RETENTION[name] ?? defaultRetentionMs(ms),
      };
    })
    .sort((a, b) => a.ms - b.ms);
}

/** `tier:sensors:hz[:opt+opt]`. */
export function parseGroup(spec: string): SensorGroup {
  const [tier, sensors, hz, opts] = spec.split(':');
  const bad = (why: string) =>
    new UsageError(`--group ${JSON.stringify(spec)}: ${why}`, COST_USAGE);
  if (!TIERS.includes(tier as never)) throw bad(`tier must be one of ${TIERS.join(', ')}`);
  const n = Number(sensors);
  const f = Number(hz);
  if (!Number.isInteger(n) || n < 1) throw bad('sensors must be a whole number of at least 1');
  if (!hzValue.safeParse(f).success) throw bad('hz must be between 0.001 and 100000');
  const g: SensorGroup = { tier: tier as SensorGroup['tier'], sensors: n, hz: f };
  for (const o of (opts ?? '').split('+').filter(Boolean)) {
    const [k, v] = o.split('=');
    if (k === 'nomongo') g.mongo = false;
    else if (k === 'mongo') g.mongo = true;
    else if (k === 'norollups') g.rollups = false;
    else if (k === 'noarchive') g.archive = false;
    else if ((k === 'exports' || k === 'alerts') && /^\d+$/.test(v ?? '')) {
      if (k === 'exports') g.exports = Number(v);
      else g.alertsPerDevicePerDay = Number(v);
    } else if (k === 'push' && v) g.push = v.split('|');
    else throw bad(`unknown option "${o}"`);
  }
  return g;
}

const fileGroup = z
  .object({
    tier: z.enum(TIERS),
    sensors: z.number().int().min(1),
    hz: hzValue,
    devices: z.number().int().min(1).optional(),
    rollups: z.boolean().optional(),
    mongo: z.boolean().optional(),
    archive: z.boolean().optional(),
    exports: z.number().int().min(0).optional(),
    alerts_per_device_per_day: z.number().min(0).optional(),
    push: z.array(z.string()).optional(),
  })
  .strict();
const fleetFile = z
  .object({
    devices: z.number().int().min(1),
    regions: z.number().int().min(1).default(1),
    groups: z.array(fileGroup).min(1),
    resolutions: z.array(z.string()).min(1).optional(),
    retention: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
  })
  .strict();

/** The unit-costs file: `--unit-costs`, else tools/bench/data/unit-costs.json above the sources or the working directory. */
export function findUnitCostsFile(
  explicit?: string,
  from: readonly string[] = [__dirname, process.cwd()],
): string {
  if (explicit) return resolve(explicit);
  for (const start of from) {
    for (let dir = resolve(start); ; dir = dirname(dir)) {
      const candidate = join(dir, 'tools', 'bench', 'data', 'unit-costs.json');
      if (existsSync(candidate)) return candidate;
      if (dirname(dir) === dir) break;
    }
  }
  throw new UsageError(
    'tools/bench/data/unit-costs.json not found: give --unit-costs <file>',
    COST_USAGE,
  );
}

/** The `value` of every entry the model uses; a missing entry is an error, a `null` one unmeasured. */
export function readUnitCosts(file: string): UnitCosts {
  let data: { entries?: Record<string, { value?: unknown }> };
  try {
    data = JSON.parse(readFileSync(file, 'utf8')) as typeof data;
  } catch (err) {
    throw new UsageError(`--unit-costs ${file}: ${(err as Error).message}`, COST_USAGE);
  }
  const out = {} as Record<keyof UnitCosts, number | null>;
  for (const name of UNIT_COST_NAMES) {
    const v = data.entries?.[name]?.value;
    if (v !== null && (typeof v !== 'number' || !(v > 0)))
      throw new UsageError(`${file}: entry "${name}" needs a positive value or null`, COST_USAGE);
    out[name] = v;
  }
  return out;
}

const FLAG_GROUP = [
  'devices',
  'sensors',
  'hz',
  'tier',
  'regions',
  'group',
  'exports',
  'alerts-per-day',
  'push',
];

function readFleetFile(file: string): z.output<typeof fleetFile> {
  let raw: unknown;
  try {
    const text = readFileSync(file, 'utf8');
    raw = /\.json$/i.test(file) ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new UsageError(`--fleet ${file}: ${(err as Error).message}`, COST_USAGE);
  }
  const parsed = fleetFile.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new UsageError(
      `--fleet ${file}: ${i.path.join('.') || '(top)'}: ${i.message}`,
      COST_USAGE,
    );
  }
  return parsed.data;
}

export function parseCostOptions(args: readonly string[]): CostOptions | 'help' {
  const { flags: f } = parseCommandLine(args, { options, schema, usage: COST_USAGE });
  if (f.help) return 'help';
  const retention: Retention = { ...DEFAULT_RETENTION };
  const perResolution = new Map<string, number>();
  let devices: number;
  let regions: number;
  let groups: SensorGroup[];
  let names: readonly string[];
  if (f.fleet !== undefined) {
    const clash = FLAG_GROUP.find((k) =>
      args.some((a) => a === `--${k}` || a.startsWith(`--${k}=`)),
    );
    if (clash) throw new UsageError(`--${clash} cannot be combined with --fleet`, COST_USAGE);
    const p = readFleetFile(f.fleet);
    names = f.resolutions ?? p.resolutions ?? DEFAULT_RESOLUTIONS;
    applyRetention(
      p.retention ?? {},
      retention,
      perResolution,
      names,
      `--fleet ${f.fleet} retention`,
    );
    devices = p.devices;
    regions = p.regions;
    groups = p.groups.map((g) => {
      const { alerts_per_device_per_day: alerts, ...rest } = g;
      return { ...rest, ...(alerts !== undefined ? { alertsPerDevicePerDay: alerts } : {}) };
    });
  } else {
    names = f.resolutions ?? DEFAULT_RESOLUTIONS;
    devices = f.devices;
    regions = Math.min(f.regions, f.devices);
    groups = [
      {
        tier: f.tier,
        sensors: f.sensors,
        hz: f.hz,
        exports: f.exports,
        alertsPerDevicePerDay: f['alerts-per-day'],
        ...(f.push ? { push: f.push } : {}),
      },
      ...(f.group ?? []).map(parseGroup),
    ];
  }
  const retentionEntries: Record<string, string> = {};
  for (const item of f.retention ?? []) {
    const [k, v] = item.split('=');
    if (!k || v === undefined)
      throw new UsageError(`--retention: "${item}" must be <key>=<duration>`, COST_USAGE);
    retentionEntries[k.trim()] = v.trim();
  }
  applyRetention(retentionEntries, retention, perResolution, names, '--retention');
  const resolutions = resolutionsOf(names, perResolution);
  for (const g of groups)
    for (const r of g.push ?? [])
      if (!resolutions.some((x) => x.name === r))
        throw new UsageError(
          `push resolution "${r}" is not one of ${names.join(', ')}`,
          COST_USAGE,
        );
  const unitCostsFile = findUnitCostsFile(f['unit-costs']);
  return {
    fleet: { devices, regions, groups, resolutions, retention },
    unitCosts: readUnitCosts(unitCostsFile),
    unitCostsFile,
    json: f.json === true,
  };
}
