import { Server } from '@grpc/grpc-js';
import {
  IngestAck,
  IngestServiceService,
  IngestStatus,
  ingestStatusToJSON,
  type IngestServiceServer,
} from './index';

describe('IngestService definition', () => {
  it('registers with a grpc-js server', () => {
    const impl: IngestServiceServer = {
      ingest: (call) => call.end(),
      ingestBatch: (_call, callback) =>
        callback(null, IngestAck.fromPartial({ status: IngestStatus.OK })),
    };
    expect(() => new Server().addService(IngestServiceService, impl)).not.toThrow();
    expect(IngestServiceService.ingest.path).toBe('/sluice.gateway.v1.IngestService/Ingest');
    expect(
      IngestServiceService.ingest.requestStream && IngestServiceService.ingest.responseStream,
    ).toBe(true);
  });

  it('serialises acks with rejections', () => {
    const ack = IngestAck.fromPartial({
      batchId: 'b-1',
      accepted: 2,
      status: IngestStatus.PARTIAL,
      rejections: [
        {
          index: 1,
          eventId: 'evt-0002',
          field: 'value',
          reason: 'must be a finite number, got "hot"',
        },
      ],
    });
    const { responseSerialize, responseDeserialize } = IngestServiceService.ingestBatch;
    expect(responseDeserialize(responseSerialize(ack))).toEqual(ack);
    expect(ingestStatusToJSON(IngestStatus.RETRY)).toBe('INGEST_STATUS_RETRY');
  });
});
