// `npm run bench -- mongo --seconds 30 --rate 10000 [--batch 100]`: clean batches published at the
// offered rate into a private namespace, captured by the MongoDB sink runner (in this process) into a
// private database; per batch, the time from publish to the acknowledged (w:1, j:true) insertMany that
// stored all of its documents, measured in the sink's write path: no polling of the server under test
// (on FerretDB any query on ingest.seq is a full collection scan that costs more server CPU than the
// inserts it measures; see docs/benchmarks/mongo.md). After the run, one aggregation checks that every
// published batch is stored completely. `--poll-ms N` additionally polls visibility the old way (for
// a real MongoDB, where the index is used). Baseline: a bare insertMany loop of the same documents into
// another collection of the same server, in the same run.
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { CONTENT_TYPES, encodeBatch, topology, type Event } from '@sluice/contracts';
import { createDeviceHasher, createLogger } from '@sluice/observability';
import { SinkRunner, type Sink } from '@sluice/sinks-core';
import { recordsOf, telemetryEvent } from '@sluice/sinks-core/testing';
import { MongoSink, toDocument } from '@sluice/sinks-mongodb';
import { createMongoTestDatabase, mongoTestUrl } from '@sluice/sinks-mongodb/testing';
import { testUrls, uniqueId } from '@sluice/testing';
import { Registry } from 'prom-client';
import { percentile, round, type Bench, type BenchFlags, type BenchResult } from '../result';
import { mongoDocumentBytes, numberOf, type UnitCostUpdate } from '../unit-costs';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function makeBatch(run: string, n: number, size: number): Event[] {
  return Array.from({ length: size }, (_, i) =>
    telemetryEvent(`${run}-${n}-${i}`, {
      deviceId: `dev-${(n * size + i) % 500}`,
      value: i,
      time: new Date(Date.now() - 1_000),
    }),
  );
}

/** Extra flags of this bench (any other is refused). */
export const flags: BenchFlags = {
  batch: 'events per clean batch (default 100)',
  'poll-ms': 'also poll visibility every N ms (default 0: off)',
  'batch-messages': 'messages per sink pull (default 64)',
};

