// Test helpers: a device-side gRPC client and event builders.
import { credentials, Metadata, type ClientDuplexStream } from '@grpc/grpc-js';
import {
  IngestServiceClient,
  type Event,
  type EventBatch,
  type IngestAck,
  type IngestRequest,
} from '@sluice/contracts';

export function telemetry(
  id: string,
  device: string,
  region: string,
  over: Partial<{ value: number; eventTime: Date }> = {},
): Event {
  return {
    kind: {
      $case: 'telemetry',
      value: {
        eventId: id,
        deviceId: device,
        eventTime: over.eventTime ?? new Date(),
        sensorType: 'engine_temp',
        value: over.value ?? 87.5,
        unit: 'celsius',
        firmwareVersion: '4.2.1',
        region,
        schemaVersion: 0,
        attributes: { hull: 'HX-42' },
      },
    },
  };
}

export function bearer(token: string): Metadata {
  const md = new Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}

/** A bidirectional Ingest stream with acks collected in order. */
export class StreamDevice {
  readonly acks: IngestAck[] = [];
  readonly call: ClientDuplexStream<IngestRequest, IngestAck>;
  error: (Error & { code?: number }) | undefined;
  ended = false;

  constructor(client: IngestServiceClient, token: string | undefined) {
    this.call = client.ingest(token ? bearer(token) : new Metadata());
    this.call.on('data', (ack: IngestAck) => this.acks.push(ack));
    this.call.on('error', (err) => (this.error = err));
    this.call.on('end', () => (this.ended = true));
  }

  send(batch: EventBatch): void {
    this.call.write({ batch });
  }

  close(): void {
    this.call.end();
  }
}

export function client(port: number): IngestServiceClient {
  return new IngestServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
}

export function unary(
  c: IngestServiceClient,
  batch: EventBatch,
  token?: string,
): Promise<{ ack?: IngestAck; error?: Error & { code?: number; metadata?: Metadata } }> {
  return new Promise((resolve) => {
    c.ingestBatch({ batch }, token ? bearer(token) : new Metadata(), (error, ack) =>
      resolve(error ? { error } : { ack: ack! }),
    );
  });
}
