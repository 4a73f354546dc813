// One device batch through the real pipeline, every service a process started as `npm start` starts
// it (with the instrumentation preload) and exporting to a real OTLP/HTTP receiver: the device's
// trace must reach the webhook receiver, and the instrumented libraries must show up in it.
import { randomBytes, randomUUID } from 'node:crypto';
import type { Topology } from '@sluice/contracts';
import { natsFixture, sleep, uniqueId, waitFor, type NatsFixture } from '@sluice/testing';
import {
  KIND,
  spansOf,
  startReceiver,
  type Hook,
  type Receiver,
  type Service,
  type Span,
} from './processes';
import { startTracedPipeline, type TracedPipeline } from './traced-pipeline';

const ADMIN_TOKEN = randomBytes(24).toString('hex');
const DEVICE_TOKEN = randomBytes(24).toString('hex');
const REGION = 'eu-west';
const PG = '@opentelemetry/instrumentation-pg';
const IOREDIS = '@opentelemetry/instrumentation-ioredis';
const HTTP = '@opentelemetry/instrumentation-http';

/** Runs `fn`; a failure carries the last log lines of every service. */
async function withServiceLogs(
  services: readonly Service[],
  fn: () => Promise<void>,
): Promise<void> {
  try {
    await fn();
  } catch (err) {
    const tails = services.map((s) => `--- ${s.name}\n${s.lines.slice(-15).join('\n')}`).join('\n');
    (err as Error).message += `\n${tails}`;
    throw err;
  }
}

/** `[trace id, parent span id]` of a traceparent header. */
function parseTraceparent(h: Hook | undefined): [string, string] {
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(h?.headers['traceparent'] ?? ''));
  if (!m) throw new Error(`no sampled traceparent in ${JSON.stringify(h?.headers)}`);
  return [m[1]!, m[2]!];
}

