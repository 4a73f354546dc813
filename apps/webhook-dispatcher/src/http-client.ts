// One webhook POST: SSRF-checked and pinned to the checked address, bounded by a whole-request
// timeout, response body read but only a prefix kept. Keep-alive agents are per endpoint.
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import { urlToHttpOptions } from 'node:url';
import {
  context,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Tracer,
} from '@opentelemetry/api';
import { ATTR, injectRequestTraceHeaders, tracer } from '@sluice/observability';
import type { SsrfPolicy } from './ssrf';

export interface PostResult {
  /** HTTP status, or undefined when no response arrived. */
  status?: number;
  /** Transport error, timeout or SSRF refusal. */
  error?: Error;
  latencyMs: number;
  /** Delay asked for by `Retry-After`, in ms. */
  retryAfterMs?: number;
  /** The first bytes of the response body. */
  bodyPrefix: string;
}

/** Parses `Retry-After` (seconds or an HTTP date) into ms from `now`; undefined if unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/** Trace options of one {@link WebhookHttpClient.post}. */
export interface PostTrace {
  /** Parent of the CLIENT span. Default: the active context. */
  parent?: Context;
  /** More span attributes (no device ids). Default none. */
  attributes?: Attributes;
}

const MAX_BODY_READ = 64 * 1024;

interface Target {
  hostname: string;
  https: boolean;
  options: ReturnType<typeof urlToHttpOptions>;
}

export class WebhookHttpClient {
  private readonly agents = new Map<string, HttpAgent>();
  /** Parsed endpoint URLs (bounded). */
  private readonly targets = new Map<string, Target>();
  private readonly tracer: Tracer = tracer('sluice-webhook-dispatcher');

  constructor(
    private readonly ssrf: SsrfPolicy,
    private readonly opts: { timeoutMs: number; bodyPrefixBytes: number; userAgent?: string },
  ) {}

  private agent(key: string, https: boolean, maxSockets: number): HttpAgent {
    let a = this.agents.get(key);
    if (!a || a.maxSockets !== maxSockets) {
      a?.destroy();
      const o = {
        keepAlive: true,
        maxSockets,
        maxFreeSockets: maxSockets,
        timeout: this.opts.timeoutMs,
      };
      a = https ? new HttpsAgent(o) : new HttpAgent(o);
      this.agents.set(key, a);
    }
    return a;
  }

  private target(url: string): Target {
    let t = this.targets.get(url);
    if (!t) {
      const u = new URL(url);
      t = { hostname: u.hostname, https: u.protocol === 'https:', options: urlToHttpOptions(u) };
      if (this.targets.size >= 10_000) this.targets.delete(this.targets.keys().next().value!);
      this.targets.set(url, t);
    }
    return t;
  }

  /** Drops the keep-alive sockets of one endpoint (e.g. after it was disabled). */
  forget(key: string): void {
    this.agents.get(key)?.destroy();
    this.agents.delete(key);
  }

  /**
   * POSTs `body` in a CLIENT span (child of `traceOpts.parent`) whose context goes out as
   * `traceparent`/`tracestate`; the span's status is an error unless the answer is 2xx.
   */
  async post(
    endpointKey: string,
    url: string,
    headers: Record<string, string>,
    body: string,
    maxSockets: number,
    traceOpts: PostTrace = {},
  ): Promise<PostResult> {
    const parent = traceOpts.parent ?? context.active();
    const span = this.tracer.startSpan(
      'POST',
      {
        kind: SpanKind.CLIENT,
        attributes: { [ATTR.httpRequestMethod]: 'POST', ...traceOpts.attributes },
      },
      parent,
    );
    const traced: Record<string, string> = { ...headers };
    injectRequestTraceHeaders(traced, trace.setSpan(parent, span));
    try {
      const r = await this.send(endpointKey, url, traced, body, maxSockets, (t) => {
        span.setAttribute(ATTR.serverAddress, t.hostname);
        span.setAttribute(ATTR.serverPort, Number(t.options.port) || (t.https ? 443 : 80));
      });
      if (r.status !== undefined) span.setAttribute(ATTR.httpResponseStatusCode, r.status);
      if (r.error) {
        span.setAttribute(ATTR.errorType, r.error.name);
        span.setStatus({ code: SpanStatusCode.ERROR, message: r.error.message });
      } else if (r.status === undefined || r.status < 200 || r.status >= 300) {
        span.setAttribute(ATTR.errorType, String(r.status));
        span.setStatus({ code: SpanStatusCode.ERROR, message: `HTTP ${r.status}` });
      }
      return r;
    } finally {
      span.end();
    }
  }

  private async send(
    endpointKey: string,
    url: string,
    headers: Record<string, string>,
    body: string,
    maxSockets: number,
    onTarget: (t: Target) => void,
  ): Promise<PostResult> {
    const started = performance.now();
    const elapsed = () => performance.now() - started;
    let target: Target;
    try {
      target = this.target(url);
    } catch (err) {
      return { error: err as Error, latencyMs: elapsed(), bodyPrefix: '' };
    }
    onTarget(target);
    let pinned: { address: string; family: 4 | 6 };
    try {
      pinned = await this.ssrf.resolve(target.hostname);
    } catch (err) {
      return { error: err as Error, latencyMs: elapsed(), bodyPrefix: '' };
    }
    const lookup: LookupFunction = (_host, options, cb) => {
      if ((options as { all?: boolean }).all)
        (cb as unknown as (e: null, a: Array<{ address: string; family: number }>) => void)(null, [
          pinned,
        ]);
      else cb(null, pinned.address, pinned.family);
    };
    const https = target.https;
    return new Promise<PostResult>((resolve) => {
      let done = false;
      const finish = (r: Omit<PostResult, 'latencyMs'>) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve({ ...r, latencyMs: elapsed() });
      };
      // Request options converted from the URL once per URL, not per request; the body as a
      // string, which node sends in the same write as the headers (a Buffer body is a second iovec).
      const req = (https ? httpsRequest : httpRequest)(
        {
          ...target.options,
          method: 'POST',
          agent: this.agent(endpointKey, https, maxSockets),
          lookup,
          headers: {
            'content-type': 'application/json',
            'content-length': String(Buffer.byteLength(body)),
            'user-agent': this.opts.userAgent ?? 'Sluice-Webhooks/1',
            ...headers,
          },
        },
        (res: IncomingMessage) => {
          const chunks: Buffer[] = [];
          let read = 0;
          res.on('data', (c: Buffer) => {
            if (read < this.opts.bodyPrefixBytes) chunks.push(c);
            read += c.length;
            if (read > MAX_BODY_READ) res.destroy();
          });
          const end = () =>
            finish({
              status: res.statusCode ?? 0,
              retryAfterMs: parseRetryAfter(res.headers['retry-after']),
              bodyPrefix: Buffer.concat(chunks)
                .subarray(0, this.opts.bodyPrefixBytes)
                .toString('utf8'),
            });
          res.on('end', end);
          res.on('close', end);
          res.on('error', end);
        },
      );
      const timer = setTimeout(() => {
        req.destroy(new Error(`request timed out after ${this.opts.timeoutMs} ms`));
      }, this.opts.timeoutMs);
      req.on('error', (err) => finish({ error: err, bodyPrefix: '' }));
      req.end(body);
    });
  }

  close(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }
}
