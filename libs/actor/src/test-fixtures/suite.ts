// The set-up every actor spec shares, with its jest hooks registered: NATS, in-memory tracing, the
// actors a test starts (stopped after it), a fresh stream/consumer/DLQ per test, and publishing.
import {
  createDeviceHasher,
  createLogger,
  startMemoryTracing,
  type MemoryTracing,
} from '@sluice/observability';
import { publishDurable } from '@sluice/jetstream';
import { natsFixture, uniqueId, uniqueStreamName, type NatsFixture } from '@sluice/testing';
import { Registry } from 'prom-client';
import { Actor, type ActorOptions } from '../index';

/** `Omit` over each member of a union (the actor's options are one per mode). */
export type Without<O, K extends PropertyKey> = O extends unknown ? Omit<O, K> : never;

/** What a spec passes to {@link actorSuite}'s `startActor`: the options the suite does not fill in. */
export type TestActorOptions<T> = Without<
  ActorOptions<T>,
  'nc' | 'logger' | 'registry' | 'service'
> & {
  registry?: Registry;
};

export const testLogger = createLogger({
  service: 'actor-test',
  level: 'silent',
  hashDeviceId: createDeviceHasher('test-key-0123456789'),
});

export function actorSuite(streamPrefix: string) {
  let nats: NatsFixture | undefined;
  let tracing: MemoryTracing | undefined;
  const actors: Array<Actor<unknown>> = [];
  beforeAll(async () => {
    tracing = startMemoryTracing();
    nats = await natsFixture();
  });
  afterEach(async () => {
    await Promise.all(actors.splice(0).map((a) => a.stop(5_000)));
  });
  afterAll(async () => {
    await nats?.cleanup();
    await tracing?.shutdown();
  });
  const suite = {
    get nats(): NatsFixture {
      if (!nats) throw new Error('actorSuite: NATS is connected in beforeAll');
      return nats;
    },
    get tracing(): MemoryTracing {
      if (!tracing) throw new Error('actorSuite: tracing starts in beforeAll');
      return tracing;
    },
    /** A fresh stream, subject, consumer and DLQ for one test. */
    topology(ackWaitMs = 10_000) {
      const name = suite.nats.track(uniqueStreamName(streamPrefix));
      const subject = uniqueId(streamPrefix.toLowerCase());
      const dlqName = suite.nats.track(`${name}_DLQ`);
      return {
        stream: { name, subjects: [`${subject}.>`] },
        subject: (s: string) => `${subject}.${s}`,
        dlq: { stream: { name: dlqName, subjects: [`${subject}-dlq`] }, subject: `${subject}-dlq` },
        consumer: { durable: 'worker', ackWaitMs },
      };
    },
    async startActor<T>(opts: TestActorOptions<T>): Promise<Actor<T>> {
      const actor = new Actor<T>({
        service: 'actor-test',
        nc: suite.nats.nc,
        logger: testLogger,
        registry: new Registry(),
        ...opts,
      } as ActorOptions<T>);
      actors.push(actor as Actor<unknown>);
      await actor.start();
      return actor;
    },
    publish(subject: string, body: string, msgId = uniqueId('m')) {
      return publishDurable(suite.nats.js, subject, new TextEncoder().encode(body), {
        msgId,
        contentType: 'text/plain',
      });
    },
  };
  return suite;
}
