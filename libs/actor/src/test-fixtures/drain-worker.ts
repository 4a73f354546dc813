// A real actor process for the SIGTERM drain test: handles each batch slowly and prints every
// sequence it settles, so the test can count processing across a restart.
import { createDeviceHasher, createLogger } from '@sluice/observability';
import { Registry } from 'prom-client';
import { connectNats } from '@sluice/jetstream';
import { runUntilSignal } from '@sluice/runtime';
import { Actor, Outcomes } from '../index';

async function main() {
  const env = process.env;
  const logger = createLogger({
    service: 'drain-worker',
    level: 'warn',
    hashDeviceId: createDeviceHasher('test-key-0123456789'),
  });
  const nc = await connectNats({ servers: env['NATS_URL']!, name: 'drain-worker' });
  const stream = env['STREAM']!;
  const actor = new Actor<string>({
    service: 'drain-worker',
    nc,
    stream: { name: stream, subjects: [env['SUBJECT']!] },
    consumer: { durable: env['DURABLE']!, ackWaitMs: Number(env['ACK_WAIT_MS'] ?? 30_000) },
    dlq: {
      stream: { name: `${stream}_DLQ`, subjects: [env['DLQ_SUBJECT']!] },
      subject: env['DLQ_SUBJECT']!,
    },
    batch: { maxMessages: Number(env['BATCH'] ?? 5) },
    prefetch: { maxMessages: Number(env['BATCH'] ?? 5) },
    decode: (m) => m.string(),
    handle: async (batch) => {
      console.log(`batch-start ${batch.map((d) => d.seq).join(',')}`);
      await new Promise((r) => setTimeout(r, Number(env['HANDLE_MS'] ?? 0)));
      for (const d of batch) console.log(`processed ${d.seq}`);
      return batch.map(() => Outcomes.ack());
    },
    logger,
    registry: new Registry(),
  });
  await actor.start();
  console.log('worker-running');
  runUntilSignal({
    logger,
    stoppables: [
      { name: 'actor', stop: () => actor.stop(10_000) },
      { name: 'nats', stop: () => nc.drain() },
    ],
    failure: actor.lifecycle.whenFailed(),
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
