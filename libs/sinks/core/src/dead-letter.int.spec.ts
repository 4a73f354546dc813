import { encodeBatch, topology } from '@sluice/contracts';
import { publishDeadLetter } from '@sluice/jetstream';
import { natsFixture, uniqueId, type NatsFixture } from '@sluice/testing';
import { publishEventDeadLetter } from './dead-letter';
import { telemetryEvent } from './test-events';

describe('dead letters on the real DLQ stream', () => {
  let nats: NatsFixture;
  beforeAll(async () => {
    nats = await natsFixture();
  });
  afterAll(async () => {
    await nats.cleanup();
  });

  it('keep one letter per service that gave up, and one per service across redeliveries', async () => {
    const topo = topology(uniqueId('dlq'));
    for (const s of Object.values(topo.streams)) nats.track(s.name);
    await nats.jsm.streams.add({
      name: topo.streams.clean.name,
      subjects: [...topo.streams.clean.subjects],
    });
    await nats.jsm.streams.add({
      name: topo.streams.dlq.name,
      subjects: [...topo.streams.dlq.subjects],
    });
    const batch = { batchId: 'b1', events: [telemetryEvent('e1'), telemetryEvent('e2')] };
    await nats.js.publish(topo.clean('eu-west'), encodeBatch(batch));
    const [msg] = await nats.readAll(topo.streams.clean.name);
    const error = new Error('refused');
    for (const service of ['exporter-a', 'exporter-b', 'exporter-a']) {
      await publishEventDeadLetter(nats.js, {
        service,
        subject: topo.dlq('exporter'),
        msg: msg!,
        batch,
        index: 1,
        eventId: 'e2',
        error,
      });
    }
    for (const service of ['aggregator', 'mongo-capture', 'aggregator']) {
      await publishDeadLetter(nats.js, msg!, { service, subject: topo.dlq(service), error });
    }
    const letters = await nats.readAll(topo.streams.dlq.name);
    expect(letters.map((l) => l.headers?.get('Sluice-Dlq-Service')).sort()).toEqual([
      'aggregator',
      'exporter-a',
      'exporter-b',
      'mongo-capture',
    ]);
  });
});
