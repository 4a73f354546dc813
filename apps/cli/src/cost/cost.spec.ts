// `sluice cost` against a hand calculation of the boat fleet of docs/COSTS.md
// (examples/cost/boat-fleet.yaml): every expected number below is written out as arithmetic from
// the fleet and the unit costs, not computed by the model's functions.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
// The aggregator's own defaults, to check the command's copy of them.
// eslint-disable-next-line @nx/enforce-module-boundaries
import { config as aggregatorConfig } from '../../../aggregator/src/config';
import { createContext } from '../context';
import { UsageError } from '../errors';
import { costCommand } from './command';
import { DEFAULT_RESOLUTION_RETENTION, DEFAULT_RESOLUTIONS, parseCostOptions } from './options';

const ROOT = join(__dirname, '..', '..', '..', '..');
const FLEET = join(ROOT, 'examples', 'cost', 'boat-fleet.yaml');
const UNITS = JSON.parse(
  readFileSync(join(ROOT, 'tools', 'bench', 'data', 'unit-costs.json'), 'utf8'),
) as { entries: Record<string, { value: number | null }> };
const unit = (name: string) => UNITS.entries[name]!.value!;

async function run(args: string[]): Promise<{ code: number; out: string }> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const ctx = createContext({ SLUICE_NAMESPACE: '' } as never, new AbortController().signal, {
    out,
    err: new PassThrough(),
  });
  const code = await costCommand.run(args, ctx);
  return { code, out: Buffer.concat(chunks).toString('utf8') };
}

interface Est {
  tier: string;
  eventsPerS: number;
  jetstream: { rawBytes: number; cleanBytes: number };
  rollups: { resolution: string; rowsPerS: number; rows: number; bytes: number }[];
  postgres: { rows: number; bytes: number };
  mongo: { documents: number; bytes: number | null };
  archive: { events: number; parquetBytes: number };
  webhook: { messagesPerDay: number };
  export: { messagesPerDay: number };
  cpuCores: Record<string, number | null>;
}

const DAY = 86_400;

