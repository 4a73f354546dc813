// Device-side load senders: gRPC bidirectional streams (pipelined, acks in order) and HTTP JSON. These
// send the fleet's pre-built batches as they are (duplicates, out-of-order and malformed on purpose);
// the gRPC one opens its streams with the device SDK's transport, the one gRPC client of the gateway.
// Simulated cameras use the SDK's DeviceClient itself (see cameras.ts).
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Client } from '@grpc/grpc-js';
import { AdviceSampler, IngestStatus, type EventBatch, type IngestAck } from '@sluice/contracts';
import {
  bearerMetadata,
  createIngestChannel,
  encodeIngestRequest,
  openIngestStream,
  type IngestStream,
  type IngestTls,
} from '@sluice/device-sdk';
import type { RunStats } from './stats';
import { toWireJson } from './wire-json';

/** A batch to send: its encoded IngestRequest (gRPC) or its events (HTTP JSON), plus bookkeeping. */
export interface OutBatch {
  batchId: string;
  events: number;
  /** Encoded IngestRequest; built from `batch` when absent. */
  bytes?: Buffer;
  batch?: EventBatch;
  schemaVersion?: 1 | 2;
}

export interface Sender {
  /** Sends unless every connection is at its in-flight maximum; false = not sent. */
  trySend(b: OutBatch): boolean;
  /** Batches sent and not yet answered. */
  readonly inFlight: number;
  /** Resolves when nothing is in flight (bounded by `timeoutMs`). */
  drain(timeoutMs: number): Promise<void>;
  close(): void;
}

/** Options of the senders. */
export interface SenderOptions {
  /** Bearer token. */
  token?: string | undefined;
  /** Batches in flight per connection/stream. @default 16 */
  maxInFlight?: number;
  /** Resends of one batch after RETRY answers. @default 5 */
  maxRetries?: number;
  /** TLS to the gateway (the SDK's channel setting). @default plaintext */
  tls?: IngestTls | undefined;
}

/** An encoded IngestRequest carrying `batch` (the SDK's encoder). */
export const encodeRequest = encodeIngestRequest;

interface Pending {
  b: OutBatch;
  sentAt: number;
  attempt: number;
}

async function waitUntil(check: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}

/** `streams` long-lived Ingest streams over one channel each; batches go to the least loaded. */
export class GrpcStreamSender implements Sender {
  private readonly streams: Array<{
    call: IngestStream;
    pending: Pending[];
    broken: boolean;
  }> = [];
  private readonly clients: Client[] = [];
  private readonly max: number;
  private readonly maxRetries: number;
  private timers = new Set<NodeJS.Timeout>();
  /** The gateway's sampling advice (adaptive sampling), honoured like the device SDK does. */
  private readonly sampler = new AdviceSampler();
  /** Batches already thinned (a duplicate resend shares the batch object: thinned once). */
  private readonly thinned = new WeakSet<EventBatch>();

  constructor(
    target: string,
    streams: number,
    private readonly stats: RunStats,
    opts: SenderOptions = {},
  ) {
    this.max = opts.maxInFlight ?? 16;
    this.maxRetries = opts.maxRetries ?? 5;
    const md = bearerMetadata(opts.token);
    for (let i = 0; i < streams; i++) {
      // One channel per stream: separate HTTP/2 connections spread the load on the server.
      const client = createIngestChannel(target, { ownConnection: true, tls: opts.tls });
      this.clients.push(client);
      const call = openIngestStream(client, md);
      const s = { call, pending: [] as Pending[], broken: false };
      call.on('data', (ack: IngestAck) => this.onAck(s, ack));
      call.on('error', () => this.onBroken(s));
      call.on('end', () => this.onBroken(s));
      this.streams.push(s);
    }
  }

  get inFlight(): number {
    let n = 0;
    for (const s of this.streams) n += s.pending.length;
    return n;
  }

  trySend(b: OutBatch): boolean {
    if (b.batch && !b.bytes && this.sampler.active && !this.thinned.has(b.batch)) {
      // Thinned in place before its first send, so a later duplicate resends the same content.
      const kept = b.batch.events.filter((e) => this.sampler.keep(e));
      this.thinned.add(b.batch);
      const dropped = b.batch.events.length - kept.length;
      if (dropped > 0) {
        this.stats.eventsSampled += dropped;
        b.batch.events = kept;
        b.events = kept.length;
      }
      if (kept.length === 0) return true;
    }
    return this.sendAttempt(b, 0);
  }

