// A minimal server-sent events client over node:http for the stream tests and the sse bench: it
// parses `id:`/`event:`/`data:` frames as they arrive and can stop reading (a slow client).
import { request, type ClientRequest, type IncomingMessage } from 'node:http';

export interface SseEvent {
  id?: string;
  event: string;
  data: string;
  /** performance.now() when the frame was parsed. */
  at: number;
}

export interface SseClient {
  readonly status: number;
  readonly events: SseEvent[];
  /** Comment lines received (heartbeats). */
  readonly comments: number;
  /** True once the server ended or cut the response. */
  readonly ended: boolean;
  /** Resolves with the first event (from the start) matching, or rejects after `timeoutMs`. */
  waitFor(pred: (e: SseEvent, i: number) => boolean, timeoutMs?: number): Promise<SseEvent>;
  /** Resolves when the response ends, or rejects after `timeoutMs`. */
  waitEnded(timeoutMs?: number): Promise<void>;
  /** Stops reading from the socket (the server's writes back up). */
  pause(): void;
  resume(): void;
  close(): void;
  /** Called for each event as it is parsed. */
  onEvent?: (e: SseEvent) => void;
}

/** Opens `GET url` and resolves once the response headers are in (any status; body kept for non-200). */
export function sseConnect(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const req: ClientRequest = request(url, {
      headers: { accept: 'text/event-stream', ...headers },
      agent: false,
    });
    req.on('error', reject);
    req.on('response', (res: IncomingMessage) => {
      const events: SseEvent[] = [];
      let comments = 0;
      let ended = false;
      let buf = '';
      const waiters = new Set<() => void>();
      const notify = () => {
        for (const w of [...waiters]) w();
      };
      res.setEncoding('utf8');
      const client: SseClient = {
        status: res.statusCode ?? 0,
        events,
        get comments() {
          return comments;
        },
        get ended() {
          return ended;
        },
        waitFor(pred, timeoutMs = 10_000) {
          return new Promise((ok, fail) => {
            const check = () => {
              const i = events.findIndex(pred);
              if (i >= 0) {
                waiters.delete(check);
                clearTimeout(timer);
                ok(events[i]!);
              } else if (ended) {
                waiters.delete(check);
                clearTimeout(timer);
                fail(
                  new Error(
                    `the stream ended before the awaited event (${events.length} events, last: ${JSON.stringify(events.at(-1))})`,
                  ),
                );
              }
            };
            const timer = setTimeout(() => {
              waiters.delete(check);
              fail(new Error(`no awaited event within ${timeoutMs} ms (${events.length} events)`));
            }, timeoutMs);
            waiters.add(check);
            check();
          });
        },
        waitEnded(timeoutMs = 10_000) {
          return new Promise((ok, fail) => {
            const check = () => {
              if (!ended) return;
              waiters.delete(check);
              clearTimeout(timer);
              ok();
            };
            const timer = setTimeout(() => {
              waiters.delete(check);
              fail(new Error(`the stream did not end within ${timeoutMs} ms`));
            }, timeoutMs);
            waiters.add(check);
            check();
          });
        },
        pause: () => res.pause(),
        resume: () => res.resume(),
        close: () => {
          req.destroy();
          res.destroy();
        },
      };
      res.on('data', (chunk: string) => {
        buf += chunk;
        for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const e: SseEvent = { event: 'message', data: '', at: performance.now() };
          let isEvent = false;
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) {
              comments++;
              continue;
            }
            if (line.startsWith('id: ')) e.id = line.slice(4);
            else if (line.startsWith('event: ')) e.event = line.slice(7);
            else if (line.startsWith('data: ')) e.data += (e.data ? '\n' : '') + line.slice(6);
            else continue;
            isEvent = true;
          }
          if (isEvent) {
            events.push(e);
            client.onEvent?.(e);
          }
        }
        notify();
      });
      const finish = () => {
        ended = true;
        notify();
      };
      res.on('end', finish);
      res.on('close', finish);
      res.on('error', finish);
      resolve(client);
    });
    req.end();
  });
}