const bench: Bench = async ({ seconds, rate, flags }) => {
  const offered = rate ?? 10_000;
  const batchSize = Number(flags['batch'] ?? 100);
  // Optional visibility poll: an aggregation on the server under test; on FerretDB a full scan per poll.
  const pollMs = flags['poll-ms'] !== undefined ? Number(flags['poll-ms']) : 0;
  /** Clean batches per sink write (MONGO_CAPTURE_BATCH_MESSAGES). */
  const batchMessages = Number(flags['batch-messages'] ?? 64);
  const run = uniqueId('mb');
  const mdb = await createMongoTestDatabase('bench_mongo');
  const nc = await connect({ servers: testUrls.nats, name: 'bench-mongo' });
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const topo = topology(run);
  const logger = createLogger({
    service: 'bench-mongo',
    level: 'warn',
    hashDeviceId: createDeviceHasher('bench-key-0123456789'),
  });
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
      const docs = recordsOf(makeBatch(`${run}-base`, n, batchSize), n).map(
        (r) => toDocument(r).doc,
      );
      await baselineColl.insertMany(docs as never[], {
        ordered: false,
        writeConcern: { w: 1, journal: true },
      });
      baseDocs += docs.length;
    }
    const baselineRate = baseDocs / ((Date.now() - baseStart) / 1000);

    // Capture: the sink runner on its own durable consumer, as mongo-capture runs it.
    const mongo = new MongoSink({
      url: mongoTestUrl(),
      database: mdb.name,
      telemetryCollection: 'telemetry',
      writeConcernW: 1,
      name: 'bench-mongo',
    });
    const publishedAt = new Map<number, number>();
    /** Batches stored before their publish ack reached this process: seq → when. */
    const storedEarly = new Map<number, number>();
    const latencies: number[] = [];
    let lastVisibleAt = 0;
    /** Time spent inside MongoSink.write and the number of writes: busy ≈ 100% means the store is the limit. */
    let writeMs = 0;
    let writes = 0;
    let writtenDocs = 0;
    const done = (seq: number, t: number, at: number) => {
      latencies.push(at - t);
      publishedAt.delete(seq);
      lastVisibleAt = Math.max(lastVisibleAt, at);
    };
    // The MongoSink itself, observed: when write() returns, its documents are acknowledged with
    // w:1, j:true, i.e. durable and visible to any later read. A message's events always travel in
    // one write (the runner never splits a message), so a batch is complete when one write held all
    // of its events without rejecting any.
    const sink: Sink = {
      name: mongo.name,
      connect: () => mongo.connect(),
      close: (deadline) => mongo.close(deadline),
      health: () => mongo.health(),
      isRetriable: (e) => mongo.isRetriable(e),
      write: async (records) => {
        const began = Date.now();
        const result = await mongo.write(records);
        const at = Date.now();
        writeMs += at - began;
        writes++;
        writtenDocs += records.length;
        const rejected = new Set(result.rejected.map((r) => r.index));
        const perSeq = new Map<number, number>();
        records.forEach((r, i) => {
          if (!rejected.has(i)) perSeq.set(r.source.seq, (perSeq.get(r.source.seq) ?? 0) + 1);
        });
        for (const [seq, n] of perSeq) {
          if (n < batchSize) continue;
          const t = publishedAt.get(seq);
          if (t !== undefined) done(seq, t, at);
          else storedEarly.set(seq, at);
        }
        return result;
      },
    };
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

    /** Publish time of every sequence, for the optional poll. */
    const sentAt = new Map<number, number>();
    const polled: number[] = [];
    let nextUnseen = 1;
    let maxPublishedSeq = 0;
    let polling = pollMs > 0;
    const pollPending = new Set<number>();
    const poller = (async () => {
      while (polling) {
        if (maxPublishedSeq >= nextUnseen) {
          const groups = await coll
            .aggregate<{ _id: number; n: number }>([
              { $match: { 'ingest.seq': { $gte: nextUnseen } } },
              { $group: { _id: '$ingest.seq', n: { $sum: 1 } } },
            ])
            .toArray();
          const now = Date.now();
          for (const g of groups) {
            const t = sentAt.get(g._id);
            if (t !== undefined && g.n >= batchSize && pollPending.delete(g._id))
              polled.push(now - t);
          }
          while (nextUnseen <= maxPublishedSeq && !pollPending.has(nextUnseen)) nextUnseen++;
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
        const p = js
          .publish(subject, encodeBatch({ batchId: msgId, events }), {
            msgID: msgId,
            headers: undefined,
            timeout: 10_000,
          })
          .then((ack) => {
            const early = storedEarly.get(ack.seq);
            if (early !== undefined) {
              storedEarly.delete(ack.seq);
              latencies.push(early - t);
              lastVisibleAt = Math.max(lastVisibleAt, early);
            } else publishedAt.set(ack.seq, t);
            if (polling) {
              sentAt.set(ack.seq, t);
              pollPending.add(ack.seq);
            }
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
    while (
      (publishedAt.size > 0 || (pollMs > 0 && pollPending.size > 0)) &&
      Date.now() < drainDeadline
    )
      await sleep(50);
    polling = false;
    await poller;
    // Outside the timed window: one scan checks that every batch is stored, and stored once.
    const groups = await coll
      .aggregate<{ _id: number; n: number }>([{ $group: { _id: '$ingest.seq', n: { $sum: 1 } } }])
      .toArray();
    const stored = groups.reduce((t, g) => t + g.n, 0);
    const completeBatches = groups.filter((g) => g.n === batchSize).length;
    const documentBytes = await mongoDocumentBytes(mdb.db, 'telemetry');
    const elapsed = (Math.max(lastVisibleAt, publishEnd) - start) / 1000;
    latencies.sort((a, b) => a - b);
    polled.sort((a, b) => a - b);
    return {
      name: 'mongo',
      events_per_s: round(stored / elapsed),
      p50_ms: percentile(latencies, 50),
      p99_ms: percentile(latencies, 99),
      baseline_events_per_s: round(baselineRate),
      offered_events_per_s: offered,
      batch_events: batchSize,
      poll_ms: pollMs,
      ...(pollMs > 0
        ? { poll_p50_ms: percentile(polled, 50), poll_p99_ms: percentile(polled, 99) }
        : {}),
      batch_messages: batchMessages,
      seconds,
      published_events: sent,
      stored_documents: stored,
      sink_writes: writes,
      docs_per_write: writes ? round(writtenDocs / writes) : 0,
      sink_busy_pct: round((100 * writeMs) / (elapsed * 1000), 1),
      complete_batches: completeBatches,
      unfinished_batches: publishedAt.size,
      drain_s: round((Math.max(lastVisibleAt, publishEnd) - publishEnd) / 1000),
      content_type: CONTENT_TYPES.EVENT_BATCH,
      // collStats: storage and index bytes over the captured documents.
      bytes_per_document: documentBytes !== undefined ? round(documentBytes, 1) : null,
    };
  } finally {
    await runner?.stop(10_000).catch(() => undefined);
    await jsm.streams.delete(topo.streams.clean.name).catch(() => undefined);
    await jsm.streams.delete(topo.streams.dlq.name).catch(() => undefined);
    await nc.drain().catch(() => undefined);
    await mdb.drop();
  }
};

/** The unit costs this bench measures (`--record` writes them to tools/bench/data/unit-costs.json). */
export const unitCosts = (r: BenchResult): UnitCostUpdate => ({
  mongo_document_bytes: { value: numberOf(r, 'bytes_per_document') ?? NaN },
});

export default bench;
