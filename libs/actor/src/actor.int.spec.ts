import type { JsMsg } from '@nats-io/jetstream';
import { context, trace } from '@opentelemetry/api';
import { DeadLetter, HEADERS } from '@sluice/contracts';
import { spawnService, waitFor } from '@sluice/testing';
import { Registry } from 'prom-client';
import { ensureStream } from '@sluice/jetstream';
import { Outcomes, PoisonMessageError, type Outcome } from './index';
import { actorSuite } from './test-fixtures/suite';

describe('Actor on real JetStream', () => {
  const suite = actorSuite('ACT');
  const { topology, startActor, publish } = suite;

  async function consumerState(stream: string, durable: string) {
    const info = await suite.nats.jsm.consumers.info(stream, durable);
    return { pending: info.num_pending, ackPending: info.num_ack_pending };
  }

  it("never changes an existing stream's settings when it only consumes it; shares one metrics registry", async () => {
    const t = topology();
    await ensureStream(suite.nats.jsm, {
      ...t.stream,
      duplicateWindowMs: 600_000,
      maxAgeMs: 3_600_000,
    });
    const registry = new Registry();
    for (const durable of ['one', 'two']) {
      await startActor<string>({
        ...t,
        consumer: { durable },
        registry,
        decode: (m) => m.string(),
        handle: async (b) => b.map(() => Outcomes.ack()),
      });
    }
    const info = await suite.nats.jsm.streams.info(t.stream.name);
    expect(info.config.duplicate_window).toBe(600_000 * 1e6);
    expect(info.config.max_age).toBe(3_600_000 * 1e6);
    expect(await registry.getSingleMetricAsString('sluice_lifecycle_state')).toMatch(
      /consumer="two"/,
    );
  });

  it('hands over the next batch while one is still in the handler with concurrency 2, settling each with its own outcome', async () => {
    const t = topology();
    const batches: string[][] = [];
    let active = 0;
    let maxActive = 0;
    let releaseFirst!: () => void;
    const firstHeld = new Promise<void>((r) => (releaseFirst = r));
    const actor = await startActor<string>({
      ...t,
      batch: { maxMessages: 2, concurrency: 2 },
      decode: (m) => m.string(),
      handle: async (batch) => {
        active++;
        maxActive = Math.max(maxActive, active);
        batches.push(batch.map((d) => d.value));
        // The first batch stays in the handler until a later one has been handed over.
        if (batches.length === 1) await firstHeld;
        if (batches.length === 2) releaseFirst();
        active--;
        return batch.map((d) =>
          d.value === 'bad' ? Outcomes.dead(new PoisonMessageError('bad')) : Outcomes.ack(),
        );
      },
    });
    for (const body of ['a', 'b', 'c', 'bad']) await publish(t.subject('x'), body);
    await waitFor('all settled', async () => {
      const s = await consumerState(t.stream.name, 'worker');
      return s.pending === 0 && s.ackPending === 0;
    });
    expect(maxActive).toBe(2);
    expect(batches.flat().sort()).toEqual(['a', 'b', 'bad', 'c']);
    expect(await suite.nats.readAll(t.dlq.stream.name)).toHaveLength(1);
    await actor.stop();
    expect(actor.state).toBe('stopped');
  });

  it('with concurrency 2, stop waits for every batch in the handler to settle', async () => {
    const t = topology();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let entered = 0;
    const actor = await startActor<string>({
      ...t,
      batch: { maxMessages: 1, concurrency: 2 },
      decode: (m) => m.string(),
      handle: async (batch) => {
        entered++;
        await held;
        return batch.map(() => Outcomes.ack());
      },
    });
    await publish(t.subject('x'), 'one');
    await publish(t.subject('x'), 'two');
    await waitFor('both batches in the handler', () => entered === 2);
    const stopped = actor.stop(10_000);
    await new Promise((r) => setTimeout(r, 200));
    expect(actor.state).toBe('draining');
    release();
    await stopped;
    expect(actor.state).toBe('stopped');
    // The server applies acks asynchronously even after the client's flush.
    await waitFor('both acks recorded', async () => {
      const s = await consumerState(t.stream.name, 'worker');
      return s.pending === 0 && s.ackPending === 0;
    });
  });

  it('redelivers a retried message after the requested delay, then acks it', async () => {
    const t = await topology();
    const seen: Array<{ at: number; count: number }> = [];
    await startActor<string>({
      ...t,
      decode: (m) => m.string(),
      handle: async (batch) =>
        batch.map((d): Outcome => {
          seen.push({ at: Date.now(), count: d.deliveryCount });
          return d.deliveryCount === 1
            ? Outcomes.retry(new Error('store busy'), 1_500)
            : Outcomes.ack();
        }),
    });
    await publish(t.subject('a'), 'hello');
    await waitFor('second delivery', () => seen.length >= 2);
    expect(seen.map((s) => s.count)).toEqual([1, 2]);
    expect(seen[1]!.at - seen[0]!.at).toBeGreaterThanOrEqual(1_400);
    await waitFor(
      'ack recorded',
      async () => (await consumerState(t.stream.name, 'worker')).ackPending === 0,
    );
  });

  it('dead-letters a message that exhausts its deliveries, with provenance, and loses nothing', async () => {
    const t = await topology();
    let attempts = 0;
    await startActor<string>({
      ...t,
      maxDeliver: 3,
      decode: (m) => m.string(),
      handle: async (batch) =>
        batch.map(() => (attempts++, Outcomes.retry(new Error('downstream 503'), 20))),
    });
    const ack = await publish(t.subject('b'), 'doomed');
    const [letter] = await waitFor('dead letter', async () => {
      const msgs = await suite.nats.readAll(t.dlq.stream.name);
      return msgs.length ? msgs : undefined;
    });
    expect(attempts).toBe(3);
    const h = letter!.headers!;
    expect(h.get(HEADERS.DLQ_SERVICE)).toBe('actor-test');
    expect(h.get(HEADERS.DLQ_ERROR_CLASS)).toBe('RetriesExhaustedError');
    expect(h.get(HEADERS.DLQ_ERROR)).toMatch(/downstream 503/);
    expect(h.get(HEADERS.DLQ_DELIVERY_COUNT)).toBe('3');
    expect(h.get(HEADERS.DLQ_ORIGINAL_SUBJECT)).toBe(t.subject('b'));
    expect(h.get(HEADERS.DLQ_ORIGINAL_STREAM)).toBe(t.stream.name);
    expect(h.get(HEADERS.DLQ_ORIGINAL_SEQUENCE)).toBe(String(ack.seq));
    const body = DeadLetter.decode(letter!.data);
    expect(new TextDecoder().decode(body.payload)).toBe('doomed');
    expect(body.originalStreamSequence).toBe(ack.seq);
    await waitFor('original settled', async () => {
      const s = await consumerState(t.stream.name, 'worker');
      return s.ackPending === 0 && s.pending === 0;
    });
  });

  it('sends malformed payloads to the DLQ without stalling the good ones', async () => {
    const t = await topology();
    const handled: string[] = [];
    await startActor<{ n: number }>({
      ...t,
      decode: (m) => {
        const v = JSON.parse(m.string()) as { n?: unknown };
        if (typeof v.n !== 'number') throw new PoisonMessageError('field n: must be a number');
        return { n: v.n };
      },
      handle: async (batch) => batch.map((d) => (handled.push(String(d.value.n)), Outcomes.ack())),
    });
    for (const body of ['{"n":1}', 'not json', '{"n":2}', '{"n":"x"}', '{"n":3}'])
      await publish(t.subject('c'), body);
    await waitFor('good ones handled', () => handled.length === 3);
    const dead = await waitFor('two dead letters', async () => {
      const msgs = await suite.nats.readAll(t.dlq.stream.name);
      return msgs.length === 2 ? msgs : undefined;
    });
    expect(handled.sort()).toEqual(['1', '2', '3']);
    expect(dead.map((m: JsMsg) => m.headers!.get(HEADERS.DLQ_ERROR_CLASS))).toEqual([
      'PoisonMessageError',
      'PoisonMessageError',
    ]);
    expect(dead[0]!.headers!.get(HEADERS.DLQ_ERROR)).toMatch(/JSON/);
    expect(dead[1]!.headers!.get(HEADERS.DLQ_ERROR)).toBe('field n: must be a number');
    await waitFor(
      'all settled',
      async () => (await consumerState(t.stream.name, 'worker')).ackPending === 0,
    );
  });

  it('continues the publisher trace in the consumer spans', async () => {
    const t = await topology();
    const handlerTraceIds: string[] = [];
    await startActor<string>({
      ...t,
      decode: (m) => m.string(),
      handle: async (batch) =>
        batch.map(
          (d) => (handlerTraceIds.push(trace.getSpanContext(d.context)!.traceId), Outcomes.ack()),
        ),
    });
    const span = trace.getTracer('test').startSpan('device upload');
    await context.with(trace.setSpan(context.active(), span), () =>
      publish(t.subject('d'), 'traced'),
    );
    span.end();
    await waitFor('handled', () => handlerTraceIds.length === 1);
    const { traceId, spanId } = span.spanContext();
    expect(handlerTraceIds[0]).toBe(traceId);
    const processSpan = await waitFor('process span exported', () =>
      suite.tracing.exporter.getFinishedSpans().find((s) => s.name === `process ${t.subject('d')}`),
    );
    expect(processSpan.spanContext().traceId).toBe(traceId);
    expect(processSpan.parentSpanContext?.spanId).toBe(spanId);
  });

  it('drains on SIGTERM: the in-flight batch finishes and is acked, nothing is processed twice after restart', async () => {
    const t = await topology();
    const env = {
      NATS_URL: process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222',
      STREAM: t.stream.name,
      SUBJECT: t.subject('e'),
      DURABLE: 'drainer',
      DLQ_SUBJECT: t.dlq.subject,
      BATCH: '5',
      HANDLE_MS: '1500',
      // Prefetched-but-unhandled messages of the stopped worker come back after ack-wait.
      ACK_WAIT_MS: '3000',
    };
    env.SUBJECT = t.stream.subjects[0]!;
    await ensureStream(suite.nats.jsm, t.stream);
    for (let i = 0; i < 20; i++) await publish(t.subject('e'), `m${i}`);
    const first = spawnService('libs/actor/src/test-fixtures/drain-worker.ts', env);
    await first.waitForLine(/^batch-start /);
    first.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    const processedFirst = first.lines
      .filter((l) => l.startsWith('processed '))
      .map((l) => Number(l.split(' ')[1]));
    expect(processedFirst.length).toBeGreaterThanOrEqual(5);

    const second = spawnService('libs/actor/src/test-fixtures/drain-worker.ts', {
      ...env,
      HANDLE_MS: '0',
    });
    try {
      await waitFor(
        'the rest processed',
        () =>
          second.lines.filter((l) => l.startsWith('processed ')).length >=
          20 - processedFirst.length,
        { timeoutMs: 30_000 },
      );
      await waitFor(
        'all acked',
        async () => {
          const s = await consumerState(t.stream.name, 'drainer');
          return s.ackPending === 0 && s.pending === 0;
        },
        { timeoutMs: 30_000 },
      );
    } finally {
      second.kill('SIGTERM');
      await second.exited;
    }
    const processedSecond = second.lines
      .filter((l) => l.startsWith('processed '))
      .map((l) => Number(l.split(' ')[1]));
    const all = [...processedFirst, ...processedSecond].sort((a, b) => a - b);
    expect(all).toHaveLength(20);
    expect(new Set(all).size).toBe(20);
  });
  it('keeps a byte-bounded prefetch flowing: the client never stalls on a pull its own books made too small', async () => {
    // nats.js counts bytes of a pull the server already closed (after its 100 messages) as still
    // pending, so later pulls shrink below one message and the server answers 409 "message size
    // exceeds maxbytes"; without a re-pull the consumer waits two missed heartbeats (~30 s).
    const t = topology();
    const body = 'x'.repeat(350_000);
    const received = new Set<string>();
    await startActor<string>({
      ...t,
      prefetch: { maxBytes: 1024 * 1024 },
      batch: { maxMessages: 4 },
      decode: (m) => m.headers?.get('Nats-Msg-Id') ?? '',
      handle: async (b) => {
        for (const d of b) received.add(d.value);
        return b.map(() => Outcomes.ack());
      },
    });
    const total = 120;
    for (let i = 0; i < total; i++) await publish(t.subject('x'), body, `m-${i}`);
    // 120 messages of 350 kB take about a second here; one stall takes 30 s.
    await waitFor('every message handled', async () => received.size === total, {
      timeoutMs: 15_000,
    });
  });
});
