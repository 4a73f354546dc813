// Recent detections per camera stream for the Detections page. Detections are not stored by the
// pipeline's own services (the exporter forwards them to the owner's systems), so the console watches
// the clean subjects itself, only while the page is open: a plain subscription (nothing consumed or
// acknowledged) started by a request and ended CONSOLE_DETECTIONS_IDLE after the last one.
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import { decodeBatch, type Topology } from '@sluice/contracts';

/** One frame's detections as the page draws them. */
export interface Frame {
  eventId: string;
  frameTime: string;
  detections: Array<{
    label: string;
    classId: number;
    confidence: number;
    trackerId: string;
    bbox: { left: number; top: number; width: number; height: number } | null;
  }>;
}

/** The latest frames of one camera stream. */
export interface CameraStream {
  deviceId: string;
  streamId: string;
  region: string;
  frames: number;
  recent: Frame[];
}

export interface DetectionWatcherOptions {
  nc: NatsConnection;
  topology: Topology;
  /** Frames kept per stream. Default 10. */
  framesPerStream?: number;
  /** Most streams kept (the least recently seen is forgotten). Default 100. */
  maxStreams?: number;
  /** The subscription ends this long after the last request. Default 60 s. */
  idleMs?: number;
}

export class DetectionWatcher {
  private sub: Subscription | undefined;
  private idle: NodeJS.Timeout | undefined;
  private readonly streams = new Map<string, CameraStream>();

  constructor(private readonly opts: DetectionWatcherOptions) {}

  /** The streams seen since watching began, most recent first; starts watching if idle. */
  recent(): { watching: boolean; since: string | undefined; streams: CameraStream[] } {
    const wasWatching = this.sub !== undefined;
    this.touch();
    return {
      watching: wasWatching,
      since: this.since,
      streams: [...this.streams.values()].reverse(),
    };
  }

  private since: string | undefined;

  private touch(): void {
    clearTimeout(this.idle);
    this.idle = setTimeout(() => this.stop(), this.opts.idleMs ?? 60_000);
    this.idle.unref();
    if (this.sub) return;
    this.since = new Date().toISOString();
    this.sub = this.opts.nc.subscribe(this.opts.topology.filters.clean, {
      callback: (err, msg) => {
        if (err) return;
        try {
          this.onBatch(msg.data);
        } catch {
          // undecodable: not the console's to judge (dedupe published it)
        }
      },
    });
  }

  private onBatch(data: Uint8Array): void {
    const keep = this.opts.framesPerStream ?? 10;
    for (const ev of decodeBatch(data).events) {
      if (ev.kind?.$case !== 'detection') continue;
      const d = ev.kind.value;
      const key = `${d.deviceId}/${d.streamId}`;
      const s = this.streams.get(key) ?? {
        deviceId: d.deviceId,
        streamId: d.streamId,
        region: d.region,
        frames: 0,
        recent: [],
      };
      this.streams.delete(key); // re-inserted last: the map's order is recency
      this.streams.set(key, s);
      s.frames++;
      s.recent.unshift({
        eventId: d.eventId,
        frameTime: (d.frameTime ?? new Date(0)).toISOString(),
        detections: d.detections.map((x) => ({
          label: x.label,
          classId: x.classId,
          confidence: x.confidence,
          trackerId: x.trackerId,
          bbox: x.bbox ?? null,
        })),
      });
      s.recent.length = Math.min(s.recent.length, keep);
      if (this.streams.size > (this.opts.maxStreams ?? 100))
        this.streams.delete(this.streams.keys().next().value!);
    }
  }

  stop(): void {
    clearTimeout(this.idle);
    this.sub?.unsubscribe();
    this.sub = undefined;
    this.streams.clear();
  }
}
