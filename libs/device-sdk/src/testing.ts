// Test-only: the real ingestion gateway as a child process (libs cannot import apps), on a fixed
// loopback port so it can be killed and started again where the client expects it, in a namespace
// of its own on the shared test NATS.
import { createHash } from 'node:crypto';
import { decodeBatch, HEADERS, topology, type Event, type Topology } from '@sluice/contracts';
import {
  freePort,
  spawnService,
  testUrls,
  uniqueId,
  type ChildService,
  type NatsFixture,
} from '@sluice/testing';

/** The bearer token every test gateway accepts, for any device. */
export const TEST_TOKEN = 'device-sdk-test-token';

/** One message of the raw stream: its batch id (credential scope removed) and events. */
export interface StoredBatch {
  batchId: string;
  events: Event[];
}

/** A gateway child process that can be stopped and started again on the same port. */
export interface GatewayChild {
  readonly ns: string;
  readonly t: Topology;
  readonly port: number;
  /** `127.0.0.1:<port>`. */
  readonly target: string;
  readonly running: boolean;
  /** Starts the gateway (again) and waits until it serves. */
  start(): Promise<void>;
  /** Sends `signal` and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Every message of the namespace's TELEMETRY_RAW stream, in stream order. */
  stored(): Promise<StoredBatch[]>;
  /** The lines the current (or last) process printed. */
  lines(): string[];
}

/**
 * A gateway serving region `eu-west` on one shared raw stream (`<NS>_TELEMETRY_RAW`), accepting
 * {@link TEST_TOKEN}; `extra` environment on top. Not started: call `start()`. Its stream is deleted
 * by the fixture's cleanup.
 */
export async function gatewayChild(
  nats: NatsFixture,
  extra: Record<string, string> = {},
): Promise<GatewayChild> {
  const ns = uniqueId('sdk');
  const t = topology(ns);
  const port = await freePort();
  const hash = createHash('sha256').update(TEST_TOKEN).digest('hex');
  const env = {
    NATS_URL: testUrls.nats,
    OPS_PORT: '0',
    LOG_LEVEL: 'info',
    OTEL_SDK_DISABLED: 'true',
    SLUICE_NAMESPACE: ns,
    INGEST_HOST: '127.0.0.1',
    INGEST_GRPC_PORT: String(port),
    INGEST_HTTP_PORT: '0',
    INGEST_REGIONS: 'eu-west',
    INGEST_STREAM_LAYOUT: 'shared',
    INGEST_AUTH_TOKENS: `${hash}=*`,
    INGEST_DRAIN_GRACE: '200ms',
    INGEST_PUBLISH_TIMEOUT: '2s',
    ...extra,
  };
  let proc: ChildService | undefined;
  let alive = false;
  nats.track(t.streams.raw.name);
  return {
    ns,
    t,
    port,
    target: `127.0.0.1:${port}`,
    get running() {
      return alive;
    },
    async start() {
      if (alive) return;
      const p = spawnService('apps/ingestion/src/main.ts', env);
      proc = p;
      alive = true;
      void p.exited.then(() => {
        if (proc === p) alive = false;
      });
      await p.waitForLine(/ingestion running/, 60_000);
    },
    async stop(signal = 'SIGKILL') {
      const p = proc;
      if (!p || !alive) return;
      p.kill(signal);
      await p.exited;
      alive = false;
    },
    async stored() {
      const msgs = await nats.readAll(t.streams.raw.name);
      return msgs.map((m) => ({
        batchId: (m.headers?.get(HEADERS.MSG_ID) ?? '').replace(/^[0-9a-f]{16}:/, ''),
        events: decodeBatch(m.data).events,
      }));
    },
    lines: () => proc?.lines ?? [],
  };
}

/** A telemetry event of device `device` in region eu-west. */
export function reading(id: string, device = 'cam-dev-1', value = 21.5): Event {
  return {
    kind: {
      $case: 'telemetry',
      value: {
        eventId: id,
        deviceId: device,
        eventTime: new Date(),
        sensorType: 'temperature',
        value,
        unit: 'celsius',
        firmwareVersion: '1.0.0',
        region: 'eu-west',
        schemaVersion: 0,
        attributes: {},
      },
    },
  };
}

/** A detection event (one frame of `labels`) of device `device` in region eu-west. */
export function frame(id: string, labels: string[] = ['person'], device = 'cam-dev-1'): Event {
  return {
    kind: {
      $case: 'detection',
      value: {
        eventId: id,
        deviceId: device,
        streamId: 'cam-1',
        frameTime: new Date(),
        region: 'eu-west',
        schemaVersion: 0,
        detections: labels.map((label, i) => ({
          objectId: String(i),
          classId: i,
          label,
          confidence: 0.9,
          trackerId: `trk-${i}`,
          bbox: { left: 0.1, top: 0.1, width: 0.2, height: 0.3 },
        })),
        attributes: { model: 'yolo11n' },
        firmwareVersion: '1.0.0',
      },
    },
  };
}

/** Event ids of stored batches, in stream order. */
export function storedIds(batches: readonly StoredBatch[]): string[] {
  return batches.flatMap((b) => b.events.map((e) => e.kind!.value.eventId));
}
