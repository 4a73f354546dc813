import { natsFixture, uniqueId, type NatsFixture } from '@sluice/testing';
import { randomUUID } from 'node:crypto';
import { newDelivery, DeliveryPublisher } from './matcher';
import { webhookTopology } from './names';
import { ensureDeliveriesStream } from './sender';

// The delivery publisher settles on the JetStream PubAck itself (async publish), so it must resolve
// only for a stored (or deduplicated) message and reject everything else.
describe('DeliveryPublisher (real NATS)', () => {
  let nats: NatsFixture;
  const ns = uniqueId('whpub');
  const webhooks = webhookTopology(ns);
  const other = webhookTopology(uniqueId('whpub2'));
  const body = {
    type: 'telemetry.threshold.v1',
    timestamp: new Date().toISOString(),
    data: {},
  } as never;

  beforeAll(async () => {
    nats = await natsFixture();
    nats.track(webhooks.deliveriesStream.name);
    nats.track(other.deliveriesStream.name);
  });

  afterAll(async () => {
    await nats.cleanup();
  });

  it('rejects when no stream takes the subject', async () => {
    const p = new DeliveryPublisher(nats.nc, webhooks);
    await expect(p.publish(newDelivery(randomUUID(), 'e1', body))).rejects.toThrow(
      /acknowledged|no responders|503/i,
    );
    p.close();
  });

  it('resolves once stored, once per webhook-id (a repeat is deduplicated), with the headers', async () => {
    await ensureDeliveriesStream(nats.nc, webhooks, 60_000, 60_000);
    const p = new DeliveryPublisher(nats.nc, webhooks);
    const sub = randomUUID();
    const ds = Array.from({ length: 50 }, (_, i) => newDelivery(sub, `e${i}`, body));
    await Promise.all(ds.map((d) => p.publish(d)));
    await Promise.all(ds.slice(0, 10).map((d) => p.publish(d)));
    // A work-queue stream takes no ordered consumer: read the stored messages by sequence.
    const name = webhooks.deliveriesStream.name;
    expect((await nats.jsm.streams.info(name)).state.messages).toBe(50);
    const stored = await Promise.all(
      Array.from({ length: 50 }, (_, i) => nats.jsm.streams.getMessage(name, { seq: i + 1 })),
    );
    expect(stored.map((m) => m!.header.get('Nats-Msg-Id')).sort()).toEqual(
      ds.map((d) => d.webhookId).sort(),
    );
    expect(new Set(stored.map((m) => m!.header.get('content-type')))).toEqual(
      new Set(['application/json; sluice=webhook-delivery.v1']),
    );
    p.close();
  });

  it('rejects when the subject belongs to another stream than expected', async () => {
    await ensureDeliveriesStream(nats.nc, other, 60_000, 60_000);
    // Publishes on `other`'s subjects while expecting `webhooks`' stream name.
    const p = new DeliveryPublisher(nats.nc, {
      ...other,
      deliveriesStream: webhooks.deliveriesStream,
    });
    await expect(p.publish(newDelivery(randomUUID(), 'x', body))).rejects.toThrow(
      /expected stream/i,
    );
    p.close();
  });

  it('close() rejects what is still pending', async () => {
    const p = new DeliveryPublisher(nats.nc, webhooks);
    const pending = p.publish(newDelivery(randomUUID(), 'late', body));
    p.close();
    await expect(pending).rejects.toThrow(/closed/);
  });
});
