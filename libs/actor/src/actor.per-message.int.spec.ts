import { trace } from '@opentelemetry/api';
import { DeadLetter, HEADERS } from '@sluice/contracts';
import { sleep, waitFor } from '@sluice/testing';
import { Registry } from 'prom-client';
import { Outcomes, PoisonMessageError, StoreGate, type Delivery, type Outcome } from './index';
import { actorSuite, testLogger } from './test-fixtures/suite';

/** A store error the test's gate counts as an outage. */
class StoreDownError extends Error {
  override readonly name = 'StoreDownError';
}

/** A promise and the function that resolves it. */
function latch(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

async function counter(registry: Registry, name: string): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return 0;
  return (await m.get()).values.reduce((n, v) => n + v.value, 0);
}

describe('Actor per-message mode on real JetStream', () => {
  const suite = actorSuite('ACTM');
  const { topology, startActor, publish } = suite;
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    cleanups.splice(0).forEach((c) => c());
  });

  async function consumerState(stream: string, durable = 'worker') {
    const info = await suite.nats.jsm.consumers.info(stream, durable);
    return {
      pending: info.num_pending,
      ackPending: info.num_ack_pending,
      redelivered: info.num_redelivered,
    };
  }

  const allSettled = (stream: string) => async () => {
    const s = await consumerState(stream);
    return s.pending === 0 && s.ackPending === 0;
  };

  it('keeps at most maxInFlight messages in the handler and hands out the next as soon as one settles', async () => {
    const t = topology();
    const gates = new Map<string, ReturnType<typeof latch>>();
    let active = 0;
    let maxActive = 0;
    const entered: string[] = [];
    await startActor<string>({
      ...t,
      perMessage: { maxInFlight: 3 },
      decode: (m) => m.string(),
      handleMessage: async (d) => {
        active++;
        maxActive = Math.max(maxActive, active);
        entered.push(d.value);
        const l = latch();
        gates.set(d.value, l);
        await l.promise;
        active--;
        return Outcomes.ack();
      },
    });
    for (let i = 0; i < 8; i++) await publish(t.subject('x'), `m${i}`);
    await waitFor('three in the handler', () => entered.length === 3);
    await sleep(300);
    expect(entered).toHaveLength(3);
    // Releasing one (not the first) frees exactly one slot.
    gates.get(entered[1]!)!.open();
    await waitFor('a fourth handed out', () => entered.length === 4);
    await sleep(200);
    expect(entered).toHaveLength(4);
    for (let i = 0; i < 8; i++) {
      await waitFor('next in the handler', () => entered.length > i);
      gates.get(entered[i]!)!.open();
    }
    await waitFor('all settled', allSettled(t.stream.name));
    expect(maxActive).toBe(3);
    expect([...entered].sort()).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7']);
  });

  it('settles every message on its own: one that never finishes holds only its own slot', async () => {
    const t = topology();
    const stuck = latch();
    cleanups.push(stuck.open);
    const acked: string[] = [];
    const actor = await startActor<string>({
      ...t,
      perMessage: { maxInFlight: 4 },
      decode: (m) => m.string(),
      handleMessage: async (d) => {
        if (d.value === 'slow') await stuck.promise;
        acked.push(d.value);
        return Outcomes.ack();
      },
    });
    await publish(t.subject('x'), 'slow');
    for (let i = 0; i < 20; i++) await publish(t.subject('x'), `fast${i}`);
    await waitFor('every fast message acked on the server while the slow one is held', async () => {
      const s = await consumerState(t.stream.name);
      return s.pending === 0 && s.ackPending === 1;
    });
    expect(acked).toHaveLength(20);
    expect(actor.inFlight).toBe(1);
    stuck.open();
    await waitFor('the slow one acked too', allSettled(t.stream.name));
    expect(acked).toContain('slow');
  });

  it("drains on stop: in-flight messages finish and are acked; prefetched ones are left to ack-wait, not nak'ed, and processed once", async () => {
    const t = topology(2_000);
    const release = latch();
    cleanups.push(release.open);
    const firstRun: number[] = [];
    const entered: number[] = [];
    const first = await startActor<string>({
      ...t,
      perMessage: { maxInFlight: 2 },
      prefetch: { maxMessages: 10 },
      decode: (m) => m.string(),
      handleMessage: async (d) => {
        entered.push(d.seq);
        await release.promise;
        firstRun.push(d.seq);
        return Outcomes.ack();
      },
    });
    for (let i = 0; i < 10; i++) await publish(t.subject('x'), `m${i}`);
    await waitFor('two in the handler', () => entered.length === 2);
    await waitFor(
      'all ten delivered to this client',
      async () => (await consumerState(t.stream.name)).pending === 0,
    );
    const stopped = first.stop(10_000);
    await sleep(200);
    expect(first.state).toBe('draining');
    release.open();
    await stopped;
    expect(first.state).toBe('stopped');
    expect(firstRun).toHaveLength(2);
    // Still awaiting ack (the server would have taken them back at once after a nak), well within the 2 s ack-wait.
    await waitFor(
      'the two in-flight acks applied',
      async () => (await consumerState(t.stream.name)).ackPending === 8,
    );
    expect((await consumerState(t.stream.name)).redelivered).toBe(0);

    const secondRun: Array<{ seq: number; count: number }> = [];
    await startActor<string>({
      ...t,
      perMessage: { maxInFlight: 4 },
      decode: (m) => m.string(),
      handleMessage: async (d) => {
        secondRun.push({ seq: d.seq, count: d.deliveryCount });
        return Outcomes.ack();
      },
    });
    await waitFor('the rest redelivered after ack-wait', () => secondRun.length === 8, {
      timeoutMs: 15_000,
    });
    await waitFor('all settled', allSettled(t.stream.name));
    expect(secondRun.every((s) => s.count === 2)).toBe(true);
    const all = [...firstRun, ...secondRun.map((s) => s.seq)];
    expect(new Set(all).size).toBe(10);
    expect(all).toHaveLength(10);
  });

  it('redelivers a retried message (nak with its delay) and retries one whose handler threw, then acks both', async () => {
    const t = topology();
    const registry = new Registry();
    const seen: Array<{ v: string; count: number }> = [];
    await startActor<string>({
      ...t,
      registry,
      backoff: { scheduleMs: [100], jitter: 0 },
      decode: (m) => m.string(),
      handleMessage: async (d): Promise<Outcome> => {
        seen.push({ v: d.value, count: d.deliveryCount });
        if (d.deliveryCount > 1) return Outcomes.ack();
        if (d.value === 'throws') throw new Error('handler bug');
        return Outcomes.retry(new Error('busy'), 300);
      },
    });
    await publish(t.subject('a'), 'retried');
    await publish(t.subject('a'), 'throws');
    await waitFor('both redelivered', () => seen.filter((s) => s.count === 2).length === 2);
    await waitFor('all settled', allSettled(t.stream.name));
    for (const v of ['retried', 'throws'])
      expect(seen.filter((s) => s.v === v).map((s) => s.count)).toEqual([1, 2]);
    expect(await counter(registry, 'sluice_messages_retried_total')).toBe(2);
    expect(await counter(registry, 'sluice_messages_failed_total')).toBe(1);
    expect(await counter(registry, 'sluice_messages_processed_total')).toBe(2);
  });

  it('dead-letters dead outcomes, malformed messages and exhausted retries with provenance; the rest go on', async () => {
    const t = topology();
    const handled: string[] = [];
    await startActor<{ n: number }>({
      ...t,
      maxDeliver: 2,
      backoff: { scheduleMs: [50], jitter: 0 },
      decode: (m) => {
        const v = JSON.parse(m.string()) as { n?: unknown };
        if (typeof v.n !== 'number') throw new PoisonMessageError('field n: must be a number');
        return { n: v.n };
      },
      handleMessage: async (d) => {
        handled.push(String(d.value.n));
        if (d.value.n === 13) return Outcomes.dead(new PoisonMessageError('unlucky'));
        if (d.value.n === 7) return Outcomes.retry(new Error('downstream 503'));
        return Outcomes.ack();
      },
    });
    const acks = [];
    for (const body of ['{"n":1}', '{"n":13}', 'not json', '{"n":7}', '{"n":2}'])
      acks.push(await publish(t.subject('c'), body));
    const dead = await waitFor('three dead letters', async () => {
      const msgs = await suite.nats.readAll(t.dlq.stream.name);
      return msgs.length === 3 ? msgs : undefined;
    });
    await waitFor('all settled', allSettled(t.stream.name));
    const bySeq = new Map(
      dead.map((m) => [Number(m.headers!.get(HEADERS.DLQ_ORIGINAL_SEQUENCE)), m]),
    );
    expect(bySeq.get(acks[1]!.seq)!.headers!.get(HEADERS.DLQ_ERROR)).toBe('unlucky');
    expect(bySeq.get(acks[2]!.seq)!.headers!.get(HEADERS.DLQ_ERROR_CLASS)).toBe(
      'PoisonMessageError',
    );
    const exhausted = bySeq.get(acks[3]!.seq)!;
    expect(exhausted.headers!.get(HEADERS.DLQ_ERROR_CLASS)).toBe('RetriesExhaustedError');
    expect(exhausted.headers!.get(HEADERS.DLQ_ERROR)).toMatch(/downstream 503/);
    expect(exhausted.headers!.get(HEADERS.DLQ_SERVICE)).toBe('actor-test');
    expect(exhausted.headers!.get(HEADERS.DLQ_ORIGINAL_STREAM)).toBe(t.stream.name);
    expect(new TextDecoder().decode(DeadLetter.decode(exhausted.data).payload)).toBe('{"n":7}');
    expect(handled.filter((n) => n === '7')).toHaveLength(2);
    expect(handled.filter((n) => n === '1' || n === '2').sort()).toEqual(['1', '2']);
  });

  it('with maxDeliver Infinity, never turns retries into dead letters (the handler counts its attempts)', async () => {
    const t = topology();
    const counts: number[] = [];
    await startActor<string>({
      ...t,
      maxDeliver: Number.POSITIVE_INFINITY,
      decode: (m) => m.string(),
      handleMessage: async (d) => {
        counts.push(d.deliveryCount);
        return d.deliveryCount < 12 ? Outcomes.retry(undefined, 10) : Outcomes.ack();
      },
    });
    await publish(t.subject('i'), 'again');
    await waitFor('acked on the 12th delivery', allSettled(t.stream.name), { timeoutMs: 15_000 });
    expect(counts).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(await suite.nats.readAll(t.dlq.stream.name).catch(() => [])).toHaveLength(0);
  });

  it('holds messages through a store outage (no nak, no redelivery) and hands them again once the store answers', async () => {
    const t = topology();
    const registry = new Registry();
    let storeUp = false;
    const gate = new StoreGate({
      store: 'test-store',
      probe: async () => {
        if (!storeUp) throw new StoreDownError('still down');
      },
      isOutage: (e) => e instanceof StoreDownError,
      probeIntervalMs: 50,
      log: testLogger,
      registry,
    });
    cleanups.push(() => gate.close());
    const written: Array<{ v: string; count: number }> = [];
    let calls = 0;
    const actor = await startActor<string>({
      ...t,
      registry,
      gates: [gate],
      perMessage: { maxInFlight: 2 },
      prefetch: { maxMessages: 4 },
      decode: (m) => m.string(),
      handleMessage: async (d) => {
        calls++;
        if (!storeUp) return Outcomes.retry(new StoreDownError('connection refused'));
        written.push({ v: d.value, count: d.deliveryCount });
        return Outcomes.ack();
      },
    });
    for (let i = 0; i < 6; i++) await publish(t.subject('s'), `w${i}`);
    await waitFor('the outage seen', () => !gate.isUp());
    await waitFor('not ready while the store is down', () => !actor.isReady());
    await sleep(500);
    // Nothing new is handed out while the store is down: only the message(s) that met the outage were called.
    expect(calls).toBeLessThanOrEqual(2);
    expect(written).toHaveLength(0);
    expect(await counter(registry, 'sluice_messages_retried_total')).toBe(0);
    storeUp = true;
    await waitFor('all written once the store answers', () => written.length === 6);
    await waitFor('all settled', allSettled(t.stream.name));
    expect(written.every((w) => w.count === 1)).toBe(true);
    expect(new Set(written.map((w) => w.v)).size).toBe(6);
    expect(await counter(registry, 'sluice_messages_retried_total')).toBe(0);
  });

  it("runs the handler in the message's process span, a child of the publisher's trace", async () => {
    const t = topology();
    const seen: Array<{
      traceId: string;
      activeSpanId: string | undefined;
      delivery: Delivery<string>;
    }> = [];
    await startActor<string>({
      ...t,
      decode: (m) => m.string(),
      handleMessage: async (d) => {
        seen.push({
          traceId: trace.getSpanContext(d.context)!.traceId,
          activeSpanId: trace.getActiveSpan()?.spanContext().spanId,
          delivery: d,
        });
        return Outcomes.ack();
      },
    });
    await trace.getTracer('test').startActiveSpan('upstream', async (s) => {
      await publish(t.subject('d'), 'traced');
      s.end();
    });
    await waitFor('handled', () => seen.length === 1);
    const processSpan = await waitFor('process span exported', () =>
      suite.tracing.exporter.getFinishedSpans().find((s) => s.name === `process ${t.subject('d')}`),
    );
    const upstream = suite.tracing.exporter
      .getFinishedSpans()
      .find((s) => s.name === 'upstream' && s.spanContext().traceId === seen[0]!.traceId);
    expect(upstream).toBeDefined();
    expect(processSpan.parentSpanContext?.spanId).toBe(upstream!.spanContext().spanId);
    expect(seen[0]!.activeSpanId).toBe(processSpan.spanContext().spanId);
    expect(processSpan.attributes['sluice.outcome']).toBe('ack');
  });
});
