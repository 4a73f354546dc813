// A reader of the Prometheus text exposition format, enough for the console: samples by metric name
// and labels (histogram buckets included), comments and malformed lines skipped.

/** One sample: its labels and value. */
export interface Sample {
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses an exposition into samples by metric name. */
export function parseMetrics(text: string): Map<string, Sample[]> {
  const out = new Map<string, Sample[]>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const value = Number(m[3]);
    if (Number.isNaN(value)) continue;
    const labels: Record<string, string> = {};
    if (m[2]) for (const l of m[2].matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, '$1');
    const list = out.get(m[1]!) ?? [];
    list.push({ labels, value });
    out.set(m[1]!, list);
  }
  return out;
}

/** Sum of a metric's samples whose labels include `where` (0 when absent). */
export function total(
  metrics: Map<string, Sample[]>,
  name: string,
  where: Record<string, string> = {},
): number {
  let sum = 0;
  for (const s of metrics.get(name) ?? [])
    if (Object.entries(where).every(([k, v]) => s.labels[k] === v)) sum += s.value;
  return sum;
}
