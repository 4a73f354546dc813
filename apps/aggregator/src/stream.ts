// Push instead of polling: `GET /v1/stream` subscribers receive the Rollups the closer publishes to
// the ROLLUPS stream, filtered by resolution, scope, device, region and sensor. One ordered consumer
// per process reads every roll-up subject once; each Rollup is decoded and framed once and the same
// bytes are written to every matching subscriber. A subscriber resuming with `Last-Event-ID` (the
// stream sequence of the last event it received) first reads what it missed through an ordered
// consumer of its own, from that sequence up to the stream's end at the time it connected, while the
// shared consumer's events for it are held back; then those are sent, skipping what it already has.
// Every subscriber's unsent bytes are bounded: one that does not keep up is sent an `overflow` event
// and disconnected, never buffered without limit.
import { DeliverPolicy, jetstream, jetstreamManager, type Consumer } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { decodeRollup, RollupScope, type Rollup, type Topology } from '@sluice/contracts';
import type { EventStream } from '@sluice/http';
import type { Logger } from '@sluice/observability';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Point } from './query';

export const STREAM_METRICS = {
  clients: 'sluice_aggregator_stream_clients',
  events: 'sluice_aggregator_stream_events_total',
  disconnects: 'sluice_aggregator_stream_disconnects_total',
} as const;

export interface RollupStreamOptions {
  nc: NatsConnection;
  topology: Topology;
  log: Logger;
  registry: Registry;
  /** Comment line sent to every subscriber this often (proxies and clients see a live connection). Default 15 s. */
  heartbeatMs?: number;
  /** Unsent bytes one subscriber may hold (its socket's buffer plus events held during a resume). Default 1 MiB. */
  maxBufferBytes?: number;
  /** Subscribers of one process; more are refused (503). Default 2,000. */
  maxClients?: number;
}

/** What a subscriber asked for; an absent list matches everything. */
export interface StreamFilter {
  resolution: string;
  scope: 'device' | 'region';
  devices?: ReadonlySet<string>;
  /** Requested regions intersected with the token's; `undefined`: every region. */
  regions?: ReadonlySet<string>;
  sensors?: ReadonlySet<string>;
}

/** The JSON `data` of a `rollup` event: a window as the series API returns it, with its series. */
export interface RollupEventData extends Point {
  scope: 'device' | 'region';
  device?: string;
  region: string;
  sensor: string;
  resolution: string;
  end: string;
}

const iso = (d: Date | undefined) => (d ?? new Date(0)).toISOString();

export function rollupEventData(r: Rollup): RollupEventData {
  const device = r.scope === RollupScope.DEVICE;
  return {
    scope: device ? 'device' : 'region',
    ...(device ? { device: r.deviceId } : {}),
    region: r.region,
    sensor: r.sensorType,
    resolution: r.resolution,
    time: iso(r.windowStart),
    end: iso(r.windowEnd),
    count: Number(r.count),
    sum: r.sum,
    min: r.min,
    max: r.max,
    avg: r.avg,
    first: r.firstValue,
    last: r.lastValue,
    first_time: iso(r.firstTime),
    last_time: iso(r.lastTime),
    revision: r.revision,
    late_count: Number(r.lateCount),
  };
}

function matches(f: StreamFilter, r: Rollup): boolean {
  if (r.resolution !== f.resolution) return false;
  if ((r.scope === RollupScope.DEVICE) !== (f.scope === 'device')) return false;
  if (f.regions && !f.regions.has(r.region)) return false;
  if (f.sensors && !f.sensors.has(r.sensorType)) return false;
  if (f.devices && !f.devices.has(r.deviceId)) return false;
  return true;
}

const enc = new TextEncoder();
const frameOf = (seq: number, r: Rollup) =>
  enc.encode(`id: ${seq}\nevent: rollup\ndata: ${JSON.stringify(rollupEventData(r))}\n\n`);

class Subscriber {
  /** Stream sequence of the last event sent (or the one it resumed after). */
  lastSeq: number;
  /** Live events held while the subscriber catches up; `undefined` once live. */
  held: Array<{ seq: number; frame: Uint8Array }> | undefined;
  heldBytes = 0;
  done = false;

  constructor(
    readonly filter: StreamFilter,
    readonly stream: EventStream,
    resumeAfter: number | undefined,
  ) {
    this.lastSeq = resumeAfter ?? 0;
    this.held = resumeAfter !== undefined ? [] : undefined;
  }
}

