import { CONTENT_TYPES, encodeBatch, HEADERS, topology, type EventBatch } from '@sluice/contracts';
import { EVENT_DLQ_HEADERS } from '@sluice/sinks-core';
import { decodeLetter } from './letter';
import { DEFAULT_REPLAY_SERVICES } from './options';
import { planRedrive, type PlanContext, type RedrivePlan } from './plan';
import { rawLetter, reading } from './test-fixtures/letters';

const topo = topology('');
const ctx: PlanContext = {
  topology: topo,
  dlqStream: 'DLQ',
  runId: 'redrive-run-1',
  replayServices: DEFAULT_REPLAY_SERVICES,
};
const batch: EventBatch = { batchId: 'b', events: [reading('e1', 'd1'), reading('e2', 'd2')] };
const payload = Buffer.from(encodeBatch(batch));

function plan(...args: Parameters<typeof rawLetter>): RedrivePlan {
  const r = planRedrive(decodeLetter(rawLetter(...args), topo), ctx);
  if (!r.ok) throw new Error(`refused: ${r.reason}`);
  return r.plan;
}

function refusal(...args: Parameters<typeof rawLetter>): string {
  const r = planRedrive(decodeLetter(rawLetter(...args), topo), ctx);
  if (r.ok) throw new Error(`planned to ${r.plan.subject}`);
  return r.reason;
}

