// The gRPC side of the gateway's IngestService shared by every device-side sender (this SDK's client
// and fleet-sim's raw load generator): channel credentials, the bearer token, and a bidirectional
// Ingest stream that writes pre-encoded IngestRequest bytes, so a resend is the same bytes.
import {
  Client,
  credentials,
  Metadata,
  type ChannelCredentials,
  type ClientDuplexStream,
  type ClientOptions,
} from '@grpc/grpc-js';
import { IngestAck, IngestRequest, IngestServiceService, type EventBatch } from '@sluice/contracts';

/** TLS settings of a gateway channel (see the client options' `tls`). */
export type IngestTls =
  | boolean
  | {
      ca?: string | Buffer | undefined;
      cert?: string | Buffer | undefined;
      key?: string | Buffer | undefined;
      serverName?: string | undefined;
    };

const pemBuffer = (v: string | Buffer | undefined): Buffer | null =>
  v === undefined ? null : Buffer.isBuffer(v) ? v : Buffer.from(v);

/** Channel credentials for `tls`: insecure when false. */
export function ingestCredentials(tls: IngestTls | undefined): ChannelCredentials {
  if (!tls) return credentials.createInsecure();
  if (tls === true) return credentials.createSsl();
  return credentials.createSsl(pemBuffer(tls.ca), pemBuffer(tls.key), pemBuffer(tls.cert));
}

/** Options of {@link createIngestChannel}. */
export interface IngestChannelOptions {
  /** TLS to the gateway. Default `false`. */
  tls?: IngestTls | undefined;
  /** Extra grpc-js channel options. Default none. */
  channelOptions?: ClientOptions | undefined;
  /**
   * A channel (one HTTP/2 connection) of its own rather than one shared with other clients of the
   * same target. Default `false`.
   */
  ownConnection?: boolean | undefined;
}

/** A gRPC channel to the gateway at `target` (`host:port`). Close it with `close()`. */
export function createIngestChannel(target: string, opts: IngestChannelOptions = {}): Client {
  const tls = opts.tls;
  const options: ClientOptions = {
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    ...(typeof tls === 'object' && tls.serverName
      ? {
          'grpc.ssl_target_name_override': tls.serverName,
          'grpc.default_authority': tls.serverName,
        }
      : {}),
    ...(opts.ownConnection ? { 'grpc.use_local_subchannel_pool': 1 } : {}),
    ...opts.channelOptions,
  };
  return new Client(target, ingestCredentials(tls), options);
}

/** Metadata carrying `authorization: Bearer <token>` (empty without a token). */
export function bearerMetadata(token: string | undefined): Metadata {
  const md = new Metadata();
  if (token) md.set('authorization', `Bearer ${token}`);
  return md;
}

/** An IngestRequest carrying `batch`, encoded. */
export function encodeIngestRequest(batch: EventBatch): Buffer {
  const bytes = IngestRequest.encode({ batch }).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const asBuffer = (b: Uint8Array): Buffer =>
  Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** A bidirectional Ingest stream: write encoded IngestRequests, read IngestAcks in request order. */
export type IngestStream = ClientDuplexStream<Uint8Array, IngestAck>;

/** Opens the gateway's `Ingest` stream on `channel`. */
export function openIngestStream(channel: Client, metadata: Metadata): IngestStream {
  return channel.makeBidiStreamRequest<Uint8Array, IngestAck>(
    IngestServiceService.ingest.path,
    asBuffer,
    (buf: Buffer) => IngestAck.decode(buf),
    metadata,
  );
}
