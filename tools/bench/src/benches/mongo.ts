// `npm run bench -- mongo --seconds 30 --rate 10000 [--batch 100]`: clean batches published at the
// offered rate into a private namespace, captured by the MongoDB sink runner (in this process) into a
// private database; per batch, the time from publish to all of its documents being visible (polled
// with an aggregation on ingest.seq, FerretDB has no change streams). Baseline: a bare insertMany
// loop of the same documents into another collection of the same server, in the same run.
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { CONTENT_TYPES, encodeBatch, topology, type Event } from '@sluice/contracts';
import { createDeviceHasher, createLogger } from '@sluice/observability';
import { recordsOf, SinkRunner, telemetryEvent } from '@sluice/sinks-core';
import { createMongoTestDatabase, mongoTestUrl, MongoSink, toDocument } from '@sluice/sinks-mongodb';
import { testUrls, uniqueId } from '@sluice/testing';
import { Registry } from 'prom-client';
import { percentile, round, type Bench } from '../result';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function makeBatch(run: string, n: number, size: number): Event[] {
  return Array.from({ length: size }, (_, i) =>
    telemetryEvent(`${run}-${n}-${i}`, { deviceId: `dev-${(n * size + i) % 500}`, value: i, time: new Date(Date.now() - 1_000) }),
  );
}

const bench: Bench = async ({ seconds, rate, flags }) => {
  const offered = rate ?? 10_000;
  const batchSize = Number(flags['batch'] ?? 100);
  // The visibility poll is an aggregation on the server under test: too frequent and it competes with the writes.
  const pollMs = Number(flags['poll-ms'] ?? 250);
  /** Clean batches per sink write (MONGO_CAPTURE_BATCH_MESSAGES). */
  const batchMessages = Number(flags['batch-messages'] ?? 64);
  const run = uniqueId('mb');
  const mdb = await createMongoTestDatabase('bench_mongo');
  const nc = await connect({ servers: testUrls.nats, name: 'bench-mongo' });
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const topo = topology(run);
  const logger = createLogger({ service: 'bench-mongo', level: 'warn', hashDeviceId: createDeviceHasher('bench-key-0123456789') });
  let runner: SinkRunner | undefined;
  try {
    // Baseline: the ceiling of the server for these documents, a bare unordered insertMany loop.
    // Same indexes and write concern as the captured collection, so only the pipeline differs.
    const baselineColl = mdb.db.collection('baseline');
    await baselineColl.createIndex({ device_id: 1, event_time: 1 }, { name: 'device_time' });
    await baselineColl.createIndex({ 'ingest.seq': 1 });
    const baseSeconds = Math.min(10, Math.max(3, seconds / 3));
    let baseDocs = 0;
    const baseEnd = Date.now() + baseSeconds * 1000;
    const baseStart = Date.now();
    for (let n = 0; Date.now() < baseEnd; n++) {
      const docs = recordsOf(makeBatch(`${run}-base`, n, batchSize), n).map((r) => toDocument(r).doc);
      await baselineColl.insertMany(docs as never[], { ordered: false, writeConcern: { w: 1, journal: true } });
      baseDocs += docs.length;
    }
    const baselineRate = baseDocs / ((Date.now() - baseStart) / 1000);

    // Capture: the sink runner on its own durable consumer, as mongo-capture runs it.
    const sink = new MongoSink({ url: mongoTestUrl(), database: mdb.name, telemetryCollection: 'telemetry', writeConcernW: 1, name: 'bench-mongo' });
    runner = new SinkRunner({
      sink,
      service: 'bench-mongo',
      nc,
      stream: topo.streams.clean,
      filterSubjects: [topo.filters.clean],
      dlq: { stream: topo.streams.dlq, subject: topo.dlq('bench-mongo') },
      batch: { maxMessages: batchMessages },
      logger,
      registry: new Registry(),
    });
    await runner.start();
    const coll = mdb.db.collection('telemetry');
    await coll.createIndex({ 'ingest.seq': 1 });

    const publishedAt = new Map<number, number>();
    const latencies: number[] = [];
    let nextUnseen = 1;
    let maxPublishedSeq = 0;
    let lastVisibleAt = 0;
    let polling = true;
    const poller = (async () => {
      while (polling) {
        if (maxPublishedSeq >= nextUnseen) {
          const groups = await coll
            .aggregate<{ _id: number; n: number }>([{ $match: { 'ingest.seq': { $gte: nextUnseen } } }, { $group: { _id: '$ingest.seq', n: { $sum: 1 } } }])
            .toArray();
          const now = Date.now();
          for (const g of groups) {
            const t = publishedAt.get(g._id);
            if (t !== undefined && g.n >= batchSize) {
              latencies.push(now - t);
              publishedAt.delete(g._id);
              lastVisibleAt = now;
            }
          }
          while (nextUnseen <= maxPublishedSeq && !publishedAt.has(nextUnseen)) nextUnseen++;
        }
        await sleep(pollMs);
      }
    })();

    const subject = topo.clean('eu-west');
    const start = Date.now();
    const end = start + seconds * 1000;
    let sent = 0;
    let n = 0;
    const inflight = new Set<Promise<void>>();
    while (Date.now() < end) {
      const due = Math.floor(((Date.now() - start) / 1000) * offered);
      while (sent + batchSize <= due && inflight.size < 512) {
        const events = makeBatch(run, n, batchSize);
        const msgId = `raw:bench:${n++}`;
        const t = Date.now();
        const p = js.publish(subject, encodeBatch({ batchId: msgId, events }), { msgID: msgId, headers: undefined, timeout: 10_000 }).then((ack) => {
          publishedAt.set(ack.seq, t);
          maxPublishedSeq = Math.max(maxPublishedSeq, ack.seq);
        });
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
        sent += batchSize;
      }
      await sleep(5);
    }
    await Promise.all(inflight);
    const publishEnd = Date.now();
    // Drain: wait (bounded) until every published batch is visible.
    const drainDeadline = Date.now() + Math.max(60_000, seconds * 2_000);
    while (publishedAt.size > 0 && Date.now() < drainDeadline) await sleep(50);
    polling = false;
    await poller;
    const stored = await coll.countDocuments();
    const elapsed = (Math.max(lastVisibleAt, publishEnd) - start) / 1000;
    latencies.sort((a, b) => a - b);
    return {
      name: 'mongo',
      events_per_s: round(stored / elapsed),
      p50_ms: percentile(latencies, 50),
      p99_ms: percentile(latencies, 99),
      baseline_events_per_s: round(baselineRate),
      offered_events_per_s: offered,
      batch_events: batchSize,
      poll_ms: pollMs,
      batch_messages: batchMessages,
      seconds,
      published_events: sent,
      stored_documents: stored,
      unfinished_batches: publishedAt.size,
      drain_s: round((Math.max(lastVisibleAt, publishEnd) - publishEnd) / 1000),
      content_type: CONTENT_TYPES.EVENT_BATCH,
    };
  } finally {
    await runner?.stop(10_000).catch(() => undefined);
    await jsm.streams.delete(topo.streams.clean.name).catch(() => undefined);
    await jsm.streams.delete(topo.streams.dlq.name).catch(() => undefined);
    await nc.drain().catch(() => undefined);
    await mdb.drop();
  }
};

export default bench;
