// The set-up the dlq specs share: a per-test namespace (its own raw, clean, DLQ and deliveries
// streams), dead letters made by the real publishers from real fetched JsMsgs, and a CliContext whose
// output is captured, passed to the command's run() in-process.
import { Writable } from 'node:stream';
import { AckPolicy, DeliverPolicy, type JsMsg } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { loadConfig } from '@sluice/config';
import {
  CONTENT_TYPES,
  encodeBatch,
  HEADERS,
  topology,
  type EventBatch,
  type Topology,
} from '@sluice/contracts';
import { ensureStream, publishDeadLetter } from '@sluice/jetstream';
import { createDeviceHasher } from '@sluice/observability';
import { publishEventDeadLetter } from '@sluice/sinks-core';
import { natsFixture, testUrls, uniqueId, type NatsFixture } from '@sluice/testing';
import { config as cliConfig } from '../../config';
import { createContext, type CliContext } from '../../context';
import { exitCodeOf } from '../../errors';
import { dlqCommand } from '../command';
import { reading } from './letters';

export { reading };

export const HASH_KEY = 'dlq-spec-hash-key-0123456789';
export const hash = createDeviceHasher(HASH_KEY);

/** An Error whose `name` (the dead letter's error class) is `name`. */
export function failure(name: string, message: string): Error {
  const e = new Error(message);
  e.name = name;
  return e;
}

/** What one in-process command run printed and returned (the exit code main.ts would use). */
export interface RunResult {
  code: number;
  out: string;
  err: string;
  error?: unknown;
}

function sink(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  return {
    stream: new Writable({
      write(chunk: Buffer | string, _enc, cb) {
        chunks.push(chunk.toString());
        cb();
      },
    }),
    text: () => chunks.join(''),
  };
}

export interface DlqHarness {
  nats: NatsFixture;
  ns: string;
  topo: Topology;
  /** `<NS>_WEBHOOK_DELIVERIES`, `<ns>.webhook.deliveries.>`, as the webhook dispatcher names them. */
  deliveries: { name: string; subjects: string[]; subject: (id: string) => string };
  /** Publishes to `subject` and returns the message as a consumer fetches it (delivery count 1). */
  original(subject: string, payload: Uint8Array, headers?: Record<string, string>): Promise<JsMsg>;
  /** The same stored message fetched again by another consumer (as a second service sees it). */
  again(msg: JsMsg): Promise<JsMsg>;
  /** `publishDeadLetter` of the whole message; resolves with the letter's DLQ sequence. */
  deadLetter(service: string, msg: JsMsg, error: Error): Promise<number>;
  /** `publishEventDeadLetter` of event `index` of `batch`; resolves with the letter's DLQ sequence. */
  eventDeadLetter(
    service: string,
    msg: JsMsg,
    batch: EventBatch,
    index: number,
    error: Error,
  ): Promise<number>;
  /** Runs `sluice dlq <args>` in-process; a thrown error becomes its exit code, as in main.ts. */
  run(args: string[], opts?: { signal?: AbortSignal }): Promise<RunResult>;
  /** messages, first and last sequence of a stream (0s when it does not exist). */
  state(stream: string): Promise<{ messages: number; first: number; last: number }>;
  /** Every message in `stream` (read with an ordered consumer). */
  read(stream: string, subject?: string): Promise<JsMsg[]>;
  /** DLQ sequences still in the DLQ stream. */
  dlqSeqs(): Promise<number[]>;
  cleanup(): Promise<void>;
}

