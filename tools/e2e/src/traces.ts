// Where the services of an end-to-end test export their spans, and how the test reads one trace back:
// a private Jaeger v2 (libs/testing's startJaeger, read through Jaeger's HTTP query API) when its
// binary is built on this machine, else the in-process OTLP/HTTP receiver of processes.ts.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startJaeger } from '@sluice/testing';
import { KIND, spansOf, type Receiver } from './processes';
import { ROOT } from './processes';

export type SpanKind = 'server' | 'client' | 'producer' | 'consumer' | 'internal';

/** A span of a trace, as either backend reports it. */
export interface TracedSpan {
  service: string;
  kind: SpanKind;
  name: string;
}

export interface TraceBackend {
  /** `jaeger` (query API) or `otlp-receiver` (the test's own receiver). */
  name: 'jaeger' | 'otlp-receiver';
  /** What OTEL_EXPORTER_OTLP_ENDPOINT of every service takes. */
  otlpUrl: string;
  /** Jaeger's query API and UI, when the backend is Jaeger. */
  queryUrl?: string;
  /** The spans of one trace received so far (none while the backend has none). */
  trace(traceId: string): Promise<TracedSpan[]>;
  close(): Promise<void>;
}

const KIND_NAMES: Record<number, SpanKind> = {
  [KIND.INTERNAL]: 'internal',
  [KIND.SERVER]: 'server',
  [KIND.CLIENT]: 'client',
  [KIND.PRODUCER]: 'producer',
  [KIND.CONSUMER]: 'consumer',
};

/** The Jaeger binary if it is already built (JAEGER_BIN, or scripts/lib.sh's cache); never builds. */
export function builtJaegerBin(): string | undefined {
  const own = process.env['JAEGER_BIN'];
  if (own) return existsSync(own) ? own : undefined;
  try {
    const bin = execFileSync(
      'bash',
      ['-c', 'source "$1" >/dev/null 2>&1 && jaeger_bin', '_', join(ROOT, 'scripts', 'lib.sh')],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 },
    ).trim();
    return bin && existsSync(bin) ? bin : undefined;
  } catch {
    return undefined;
  }
}

/** The receiver's own OTLP/HTTP endpoint as the trace backend. */
export function receiverBackend(receiver: Receiver): TraceBackend {
  return {
    name: 'otlp-receiver',
    otlpUrl: receiver.url,
    trace: (traceId) =>
      Promise.resolve(
        spansOf(receiver)
          .filter((s) => s.traceId === traceId)
          .map((s) => ({
            service: s.service,
            kind: KIND_NAMES[s.kind] ?? 'internal',
            name: s.name,
          })),
      ),
    close: () => Promise.resolve(),
  };
}

/**
 * A private Jaeger v2 (libs/testing `startJaeger`) when its binary is built; else
 * `fallback`. `E2E_JAEGER=off` forces the fallback, `E2E_JAEGER=require` fails without Jaeger.
 */
export async function traceBackend(fallback: Receiver): Promise<TraceBackend> {
  const mode = process.env['E2E_JAEGER'] ?? 'auto';
  const usable = mode !== 'off' && builtJaegerBin();
  if (!usable) {
    if (mode === 'require') throw new Error('E2E_JAEGER=require, but no Jaeger binary is built');
    return receiverBackend(fallback);
  }
  const jaeger = await startJaeger();
  return {
    name: 'jaeger',
    otlpUrl: jaeger.otlpHttpUrl,
    queryUrl: jaeger.queryUrl,
    async trace(traceId) {
      const t = await jaeger.trace(traceId);
      return (t?.spans ?? []).map((s) => ({
        service: s.service,
        kind: (s.kind as SpanKind) ?? 'internal',
        name: s.operationName,
      }));
    },
    close: () => jaeger.stop(),
  };
}
