import type { Delivery } from '@sluice/actor';
import type { EventBatch } from '@sluice/contracts';
import { flatten } from './records';
import { telemetryEvent } from './test-events';

function delivery(seq: number, value: EventBatch): Delivery<EventBatch> {
  return {
    value,
    seq,
    subject: 'telemetry.clean.eu-west',
    deliveryCount: 1,
    msg: {
      info: { stream: 'TELEMETRY', timestampNanos: 1_700_000_000_123_000_000 },
      data: new Uint8Array(),
    } as never,
    context: undefined as never,
  };
}

describe('flatten', () => {
  it('turns deliveries into records with provenance, rejecting events no sink can store', () => {
    const f = flatten([
      delivery(5, { batchId: 'a', events: [telemetryEvent('e1'), {}, telemetryEvent('')] }),
      delivery(6, { batchId: 'b', events: [telemetryEvent('e2')] }),
    ]);
    expect(f.records.map((r) => r.id)).toEqual(['e1', 'e2']);
    expect(f.owner).toEqual([0, 1]);
    expect(f.records[1]!.source).toMatchObject({
      stream: 'TELEMETRY',
      seq: 6,
      index: 0,
      batchId: 'b',
    });
    expect(f.records[0]!.source.publishedAt.getTime()).toBe(1_700_000_000_123);
    expect(f.invalid.map((i) => [i.delivery, i.index, i.error.name])).toEqual([
      [0, 1, 'RecordRejectedError'],
      [0, 2, 'RecordRejectedError'],
    ]);
  });
});
