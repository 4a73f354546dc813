import { CONTENT_TYPES, HEADERS } from '@sluice/contracts';
import { sleep } from '@sluice/testing';
import { NothingToDoError, UsageError } from '../errors';
import {
  dlqHarness,
  encodeBatch,
  failure,
  hash,
  seedLetters,
  TRACEPARENT,
  type DlqHarness,
  type Seeded,
} from './test-fixtures/dlq-harness';

interface GroupJson {
  service: string;
  errorClass: string;
  device: string | null;
  letters: number;
  events: number;
  oldestFailedAt: string;
  newestFailedAt: string;
  seqs: number[];
}

describe('sluice dlq ls and show (real NATS, dead letters from the real publishers)', () => {
  let h: DlqHarness;
  let s: Seeded;

  beforeEach(async () => {
    h = await dlqHarness();
    s = await seedLetters(h);
  });
  afterEach(() => h.cleanup());

  async function lsJson(...args: string[]) {
    const r = await h.run(['ls', '--json', ...args]);
    expect(r.code).toBe(0);
    return JSON.parse(r.out) as {
      scanned: number;
      matched: number;
      truncated: boolean;
      groups: GroupJson[];
    };
  }

  it('groups every letter by service, error class and hashed device, with counts and seqs', async () => {
    const before = await h.state(h.topo.streams.dlq.name);
    const ls = await lsJson();
    expect(ls).toMatchObject({ scanned: 7, matched: 7, truncated: false });
    const rows = ls.groups.map((g) => [
      g.service,
      g.errorClass,
      g.device,
      g.letters,
      g.events,
      g.seqs,
    ]);
    expect(rows).toEqual([
      ['aggregator', 'DecodeError', null, 1, 0, [s.aggregatorGarbage]],
      ['aggregator', 'StoreRejectedError', hash('dev-A'), 1, 2, [s.aggregatorB1]],
      ['aggregator', 'StoreRejectedError', hash('dev-B'), 1, 1, [s.aggregatorB1]],
      ['archiver', 'RecordRejectedError', hash('dev-A'), 1, 1, [s.archiverE1]],
      ['dedupe', 'ClaimError', hash('dev-C'), 1, 1, [s.dedupeR1]],
      // Equal counts sort by device hash.
      ...[
        ['mongo-capture', 'RecordRejectedError', hash('dev-A'), 1, 1, [s.mongoE3]],
        ['mongo-capture', 'RecordRejectedError', hash('dev-B'), 1, 1, [s.mongoE2]],
      ].sort((a, b) => String(a[2]).localeCompare(String(b[2]))),
      ['webhook-dispatcher', 'MalformedDeliveryError', null, 1, 0, [s.webhook]],
    ]);
    for (const g of ls.groups) {
      expect(Date.parse(g.oldestFailedAt)).toBeLessThanOrEqual(Date.parse(g.newestFailedAt));
    }
    // Read-only: the stream is as it was, and the scan left no consumer behind.
    expect(await h.state(h.topo.streams.dlq.name)).toEqual(before);
    const consumers = [];
    for await (const c of await h.nats.jsm.consumers.list(h.topo.streams.dlq.name)) {
      consumers.push(c.name);
    }
    expect(consumers).toEqual([]);
  });

  it('never prints a raw device id, in the table or in JSON', async () => {
    const table = await h.run(['ls']);
    expect(table.code).toBe(0);
    expect(table.out).toMatch(/^SERVICE\s+ERROR CLASS\s+DEVICE \(hashed\)\s+LETTERS\s+EVENTS/);
    expect(table.out).toContain(hash('dev-A'));
    expect(table.out).toContain('7 dead letters in 8 groups');
    expect(table.out).toContain('a letter with events of several devices counts under each');
    const json = await h.run(['ls', '--json']);
    for (const out of [table.out, table.err, json.out]) {
      for (const id of ['dev-A', 'dev-B', 'dev-C', 'dev-D']) expect(out).not.toContain(id);
    }
  });

  it('filters by service, error class, device (raw or hashed) and failure time', async () => {
    const byService = await lsJson('--service', 'mongo-capture,dedupe');
    expect(byService.matched).toBe(3);
    expect(new Set(byService.groups.map((g) => g.service))).toEqual(
      new Set(['mongo-capture', 'dedupe']),
    );

    const byClass = await lsJson('--error-class', 'RecordRejectedError');
    expect(byClass.matched).toBe(3);

    const devA = await lsJson('--device', 'dev-A');
    expect(devA.matched).toBe(3);
    // A batch letter with dev-A events still shows every device it holds.
    expect(devA.groups.map((g) => g.seqs[0]).sort()).toEqual(
      [s.aggregatorB1, s.aggregatorB1, s.archiverE1, s.mongoE3].sort(),
    );
    expect(await lsJson('--device-hash', hash('dev-A'))).toEqual(devA);

    const none = await lsJson('--device', 'dev-nobody');
    expect(none).toMatchObject({ matched: 0, groups: [] });

    const future = await lsJson('--since', new Date(Date.now() + 3_600_000).toISOString());
    expect(future.matched).toBe(0);
    const recent = await lsJson('--since', '1h');
    expect(recent.matched).toBe(7);
    const old = await lsJson('--until', '1h');
    expect(old.matched).toBe(0);
  });

  it('--since and --until cut at the letters failure times', async () => {
    await sleep(5);
    const cut = new Date();
    await sleep(5);
    const r2 = await h.original(h.topo.raw('eu'), encodeBatch(s.r1.batch));
    const later = await h.deadLetter('dedupe', r2, failure('ClaimError', 'claim script failed'));
    const after = await lsJson('--since', cut.toISOString());
    expect(after.groups.flatMap((g) => g.seqs)).toEqual([later]);
    const before = await lsJson('--until', cut.toISOString(), '--service', 'dedupe');
    expect(before.groups.flatMap((g) => g.seqs)).toEqual([s.dedupeR1]);
  });

  it('--limit bounds the scan and says the counts are partial', async () => {
    const r = await h.run(['ls', '--json', '--limit', '2']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ scanned: 2, matched: 2, truncated: true });
    expect(r.err).toContain('read the first 2 letters');
  });

  it('show <seq> prints the provenance and the events with hashed device ids', async () => {
    const r = await h.run(['show', String(s.mongoE2)]);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`dead letter ${s.mongoE2}`);
    expect(r.out).toMatch(/service\s+mongo-capture/);
    expect(r.out).toMatch(/error\s+RecordRejectedError: document too large/);
    expect(r.out).toMatch(/delivery count\s+1/);
    expect(r.out).toContain(
      `stream ${h.topo.streams.clean.name}, subject ${h.topo.clean('eu')}, sequence ${s.b1.msg.seq}`,
    );
    expect(r.out).toContain('index 1 of the original batch, id e2');
    expect(r.out).toContain(`${HEADERS.TRACEPARENT}: ${TRACEPARENT}`);
    expect(r.out).toContain('EventBatch b1, 1 event (device ids hashed');
    expect(r.out).toContain(hash('dev-B'));
    expect(r.out).not.toContain('dev-B');

    const revealed = await h.run(['show', String(s.mongoE2), '--reveal-device']);
    expect(revealed.out).toContain('"deviceId":"dev-B"');
  });

  it('show --json carries every provenance field and the decoded payload', async () => {
    const r = await h.run(['show', '--json', '--seq', `${s.aggregatorB1},${s.webhook}`]);
    expect(r.code).toBe(0);
    const { letters } = JSON.parse(r.out) as { letters: Array<Record<string, unknown>> };
    expect(letters).toHaveLength(2);
    expect(letters[0]).toMatchObject({
      seq: s.aggregatorB1,
      service: 'aggregator',
      errorClass: 'StoreRejectedError',
      errorMessage: 'window table missing',
      deliveryCount: 1,
      original: {
        stream: h.topo.streams.clean.name,
        subject: h.topo.clean('eu'),
        sequence: s.b1.msg.seq,
      },
      event: null,
      originalHeaders: {
        [HEADERS.MSG_ID]: 'raw:1',
        [HEADERS.CONTENT_TYPE]: CONTENT_TYPES.EVENT_BATCH,
        [HEADERS.TRACEPARENT]: TRACEPARENT,
      },
      payload: {
        kind: 'event-batch',
        batchId: 'b1',
        events: [
          { telemetry: { eventId: 'e1', deviceId: hash('dev-A') } },
          { telemetry: { eventId: 'e2', deviceId: hash('dev-B') } },
          { telemetry: { eventId: 'e3', deviceId: hash('dev-A') } },
        ],
      },
    });
    expect(Date.parse(letters[0]!['failedAt'] as string)).not.toBeNaN();
    // A JSON payload (webhook delivery): device ids hidden even inside its JSON body string.
    expect(letters[1]).toMatchObject({
      service: 'webhook-dispatcher',
      payload: {
        kind: 'json',
        value: { v: 1, webhookId: 'w1', body: { device_id: hash('dev-D') } },
      },
    });
    expect(r.out).not.toContain('dev-D');
  });

  it('show by filter prints the matching letters, at most --max', async () => {
    const r = await h.run(['show', '--service', 'mongo-capture', '--max', '1']);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`dead letter ${s.mongoE2}`);
    expect(r.out).not.toContain(`dead letter ${s.mongoE3}`);
    expect(r.err).toContain('2 dead letters match, showing the first 1');
  });

  it('show of an undecodable payload prints its bytes', async () => {
    const r = await h.run(['show', String(s.aggregatorGarbage)]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('not an EventBatch');
    expect(r.out).toContain(Buffer.from('definitely not protobuf').toString('base64'));
  });

  it('show of a sequence not in the DLQ, or a selection matching nothing, is exit 3', async () => {
    const missing = await h.run(['show', '999999']);
    expect(missing.code).toBe(3);
    expect(missing.error).toBeInstanceOf(NothingToDoError);
    expect((missing.error as Error).message).toContain('999999');
    const none = await h.run(['show', '--error-class', 'NoSuchError']);
    expect(none.code).toBe(3);
  });

  it('rejects malformed flags with exit 2', async () => {
    for (const args of [
      ['ls', '--since', 'yesterday'],
      ['ls', '--service', 'a.b'],
      ['ls', '--limit', '0'],
      ['ls', '--device-hash', 'dev-A'],
      ['ls', '--since', '1h', '--until', '2h'],
      ['ls', '--bogus'],
      ['show'],
      ['show', 'abc'],
      ['show', '5-2'],
      ['nope'],
    ]) {
      const r = await h.run(args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.error).toBeInstanceOf(UsageError);
    }
  });
});
