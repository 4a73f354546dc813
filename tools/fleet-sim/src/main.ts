// fleet-sim: simulated devices against the ingestion gateway.
//   tsx tools/fleet-sim/src/main.ts --target 127.0.0.1:50051 --token T --devices 50 --seconds 30
// Live line every second on stderr, JSON summary on stdout at the end (--seconds or SIGINT).
import { DEFAULT_FLEET } from './fleet';
import { runFleet, type FleetRunOptions } from './run';

const HELP = `usage: fleet-sim [--transport grpc|http] [--target host:port|http://host:port] [--token T]
  [--devices N] [--sensors N] [--min-hz 1] [--max-hz 1000] [--cameras 0.2] [--camera-hz 5]
  [--v2 0.5] [--duplicates 0] [--out-of-order 0] [--malformed 0] [--regions eu-west,us-east]
  [--batch 500] [--flush-ms 100] [--connections 4] [--in-flight 16] [--seconds N] [--seed 1]`;

export function parseArgs(argv: string[]): FleetRunOptions {
  const flags: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') throw new Error(HELP);
    if (!a.startsWith('--')) throw new Error(`unexpected argument "${a}"\n${HELP}`);
    const [k, inline] = a.slice(2).split('=', 2);
    flags[k!] = inline ?? argv[++i] ?? '';
  }
  const num = (k: string, def: number, min = 0, max = Number.POSITIVE_INFINITY) => {
    if (flags[k] === undefined) return def;
    const v = Number(flags[k]);
    if (!Number.isFinite(v) || v < min || v > max) throw new Error(`--${k} must be a number in [${min}, ${max}], got "${flags[k]}"`);
    return v;
  };
  const transport = (flags['transport'] ?? 'grpc') as 'grpc' | 'http';
  if (transport !== 'grpc' && transport !== 'http') throw new Error('--transport must be grpc or http');
  return {
    transport,
    target: flags['target'] ?? (transport === 'grpc' ? '127.0.0.1:50051' : 'http://127.0.0.1:8080'),
    token: flags['token'] ?? process.env['FLEET_SIM_TOKEN'],
    connections: num('connections', 4, 1, 1024),
    maxInFlight: num('in-flight', 16, 1, 4096),
    seconds: flags['seconds'] !== undefined ? num('seconds', 0, 0.1) : undefined,
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
      regions: (flags['regions'] ?? 'eu-west').split(',').map((s) => s.trim()).filter(Boolean),
      batchSize: num('batch', DEFAULT_FLEET.batchSize, 1, 100_000),
      flushMs: num('flush-ms', DEFAULT_FLEET.flushMs, 1),
      seed: num('seed', 1),
    },
  };
}

async function main() {
  let opts: FleetRunOptions;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  process.once('SIGTERM', () => abort.abort());
  const summary = await runFleet({ ...opts, signal: abort.signal, onLine: (l) => process.stderr.write(`${l}\n`) });
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  process.exit(0);
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