describe('one trace from a device batch to the webhook receiver (real processes, real OTLP receiver)', () => {
  let nats: NatsFixture;
  let topo: Topology;
  let pipeline: TracedPipeline | undefined;
  let receiver: Receiver;
  let services: Service[] = [];
  let ingestUrl: string;
  let adminUrl: string;

  beforeAll(async () => {
    nats = await natsFixture();
    receiver = await startReceiver();
    pipeline = await startTracedPipeline(nats, {
      prefix: 'e2etr',
      otlpUrl: receiver.url,
      region: REGION,
      deviceToken: DEVICE_TOKEN,
      adminToken: ADMIN_TOKEN,
      aggregatorEnv: {
        AGGREGATOR_PUBLISH_RESOLUTIONS: '1s',
        AGGREGATOR_ALLOWED_LATENESS: '1s',
        AGGREGATOR_CLOSE_INTERVAL: '200ms',
      },
      dispatcherEnv: { WEBHOOK_RETRY_JITTER: '0' },
    });
    ({ topo, services, ingestUrl, adminUrl } = pipeline);
  }, 120_000);

  afterAll(async () => {
    await pipeline?.stop();
    await receiver?.close();
    await nats?.cleanup();
  }, 60_000);

  it(
    'continues the device traceparent through gateway, dedupe, aggregator and dispatcher to the webhook POST; a Rollup links to the clean message',
    () =>
      withServiceLogs(services, async () => {
        const device = uniqueId('e2e-dev');
        const sensor = uniqueId('temp');
        const subscribe = async (path: string, filter: unknown) => {
          const res = await fetch(`${adminUrl}/v1/subscriptions`, {
            method: 'POST',
            headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
            body: JSON.stringify({ url: `${receiver.url}${path}`, filter }),
          });
          expect(res.status).toBe(201);
        };
        await subscribe('/hook/telemetry', {
          type: 'telemetry',
          sensorTypes: [sensor],
          value: { gt: 100 },
        });
        await subscribe('/hook/rollup', {
          type: 'rollup',
          resolutions: ['1s'],
          sensorTypes: [sensor],
          deviceIds: [device],
        });
        // The matchers reload subscriptions every WEBHOOK_SUBSCRIPTION_REFRESH (300 ms).
        await sleep(2_000);

        // The device's own span: the gateway continues it.
        const traceId = randomBytes(16).toString('hex');
        const deviceSpanId = randomBytes(8).toString('hex');
        const now = Date.now();
        // The second reading moves the region's watermark (minus 1 s lateness) past the first's 1 s
        // window, so the closer publishes that window's Rollup.
        const body = [now - 10_000, now - 4_000].map((t, i) => ({
          event_id: randomUUID(),
          device_id: device,
          event_time: new Date(t).toISOString(),
          sensor_type: sensor,
          value: 150 + i,
          unit: 'C',
          firmware_version: '1.2.3',
          region: REGION,
        }));
        const res = await fetch(`${ingestUrl}/v1/events`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${DEVICE_TOKEN}`,
            'content-type': 'application/json',
            traceparent: `00-${traceId}-${deviceSpanId}-01`,
          },
          body: JSON.stringify(body),
        });
        expect(res.status).toBe(200);

        const telemetryHooks = await waitFor(
          'two telemetry webhooks',
          () => {
            const h = receiver.hooks.filter((x) => x.path === '/hook/telemetry');
            return h.length >= 2 ? h : undefined;
          },
          { timeoutMs: 60_000, intervalMs: 100 },
        );
        const rollupHook = await waitFor(
          'a rollup webhook',
          () => receiver.hooks.find((x) => x.path === '/hook/rollup'),
          { timeoutMs: 60_000, intervalMs: 100 },
        );

        // The webhook receiver sees the device's trace id on every telemetry POST.
        for (const h of telemetryHooks) expect(parseTraceparent(h)[0]).toBe(traceId);
        const [rollupTrace, rollupParent] = parseTraceparent(rollupHook);

        const rawSubject = topo.raw(REGION);
        const cleanSubject = topo.clean(REGION);
        const rollupSubject = topo.rollup('1s', REGION);
        const find = (spans: Span[], service: string, pred: (s: Span) => boolean) =>
          spans.find((s) => s.service === service && pred(s));
        const spans = await waitFor(
          'the spans of every hop',
          () => {
            const all = spansOf(receiver);
            const t = all.filter((s) => s.traceId === traceId);
            const ok =
              find(t, 'ingestion', (s) => s.kind === KIND.SERVER) &&
              find(t, 'dedupe', (s) => s.name === `process ${rawSubject}`) &&
              find(t, 'aggregator', (s) => s.name === `process ${cleanSubject}`) &&
              find(t, 'webhook-dispatcher', (s) => s.name === `process ${cleanSubject}`) &&
              t.filter((s) => s.service === 'webhook-dispatcher' && s.kind === KIND.CLIENT)
                .length >= 2 &&
              find(
                all,
                'aggregator',
                (s) => s.kind === KIND.PRODUCER && s.traceId === rollupTrace,
              ) &&
              find(
                all,
                'webhook-dispatcher',
                (s) => s.kind === KIND.CLIENT && s.traceId === rollupTrace,
              ) &&
              all.some((s) => s.scope === PG && s.service === 'aggregator') &&
              all.some((s) => s.scope === IOREDIS && s.service === 'dedupe') &&
              all.some((s) => s.scope === HTTP && s.service === 'webhook-dispatcher');
            return ok ? all : undefined;
          },
          { timeoutMs: 30_000, intervalMs: 200 },
        );
        const inTrace = spans.filter((s) => s.traceId === traceId);

        // Gateway: ONE server span for the request, continuing the device's span.
        const gatewayServers = spans.filter(
          (s) => s.service === 'ingestion' && s.kind === KIND.SERVER,
        );
        expect(gatewayServers).toHaveLength(1);
        expect(gatewayServers[0]).toMatchObject({
          name: 'POST /v1/events',
          traceId,
          parentSpanId: deviceSpanId,
        });

        // Dedupe continues it; its Redis claims are ioredis spans of the batch that links to it.
        const dedupeProcess = find(inTrace, 'dedupe', (s) => s.name === `process ${rawSubject}`)!;
        const dedupeBatch = find(
          spans,
          'dedupe',
          (s) =>
            s.name.startsWith('handle batch') &&
            s.links.some((l) => l.spanId === dedupeProcess.spanId),
        )!;
        expect(dedupeBatch).toBeDefined();
        expect(
          spans.filter((s) => s.scope === IOREDIS && s.parentSpanId === dedupeBatch.spanId).length,
        ).toBeGreaterThan(0);

        // Aggregator: the clean message continues the trace; the flush (its batch span, linked to it)
        // runs its SQL as pg spans, among them the exactly-once insert of the message id.
        const aggProcess = find(
          inTrace,
          'aggregator',
          (s) => s.name === `process ${cleanSubject}`,
        )!;
        expect(aggProcess.kind).toBe(KIND.CONSUMER);
        const flush = find(
          spans,
          'aggregator',
          (s) =>
            s.name.startsWith('handle batch') &&
            s.links.some((l) => l.traceId === traceId && l.spanId === aggProcess.spanId),
        )!;
        expect(flush).toBeDefined();
        const flushSql = spans
          .filter((s) => s.scope === PG && s.parentSpanId === flush.spanId)
          .map((s) => s.attributes['db.query.text'] ?? '');
        expect(flushSql.some((q) => q.includes('INSERT INTO applied_messages'))).toBe(true);

        // Dispatcher: the matcher continues the trace, each POST is a CLIENT span of it whose id the
        // receiver got as the traceparent's parent.
        const posts = inTrace.filter(
          (s) => s.service === 'webhook-dispatcher' && s.kind === KIND.CLIENT,
        );
        expect(posts.map((s) => s.spanId).sort()).toEqual(
          telemetryHooks.map((h) => parseTraceparent(h)[1]).sort(),
        );
        expect(posts.every((s) => s.scope !== HTTP)).toBe(true);

        // The Rollup: its own trace, started by the closer's PRODUCER span, which links to the clean
        // message (the context dedupe published it with), continued by the dispatcher to the POST.
        const producer = find(
          spans,
          'aggregator',
          (s) => s.kind === KIND.PRODUCER && s.traceId === rollupTrace,
        )!;
        expect(producer.name).toBe(`send ${rollupSubject}`);
        expect(producer.parentSpanId ?? '').toBe('');
        expect(producer.links).toEqual([
          expect.objectContaining({ traceId, spanId: dedupeProcess.spanId }),
        ]);
        expect(
          find(
            spans,
            'webhook-dispatcher',
            (s) => s.traceId === rollupTrace && s.name === `process ${rollupSubject}`,
          ),
        ).toBeDefined();
        expect(
          find(
            spans,
            'webhook-dispatcher',
            (s) => s.kind === KIND.CLIENT && s.traceId === rollupTrace,
          )!.spanId,
        ).toBe(rollupParent);

        // The preload at work beyond the pipeline: the admin API's requests are http SERVER spans with
        // their SQL as children; the instrumentation stays off the gateway's and the ops servers.
        const adminServer = spans.filter(
          (s) => s.scope === HTTP && s.service === 'webhook-dispatcher' && s.kind === KIND.SERVER,
        );
        expect(adminServer.length).toBeGreaterThanOrEqual(2);
        const adminSql = spans.filter(
          (s) => s.scope === PG && adminServer.some((a) => a.spanId === s.parentSpanId),
        );
        expect(adminSql.length).toBeGreaterThan(0);
        const httpSpans = spans.filter((s) => s.scope === HTTP);
        expect(httpSpans.filter((s) => s.service === 'ingestion')).toEqual([]);
        expect(
          httpSpans.filter((s) =>
            /\/(healthz|readyz|metrics)$/.test(
              s.attributes['url.path'] ?? s.attributes['url.full'] ?? '',
            ),
          ),
        ).toEqual([]);
        expect(httpSpans.filter((s) => s.kind === KIND.CLIENT)).toEqual([]);
      }),
    180_000,
  );
});
