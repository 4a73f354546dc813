// fleet-sim: simulated devices against the ingestion gateway.
//   tsx tools/fleet-sim/src/main.ts --target 127.0.0.1:50051 --token T --devices 50 --seconds 30
// Live line every second on stderr, JSON summary on stdout at the end (--seconds or SIGINT).
import { parseArgs, UsageError } from './args';
import { runFleet, type FleetRunOptions } from './run';

async function main() {
  let opts: FleetRunOptions;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    (err.help ? console.log : console.error)(err.message);
    process.exit(err.help ? 0 : 2);
  }
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  process.once('SIGTERM', () => abort.abort());
  const summary = await runFleet({
    ...opts,
    signal: abort.signal,
    onLine: (l) => process.stderr.write(`${l}\n`),
  });
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  process.exit(0);
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