describe('planRedrive', () => {
  it('sends a replay service letter of a clean batch to replay.<service>.<region>', () => {
    const p = plan(7, {
      service: 'aggregator',
      payload,
      originalHeaders: {
        [HEADERS.MSG_ID]: 'raw:3',
        [HEADERS.TRACEPARENT]: 'tp',
        [HEADERS.TRACESTATE]: 'ts',
      },
    });
    expect(p).toMatchObject({
      route: 'replay',
      subject: 'replay.aggregator.eu',
      expectStream: 'REPLAY',
      msgId: 'redrive:DLQ:7',
      contentType: CONTENT_TYPES.EVENT_BATCH,
      events: 2,
    });
    expect(p.headers).toEqual({
      [HEADERS.SOURCE_STREAM]: 'TELEMETRY',
      [HEADERS.SOURCE_SEQUENCE]: '10',
      [HEADERS.SOURCE_SUBJECT]: 'telemetry.clean.eu',
      [HEADERS.REDRIVE_OF]: 'DLQ:7',
      [HEADERS.REPLAY_ID]: 'redrive-run-1',
      [HEADERS.TRACEPARENT]: 'tp',
      [HEADERS.TRACESTATE]: 'ts',
    });
    expect(Buffer.from(p.payload)).toEqual(payload);
  });

  it('names the event index of a per-event letter, mapped through a replayed batch', () => {
    const one = Buffer.from(encodeBatch({ batchId: 'b', events: [batch.events[1]!] }));
    const p = plan(
      8,
      { service: 'exporter-mqtt', payload: one },
      { headers: { [EVENT_DLQ_HEADERS.EVENT_INDEX]: '1' } },
    );
    expect(p.subject).toBe('replay.exporter-mqtt.eu');
    expect(p.headers[HEADERS.SOURCE_INDEXES]).toBe('1');

    // Dead-lettered from a replayed batch: the clean batch's provenance, the index within it.
    const q = plan(
      9,
      {
        service: 'mongo-capture',
        payload: one,
        originalSubject: 'replay.mongo-capture.us',
        originalStream: 'REPLAY',
        originalStreamSequence: 4,
        originalHeaders: {
          [HEADERS.SOURCE_STREAM]: 'TELEMETRY',
          [HEADERS.SOURCE_SEQUENCE]: '42',
          [HEADERS.SOURCE_SUBJECT]: 'telemetry.clean.us',
          [HEADERS.SOURCE_TIME]: '1700000000000',
          [HEADERS.SOURCE_INDEXES]: '3,7,9',
          [HEADERS.REPLAY_REBUILD]: 'rebuild-1',
        },
      },
      { headers: { [EVENT_DLQ_HEADERS.EVENT_INDEX]: '1' } },
    );
    expect(q.subject).toBe('replay.mongo-capture.us');
    expect(q.headers).toMatchObject({
      [HEADERS.SOURCE_STREAM]: 'TELEMETRY',
      [HEADERS.SOURCE_SEQUENCE]: '42',
      [HEADERS.SOURCE_SUBJECT]: 'telemetry.clean.us',
      [HEADERS.SOURCE_TIME]: '1700000000000',
      [HEADERS.SOURCE_INDEXES]: '7',
    });
    expect(q.headers[HEADERS.REPLAY_REBUILD]).toBeUndefined();
  });

  it('sends other services letters to the original subject without Nats-* headers', () => {
    const p = plan(3, {
      service: 'dedupe',
      payload,
      originalSubject: 'telemetry.raw.eu',
      originalStream: 'TELEMETRY_RAW',
      originalHeaders: {
        'Nats-Msg-Id': 'b1',
        'Nats-Expected-Stream': 'X',
        'content-type': CONTENT_TYPES.EVENT_BATCH,
        [HEADERS.CONTENT_DIGEST]: 'abc',
      },
    });
    expect(p).toMatchObject({
      route: 'original',
      subject: 'telemetry.raw.eu',
      expectStream: 'TELEMETRY_RAW',
      msgId: 'redrive:DLQ:3',
      contentType: CONTENT_TYPES.EVENT_BATCH,
    });
    expect(p.headers).toEqual({ [HEADERS.CONTENT_DIGEST]: 'abc', [HEADERS.REDRIVE_OF]: 'DLQ:3' });

    const w = plan(4, {
      service: 'webhook-dispatcher',
      payload: Buffer.from('{"v":1}'),
      originalSubject: 'webhook.deliveries.s1',
      originalStream: 'WEBHOOK_DELIVERIES',
    });
    expect(w).toMatchObject({
      subject: 'webhook.deliveries.s1',
      contentType: 'application/octet-stream',
    });
  });

  it('refuses letters that cannot go back to their service alone', () => {
    expect(refusal(1, { service: 'archiver', payload })).toMatch(/read by every clean consumer/);
    expect(
      refusal(2, { service: 'webhook-dispatcher', originalSubject: 'telemetry.rollup.1m.eu' }),
    ).toMatch(/every rollup consumer/);
    expect(refusal(3, { service: 'aggregator', payload: Buffer.from('junk') })).toMatch(
      /not an EventBatch/,
    );
    expect(
      refusal(4, { service: 'aggregator', originalSubject: 'telemetry.raw.eu', payload }),
    ).toMatch(/skip dedupe/);
    expect(refusal(5, { service: 'aggregator', originalSubject: 'webhook.x', payload })).toMatch(
      /no region/,
    );
    expect(
      refusal(6, { service: 'archiver', originalSubject: 'replay.mongo-capture.eu', payload }),
    ).toMatch(/replay subject of mongo-capture/);
    expect(refusal(7, { service: 'dedupe', originalSubject: '' })).toMatch(/no original subject/);
    expect(refusal(8, { service: 'x', originalSubject: 'dlq.y' })).toMatch(/DLQ subject/);
    const unreadable = decodeLetter(
      { seq: 9, subject: 'dlq.dedupe', headers: {}, data: Buffer.from('zz'), storedAt: new Date() },
      topo,
    );
    const r = planRedrive(unreadable, ctx);
    expect(r.ok).toBe(false);
  });

  it('refuses an original subject outside the namespace', () => {
    const ns = topology('staging');
    const letter = decodeLetter(
      rawLetter(
        1,
        { service: 'dedupe', originalSubject: 'telemetry.raw.eu' },
        { subject: 'staging.dlq.dedupe' },
      ),
      ns,
    );
    const r = planRedrive(letter, { ...ctx, topology: ns });
    expect(r).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/outside namespace "staging"/),
    });
    const inside = decodeLetter(
      rawLetter(2, { service: 'dedupe', originalSubject: 'staging.telemetry.raw.eu' }),
      ns,
    );
    expect(planRedrive(inside, { ...ctx, topology: ns })).toMatchObject({
      ok: true,
      plan: { subject: 'staging.telemetry.raw.eu' },
    });
    const replayed = decodeLetter(
      rawLetter(3, {
        service: 'aggregator',
        originalSubject: 'staging.telemetry.clean.eu',
        payload,
      }),
      ns,
    );
    expect(planRedrive(replayed, { ...ctx, topology: ns })).toMatchObject({
      ok: true,
      plan: { subject: 'staging.replay.aggregator.eu', expectStream: 'STAGING_REPLAY' },
    });
  });

  it('--replay-services decides the route', () => {
    const letter = decodeLetter(rawLetter(1, { service: 'archiver', payload }), topo);
    expect(planRedrive(letter, { ...ctx, replayServices: ['archiver'] })).toMatchObject({
      ok: true,
      plan: { route: 'replay', subject: 'replay.archiver.eu' },
    });
    const mongo = decodeLetter(rawLetter(2, { service: 'mongo-capture', payload }), topo);
    expect(planRedrive(mongo, { ...ctx, replayServices: ['archiver'] }).ok).toBe(false);
  });
});
