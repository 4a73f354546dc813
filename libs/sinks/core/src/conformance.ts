// The conformance suite every sink's integration spec runs against its real destination:
// `describeSinkConformance('mongodb', factory)`. It needs jest globals, real NATS JetStream and the
// factory's real store; nothing is mocked.
import {
  HEADERS,
  decodeBatch,
  decodeDeadLetter,
  encodeBatch,
  topology,
  type Event,
} from '@sluice/contracts';
import { createDeviceHasher, createLogger } from '@sluice/observability';
import { natsFixture, uniqueId, waitFor, type NatsFixture } from '@sluice/testing';
import { publishDurable } from '@sluice/jetstream';
import { CONTENT_TYPES } from '@sluice/contracts';
import { Registry } from 'prom-client';
import { EVENT_DLQ_HEADERS } from './dead-letter';
import { SINK_METRICS } from './metrics';
import { SinkWriteTimeoutError } from './errors';
import { SinkRunner } from './runner';
import type { Sink, SinkRecord } from './sink';
import { telemetryEvent } from './test-events';

/** What a sink's spec provides for one conformance test: a fresh destination and ways to look at it. */
export interface SinkHarness {
  /** An unconnected sink writing to this harness's own destination (database, bucket, ...). */
  sink: Sink;
  /** Ids of every stored record, one entry per stored copy (duplicates must show). */
  storedIds(): Promise<string[]>;
  /** Makes the destination unreachable for the sink (e.g. a tcpProxy cut), and reachable again. */
  outage: { cut(): void | Promise<void>; restore(): void | Promise<void> };
  /** An event the real destination refuses (verified against the server, not simulated). */
  poisonEvent(id: string): Event;
  /** Drops the destination and closes everything the harness opened. */
  cleanup(): Promise<void>;
}

export type SinkHarnessFactory = () => Promise<SinkHarness>;

const logger = createLogger({
  service: 'sink-conformance',
  level: 'silent',
  hashDeviceId: createDeviceHasher('conformance-key-0123'),
});

/** Records as the runner would build them, for direct `write()` calls. */
export function recordsOf(events: Event[], seq = 1): SinkRecord[] {
  return events.map((event, index) => ({
    id: event.kind!.value.eventId,
    event,
    source: {
      stream: 'CONFORMANCE',
      seq,
      subject: 'telemetry.clean.eu-west',
      index,
      batchId: `b-${seq}`,
      publishedAt: new Date(),
      deliveryCount: 1,
    },
  }));
}

const sorted = (a: string[]) => [...a].sort();