/** The shared subscription and its subscribers (one per process). */
export class RollupStream {
  private readonly subscribers = new Map<string, Set<Subscriber>>();
  private count = 0;
  private starting: Promise<void> | undefined;
  private consumer: Consumer | undefined;
  private stopped = false;
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly heartbeatMs: number;
  private readonly maxBuffer: number;
  private readonly maxClients: number;
  private readonly clientsGauge: Gauge;
  private readonly events: Counter;
  private readonly disconnects: Counter<'reason'>;
  private readonly heartbeatFrame = enc.encode(': heartbeat\n\n');

  constructor(private readonly opts: RollupStreamOptions) {
    this.heartbeatMs = opts.heartbeatMs ?? 15_000;
    this.maxBuffer = opts.maxBufferBytes ?? 1024 * 1024;
    this.maxClients = opts.maxClients ?? 2_000;
    this.clientsGauge = new Gauge({
      name: STREAM_METRICS.clients,
      help: 'Subscribers of GET /v1/stream in this process',
      registers: [opts.registry],
    });
    this.events = new Counter({
      name: STREAM_METRICS.events,
      help: 'Rollup events written to /v1/stream subscribers',
      registers: [opts.registry],
    });
    this.disconnects = new Counter({
      name: STREAM_METRICS.disconnects,
      help: 'Subscribers the server disconnected, by reason (slow_consumer, shutdown)',
      labelNames: ['reason'],
      registers: [opts.registry],
    });
  }

  /** Subscribers connected now. */
  get size(): number {
    return this.count;
  }

  /** True when another subscriber would exceed the limit. */
  get full(): boolean {
    return this.count >= this.maxClients;
  }

  /**
   * Adds a subscriber on an opened stream: live events from now on, and with `resumeAfter` first
   * every matching event after that stream sequence. Resolves once it is registered (a resume goes
   * on in the background).
   */
  async subscribe(
    filter: StreamFilter,
    stream: EventStream,
    resumeAfter: number | undefined,
  ): Promise<void> {
    await this.ensureStarted();
    const s = new Subscriber(filter, stream, resumeAfter);
    let set = this.subscribers.get(filter.resolution);
    if (!set) this.subscribers.set(filter.resolution, (set = new Set()));
    set.add(s);
    this.count++;
    this.clientsGauge.set(this.count);
    stream.onClose(() => {
      s.done = true;
      if (set.delete(s)) {
        this.count--;
        this.clientsGauge.set(this.count);
      }
    });
    // An immediate comment: the client sees the stream open before the first event.
    stream.write(this.heartbeatFrame);
    if (resumeAfter !== undefined)
      void this.catchUp(s, resumeAfter).catch((err: unknown) => {
        this.opts.log.warn({ err }, '/v1/stream: resume failed; the subscriber is disconnected');
        this.cut(s, 'resume_failed');
      });
  }

  /** Ends every subscriber with a `shutdown` event and stops the shared consumer. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.heartbeat);
    for (const set of this.subscribers.values())
      for (const s of set) {
        if (s.done) continue;
        s.stream.write(
          enc.encode(
            `event: shutdown\ndata: ${JSON.stringify({ last_event_id: String(s.lastSeq) })}\n\n`,
          ),
        );
        this.disconnects.inc({ reason: 'shutdown' });
        s.stream.end(1_000);
      }
    await this.starting?.catch(() => undefined);
    await this.consumer?.delete().catch(() => undefined);
  }

  private ensureStarted(): Promise<void> {
    this.starting ??= this.start();
    return this.starting;
  }

  private async start(): Promise<void> {
    const { nc, topology } = this.opts;
    const js = jetstream(nc);
    this.consumer = await js.consumers.get(topology.streams.rollups.name, {
      filter_subjects: topology.filters.rollup,
      deliver_policy: DeliverPolicy.New,
    });
    const messages = await this.consumer.consume({ max_messages: 1_000 });
    void (async () => {
      for await (const m of messages) {
        if (this.stopped) break;
        const set = this.subscribers.get(subjectResolution(m.subject));
        if (!set || set.size === 0) continue;
        let rollup: Rollup;
        try {
          rollup = decodeRollup(m.data);
        } catch (err) {
          this.opts.log.warn({ err, seq: m.seq }, '/v1/stream: undecodable Rollup skipped');
          continue;
        }
        let frame: Uint8Array | undefined;
        for (const s of set) {
          if (s.done || !matches(s.filter, rollup)) continue;
          frame ??= frameOf(m.seq, rollup);
          this.offer(s, m.seq, frame);
        }
      }
    })().catch((err: unknown) => {
      if (!this.stopped) this.opts.log.error({ err }, '/v1/stream: the shared consumer stopped');
    });
    this.heartbeat = setInterval(() => {
      for (const set of this.subscribers.values())
        for (const s of set) {
          if (s.done) continue;
          s.stream.write(this.heartbeatFrame);
          if (s.stream.bufferedBytes > this.maxBuffer) this.cut(s, 'slow_consumer');
        }
    }, this.heartbeatMs);
    this.heartbeat.unref();
  }

  /** A live event for a subscriber: held while it catches up, else sent. */
  private offer(s: Subscriber, seq: number, frame: Uint8Array): void {
    if (s.held) {
      s.held.push({ seq, frame });
      s.heldBytes += frame.byteLength;
      if (s.heldBytes + s.stream.bufferedBytes > this.maxBuffer) this.cut(s, 'slow_consumer');
      return;
    }
    this.send(s, seq, frame);
  }