export async function dlqHarness(): Promise<DlqHarness> {
  const nats = await natsFixture();
  const ns = uniqueId('dlq');
  const topo = topology(ns);
  const upper = ns.toUpperCase().replace(/-/g, '_');
  const deliveries = {
    name: `${upper}_WEBHOOK_DELIVERIES`,
    subjects: [`${ns}.webhook.deliveries.>`],
    subject: (id: string) => `${ns}.webhook.deliveries.${id}`,
  };
  for (const spec of [topo.streams.raw, topo.streams.clean, topo.streams.dlq, deliveries]) {
    await ensureStream(nats.jsm, spec);
    nats.track(spec.name);
  }
  nats.track(topo.streams.replay.name);
  const streamOf = (subject: string) =>
    [topo.streams.raw, topo.streams.clean, deliveries].find((s) =>
      subject.startsWith(s.subjects[0]!.slice(0, -1)),
    )!.name;
  let consumers = 0;
  const fetchSeq = async (stream: string, subject: string, seq: number) => {
    const durable = `spec-${++consumers}`;
    await nats.jsm.consumers.add(stream, {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      filter_subject: subject,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: seq,
    });
    const m = await (await nats.js.consumers.get(stream, durable)).next({ expires: 5_000 });
    if (!m || m.seq !== seq) throw new Error(`fetched ${m?.seq} instead of ${seq}`);
    return m;
  };
  const lastDlqSeq = async () =>
    (await nats.jsm.streams.info(topo.streams.dlq.name)).state.last_seq;

  const h: DlqHarness = {
    nats,
    ns,
    topo,
    deliveries,
    async original(subject, payload, headers = {}) {
      const hdrs = natsHeaders();
      for (const [k, v] of Object.entries(headers)) hdrs.set(k, v);
      const ack = await nats.js.publish(subject, payload, { headers: hdrs });
      return fetchSeq(streamOf(subject), subject, ack.seq);
    },
    again: (msg) => fetchSeq(msg.info.stream, msg.subject, msg.seq),
    async deadLetter(service, msg, error) {
      await publishDeadLetter(nats.js, msg, { service, subject: topo.dlq(service), error });
      msg.term();
      return lastDlqSeq();
    },
    async eventDeadLetter(service, msg, batch, index, error) {
      const e = batch.events[index]!;
      await publishEventDeadLetter(nats.js, {
        service,
        subject: topo.dlq(service),
        msg,
        batch,
        index,
        eventId: e.kind?.value.eventId ?? '',
        error,
      });
      msg.term();
      return lastDlqSeq();
    },
    async run(args, opts = {}) {
      const out = sink();
      const err = sink();
      const config = loadConfig(cliConfig, {
        NATS_URL: testUrls.nats,
        SLUICE_NAMESPACE: ns,
        DEVICE_ID_HASH_KEY: HASH_KEY,
      });
      const ctx: CliContext & { close(): Promise<void> } = createContext(
        config,
        opts.signal ?? new AbortController().signal,
        { out: out.stream, err: err.stream },
      );
      try {
        const code = await dlqCommand.run(args, ctx);
        return { code, out: out.text(), err: err.text() };
      } catch (error) {
        return { code: exitCodeOf(error), out: out.text(), err: err.text(), error };
      } finally {
        await ctx.close();
      }
    },
    async state(stream) {
      try {
        const s = (await nats.jsm.streams.info(stream)).state;
        return { messages: s.messages, first: s.first_seq, last: s.last_seq };
      } catch {
        return { messages: 0, first: 0, last: 0 };
      }
    },
    async read(stream, subject) {
      const s = await h.state(stream);
      if (s.messages === 0) return [];
      return nats.readAll(stream, subject);
    },
    async dlqSeqs() {
      return (await h.read(topo.streams.dlq.name)).map((m) => m.seq);
    },
    cleanup: () => nats.cleanup(),
  };
  return h;
}

/** A clean batch of `events` as the pipeline carries it (EventBatch, content type, a traceparent). */
export const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
export function batchHeaders(msgId: string): Record<string, string> {
  return {
    [HEADERS.MSG_ID]: msgId,
    [HEADERS.CONTENT_TYPE]: CONTENT_TYPES.EVENT_BATCH,
    [HEADERS.TRACEPARENT]: TRACEPARENT,
  };
}

export { encodeBatch };

