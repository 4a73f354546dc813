import { encodeBatch, IngestRequest } from '@sluice/contracts';
import { decodeRequest } from './grpc-server';
import { telemetry } from './test-fixtures/client';

describe('decodeRequest', () => {
  it('decodes once and keeps the exact EventBatch bytes', () => {
    const batch = {
      batchId: 'b-1',
      events: [telemetry('e-1', 'boat-1', 'eu-west', { eventTime: new Date(1_000) })],
    };
    const d = decodeRequest(Buffer.from(IngestRequest.encode({ batch }).finish()));
    expect(d.error).toBeUndefined();
    expect(d.batch).toEqual(batch);
    expect(Buffer.from(d.raw!)).toEqual(Buffer.from(encodeBatch(batch)));
  });

  it('reports garbage and a missing batch instead of throwing', () => {
    expect(decodeRequest(Buffer.from('{"batch":1}')).error).toMatch(/cannot decode|no batch/);
    expect(decodeRequest(Buffer.alloc(0)).error).toBe('the request has no batch');
    expect(decodeRequest(Buffer.from([0x0a, 0x05, 0x01])).error).toMatch(/cannot decode/);
  });
});
