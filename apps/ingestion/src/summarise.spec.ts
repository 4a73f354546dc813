import { IngestStatus, type EventRejection } from '@sluice/contracts';
import { ackBytes } from './grpc-server';
import { MAX_ACK_TEXT, MAX_REJECTED_ACK_ENTRIES, summariseRejections } from './pipeline';

describe('summariseRejections', () => {
  it('keeps a fully rejected batch ack under 16 KiB in the worst case', () => {
    // Every event rejected at its own long field, with long ids and long non-ASCII reasons.
    const rejections: EventRejection[] = Array.from({ length: 1000 }, (_, i) => ({
      index: i,
      eventId: `${i}-`.padEnd(128, 'e'),
      field: `telemetry.attributes[${JSON.stringify(`k${i}`.padEnd(256, 'k'))}]`,
      reason: `ü${i} `.padEnd(1000, 'ü'),
    }));
    const out = summariseRejections(rejections);
    expect(out).toHaveLength(MAX_REJECTED_ACK_ENTRIES);
    expect(out.every((r) => Buffer.byteLength(r.field) <= MAX_ACK_TEXT)).toBe(true);
    expect(out.slice(0, -1).every((r) => Buffer.byteLength(r.reason) <= MAX_ACK_TEXT)).toBe(true);
    expect(out.at(-1)).toMatchObject({
      index: 15,
      field: 'batch',
      reason: expect.stringMatching(
        /^and 985 more events rejected at 985 other fields, the first: /,
      ),
    });
    const ack = {
      batchId: 'b'.repeat(128),
      accepted: 0,
      rejections: out,
      retryAfterMs: 0,
      status: IngestStatus.REJECTED,
      duplicate: false,
    };
    expect(ackBytes(ack)).toBeLessThanOrEqual(16 * 1024);
  });

  it('names the first event per field and counts the others', () => {
    const r = (index: number, field: string): EventRejection => ({
      index,
      eventId: `e-${index}`,
      field,
      reason: `bad ${field}`,
    });
    const rejections = [
      ...Array.from({ length: 20 }, (_, i) => r(i, 'telemetry.region')),
      r(20, 'telemetry.value'),
    ];
    expect(summariseRejections(rejections)).toEqual([
      {
        index: 0,
        eventId: 'e-0',
        field: 'telemetry.region',
        reason: 'bad telemetry.region (and 19 more events rejected at this field)',
      },
      { index: 20, eventId: 'e-20', field: 'telemetry.value', reason: 'bad telemetry.value' },
    ]);
  });

  it('leaves a short list as it is', () => {
    const one = [
      { index: 3, eventId: 'e', field: 'telemetry.value', reason: 'must be a finite number' },
    ];
    expect(summariseRejections(one)).toEqual(one);
  });
});
