// Real HTTP receivers on 127.0.0.1 for the integration tests, plus a Standard Webhooks verifier
// written from the specification text (not calling the dispatcher's signer).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  id: string;
  timestamp: string;
  signature: string;
  body: string;
  at: number;
  status: number;
}

/**
 * What the receiver answers to one request: a status (and headers, after `delayMs`), or `hang`
 * (never answer).
 */
export type Behaviour = (
  req: IncomingMessage,
  body: string,
  n: number,
) => { status: number; headers?: Record<string, string>; delayMs?: number } | 'hang';

export interface Receiver {
  url: string;
  port: number;
  requests: Received[];
  /** Distinct webhook-ids answered with 2xx, with how many 2xx answers each got. */
  successes(): Map<string, number>;
  /** Requests whose connection closed without an answer (cut by the dispatcher's timeout). */
  abandoned: number[];
  /** Requests received and not yet answered (or abandoned), now and at most so far. */
  inFlight: number;
  maxInFlight: number;
  behaviour: Behaviour;
  close(): Promise<void>;
}

export async function startReceiver(
  behaviour: Behaviour = () => ({ status: 204 }),
): Promise<Receiver> {
  const requests: Received[] = [];
  const abandoned: number[] = [];
  const hung: ServerResponse[] = [];
  const r: Receiver = {
    url: '',
    port: 0,
    requests,
    abandoned,
    inFlight: 0,
    maxInFlight: 0,
    behaviour,
    successes() {
      const m = new Map<string, number>();
      for (const q of requests)
        if (q.status >= 200 && q.status < 300) m.set(q.id, (m.get(q.id) ?? 0) + 1);
      return m;
    },
    close: async () => {
      for (const h of hung) h.destroy();
      server.closeAllConnections();
      await new Promise<void>((res) => server.close(() => res()));
    },
  };
  const server: Server = createServer((req, res) => {
    r.inFlight++;
    r.maxInFlight = Math.max(r.maxInFlight, r.inFlight);
    let done = false;
    const finished = () => {
      if (!done) r.inFlight--;
      done = true;
    };
    res.on('finish', finished);
    res.on('close', finished);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const answer = r.behaviour(req, body, requests.length);
      const h = (k: string) => String(req.headers[k] ?? '');
      const rec: Received = {
        id: h('webhook-id'),
        timestamp: h('webhook-timestamp'),
        signature: h('webhook-signature'),
        body,
        at: Date.now(),
        // A delayed answer counts once it was sent in full (the sender may die before it).
        status: answer === 'hang' || answer.delayMs ? 0 : answer.status,
      };
      requests.push(rec);
      if (answer === 'hang') {
        hung.push(res);
        res.on('close', () => abandoned.push(Date.now()));
        return;
      }
      const reply = () => {
        if (res.destroyed) return; // the sender went away meanwhile
        res
          .writeHead(answer.status, answer.headers ?? {})
          .end(answer.status >= 400 ? 'nope '.repeat(500) : 'ok');
      };
      if (answer.delayMs) {
        res.on('finish', () => (rec.status = answer.status));
        setTimeout(reply, answer.delayMs);
      } else reply();
    });
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
  r.port = (server.address() as AddressInfo).port;
  r.url = `http://127.0.0.1:${r.port}/hook`;
  return r;
}

/**
 * Standard Webhooks verification, from the spec: the signed content is `${msg_id}.${timestamp}.${body}`;
 * the key is the base64-decoded part of the secret after the `whsec_` prefix; the signature is
 * base64 HMAC-SHA256; the header holds space-delimited `v1,<sig>` entries and any match passes;
 * timestamps outside a tolerance (5 minutes) are rejected.
 */
export function verifyStandardWebhook(
  secret: string,
  msgId: string,
  timestamp: string,
  body: string,
  header: string,
  nowSec = Math.floor(Date.now() / 1000),
): boolean {
  const ts = Number(timestamp);
  if (!Number.isInteger(ts) || Math.abs(nowSec - ts) > 300) return false;
  const key = Buffer.from(secret.split('_').slice(1).join('_'), 'base64');
  const expected = createHmac('sha256', key).update(`${msgId}.${timestamp}.${body}`).digest();
  return header.split(' ').some((entry) => {
    const [version, sig] = entry.split(',', 2);
    if (version !== 'v1' || !sig) return false;
    const given = Buffer.from(sig, 'base64');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}
