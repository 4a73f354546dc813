import { Fleet, type FleetOptions } from './fleet';
import { RunStats, summarise } from './stats';
import { GrpcStreamSender, HttpSender, type Sender } from './transports';

/** Options of {@link runFleet}. */
export interface FleetRunOptions {
  fleet: Partial<FleetOptions>;
  /** `grpc` (bidirectional streams) or `http` (POST /v1/events JSON). @default 'grpc' */
  transport: 'grpc' | 'http';
  /** `host:port` for gRPC, base URL (`http://host:port`) for HTTP. */
  target: string;
  token?: string | undefined;
  /** gRPC streams / concurrent HTTP requests. @default 4 */
  connections?: number;
  /** Batches in flight per gRPC stream. @default 16 */
  maxInFlight?: number;
  /** Run length; until `signal` aborts when undefined. */
  seconds?: number | undefined;
  signal?: AbortSignal;
  /** Receives the live line once a second. */
  onLine?: (line: string) => void;
  /** Generation tick, ms. @default 10 */
  tickMs?: number;
}

export function createSender(
  opts: Pick<FleetRunOptions, 'transport' | 'target' | 'token' | 'connections' | 'maxInFlight'>,
  stats: RunStats,
): Sender {
  const connections = opts.connections ?? 4;
  if (opts.transport === 'http')
    return new HttpSender(`${opts.target.replace(/\/$/, '')}/v1/events`, connections, stats, {
      token: opts.token,
    });
  return new GrpcStreamSender(opts.target, connections, stats, {
    token: opts.token,
    maxInFlight: opts.maxInFlight ?? 16,
  });
}

/** One line of the live view. */
export function liveLine(stats: RunStats, elapsedS: number, prevAccepted: number): string {
  const line = `t=${elapsedS.toFixed(0)}s accepted/s=${stats.eventsAccepted - prevAccepted} acks=${stats.batchesAcked} rejected=${stats.eventsRejected} retries=${stats.retries} failures=${stats.failures} skipped=${stats.skipped} ack-p50=${stats.window.percentile(50).toFixed(2)}ms p99=${stats.window.percentile(99).toFixed(2)}ms`;
  stats.window.reset();
  return line;
}

/** Runs the simulated fleet against a gateway and returns the summary. */
export async function runFleet(opts: FleetRunOptions) {
  const fleet = new Fleet(opts.fleet);
  const stats = new RunStats();
  const sender = createSender(opts, stats);
  const start = Date.now();
  const end = opts.seconds !== undefined ? start + opts.seconds * 1000 : Number.POSITIVE_INFINITY;
  let nextLine = start + 1000;
  let prevAccepted = 0;
  const send = (list: ReturnType<Fleet['tick']>) => {
    for (const b of list) {
      if (b.duplicate) stats.duplicatesSent++;
      if (
        !sender.trySend({
          batchId: b.batch.batchId,
          events: b.batch.events.length,
          batch: b.batch,
          schemaVersion: b.schemaVersion,
        })
      )
        stats.skipped++;
    }
  };
  try {
    while (Date.now() < end && !opts.signal?.aborted) {
      const now = Date.now();
      send(fleet.tick(now));
      if (now >= nextLine) {
        nextLine += 1000;
        opts.onLine?.(liveLine(stats, (now - start) / 1000, prevAccepted));
        prevAccepted = stats.eventsAccepted;
      }
      await new Promise((r) => setTimeout(r, opts.tickMs ?? 10));
    }
    send(fleet.flushAll());
    await sender.drain(10_000);
  } finally {
    sender.close();
  }
  return {
    ...summarise(stats, (Date.now() - start) / 1000),
    offered_events_per_s: Math.round(fleet.eventsPerSecond),
    devices: fleet.deviceIds.length,
  };
}
