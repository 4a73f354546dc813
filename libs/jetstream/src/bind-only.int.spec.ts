import { nanos, type Msg, type NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  natsFixture,
  testUrls,
  uniqueId,
  uniqueStreamName,
  waitFor,
  type NatsFixture,
} from '@sluice/testing';
import { AsyncPublisher } from './async-publisher';
import { connectNats, isBindOnly } from './connect';
import { ensureConsumer, ensureStream, NotProvisionedError } from './provisioning';

describe('a bind-only connection (NATS_PROVISION=false) on real JetStream', () => {
  let nats: NatsFixture;
  let bound: NatsConnection;
  const prefix = `_INBOX.${uniqueId('bind')}._`;

  beforeAll(async () => {
    nats = await natsFixture();
    bound = await connectNats({
      servers: testUrls.nats,
      name: 'bind-only-test',
      provision: false,
      inboxPrefix: prefix,
    });
  });
  afterAll(async () => {
    await bound.close();
    await nats.cleanup();
  });

  it('never creates a stream or consumer, and names the missing one', async () => {
    expect(isBindOnly(bound)).toBe(true);
    expect(isBindOnly(nats.nc)).toBe(false);
    const jsm = await jetstreamManager(bound);
    const name = nats.track(uniqueStreamName('BIND'));
    const spec = { name, subjects: [`${uniqueId('bind')}.>`] };
    const missing = await ensureStream(jsm, spec).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(NotProvisionedError);
    expect((missing as NotProvisionedError).message).toContain(`stream ${name} does not exist`);
    expect((missing as NotProvisionedError).retriable).toBe(true);
    await expect(nats.jsm.streams.info(name)).rejects.toThrow(/stream not found/i);

    await ensureStream(nats.jsm, spec);
    const noConsumer = await ensureConsumer(jsm, name, { durable: 'd1' }).catch((e: unknown) => e);
    expect(noConsumer).toBeInstanceOf(NotProvisionedError);
    expect((noConsumer as NotProvisionedError).consumer).toBe('d1');
    await expect(nats.jsm.consumers.info(name, 'd1')).rejects.toThrow(/consumer not found/i);
  });

  it('binds to what exists without changing its settings', async () => {
    const jsm = await jetstreamManager(bound);
    const name = nats.track(uniqueStreamName('BIND'));
    const subjects = [`${uniqueId('bind')}.>`];
    await ensureStream(nats.jsm, { name, subjects, maxAgeMs: 3_600_000 });
    await ensureConsumer(nats.jsm, name, { durable: 'd1', ackWaitMs: 10_000 });

    await ensureStream(jsm, { name, subjects, maxAgeMs: 60_000 });
    await ensureConsumer(jsm, name, { durable: 'd1', ackWaitMs: 99_000 });
    expect((await nats.jsm.streams.info(name)).config.max_age).toBe(nanos(3_600_000));
    expect((await nats.jsm.consumers.info(name, 'd1')).config.ack_wait).toBe(nanos(10_000));
  });

  it('receives the acks of the async publisher under its own inbox prefix', async () => {
    const name = nats.track(uniqueStreamName('BIND'));
    const subject = uniqueId('bind');
    await ensureStream(nats.jsm, { name, subjects: [`${subject}.>`] });
    const seen: Msg[] = [];
    const spy = nats.nc.subscribe(`${prefix}.>`, { callback: (_e, m) => void seen.push(m) });
    await nats.nc.flush();
    const p = new AsyncPublisher(bound);
    await p.publish(`${subject}.a`, new Uint8Array([1]), { msgId: 'm1', contentType: 'x' });
    p.close();
    await waitFor('the ack seen under the prefix', () => seen.length > 0);
    expect(seen[0]!.subject.startsWith(`${prefix}.`)).toBe(true);
    spy.unsubscribe();
  });
});
