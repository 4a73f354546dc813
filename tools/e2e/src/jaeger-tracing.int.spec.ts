// The services as `npm start` runs them, exporting their spans to a real Jaeger v2 (built once by
// scripts/lib.sh build_jaeger, started privately on loopback): one device batch must be ONE trace in
// Jaeger, found through its HTTP query API by service as an operator would find it, with the gateway,
// dedupe, aggregator and dispatcher spans in it down to the webhook POST.
import { randomBytes, randomUUID } from 'node:crypto';
import {
  natsFixture,
  sleep,
  startJaeger,
  uniqueId,
  waitFor,
  type JaegerSpan,
  type JaegerTrace,
  type NatsFixture,
  type PrivateJaeger,
} from '@sluice/testing';
import type { Topology } from '@sluice/contracts';
import { startReceiver, type Receiver, type Service } from './processes';
import { startTracedPipeline, type TracedPipeline } from './traced-pipeline';

const ADMIN_TOKEN = randomBytes(24).toString('hex');
const DEVICE_TOKEN = randomBytes(24).toString('hex');
const REGION = 'eu-west';
const SERVICES = ['ingestion', 'dedupe', 'aggregator', 'webhook-dispatcher'] as const;

describe('one trace per device batch in Jaeger v2 (real processes, real Jaeger, its HTTP query API)', () => {
  let jaeger: PrivateJaeger;
  let nats: NatsFixture;
  let topo: Topology;
  let pipeline: TracedPipeline | undefined;
  let receiver: Receiver;
  let services: Service[] = [];
  let ingestUrl: string;
  let adminUrl: string;

  beforeAll(async () => {
    // The first run on a machine builds Jaeger (minutes); .ci/run builds it before the tests.
    jaeger = await startJaeger();
    nats = await natsFixture();
    receiver = await startReceiver();
    pipeline = await startTracedPipeline(nats, {
      prefix: 'e2ejg',
      otlpUrl: jaeger.otlpHttpUrl,
      region: REGION,
      deviceToken: DEVICE_TOKEN,
      adminToken: ADMIN_TOKEN,
    });
    ({ topo, services, ingestUrl, adminUrl } = pipeline);
  }, 45 * 60_000);

  afterAll(async () => {
    await pipeline?.stop();
    await jaeger?.stop();
    await receiver?.close();
    await nats?.cleanup();
  }, 60_000);

  it('finds the batch by service as one trace spanning gateway → dedupe → aggregator → webhook POST', async () => {
    try {
      const device = uniqueId('jg-dev');
      const sensor = uniqueId('temp');
      const sub = await fetch(`${adminUrl}/v1/subscriptions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          url: `${receiver.url}/hook`,
          filter: { type: 'telemetry', sensorTypes: [sensor] },
        }),
      });
      expect(sub.status).toBe(201);
      await sleep(1_500); // the matchers reload subscriptions every 300 ms

      const traceId = randomBytes(16).toString('hex');
      const deviceSpanId = randomBytes(8).toString('hex');
      const res = await fetch(`${ingestUrl}/v1/events`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${DEVICE_TOKEN}`,
          'content-type': 'application/json',
          traceparent: `00-${traceId}-${deviceSpanId}-01`,
        },
        body: JSON.stringify([
          {
            event_id: randomUUID(),
            device_id: device,
            event_time: new Date().toISOString(),
            sensor_type: sensor,
            value: 42,
            unit: 'C',
            firmware_version: '1.2.3',
            region: REGION,
          },
        ]),
      });
      expect(res.status).toBe(200);
      const hook = await waitFor('the webhook POST', () => receiver.hooks[0], {
        timeoutMs: 60_000,
        intervalMs: 100,
      });
      const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(hook.headers['traceparent']));
      expect(m?.[1]).toBe(traceId);
      const postSpanId = m![2]!;

      // As an operator finds it: the gateway's traces, by service name, through the query API.
      const isComplete = (t: JaegerTrace) =>
        SERVICES.every((s) => t.spans.some((x) => x.service === s)) &&
        t.spans.some((x) => x.spanID === postSpanId);
      const found = await waitFor(
        'the trace in Jaeger with every service and the POST span',
        async () => {
          const t = (await jaeger.traces('ingestion')).find((x) => x.traceID === traceId);
          return t && isComplete(t) ? t : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 250 },
      );
      expect(await jaeger.services()).toEqual(expect.arrayContaining([...SERVICES]));
      // The same trace by id, whole.
      const byId = await jaeger.trace(traceId);
      expect(byId?.spans.length).toBe(found.spans.length);

      const spans = new Map<string, JaegerSpan>(found.spans.map((s) => [s.spanID, s]));
      // The gateway's server span continues the device's span.
      const gateway = found.spans.find((s) => s.service === 'ingestion' && s.kind === 'server');
      expect(gateway).toMatchObject({
        operationName: 'POST /v1/events',
        parentSpanID: deviceSpanId,
      });
      // The webhook POST is a client span of the dispatcher whose parent chain, through every
      // service, reaches the gateway's span: one causal trace, not spans that merely share an id.
      const post = spans.get(postSpanId)!;
      expect(post).toMatchObject({ service: 'webhook-dispatcher', kind: 'client' });
      const chain: string[] = [];
      for (let s: JaegerSpan | undefined = post; s; s = spans.get(s.parentSpanID ?? '')) {
        if (chain.at(-1) !== s.service) chain.push(s.service);
        if (s === gateway) break;
      }
      expect(chain.at(-1)).toBe('ingestion');
      expect(chain).toEqual(expect.arrayContaining(['webhook-dispatcher', 'dedupe', 'ingestion']));
      // The aggregator's processing of the clean message is in the same trace.
      expect(
        found.spans.some(
          (s) => s.service === 'aggregator' && s.operationName === `process ${topo.clean(REGION)}`,
        ),
      ).toBe(true);
    } catch (err) {
      const tails = [
        ...services.map((s) => ({ name: s.name, lines: s.lines })),
        { name: 'jaeger', lines: jaeger.lines },
      ]
        .map((s) => `--- ${s.name}\n${s.lines.slice(-15).join('\n')}`)
        .join('\n');
      (err as Error).message += `\n${tails}`;
      throw err;
    }
  }, 120_000);
});
