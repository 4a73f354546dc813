import { readFileSync } from 'node:fs';
import type { DeviceClient } from '@sluice/device-sdk';
import { cameraSummary, createCameraClient, framePriority } from './cameras';
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
  /**
   * PEM file of the CA the gateway's certificate chains to: gRPC connects with TLS trusting it, HTTP
   * (an `https://` target) trusts it. Default: plaintext gRPC; HTTP per the target's scheme with the
   * system's CAs.
   */
  caFile?: string | undefined;
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

/** The CA certificate (PEM) of `caFile`, or undefined without one. */
function readCa(caFile: string | undefined): string | undefined {
  if (caFile === undefined) return undefined;
  try {
    return readFileSync(caFile, 'utf8');
  } catch (err) {
    throw new Error(`--ca ${caFile}: ${(err as Error).message}`, { cause: err });
  }
}

export function createSender(
  opts: Pick<
    FleetRunOptions,
    'transport' | 'target' | 'token' | 'connections' | 'maxInFlight' | 'caFile'
  >,
  stats: RunStats,
  ca = readCa(opts.caFile),
): Sender {
  const connections = opts.connections ?? 4;
  if (opts.transport === 'http')
    return new HttpSender(`${opts.target.replace(/\/$/, '')}/v1/events`, connections, stats, {
      token: opts.token,
      ...(ca !== undefined ? { tls: { ca } } : {}),
    });
  return new GrpcStreamSender(opts.target, connections, stats, {
    token: opts.token,
    maxInFlight: opts.maxInFlight ?? 16,
    ...(ca !== undefined ? { tls: { ca } } : {}),
  });
}

/** One line of the live view. */
export function liveLine(stats: RunStats, elapsedS: number, prevAccepted: number): string {
  const line = `t=${elapsedS.toFixed(0)}s accepted/s=${stats.eventsAccepted - prevAccepted} acks=${stats.batchesAcked} rejected=${stats.eventsRejected} retries=${stats.retries} failures=${stats.failures} skipped=${stats.skipped} ack-p50=${stats.window.percentile(50).toFixed(2)}ms p99=${stats.window.percentile(99).toFixed(2)}ms`;
  stats.window.reset();
  return line;
}

/**
 * Runs the simulated fleet against a gateway and returns the summary. Over gRPC, the cameras' frames
 * go through the device SDK (one client for the fleet's cameras, priority by {@link framePriority});
 * over HTTP they are batched with the readings.
 */
export async function runFleet(opts: FleetRunOptions) {
  let cameras: DeviceClient | undefined;
  let malformedFrames = 0;
  const ca = readCa(opts.caFile);
  const fleet = new Fleet(
    opts.fleet,
    undefined,
    opts.transport === 'grpc'
      ? {
          onFrame: (event, _device, malformed) => {
            cameras ??= createCameraClient(
              opts.target,
              opts.token,
              ca !== undefined ? { tls: { ca } } : {},
            );
            if (malformed) malformedFrames++;
            cameras.emit(event, framePriority(event));
          },
        }
      : {},
  );
  const stats = new RunStats();
  const sender = createSender(opts, stats, ca);
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
        const cam = cameras?.stats();
        opts.onLine?.(
          liveLine(stats, (now - start) / 1000, prevAccepted) +
            (cam
              ? ` cam-acked=${cam.acked.safety + cam.acked.normal} cam-buffered=${cam.buffered.events}`
              : ''),
        );
        prevAccepted = stats.eventsAccepted;
      }
      await new Promise((r) => setTimeout(r, opts.tickMs ?? 10));
    }
    send(fleet.flushAll());
    await Promise.all([sender.drain(10_000), cameras?.close(10_000)]);
  } finally {
    sender.close();
    await cameras?.close(0);
  }
  return {
    ...summarise(stats, (Date.now() - start) / 1000),
    offered_events_per_s: Math.round(fleet.eventsPerSecond),
    devices: fleet.deviceIds.length,
    cameras: fleet.cameraCount,
    ...(cameras ? cameraSummary(cameras.stats(), malformedFrames) : {}),
  };
}
