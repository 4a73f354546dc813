import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { decodeBatch, encodeBatch } from '@sluice/contracts';
import { rebatchRaw } from './clean-payload';
import { telemetryEvent } from './test-fixtures/events';

describe('rebatchRaw', () => {
  const events = ['a', 'b', 'c'].map((id) => telemetryEvent(id));

  it('is byte-identical to re-encoding the decoded events under the new batch_id', () => {
    const raw = encodeBatch({ batchId: 'device-batch-1', events });
    expect(rebatchRaw(raw, 'raw:S:7')).toEqual(encodeBatch({ batchId: 'raw:S:7', events }));
    expect(rebatchRaw(encodeBatch({ batchId: '', events }), 'raw:S:7')).toEqual(
      encodeBatch({ batchId: 'raw:S:7', events }),
    );
  });

  it('drops every batch_id of the raw bytes wherever it is and keeps unknown fields', () => {
    const tail = new BinaryWriter()
      .uint32(10)
      .string('late')
      .uint32(24)
      .int64(-1n)
      .uint32(33)
      .fixed64(5n)
      .uint32(45)
      .fixed32(9)
      .finish();
    const raw = Buffer.concat([
      encodeBatch({ batchId: '', events: events.slice(0, 2) }),
      tail,
      encodeBatch({ batchId: '', events: events.slice(2) }),
    ]);
    expect(decodeBatch(rebatchRaw(raw, 'new')!)).toEqual({ batchId: 'new', events });
  });

  it('declines bytes it does not handle (truncated, groups)', () => {
    const raw = encodeBatch({ batchId: 'b', events });
    expect(rebatchRaw(raw.subarray(0, raw.length - 3), 'x')).toBeUndefined();
    expect(
      rebatchRaw(Buffer.concat([raw, Buffer.from([(5 << 3) | 3, (5 << 3) | 4])]), 'x'),
    ).toBeUndefined();
  });
});
