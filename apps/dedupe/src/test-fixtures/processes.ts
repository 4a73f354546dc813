// Shared setup of the process-level dedupe tests (exactness.int.spec.ts, recovery.int.spec.ts): a
// unique namespace, dedupe (and the aggregator) as real child processes, known readings published as
// raw EventBatch messages, and small readers of the clean stream, consumers and /metrics.
import { publishDurable } from '@sluice/jetstream';
import {
  CONTENT_TYPES,
  decodeBatch,
  encodeBatch,
  eventId,
  TelemetryEvent,
  topology,
  type Event,
  type Topology,
} from '@sluice/contracts';
import {
  spawnService,
  testUrls,
  uniqueId,
  waitFor,
  type ChildService,
  type NatsFixture,
} from '@sluice/testing';
import Redis from 'ioredis';

export const DEDUPE_MAIN = 'apps/dedupe/src/main.ts';
/** Spawned by path, never imported (module boundaries). */
export const AGGREGATOR_MAIN = 'apps/aggregator/src/main.ts';

/** One telemetry reading as the tests generate it; re-sending it re-sends the same event. */
export interface Reading {
  id: string;
  device: string;
  region: string;
  sensor: string;
  /** Event time, ms. */
  t: number;
  value: number;
}

export function toEvent(r: Reading): Event {
  return {
    kind: {
      $case: 'telemetry',
      value: TelemetryEvent.fromPartial({
        eventId: r.id,
        deviceId: r.device,
        region: r.region,
        sensorType: r.sensor,
        value: r.value,
        unit: '1',
        eventTime: new Date(r.t),
        schemaVersion: 1,
      }),
    },
  };
}

/** A unique namespace whose streams the fixture deletes on cleanup. */
export function newTopology(nats: NatsFixture, prefix: string): Topology {
  const t = topology(uniqueId(prefix));
  for (const s of Object.values(t.streams)) nats.track(s.name);
  return t;
}

/** Publishes one raw EventBatch of `readings` (one region) with `Nats-Msg-Id = batchId`. */
export async function publishRaw(
  nats: NatsFixture,
  t: Topology,
  readings: readonly Reading[],
  batchId = uniqueId('b'),
): Promise<string> {
  const region = readings[0]!.region;
  await publishDurable(
    nats.js,
    t.raw(region),
    encodeBatch({ batchId, events: readings.map(toEvent) }),
    { msgId: batchId, contentType: CONTENT_TYPES.EVENT_BATCH },
  );
  return batchId;
}

/** Every event id in the clean stream, one entry per published copy. */
export async function cleanIds(nats: NatsFixture, t: Topology): Promise<string[]> {
  const msgs = await nats.readAll(t.streams.clean.name).catch(() => []);
  return msgs.flatMap((m) => decodeBatch(m.data).events.map(eventId));
}

/** Ids that occur more than once. */
export function repeated(ids: readonly string[]): string[] {
  const seen = new Set<string>();
  const twice = new Set<string>();
  for (const id of ids) (seen.has(id) ? twice : seen).add(id);
  return [...twice].sort();
}

/** Waits until a durable consumer has delivered and settled everything its stream holds. */
export async function consumerSettled(
  nats: NatsFixture,
  stream: string,
  durable: string,
  timeoutMs = 60_000,
): Promise<void> {
  await waitFor(
    `${durable} on ${stream} settled`,
    async () => {
      const [c, s] = await Promise.all([
        nats.jsm.consumers.info(stream, durable),
        nats.jsm.streams.info(stream),
      ]);
      return (
        c.num_pending === 0 && c.num_ack_pending === 0 && c.delivered.stream_seq >= s.state.last_seq
      );
    },
    { timeoutMs, intervalMs: 200 },
  );
}

/** Children of one test: stopped (SIGTERM, then SIGKILL after 10 s) by {@link stopAll}. */
export class Children {
  private readonly list: ChildService[] = [];

  spawn(entry: string, env: Record<string, string>): ChildService {
    const c = spawnService(entry, {
      OTEL_SDK_DISABLED: 'true',
      OPS_PORT: '0',
      OPS_HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      ...env,
    });
    this.list.push(c);
    return c;
  }

  async stopAll(): Promise<void> {
    await Promise.all(
      this.list.splice(0).map(async (c) => {
        if (c.proc.exitCode !== null || c.proc.signalCode !== null) return;
        c.kill('SIGTERM');
        const timer = setTimeout(() => c.kill('SIGKILL'), 10_000);
        await c.exited;
        clearTimeout(timer);
      }),
    );
  }
}

/** Environment of a dedupe process on `redisUrl` in `t`'s namespace (short re-seed fence for tests). */
export function dedupeEnv(
  t: Topology,
  redisUrl: string,
  env: Record<string, string> = {},
): Record<string, string> {
  return {
    NATS_URL: testUrls.nats,
    REDIS_URL: redisUrl,
    SLUICE_NAMESPACE: t.namespace,
    DEDUPE_KEY_PREFIX: `${t.namespace}:`,
    DEDUPE_RESEED_FENCE: '1s',
    DEDUPE_BACKOFF: '100ms,200ms,500ms',
    ...env,
  };
}

/** The ops port a service logged in its `<service> running` line. */
export async function opsPort(
  child: ChildService,
  service: string,
  timeoutMs = 60_000,
): Promise<number> {
  const line = await child.waitForLine(new RegExp(`${service} running`), timeoutMs);
  return (JSON.parse(line) as { opsPort: number }).opsPort;
}

/** Sum of a metric's samples (Prometheus text from `/metrics`) whose labels include `match`. */
export async function metricSum(
  port: number,
  name: string,
  match: Record<string, string> = {},
): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels = Object.fromEntries(
      [...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]),
    );
    if (Object.entries(match).every(([k, v]) => labels[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

/** A short-lived admin connection to a (private) Redis; `quit()` closes it. */
export async function redisAdmin(url: string): Promise<Redis> {
  const r = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    retryStrategy: () => null,
  });
  await r.connect();
  return r;
}

/** Restarts Redis empty the way an operator's crash or a non-persistent deploy does: `SHUTDOWN NOSAVE`. */
export async function shutdownNosave(url: string): Promise<void> {
  const r = await redisAdmin(url);
  // The server closes the connection instead of answering.
  await r.call('SHUTDOWN', 'NOSAVE').catch(() => undefined);
  r.disconnect();
}

/** INFO field as a number. */
export async function redisInfo(r: Redis, section: string, field: string): Promise<number> {
  return Number(new RegExp(`${field}:(\\d+)`).exec(await r.info(section))?.[1] ?? NaN);
}
