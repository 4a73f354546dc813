// Server-sent events to the open pages: every sample is serialised once and written to each client.
// Bounded per client: a client whose unsent bytes exceed the limit (a slow or stalled reader) is
// dropped rather than buffered for; it reconnects and gets the latest sample.
import type { ServerResponse } from 'node:http';
import { Counter, Gauge, type Registry } from 'prom-client';

export interface StreamHubOptions {
  /** Unsent bytes one client may have before it is dropped. */
  maxBufferedBytes: number;
  /** Most clients at once. */
  maxClients: number;
  registry: Registry;
}

/** The open `/api/stream` clients. */
export class StreamHub {
  private readonly clients = new Set<ServerResponse>();
  private readonly open: Gauge;
  private readonly dropped: Counter;
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(private readonly opts: StreamHubOptions) {
    this.open = new Gauge({
      name: 'sluice_console_streams',
      help: 'Open /api/stream clients',
      registers: [opts.registry],
    });
    this.dropped = new Counter({
      name: 'sluice_console_stream_drops_total',
      help: 'Stream clients dropped for reading too slowly',
      registers: [opts.registry],
    });
    // A comment line now and then keeps proxies from closing an idle stream.
    this.heartbeat = setInterval(() => this.write(': keep-alive\n\n'), 15_000);
    this.heartbeat.unref();
  }

  get size(): number {
    return this.clients.size;
  }

  /** Whether another client may join. */
  get full(): boolean {
    return this.clients.size >= this.opts.maxClients;
  }

  /** Starts the event stream on `res`, sending `initial` first when there is one. */
  add(res: ServerResponse, initial?: string): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    if (initial !== undefined) res.write(initial);
    this.clients.add(res);
    this.open.set(this.clients.size);
    res.on('close', () => {
      this.clients.delete(res);
      this.open.set(this.clients.size);
    });
  }

  /** Sends one `event` with `data` (JSON) to every client. */
  send(event: string, data: unknown): string {
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    this.write(frame);
    return frame;
  }

  private write(frame: string): void {
    for (const res of this.clients) {
      if (res.writableLength + frame.length > this.opts.maxBufferedBytes) {
        this.dropped.inc();
        this.clients.delete(res);
        this.open.set(this.clients.size);
        res.destroy();
        continue;
      }
      res.write(frame);
    }
  }

  /** Ends every stream. */
  close(): void {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    for (const res of this.clients) res.end();
    this.clients.clear();
    this.open.set(0);
  }
}