export function describeSinkConformance(name: string, factory: SinkHarnessFactory): void {
  describe(`sink conformance: ${name}`, () => {
    let nats: NatsFixture;
    let harness: SinkHarness | undefined;
    let runner: SinkRunner | undefined;

    beforeAll(async () => {
      nats = await natsFixture();
    });
    afterEach(async () => {
      await runner?.stop(5_000).catch(() => undefined);
      runner = undefined;
      await harness?.cleanup();
      harness = undefined;
    });
    afterAll(async () => {
      await nats.cleanup();
    });

    async function setup() {
      harness = await factory();
      return harness;
    }

    /** A runner on a private namespace, tuned for quick retries. */
    async function startRunner(h: SinkHarness, sink: Sink = h.sink) {
      const ns = uniqueId('conf');
      const topo = topology(ns);
      nats.track(topo.streams.clean.name);
      nats.track(topo.streams.dlq.name);
      const registry = new Registry();
      runner = new SinkRunner({
        sink,
        service: 'conformance',
        nc: nats.nc,
        stream: topo.streams.clean,
        filterSubjects: [topo.filters.clean],
        dlq: { stream: topo.streams.dlq, subject: topo.dlq('conformance') },
        durable: `conf-${name}`,
        ackWaitMs: 10_000,
        batch: { maxMessages: 8, lingerMs: 10 },
        retry: { initialMs: 50, maxMs: 500, budgetMs: 1_500 },
        backoff: { scheduleMs: [200, 500, 1_000], jitter: 0.1 },
        healthIntervalMs: 200,
        logger,
        registry,
      });
      await runner.start();
      let n = 0;
      const publish = (events: Event[], msgId = uniqueId('raw')) =>
        publishDurable(
          nats.js,
          topo.clean('eu-west'),
          encodeBatch({ batchId: `batch-${++n}`, events }),
          { msgId, contentType: CONTENT_TYPES.EVENT_BATCH },
        );
      const settled = () =>
        waitFor(
          'consumer settled',
          async () => {
            const info = await nats.jsm.consumers.info(topo.streams.clean.name, `conf-${name}`);
            return info.num_pending === 0 && info.num_ack_pending === 0;
          },
          { timeoutMs: 30_000 },
        );
      const writeErrors = async () => {
        const m = await registry.getSingleMetric(SINK_METRICS.writeErrors)!.get();
        return m.values.reduce((s, v) => s + v.value, 0);
      };
      return { topo, publish, settled, writeErrors, registry };
    }

    const events = (prefix: string, n: number) =>
      Array.from({ length: n }, (_, i) =>
        telemetryEvent(`${prefix}-${i}`, { deviceId: `dev-${i % 3}` }),
      );

    it('opens and closes idempotently, and can open again', async () => {
      const h = await setup();
      await h.sink.connect();
      await h.sink.connect();
      expect((await h.sink.health()).ok).toBe(true);
      expect((await h.sink.write(recordsOf([telemetryEvent('oc-1')]))).rejected).toEqual([]);
      await h.sink.close(Date.now() + 5_000);
      await h.sink.close(Date.now() + 5_000);
      expect((await h.sink.health()).ok).toBe(false);
      await h.sink.connect();
      expect((await h.sink.write(recordsOf([telemetryEvent('oc-2')], 2))).rejected).toEqual([]);
      expect(sorted(await h.storedIds())).toEqual(['oc-1', 'oc-2']);
      await h.sink.close(Date.now() + 5_000);
    });

    it('writes a batch: every record stored once', async () => {
      const h = await setup();
      await h.sink.connect();
      const batch = events('bw', 40);
      const result = await h.sink.write(recordsOf(batch));
      expect(result.rejected).toEqual([]);
      expect(sorted(await h.storedIds())).toEqual(sorted(batch.map((e) => e.kind!.value.eventId)));
      await h.sink.close(Date.now() + 5_000);
    });

    it('is idempotent under redelivery: the same records again add nothing', async () => {
      const h = await setup();
      await h.sink.connect();
      const batch = events('rd', 20);
      await h.sink.write(recordsOf(batch));
      // A redelivery of the whole batch, then one overlapping the next batch.
      expect((await h.sink.write(recordsOf(batch))).rejected).toEqual([]);
      const next = [...batch.slice(10), ...events('rd2', 5)];
      expect((await h.sink.write(recordsOf(next, 2))).rejected).toEqual([]);
      const ids = await h.storedIds();
      expect(ids).toHaveLength(25);
      expect(new Set(ids).size).toBe(25);

      // Through the runner: the same clean batches published again under new message ids (a
      // redelivery after the duplicate window) change nothing.
      const r = await startRunner(h);
      const again = events('rd3', 6);
      await r.publish(again.slice(0, 3));
      await r.publish(again.slice(3));
      await waitFor('first delivery stored', async () => (await h.storedIds()).length === 31);
      await r.publish(again.slice(0, 3));
      await r.publish(again.slice(3));
      await r.settled();
      const after = await h.storedIds();
      expect(after).toHaveLength(31);
      expect(new Set(after).size).toBe(31);
    });

    it('reconnects without loss or duplicates when the destination goes away and comes back', async () => {
      const h = await setup();
      const r = await startRunner(h);
      const before = events('rc-a', 12);
      const during = events('rc-b', 12);
      for (let i = 0; i < before.length; i += 4) await r.publish(before.slice(i, i + 4));
      await waitFor(
        'before the outage stored',
        async () => (await h.storedIds()).length === before.length,
      );
      await h.outage.cut();
      for (let i = 0; i < during.length; i += 4) await r.publish(during.slice(i, i + 4));
      await waitFor('writes failing during the outage', async () => (await r.writeErrors()) > 0, {
        timeoutMs: 30_000,
      });
      // Past the in-process retries the destination counts as down: the batch is held, nothing pulled.
      await waitFor('the destination seen as down', () => !runner!.gate.isUp(), {
        timeoutMs: 30_000,
      });
      expect(runner!.isReady()).toBe(false);
      await h.outage.restore();
      const all = sorted([...before, ...during].map((e) => e.kind!.value.eventId));
      await waitFor(
        'everything stored after the outage',
        async () => (await h.storedIds()).length >= all.length,
        { timeoutMs: 60_000 },
      );
      await r.settled();
      expect(sorted(await h.storedIds())).toEqual(all);
      expect(await nats.readAll(r.topo.streams.dlq.name)).toHaveLength(0);
      // Seen as one outage of the destination (held, logged once), and over.
      expect(runner!.gate.outages).toBeGreaterThanOrEqual(1);
      expect(runner!.gate.isUp()).toBe(true);
    });

    it('does not take a failing batch for an outage while the destination answers its health check', async () => {
      const h = await setup();
      // The real sink, but its first writes time out (a retriable failure of the batch, not the destination).
      let failing = 3;
      const flaky: Sink = {
        name: h.sink.name,
        connect: () => h.sink.connect(),
        write: (records) =>
          failing-- > 0 ? Promise.reject(new SinkWriteTimeoutError(1)) : h.sink.write(records),
        isRetriable: (e) => h.sink.isRetriable(e),
        close: (deadline) => h.sink.close(deadline),
        health: () => h.sink.health(),
      };
      const r = await startRunner(h, flaky);
      const batch = events('fl', 6);
      await r.publish(batch);
      await waitFor(
        'stored after the retries',
        async () => (await h.storedIds()).length === batch.length,
        { timeoutMs: 30_000 },
      );
      await r.settled();
      expect(sorted(await h.storedIds())).toEqual(sorted(batch.map((e) => e.kind!.value.eventId)));
      expect(await r.writeErrors()).toBeGreaterThanOrEqual(3);
      expect(runner!.gate.outages).toBe(0);
    });

    it('sends a record the destination refuses to the DLQ, alone, and stores the rest', async () => {
      const h = await setup();
      const r = await startRunner(h);
      const good = events('pz', 4);
      const poison = h.poisonEvent('pz-poison');
      const ack = await r.publish([good[0]!, poison, good[1]!]);
      await r.publish([good[2]!, good[3]!]);
      await waitFor('good records stored', async () => (await h.storedIds()).length === 4);
      const [letter, ...more] = await waitFor('one dead letter', async () => {
        const msgs = await nats.readAll(r.topo.streams.dlq.name);
        return msgs.length ? msgs : undefined;
      });
      await r.settled();
      expect(more).toHaveLength(0);
      expect(sorted(await h.storedIds())).toEqual(sorted(good.map((e) => e.kind!.value.eventId)));
      const hd = letter!.headers!;
      expect(hd.get(HEADERS.DLQ_ORIGINAL_SEQUENCE)).toBe(String(ack.seq));
      expect(hd.get(EVENT_DLQ_HEADERS.EVENT_ID)).toBe('pz-poison');
      expect(hd.get(EVENT_DLQ_HEADERS.EVENT_INDEX)).toBe('1');
      expect(hd.get(HEADERS.DLQ_ERROR)!.length).toBeGreaterThan(0);
      const dl = decodeDeadLetter(letter!.data);
      const payload = decodeBatch(dl.payload);
      expect(payload.events).toHaveLength(1);
      expect(payload.events[0]!.kind!.value.eventId).toBe('pz-poison');
      expect(dl.errorMessage.length).toBeGreaterThan(0);
      expect((await nats.readAll(r.topo.streams.dlq.name)).length).toBe(1);
    });
  });
}
