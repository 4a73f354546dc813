// A real process for the OTLP export test (the exporters load node:http with a dynamic import, which
// jest's module sandbox refuses): starts tracing with the options given as JSON in argv[2], records a
// metric, a log record and three spans, prints the root's trace id, shuts down (flushing) and exits.
import { logs, metrics, type Link } from '@opentelemetry/api';
import { SPAN_LINK_LIMIT, startTracing, tracer, type TracingOptions } from '../tracing';

function linksTo(n: number): Link[] {
  return Array.from({ length: n }, () => ({
    context: tracer('fixture').startSpan('message').spanContext(),
  }));
}

async function main() {
  const tracing = startTracing(JSON.parse(process.argv[2]!) as TracingOptions);
  metrics.getMeter('fixture').createCounter('fixture_counter').add(1);
  logs.getLogger('fixture').emit({ body: 'a log record' });
  const traceId = tracer('fixture').startActiveSpan('root', (root) => {
    tracer('fixture')
      .startSpan('batch of 300', { links: linksTo(300) })
      .end();
    tracer('fixture')
      .startSpan('batch over the limit', { links: linksTo(SPAN_LINK_LIMIT + 100) })
      .end();
    root.end();
    return root.spanContext().traceId;
  });
  console.log(JSON.stringify({ traceId, pid: process.pid }));
  await tracing.shutdown();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