describe('sluice cost', () => {
  it('matches a hand calculation of the boat fleet', async () => {
    const { code, out } = await run(['--fleet', FLEET, '--json']);
    expect(code).toBe(0);
    const json = JSON.parse(out) as { estimates: Est[]; unmeasured: string[] };
    const [safety, diagnostic, bulk, total] = json.estimates;
    expect(json.estimates.map((e) => e.tier)).toEqual(['safety', 'diagnostic', 'bulk', 'total']);

    const proto = unit('protobuf_bytes_per_event'); // 121.49 B
    const parquet = unit('parquet_bytes_per_event'); // 5.95 B
    const row = unit('rollup_row_bytes');

    // Events/s: boats × sensors × Hz.
    expect(safety!.eventsPerS).toBe(50 * 6 * 10); // 3,000
    expect(diagnostic!.eventsPerS).toBe(50 * 40 * 1); // 2,000
    expect(bulk!.eventsPerS).toBe(50 * 4 * 1000); // 200,000
    expect(total!.eventsPerS).toBe(3_000 + 2_000 + 200_000);

    // JetStream: 2 days of events in each of the raw and clean streams.
    expect(bulk!.jetstream.rawBytes).toBeCloseTo(200_000 * 2 * DAY * proto, 0);
    expect(total!.jetstream.cleanBytes).toBeCloseTo(205_000 * 2 * DAY * proto, 0);

    // Roll-ups, 1s (7 d): diagnostic at 1 Hz fills every 1 s window of its 50 × 40 device series
    // (2,000 rows/s) and of its 40 region series (the region gets 50 readings a second: 40 rows/s).
    const diag1s = diagnostic!.rollups.find((r) => r.resolution === '1s')!;
    expect(diag1s.rowsPerS).toBeCloseTo(50 * 40 + 1 * 40, 9);
    expect(diag1s.rows).toBeCloseTo((50 * 40 + 40) * 7 * DAY, 3);
    expect(diag1s.bytes).toBeCloseTo((50 * 40 + 40) * 7 * DAY * row, 0);
    // Safety 1h (730 d): (50 × 6 device + 6 region series) rows per hour.
    const safety1h = safety!.rollups.find((r) => r.resolution === '1h')!;
    expect(safety1h.rows).toBeCloseTo(((50 * 6 + 6) / 3600) * 730 * DAY, 3);
    // Bulk at 1 kHz: still one row per window, so 5s (30 d) = (200 + 4) series / 5 s.
    const bulk5s = bulk!.rollups.find((r) => r.resolution === '5s')!;
    expect(bulk5s.rows).toBeCloseTo(((50 * 4 + 4) / 5) * 30 * DAY, 3);
    // All four resolutions of the bulk tier.
    const bulkRows =
      (200 + 4) * 7 * DAY +
      ((200 + 4) / 5) * 30 * DAY +
      ((200 + 4) / 60) * 90 * DAY +
      ((200 + 4) / 3600) * 730 * DAY;
    expect(bulk!.postgres.rows).toBeCloseTo(bulkRows, 3);
    expect(bulk!.postgres.bytes).toBeCloseTo(bulkRows * row, 0);

    // MongoDB: 30 days of the safety and diagnostic events; bulk is not captured.
    expect(safety!.mongo.documents).toBe(3_000 * 30 * DAY);
    expect(bulk!.mongo.documents).toBe(0);
    expect(total!.mongo.documents).toBe((3_000 + 2_000) * 30 * DAY);

    // Parquet: a year of every event.
    expect(total!.archive.parquetBytes).toBeCloseTo(205_000 * 365 * DAY * parquet, 0);

    // Webhooks: 4 alerts per boat per day; the diagnostic 1m windows pushed as they close.
    expect(safety!.webhook.messagesPerDay).toBeCloseTo(50 * 4, 6);
    expect(diagnostic!.webhook.messagesPerDay).toBeCloseTo(50 * 40 * (DAY / 60), 6);
    expect(total!.export.messagesPerDay).toBe(0);

    // CPU: events/s × ms per 1,000 events / 1e6; webhook deliveries/s × µs / 1e6.
    expect(total!.cpuCores['gateway']).toBeCloseTo(
      (205_000 * unit('gateway_cpu_ms_per_1k_events')) / 1e6,
      9,
    );
    expect(bulk!.cpuCores['aggregator']).toBeCloseTo(
      (200_000 * unit('aggregator_cpu_ms_per_1k_events')) / 1e6,
      9,
    );
    expect(total!.cpuCores['mongodb']).toBeCloseTo(
      (5_000 * unit('mongo_server_cpu_ms_per_1k_documents')) / 1e6,
      9,
    );
    expect(total!.cpuCores['webhook-dispatcher']).toBeCloseTo(
      ((200 + 50 * 40 * (DAY / 60)) / DAY) * unit('webhook_cpu_us_per_delivery') * 1e-6,
      12,
    );
    // Unmeasured unit costs are reported, and their numbers left out rather than guessed.
    for (const name of json.unmeasured) expect(UNITS.entries[name]!.value).toBeNull();
    const docBytes = UNITS.entries['mongo_document_bytes']!.value;
    if (docBytes === null) expect(total!.mongo.bytes).toBeNull();
    else expect(total!.mongo.bytes).toBeCloseTo((3_000 + 2_000) * 30 * DAY * docBytes, 0);
  });

  it('prints tables per tier with the flag form of one group plus --group', async () => {
    const { code, out } = await run([
      '--devices',
      '10',
      '--sensors',
      '2',
      '--hz',
      '100',
      '--tier',
      'safety',
      '--group',
      'bulk:1:1000:nomongo+exports=2',
      '--retention',
      'raw=1d,clean=1d',
    ]);
    expect(code).toBe(0);
    const lines = out.split('\n');
    expect(lines[0]).toMatch(/^tier\s+events\/s\s+raw stream \(1d\)/);
    // safety 10 × 2 × 100 = 2,000 events/s; bulk 10 × 1 × 1,000 = 10,000 with 2 exports each:
    // 10,000 × 2 × 86,400 = 1.73 G export messages a day.
    expect(lines[1]).toMatch(/^safety\s+2,000\s/);
    expect(lines[2]).toMatch(/^bulk\s+10,000\s.*\s1\.73 G$/);
    expect(lines[3]).toMatch(/^total\s+12,000\s/);
    expect(out).toMatch(/CPU cores per service/);
  });

  it('refuses bad input with a usage error', () => {
    expect(() => parseCostOptions(['--tier', 'urgent'])).toThrow(UsageError);
    expect(() => parseCostOptions(['--group', 'bulk:4'])).toThrow(/hz/);
    expect(() => parseCostOptions(['--retention', 'forever=1d'])).toThrow(/unknown key "forever"/);
    expect(() => parseCostOptions(['--push', '2m'])).toThrow(/2m/);
    expect(() => parseCostOptions(['--fleet', FLEET, '--devices', '3'])).toThrow(/--devices/);
  });

  it('defaults to the aggregator’s resolutions and retention', () => {
    const dflt = aggregatorConfig.shape;
    expect(dflt.AGGREGATOR_RESOLUTIONS.parse(undefined)).toEqual(DEFAULT_RESOLUTIONS);
    const retention = Object.fromEntries(
      (dflt.AGGREGATOR_RETENTION.parse(undefined) as string[]).map((e) => {
        const [k, v] = e.split('=');
        return [k, Number(v!.replace('d', '')) * DAY * 1000];
      }),
    );
    expect(retention).toEqual(DEFAULT_RESOLUTION_RETENTION);
  });
});
