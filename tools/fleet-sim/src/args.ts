// Command-line parsing of fleet-sim: util.parseArgs in strict mode, so a misspelt flag is an error
// with the usage, never silently ignored.
import { parseArgs as parseCli, type ParseArgsOptionsConfig } from 'node:util';
import { DEFAULT_FLEET } from './fleet';
import type { FleetRunOptions } from './run';

export const USAGE = `usage: fleet-sim [--transport grpc|http] [--target host:port|http(s)://host:port] [--token T]
  [--ca ca.pem]
  [--devices N] [--sensors N] [--min-hz 1] [--max-hz 1000] [--cameras 0.2] [--camera-hz 5]
  [--v2 0.5] [--duplicates 0] [--out-of-order 0] [--malformed 0] [--regions eu-west,us-east]
  [--gps-hz 1] [--batch 500] [--flush-ms 100] [--connections 4] [--in-flight 16] [--seconds N] [--seed 1]
The token defaults to FLEET_SIM_TOKEN. --ca: TLS to the gateway, trusting the CA in that PEM file
(gRPC over TLS; over HTTP the target must be https://). --gps-hz: each boat's lat/lon fixes per
second (0: none).`;

/** A bad command line: the message names the flag; `help` is true for --help (exit 0, not 2). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(
    message: string,
    readonly help = false,
  ) {
    super(message);
  }
}

const NUMERIC = [
  'devices',
  'sensors',
  'min-hz',
  'max-hz',
  'cameras',
  'camera-hz',
  'gps-hz',
  'v2',
  'duplicates',
  'out-of-order',
  'malformed',
  'batch',
  'flush-ms',
  'connections',
  'in-flight',
  'seconds',
  'seed',
] as const;

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  transport: { type: 'string' },
  target: { type: 'string' },
  token: { type: 'string' },
  ca: { type: 'string' },
  regions: { type: 'string' },
  ...Object.fromEntries(NUMERIC.map((k) => [k, { type: 'string' }])),
} as const satisfies ParseArgsOptionsConfig;

/**
 * Parses fleet-sim's arguments. Throws {@link UsageError} on an unknown flag, a positional argument, a
 * flag without its value or a value out of range.
 * @param env where the token comes from when --token is absent (default: process.env)
 */
export function parseArgs(
  argv: string[],
  env: Record<string, string | undefined> = process.env,
): FleetRunOptions {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseCli({
      args: argv,
      options: OPTIONS,
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${USAGE}`);
  }
  if (values['help']) throw new UsageError(USAGE, true);
  const str = (k: string): string | undefined => values[k] as string | undefined;
  const num = (
    k: (typeof NUMERIC)[number],
    def: number,
    min = 0,
    max = Number.POSITIVE_INFINITY,
  ) => {
    const raw = str(k);
    if (raw === undefined) return def;
    const v = raw.trim() === '' ? Number.NaN : Number(raw);
    if (!Number.isFinite(v) || v < min || v > max)
      throw new UsageError(`--${k} must be a number in [${min}, ${max}], got "${raw}"`);
    return v;
  };
  const transport = str('transport') ?? 'grpc';
  if (transport !== 'grpc' && transport !== 'http')
    throw new UsageError(`--transport must be grpc or http, got "${transport}"`);
  const caFile = str('ca');
  if (caFile !== undefined && caFile.trim() === '')
    throw new UsageError('--ca needs the path of a PEM file');
  const target =
    str('target') ??
    (transport === 'grpc'
      ? '127.0.0.1:50051'
      : caFile !== undefined
        ? 'https://127.0.0.1:8080'
        : 'http://127.0.0.1:8080');
  if (transport === 'http' && caFile !== undefined && !/^https:\/\//i.test(target))
    throw new UsageError(`--ca needs an https:// --target over HTTP, got "${target}"`);
  return {
    transport,
    target,
    token: str('token') ?? env['FLEET_SIM_TOKEN'],
    caFile,
    connections: num('connections', 4, 1, 1024),
    maxInFlight: num('in-flight', 16, 1, 4096),
    seconds: str('seconds') !== undefined ? num('seconds', 0, 0.1) : undefined,
    fleet: {
      devices: num('devices', DEFAULT_FLEET.devices, 1, 1_000_000),
      sensorsPerDevice: num('sensors', DEFAULT_FLEET.sensorsPerDevice, 0, 1000),
      minHz: num('min-hz', DEFAULT_FLEET.minHz, 0.001, 1000),
      maxHz: num('max-hz', DEFAULT_FLEET.maxHz, 0.001, 1000),
      cameraFraction: num('cameras', DEFAULT_FLEET.cameraFraction, 0, 1),
      cameraHz: num('camera-hz', DEFAULT_FLEET.cameraHz, 0.001, 120),
      v2Fraction: num('v2', DEFAULT_FLEET.v2Fraction, 0, 1),
      duplicateFraction: num('duplicates', 0, 0, 1),
      outOfOrderFraction: num('out-of-order', 0, 0, 1),
      malformedFraction: num('malformed', 0, 0, 1),
      regions: (str('regions') ?? 'eu-west')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
      batchSize: num('batch', DEFAULT_FLEET.batchSize, 1, 100_000),
      flushMs: num('flush-ms', DEFAULT_FLEET.flushMs, 1),
      seed: num('seed', 1),
      gpsHz: num('gps-hz', 1, 0, 100),
    },
  };
}
