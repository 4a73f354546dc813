import type { JsMsg } from '@nats-io/jetstream';
import { CONTENT_TYPES, decodeBatch, HEADERS } from '@sluice/contracts';
import { waitFor } from '@sluice/testing';
import { NothingToDoError, UsageError } from '../errors';
import { RedriveRefusedError } from './errors';
import {
  dlqHarness,
  seedLetters,
  TRACEPARENT,
  type DlqHarness,
  type Seeded,
} from './test-fixtures/dlq-harness';

function headersOf(m: JsMsg): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of m.headers ?? []) out[k] = v.join(',');
  return out;
}

describe('sluice dlq redrive (real NATS)', () => {
  let h: DlqHarness;
  let s: Seeded;
  let dlqName: string;
  let replayName: string;

  beforeEach(async () => {
    h = await dlqHarness();
    s = await seedLetters(h);
    dlqName = h.topo.streams.dlq.name;
    replayName = h.topo.streams.replay.name;
  });
  afterEach(() => h.cleanup());

  const allSeqs = () => [
    s.aggregatorB1,
    s.mongoE2,
    s.mongoE3,
    s.aggregatorGarbage,
    s.dedupeR1,
    s.webhook,
    s.archiverE1,
  ];

  it('sends exactly the selected per-event letter to the service replay subject, with provenance', async () => {
    const r = await h.run(['redrive', '--seq', String(s.mongoE2), '--json']);
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.out) as Record<string, unknown>;
    expect(summary).toMatchObject({ selected: 1, sent: 1, duplicate: 0, deleted: 1, gone: 0 });

    const replayed = await h.read(replayName);
    expect(replayed).toHaveLength(1);
    const m = replayed[0]!;
    expect(m.subject).toBe(h.topo.replay('mongo-capture', 'eu'));
    expect(headersOf(m)).toEqual({
      [HEADERS.MSG_ID]: `redrive:${dlqName}:${s.mongoE2}`,
      'Nats-Expected-Stream': replayName,
      [HEADERS.CONTENT_TYPE]: CONTENT_TYPES.EVENT_BATCH,
      [HEADERS.SOURCE_STREAM]: h.topo.streams.clean.name,
      [HEADERS.SOURCE_SEQUENCE]: String(s.b1.msg.seq),
      [HEADERS.SOURCE_SUBJECT]: h.topo.clean('eu'),
      [HEADERS.SOURCE_INDEXES]: '1',
      [HEADERS.REDRIVE_OF]: `${dlqName}:${s.mongoE2}`,
      [HEADERS.REPLAY_ID]: summary['runId'],
      [HEADERS.TRACEPARENT]: TRACEPARENT,
    });
    expect(String(summary['runId'])).toMatch(/^redrive-/);
    expect(decodeBatch(m.data)).toEqual({ batchId: 'b1', events: [s.b1.batch.events[1]] });

    // Only that letter left the DLQ.
    expect(await h.dlqSeqs()).toEqual(
      allSeqs()
        .filter((q) => q !== s.mongoE2)
        .sort((a, b) => a - b),
    );

    // Again: the letter is gone, so nothing is selected and nothing new is sent.
    const again = await h.run(['redrive', '--seq', String(s.mongoE2)]);
    expect(again.code).toBe(3);
    expect(again.error).toBeInstanceOf(NothingToDoError);
    expect((await h.state(replayName)).messages).toBe(1);
  });

  it('a whole-batch letter of a replay service goes to its replay subject without Source-Indexes', async () => {
    const r = await h.run([
      'redrive',
      '--service',
      'aggregator',
      '--error-class',
      'StoreRejectedError',
    ]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /1 of 1 dead letters re-published \(1 sent, 0 already sent before\), 1 deleted/,
    );
    const [m, ...rest] = await h.read(replayName);
    expect(rest).toEqual([]);
    expect(m!.subject).toBe(h.topo.replay('aggregator', 'eu'));
    const hd = headersOf(m!);
    expect(hd[HEADERS.SOURCE_INDEXES]).toBeUndefined();
    expect(hd[HEADERS.SOURCE_SEQUENCE]).toBe(String(s.b1.msg.seq));
    expect(hd[HEADERS.REDRIVE_OF]).toBe(`${dlqName}:${s.aggregatorB1}`);
    expect(decodeBatch(m!.data)).toEqual(s.b1.batch);
    expect(await h.dlqSeqs()).not.toContain(s.aggregatorB1);
    expect(await h.dlqSeqs()).toContain(s.aggregatorGarbage);
  });

  it('with --keep a second redrive inside the duplicate window sends nothing new', async () => {
    const seqs = `${s.mongoE2},${s.mongoE3}`;
    const first = await h.run(['redrive', '--seq', seqs, '--keep', '--json']);
    expect(JSON.parse(first.out)).toMatchObject({ sent: 2, duplicate: 0, deleted: 0 });
    const second = await h.run(['redrive', '--seq', seqs, '--keep', '--json']);
    expect(second.code).toBe(0);
    expect(JSON.parse(second.out)).toMatchObject({ sent: 0, duplicate: 2, deleted: 0 });
    const replayed = await h.read(replayName);
    expect(replayed.map((m) => headersOf(m)[HEADERS.SOURCE_INDEXES]).sort()).toEqual(['1', '2']);
    expect(await h.dlqSeqs()).toEqual(allSeqs().sort((a, b) => a - b));
    // A third run without --keep still sends nothing new, and now removes the letters.
    const third = await h.run(['redrive', '--seq', seqs, '--json']);
    expect(JSON.parse(third.out)).toMatchObject({ sent: 0, duplicate: 2, deleted: 2 });
    expect((await h.state(replayName)).messages).toBe(2);
  });

  it('other services get the payload on the original subject with the original headers', async () => {
    const rawBefore = (await h.state(h.topo.streams.raw.name)).last;
    const r = await h.run(['redrive', '--service', 'dedupe']);
    expect(r.code).toBe(0);
    const raw = (await h.read(h.topo.streams.raw.name)).filter((m) => m.seq > rawBefore);
    expect(raw).toHaveLength(1);
    expect(raw[0]!.subject).toBe(h.topo.raw('eu'));
    expect(headersOf(raw[0]!)).toEqual({
      [HEADERS.MSG_ID]: `redrive:${dlqName}:${s.dedupeR1}`,
      'Nats-Expected-Stream': h.topo.streams.raw.name,
      [HEADERS.CONTENT_TYPE]: CONTENT_TYPES.EVENT_BATCH,
      [HEADERS.CONTENT_DIGEST]: 'abc123',
      [HEADERS.REDRIVE_OF]: `${dlqName}:${s.dedupeR1}`,
    });
    expect(decodeBatch(raw[0]!.data)).toEqual(s.r1.batch);

    const w = await h.run(['redrive', '--seq', String(s.webhook)]);
    expect(w.code).toBe(0);
    const deliveries = await h.read(h.deliveries.name);
    const copy = deliveries[deliveries.length - 1]!;
    expect(copy.seq).toBe(s.delivery.msg.seq + 1);
    expect(copy.subject).toBe(h.deliveries.subject('sub-1'));
    expect(Buffer.from(copy.data)).toEqual(s.delivery.payload);
    expect(headersOf(copy)[HEADERS.MSG_ID]).toBe(`redrive:${dlqName}:${s.webhook}`);
    expect(headersOf(copy)[HEADERS.CONTENT_TYPE]).toBe(
      'application/json; sluice=webhook-delivery.v1',
    );
    // Nothing went to a replay subject, and the other letters stay.
    expect((await h.state(replayName)).messages).toBe(0);
    expect(await h.dlqSeqs()).toEqual(
      allSeqs()
        .filter((q) => q !== s.dedupeR1 && q !== s.webhook)
        .sort((a, b) => a - b),
    );
  });

  it('--dry-run lists the plan and changes nothing', async () => {
    const before = await h.state(dlqName);
    const r = await h.run(['redrive', '--service', 'mongo-capture', '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.out).toContain(h.topo.replay('mongo-capture', 'eu'));
    expect(r.out).toContain('would redrive 2 dead letters');
    expect(await h.state(dlqName)).toEqual(before);
    expect((await h.state(replayName)).messages).toBe(0);
  });

  it('refuses a selection with a letter that cannot go back to its service alone, and sends nothing', async () => {
    const before = await h.state(dlqName);
    // archiver reads the clean subject with every other consumer; the garbage is no EventBatch.
    for (const args of [
      ['redrive', '--all'],
      ['redrive', '--service', 'archiver'],
      ['redrive', '--seq', `${s.mongoE2},${s.aggregatorGarbage}`],
    ]) {
      const r = await h.run(args);
      expect({ args, code: r.code }).toEqual({ args, code: 1 });
      expect(r.error).toBeInstanceOf(RedriveRefusedError);
    }
    expect(await h.state(dlqName)).toEqual(before);
    expect((await h.state(replayName)).messages).toBe(0);
    expect((await h.state(h.topo.streams.clean.name)).messages).toBe(2);

    // --skip-refused sends the others and leaves the refused ones.
    const r = await h.run(['redrive', '--all', '--skip-refused', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ selected: 5, sent: 5, deleted: 5, refused: 2 });
    expect(r.err).toContain('archiver');
    expect(await h.dlqSeqs()).toEqual([s.aggregatorGarbage, s.archiverE1].sort((a, b) => a - b));
    expect((await h.state(h.topo.streams.clean.name)).messages).toBe(2);
  });

  it('hostile input changes nothing: bad seq, unknown service, empty selection, malformed flags', async () => {
    const before = await h.state(dlqName);
    const cases: Array<[string[], number, unknown]> = [
      [['redrive', '--seq', 'abc'], 2, UsageError],
      [['redrive', '--seq', '0'], 2, UsageError],
      [['redrive', '--seq', '9-3'], 2, UsageError],
      [['redrive', '--seq', '1-20000'], 2, UsageError],
      [['redrive', '--seq', `${s.mongoE2},999999`], 3, NothingToDoError],
      [['redrive', '--service', 'no-such-service'], 3, NothingToDoError],
      [['redrive', '--service', 'dedupe', '--error-class', 'NoSuchError'], 3, NothingToDoError],
      [['redrive', '--since', 'last tuesday'], 2, UsageError],
      [['redrive', '--service', 'dlq.>'], 2, UsageError],
      [['redrive', '--rate', '-1', '--all'], 2, UsageError],
      [['redrive', '--rate', 'fast', '--all'], 2, UsageError],
      [['redrive', '--replay-services', 'Mongo Capture', '--all'], 2, UsageError],
      [['redrive'], 2, UsageError],
      [['redrive', '--limit', '10'], 2, UsageError],
      [['redrive', 'everything'], 2, UsageError],
    ];
    for (const [args, code, type] of cases) {
      const r = await h.run(args);
      expect({ args, code: r.code }).toEqual({ args, code });
      expect(r.error).toBeInstanceOf(type as never);
    }
    expect(await h.state(dlqName)).toEqual(before);
    expect(await h.state(replayName)).toEqual({ messages: 0, first: 0, last: 0 });
  });

  it('stops cleanly between letters when the signal aborts, leaving the rest in the DLQ', async () => {
    const abort = new AbortController();
    const running = h.run(['redrive', '--service', 'mongo-capture', '--rate', '0.5', '--json'], {
      signal: abort.signal,
    });
    await waitFor('the first copy', async () => (await h.state(replayName)).messages >= 1);
    abort.abort();
    const r = await running;
    expect(r.code).toBe(130);
    const summary = JSON.parse(r.out) as { sent: number; deleted: number; interrupted: boolean };
    expect(summary).toMatchObject({ sent: 1, deleted: 1, interrupted: true });
    expect((await h.state(replayName)).messages).toBe(1);
    expect(await h.dlqSeqs()).toContain(s.mongoE3);
    expect(await h.dlqSeqs()).not.toContain(s.mongoE2);
  });
});