/** The dead letters {@link seedLetters} makes, by DLQ sequence. */
export interface Seeded {
  /** Clean batch B1: e1 (dev-A), e2 (dev-B), e3 (dev-A), region eu, with a traceparent. */
  b1: { msg: JsMsg; batch: EventBatch };
  /** aggregator, StoreRejectedError, the whole of B1. */
  aggregatorB1: number;
  /** mongo-capture, RecordRejectedError, B1 event 1 (dev-B). */
  mongoE2: number;
  /** mongo-capture, RecordRejectedError, B1 event 2 (dev-A). */
  mongoE3: number;
  /** aggregator, DecodeError, a clean message that is not an EventBatch. */
  aggregatorGarbage: number;
  /** dedupe, ClaimError, raw batch R1: e4 (dev-C), region eu. */
  dedupeR1: number;
  r1: { msg: JsMsg; batch: EventBatch };
  /** webhook-dispatcher, MalformedDeliveryError, a JSON delivery naming device dev-D in its body. */
  webhook: number;
  delivery: { msg: JsMsg; payload: Uint8Array };
  /** archiver, RecordRejectedError, B1 event 0 (dev-A): a clean-subject letter of a service without replay. */
  archiverE1: number;
}

export async function seedLetters(h: DlqHarness): Promise<Seeded> {
  const batch: EventBatch = {
    batchId: 'b1',
    events: [reading('e1', 'dev-A'), reading('e2', 'dev-B'), reading('e3', 'dev-A')],
  };
  const b1 = await h.original(h.topo.clean('eu'), encodeBatch(batch), batchHeaders('raw:1'));
  const aggregatorB1 = await h.deadLetter(
    'aggregator',
    b1,
    failure('StoreRejectedError', 'window table missing'),
  );
  const forMongo = await h.again(b1);
  const mongoE2 = await h.eventDeadLetter(
    'mongo-capture',
    forMongo,
    batch,
    1,
    failure('RecordRejectedError', 'document too large'),
  );
  const mongoE3 = await h.eventDeadLetter(
    'mongo-capture',
    forMongo,
    batch,
    2,
    failure('RecordRejectedError', 'document too large'),
  );
  const garbage = await h.original(h.topo.clean('eu'), Buffer.from('definitely not protobuf'));
  const aggregatorGarbage = await h.deadLetter(
    'aggregator',
    garbage,
    failure('DecodeError', 'cannot decode'),
  );
  const r1Batch: EventBatch = { batchId: 'r1', events: [reading('e4', 'dev-C')] };
  const r1 = await h.original(h.topo.raw('eu'), encodeBatch(r1Batch), {
    [HEADERS.MSG_ID]: 'r1',
    [HEADERS.CONTENT_TYPE]: CONTENT_TYPES.EVENT_BATCH,
    [HEADERS.CONTENT_DIGEST]: 'abc123',
  });
  const dedupeR1 = await h.deadLetter('dedupe', r1, failure('ClaimError', 'claim script failed'));
  const payload = Buffer.from(
    JSON.stringify({ v: 1, webhookId: 'w1', body: JSON.stringify({ device_id: 'dev-D' }) }),
  );
  const deliveryMsg = await h.original(h.deliveries.subject('sub-1'), payload, {
    [HEADERS.MSG_ID]: 'w1',
    [HEADERS.CONTENT_TYPE]: 'application/json; sluice=webhook-delivery.v1',
  });
  const webhook = await h.deadLetter(
    'webhook-dispatcher',
    deliveryMsg,
    failure('MalformedDeliveryError', 'delivery does not match the format'),
  );
  const archiverE1 = await h.eventDeadLetter(
    'archiver',
    await h.again(b1),
    batch,
    0,
    failure('RecordRejectedError', 'row rejected'),
  );
  return {
    b1: { msg: b1, batch },
    aggregatorB1,
    mongoE2,
    mongoE3,
    aggregatorGarbage,
    dedupeR1,
    r1: { msg: r1, batch: r1Batch },
    webhook,
    delivery: { msg: deliveryMsg, payload },
    archiverE1,
  };
}