  private send(s: Subscriber, seq: number, frame: Uint8Array): void {
    if (s.done || seq <= s.lastSeq) return;
    s.stream.write(frame);
    s.lastSeq = seq;
    this.events.inc();
    if (s.stream.bufferedBytes > this.maxBuffer) this.cut(s, 'slow_consumer');
  }

  /** Disconnects a subscriber with a last event saying why and where to resume. */
  private cut(s: Subscriber, reason: string): void {
    if (s.done) return;
    s.done = true;
    s.held = undefined;
    s.stream.write(
      enc.encode(
        `event: overflow\ndata: ${JSON.stringify({
          reason,
          last_event_id: String(s.lastSeq),
          detail:
            reason === 'slow_consumer'
              ? `more than ${this.maxBuffer} bytes were waiting for this client; reconnect with Last-Event-ID to resume`
              : 'reconnect with Last-Event-ID to resume',
        })}\n\n`,
      ),
    );
    this.disconnects.inc({ reason });
    s.stream.end();
  }

  /**
   * Sends what a resuming subscriber missed: its own ordered consumer from `after + 1` up to the
   * stream's last sequence now (the shared consumer already holds everything later), then the held
   * live events past what it sent.
   */
  private async catchUp(s: Subscriber, after: number): Promise<void> {
    const { nc, topology } = this.opts;
    const stream = topology.streams.rollups.name;
    const info = await (await jetstreamManager(nc)).streams.info(stream);
    const end = info.state.last_seq;
    if (info.state.first_seq > after + 1 && end > after) {
      // Purged by the stream's limits: say so rather than pretend the resume is complete.
      s.stream.write(
        enc.encode(
          `event: gap\ndata: ${JSON.stringify({ from: String(after + 1), to: String(info.state.first_seq - 1) })}\n\n`,
        ),
      );
    }
    if (end > after) {
      const regions = s.filter.regions;
      const subject =
        regions && regions.size === 1
          ? topology.rollup(s.filter.resolution, [...regions][0]!)
          : // `<ns>.telemetry.rollup.>` narrowed to the resolution, every region.
            `${topology.filters.rollup.slice(0, -1)}${s.filter.resolution}.*`;
      const c = await jetstream(nc).consumers.get(stream, {
        filter_subjects: subject,
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: after + 1,
      });
      try {
        let pending = (await c.info(true)).num_pending;
        let seq = after;
        while (!s.done && seq < end && pending > 0) {
          const batch = await c.fetch({ max_messages: Math.min(500, pending), expires: 2_000 });
          let got = 0;
          for await (const m of batch) {
            got++;
            seq = m.seq;
            if (m.seq > end) break;
            const r = decodeRollup(m.data);
            if (matches(s.filter, r)) this.send(s, m.seq, frameOf(m.seq, r));
            // Caught-up events count as sent even when filtered out: the held ones start after.
            if (!s.done) s.lastSeq = Math.max(s.lastSeq, m.seq);
          }
          pending -= got;
          if (got === 0) break;
          // Let the socket take what was written before reading more.
          if (!s.done && s.stream.bufferedBytes > this.maxBuffer / 2) await drained(s.stream);
        }
      } finally {
        await c.delete().catch(() => undefined);
      }
    }
    if (s.done) return;
    const held = s.held ?? [];
    s.held = undefined;
    s.heldBytes = 0;
    for (const h of held) this.send(s, h.seq, h.frame);
  }
}

/** `<ns>.telemetry.rollup.<resolution>.<region>` → `<resolution>`. */
function subjectResolution(subject: string): string {
  const tokens = subject.split('.');
  return tokens[tokens.length - 2] ?? '';
}

async function drained(stream: EventStream): Promise<void> {
  for (let i = 0; i < 100 && !stream.closed && stream.bufferedBytes > 0; i++)
    await new Promise((r) => setTimeout(r, 20));
}
