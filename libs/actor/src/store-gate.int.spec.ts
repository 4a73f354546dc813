import { Writable } from 'node:stream';
import { createLogger, createDeviceHasher } from '@sluice/observability';
import {
  natsFixture,
  uniqueId,
  uniqueStreamName,
  waitFor,
  type NatsFixture,
} from '@sluice/testing';
import { Registry } from 'prom-client';
import { publishDurable } from '@sluice/jetstream';
import { Actor, isConnectionLoss, Outcomes, StoreGate } from './index';

/** A logger whose lines are kept, to count what an outage logs. */
function capturedLogger() {
  const lines: Array<{ msg: string; level: number }> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n'))
        if (l) lines.push(JSON.parse(l) as { msg: string; level: number });
      done();
    },
  });
  const log = createLogger({
    service: 'gate-test',
    level: 'info',
    hashDeviceId: createDeviceHasher('test-key-0123456789'),
    destination: stream,
  });
  return { log, lines };
}

class Outage extends Error {
  override readonly name = 'Outage';
}

describe('StoreGate', () => {
  it('logs one line down and one up however many operations fail, and reopens on the first good probe', async () => {
    const { log, lines } = capturedLogger();
    let storeUp = false;
    const gate = new StoreGate({
      store: 'db',
      probe: async () =>
        void (
          storeUp ||
          (() => {
            throw new Outage('still down');
          })()
        ),
      isOutage: (e) => e instanceof Outage,
      probeIntervalMs: 20,
      log,
      registry: new Registry(),
    });
    expect(gate.failure(new Error('a bad statement'))).toBe(false);
    expect(gate.isUp()).toBe(true);
    for (let i = 0; i < 500; i++) expect(gate.failure(new Outage('refused'))).toBe(true);
    expect(gate.isUp()).toBe(false);
    let released = false;
    const waiting = gate.whenUp().then(() => (released = true));
    await new Promise((r) => setTimeout(r, 200)); // several failed probes
    expect(released).toBe(false);
    storeUp = true;
    await waiting;
    expect(gate.isUp()).toBe(true);
    expect(gate.outages).toBe(1);
    const about = lines.filter((l) => /db /.test(l.msg));
    expect(about.map((l) => l.msg)).toEqual([
      'db unavailable; holding work until it answers again',
      'db available again',
    ]);
    gate.close();
  });

  it('tells a lost connection from a refused statement', () => {
    expect(isConnectionLoss(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(
      isConnectionLoss(
        Object.assign(new Error('the database system is shutting down'), { code: '57P03' }),
      ),
    ).toBe(true);
    expect(isConnectionLoss(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isConnectionLoss(Object.assign(new Error('syntax error'), { code: '42601' }))).toBe(
      false,
    );
    expect(isConnectionLoss(Object.assign(new Error('duplicate key'), { code: '23505' }))).toBe(
      false,
    );
  });
});

describe('Actor with a store gate on real JetStream', () => {
  let nats: NatsFixture;
  beforeAll(async () => {
    nats = await natsFixture();
  });
  afterAll(async () => {
    await nats.cleanup();
  });

  it('holds the batch that met an outage, pulls nothing meanwhile, reruns it at once when the store answers, and is not ready until caught up', async () => {
    const { log } = capturedLogger();
    const registry = new Registry();
    const name = nats.track(uniqueStreamName('GATE'));
    const subject = uniqueId('gate');
    let storeUp = true;
    const gate = new StoreGate({
      store: 'db',
      probe: async () => {
        if (!storeUp) throw new Outage('down');
      },
      isOutage: (e) => e instanceof Outage,
      probeIntervalMs: 50,
      log,
      registry,
    });
    const handled: Array<{ body: string; delivery: number }> = [];
    const actor = new Actor<string>({
      service: 'gate-test',
      nc: nats.nc,
      stream: { name, subjects: [`${subject}.>`] },
      dlq: {
        stream: { name: nats.track(`${name}_DLQ`), subjects: [`${subject}-dlq`] },
        subject: `${subject}-dlq`,
      },
      consumer: { durable: 'worker', ackWaitMs: 3_000 },
      decode: (m) => m.string(),
      handle: async (batch) => {
        if (!storeUp) return batch.map(() => Outcomes.retry(new Outage('write refused')));
        for (const d of batch) handled.push({ body: d.value, delivery: d.deliveryCount });
        return batch.map(() => Outcomes.ack());
      },
      batch: { maxMessages: 1 },
      gates: [gate],
      readyMaxPending: 0,
      logger: log,
      registry,
    });
    await actor.start();
    const publish = (body: string) =>
      publishDurable(nats.js, `${subject}.x`, new TextEncoder().encode(body), {
        msgId: uniqueId('m'),
        contentType: 'text/plain',
      });
    await publish('before');
    await waitFor('first message', () => handled.length === 1);
    storeUp = false;
    await publish('during-0');
    await waitFor('gate down', () => !gate.isUp());
    const heldSince = Date.now();
    for (let i = 1; i < 5; i++) await publish(`during-${i}`);
    await waitFor('gate down', () => !gate.isUp());
    expect(actor.isReady()).toBe(false);
    // Longer than ack-wait: the held message is kept alive (working), not redelivered. (Messages only
    // prefetched are redelivered after ack-wait: this outage is shorter than theirs.)
    await new Promise((r) => setTimeout(r, Math.max(0, heldSince + 4_000 - Date.now())));
    const info = await nats.jsm.consumers.info(name, 'worker');
    expect(info.num_redelivered).toBe(0);
    expect(handled).toHaveLength(1);
    storeUp = true;
    await waitFor('every message', () => handled.length === 6);
    expect(handled.map((h) => h.body).sort()).toEqual([
      'before',
      'during-0',
      'during-1',
      'during-2',
      'during-3',
      'during-4',
    ]);
    expect(handled.every((h) => h.delivery === 1)).toBe(true);
    const retried = await registry.getSingleMetric('sluice_messages_retried_total')?.get();
    expect(retried?.values.reduce((n, v) => n + v.value, 0) ?? 0).toBe(0);
    await waitFor('ready once caught up', () => actor.isReady());
    await actor.stop(5_000);
    gate.close();
  });
});
