import { natsFixture, uniqueId, uniqueStreamName, type NatsFixture } from '@sluice/testing';
import { AsyncPublisher } from './async-publisher';
import { ensureStream } from './provisioning';

describe('AsyncPublisher on real JetStream', () => {
  let nats: NatsFixture;
  beforeAll(async () => {
    nats = await natsFixture();
  });
  afterAll(async () => {
    await nats.cleanup();
  });

  it('resolves once stored, drops a repeated msg id, and carries the headers', async () => {
    const name = nats.track(uniqueStreamName('APUB'));
    const subject = uniqueId('apub');
    await ensureStream(nats.jsm, { name, subjects: [`${subject}.>`], duplicateWindowMs: 60_000 });
    const p = new AsyncPublisher(nats.nc);
    const body = new TextEncoder().encode('x');
    await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        p.publish(`${subject}.a`, body, {
          msgId: `m${i}`,
          contentType: 'text/plain',
          expectStream: name,
        }),
      ),
    );
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        p.publish(`${subject}.a`, body, { msgId: `m${i}`, contentType: 'text/plain' }),
      ),
    );
    expect(p.inFlight).toBe(0);
    expect((await nats.jsm.streams.info(name)).state.messages).toBe(100);
    const first = await nats.jsm.streams.getMessage(name, { seq: 1 });
    expect(first!.header.get('Nats-Msg-Id')).toBe('m0');
    expect(first!.header.get('content-type')).toBe('text/plain');
    await expect(
      p.publish(`${subject}.a`, body, {
        msgId: 'w',
        contentType: 'text/plain',
        expectStream: 'ANOTHER',
      }),
    ).rejects.toThrow(/expected stream/i);
    p.close();
  });

  it('rejects without a stream, after the ack timeout, and on close', async () => {
    const p = new AsyncPublisher(nats.nc, { ackTimeoutMs: 300 });
    const body = new TextEncoder().encode('x');
    await expect(
      p.publish(uniqueId('nostream'), body, { msgId: 'a', contentType: 'text/plain' }),
    ).rejects.toThrow(/acknowledged|no responders|503/i);
    // A plain subscriber takes the message and never answers: only the sweep settles it.
    const silent = uniqueId('silent');
    const sub = nats.nc.subscribe(silent);
    await expect(
      p.publish(silent, body, { msgId: 'b', contentType: 'text/plain' }),
    ).rejects.toThrow(/no JetStream publish ack within 300 ms/);
    const pending = p.publish(silent, body, { msgId: 'c', contentType: 'text/plain' });
    p.close();
    await expect(pending).rejects.toThrow(/closed/);
    sub.unsubscribe();
  });
});
