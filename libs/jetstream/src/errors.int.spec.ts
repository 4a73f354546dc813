import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { testUrls, uniqueId } from '@sluice/testing';
import { classifyNatsError, isRetriableNatsFailure } from './index';

const failure = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (err) {
    return classifyNatsError(err);
  }
  throw new Error('expected a failure');
};

describe('classifyNatsError on real NATS failures', () => {
  it('tells a timeout, no responders, a rejected publish and a closed connection apart', async () => {
    const nc = await connect({ servers: testUrls.nats, name: 'classify-test' });
    const subject = `classify.${uniqueId('s')}`;
    try {
      // Subscribed but never answering: a timeout.
      const sub = nc.subscribe(subject);
      expect(await failure(nc.request(subject, 'x', { timeout: 100 }))).toBe('timeout');
      sub.unsubscribe();
      expect(await failure(nc.request(`${subject}.nobody`, 'x', { timeout: 1_000 }))).toBe(
        'no_responders',
      );
      const js = jetstream(nc, { timeout: 1_000 });
      // No stream captures the subject.
      expect(await failure(js.publish(`${subject}.nostream`, 'x'))).toBe('no_responders');
      expect(classifyNatsError(new Error('timeout while connecting'))).toBe('other');
    } finally {
      await nc.close();
    }
    expect(await failure(nc.request(subject, 'x', { timeout: 100 }))).toBe('disconnected');
    expect(
      ['timeout', 'no_responders', 'disconnected'].every((f) => isRetriableNatsFailure(f as never)),
    ).toBe(true);
    expect(isRetriableNatsFailure('other')).toBe(false);
  });
});
