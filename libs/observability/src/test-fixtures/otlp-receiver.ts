import { createServer } from 'node:http';

/** One request the receiver got. */
export interface Received {
  method: string;
  path: string;
  contentType: string;
  body: Buffer;
}

/** A real OTLP/HTTP receiver on 127.0.0.1: answers every request with 200 and keeps what it got. */
export async function startOtlpReceiver() {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({
        method: req.method ?? '',
        path: req.url ?? '',
        contentType: String(req.headers['content-type']),
        body: Buffer.concat(chunks),
      });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

type AnyValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean };

/** A span as OTLP/HTTP JSON carries it (the fields the tests read). */
export interface OtlpSpan {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  kind: number;
  attributes?: Array<{ key: string; value: AnyValue }>;
  links?: Array<{ traceId: string; spanId: string }>;
  droppedLinksCount?: number;
  /** Added by {@link decodeTraces}: the scope (instrumentation) name and the resource's service. */
  scope: string;
  service: string;
}

interface OtlpTraces {
  resourceSpans: Array<{
    resource: { attributes: Array<{ key: string; value: AnyValue }> };
    scopeSpans: Array<{
      scope?: { name: string };
      spans: Array<Omit<OtlpSpan, 'scope' | 'service'>>;
    }>;
  }>;
}

/** Attribute values of a span or resource, as strings. */
export function attrs(
  list: Array<{ key: string; value: AnyValue }> | undefined,
): Record<string, string> {
  return Object.fromEntries(
    (list ?? []).map((a) => [
      a.key,
      String(a.value.stringValue ?? a.value.intValue ?? a.value.boolValue),
    ]),
  );
}

/** Resource attributes (values as strings) and spans of every OTLP/HTTP JSON trace export received. */
export function decodeTraces(received: readonly Received[]) {
  const resources: Array<Record<string, string>> = [];
  const spans: OtlpSpan[] = [];
  for (const r of received.filter((x) => x.path === '/v1/traces')) {
    for (const rs of (JSON.parse(r.body.toString('utf8')) as OtlpTraces).resourceSpans) {
      const resource = attrs(rs.resource.attributes);
      resources.push(resource);
      for (const ss of rs.scopeSpans)
        for (const s of ss.spans)
          spans.push({
            ...s,
            scope: ss.scope?.name ?? '',
            service: resource['service.name'] ?? '',
          });
    }
  }
  return { resources, spans };
}

/** A fresh receiver for every test of the calling `describe` (started before, closed after each). */
export function otlpReceiverPerTest(): {
  readonly current: Awaited<ReturnType<typeof startOtlpReceiver>>;
} {
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>> | undefined;
  beforeEach(async () => {
    receiver = await startOtlpReceiver();
  });
  afterEach(async () => {
    await receiver?.close();
  });
  return {
    get current() {
      if (!receiver) throw new Error('otlpReceiverPerTest: the receiver starts in beforeEach');
      return receiver;
    },
  };
}