  private sendAttempt(b: OutBatch, attempt: number): boolean {
    let best: (typeof this.streams)[number] | undefined;
    for (const s of this.streams)
      if (
        !s.broken &&
        s.pending.length < this.max &&
        (!best || s.pending.length < best.pending.length)
      )
        best = s;
    if (!best) return false;
    b.bytes ??= encodeRequest(b.batch!);
    best.pending.push({ b, sentAt: performance.now(), attempt });
    best.call.write(b.bytes);
    if (attempt === 0) {
      this.stats.batchesSent++;
      this.stats.eventsSent += b.events;
    }
    return true;
  }

  private onAck(s: (typeof this.streams)[number], ack: IngestAck): void {
    const p = s.pending.shift();
    if (!p) return;
    this.sampler.update(ack.sampling);
    if (ack.status === IngestStatus.RETRY) {
      this.stats.retries++;
      if (p.attempt >= this.maxRetries) {
        this.stats.failures++;
        return;
      }
      const t = setTimeout(() => {
        this.timers.delete(t);
        if (!this.sendAttempt(p.b, p.attempt + 1)) this.stats.failures++;
      }, ack.retryAfterMs || 100);
      this.timers.add(t);
      return;
    }
    let shed = 0;
    for (const r of ack.rejections) if (r.field === 'sampling') shed++;
    this.stats.eventsShed += shed;
    this.stats.recordAck(performance.now() - p.sentAt, ack.accepted, ack.rejections.length - shed);
  }

  private onBroken(s: (typeof this.streams)[number]): void {
    if (s.broken) return;
    s.broken = true;
    this.stats.failures += s.pending.length;
    s.pending.length = 0;
  }

  drain(timeoutMs: number): Promise<void> {
    return waitUntil(() => this.inFlight === 0 && this.timers.size === 0, timeoutMs);
  }

  close(): void {
    for (const t of this.timers) clearTimeout(t);
    for (const s of this.streams) if (!s.broken) s.call.end();
    for (const c of this.clients) c.close();
  }
}

/** A POST's status and parsed JSON body. */
interface PostAnswer {
  status: number;
  json(): Promise<unknown>;
}

/** POST through `agent` (node:https: fetch takes no CA of its own). */
function httpsPost(
  url: string,
  headers: Record<string, string>,
  body: string,
  agent: HttpsAgent,
): Promise<PostAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: 'POST', headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode ?? 0,
          json: () => Promise.resolve().then(() => JSON.parse(text) as unknown),
        });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** `POST /v1/events` with up to `concurrency` requests at once; JSON in the device's schema version. */
export class HttpSender implements Sender {
  private active = 0;
  private readonly maxRetries: number;
  /** With a CA in `opts.tls`: the keep-alive agent trusting it. */
  private readonly agent: HttpsAgent | undefined;

  constructor(
    private readonly url: string,
    private readonly concurrency: number,
    private readonly stats: RunStats,
    private readonly opts: SenderOptions = {},
  ) {
    this.maxRetries = opts.maxRetries ?? 5;
    const tls = opts.tls;
    if (typeof tls === 'object')
      this.agent = new HttpsAgent({
        keepAlive: true,
        maxSockets: concurrency,
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        ...(tls.serverName !== undefined ? { servername: tls.serverName } : {}),
      });
  }

  get inFlight(): number {
    return this.active;
  }

  trySend(b: OutBatch): boolean {
    if (this.active >= this.concurrency) return false;
    this.stats.batchesSent++;
    this.stats.eventsSent += b.events;
    this.active++;
    // post() never rejects: every failure is counted in stats.
    void this.post(b).finally(() => this.active--);
    return true;
  }

  private async post(b: OutBatch): Promise<void> {
    const body = JSON.stringify(b.batch!.events.map((e) => toWireJson(e, b.schemaVersion ?? 1)));
    for (let attempt = 0; attempt <= this.maxRetries; attempt++) {
      const started = performance.now();
      try {
        const headers = {
          'content-type': 'application/json',
          'idempotency-key': b.batchId,
          ...(this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {}),
        };
        const res: PostAnswer = this.agent
          ? await httpsPost(this.url, headers, body, this.agent)
          : await fetch(this.url, { method: 'POST', headers, body });
        const json = (await res.json()) as {
          accepted?: number;
          rejections?: unknown[];
          retry_after_ms?: number;
        };
        if (res.status === 429 || res.status === 503) {
          this.stats.retries++;
          await new Promise((r) => setTimeout(r, json.retry_after_ms ?? 1000));
          continue;
        }
        this.stats.recordAck(
          performance.now() - started,
          json.accepted ?? 0,
          json.rejections?.length ?? 0,
        );
        return;
      } catch {
        this.stats.retries++;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    this.stats.failures++;
  }

  drain(timeoutMs: number): Promise<void> {
    return waitUntil(() => this.active === 0, timeoutMs);
  }

  close(): void {
    // Requests in flight finish by themselves; fetch keeps no connection to close, the agent does.
    this.agent?.destroy();
  }
}
