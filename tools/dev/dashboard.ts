/**
 * The terminal live view of `npm start` as pure functions: Prometheus text → samples, two scrapes of a
 * service → its row (state, rate, lag, DLQ, notes such as the aggregator's roll-up freshness p50/p99
 * from its `sluice_aggregator_visible_seconds` buckets), and a snapshot → the lines to draw. No I/O here:
 * live.ts polls the services and draws what {@link renderDashboard} returns.
 */

/** One sample of a Prometheus text exposition. */
export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A service's `/metrics`, parsed, and when it was read (ms since the epoch). */
export interface Scrape {
  at: number;
  samples: PromSample[];
}

const SAMPLE = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** The samples of a Prometheus text exposition (comments and unparsable lines skipped). */
export function parsePrometheus(text: string): PromSample[] {
  const out: PromSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m) continue;
    const value = Number(m[3]);
    if (Number.isNaN(value)) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, '$1');
    out.push({ name: m[1]!, labels, value });
  }
  return out;
}

/**
 * The sum of metric `name` over its series whose labels match `where` (a value starting with `!`
 * means "not this value"); undefined when the metric is absent.
 */
export function total(
  samples: readonly PromSample[],
  name: string,
  where: Record<string, string> = {},
): number | undefined {
  let sum: number | undefined;
  for (const s of samples) {
    if (s.name !== name) continue;
    const ok = Object.entries(where).every(([k, v]) =>
      v.startsWith('!') ? s.labels[k] !== v.slice(1) : s.labels[k] === v,
    );
    if (ok) sum = (sum ?? 0) + s.value;
  }
  return sum;
}

/** Per-second increase of `name` between two scrapes; undefined without both (or after a reset). */
export function ratePerSecond(
  prev: Scrape | undefined,
  cur: Scrape | undefined,
  name: string,
  where: Record<string, string> = {},
): number | undefined {
  if (!prev || !cur || cur.at <= prev.at) return undefined;
  const a = total(prev.samples, name, where);
  const b = total(cur.samples, name, where);
  if (a === undefined || b === undefined || b < a) return undefined;
  return ((b - a) * 1000) / (cur.at - prev.at);
}

/** Cumulative bucket counts of histogram `name` by upper bound (all other labels summed), sorted. */
function buckets(samples: readonly PromSample[], name: string): Array<[le: number, n: number]> {
  const byLe = new Map<number, number>();
  for (const s of samples) {
    if (s.name !== `${name}_bucket` || s.labels['le'] === undefined) continue;
    const le = s.labels['le'] === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.labels['le']);
    if (!Number.isNaN(le)) byLe.set(le, (byLe.get(le) ?? 0) + s.value);
  }
  return [...byLe].sort((a, b) => a[0] - b[0]);
}

/**
 * The `q` quantile (0…1) of histogram `name` over the observations between two scrapes (bucket
 * deltas), interpolated within its bucket as Prometheus' `histogram_quantile` does (in the `+Inf`
 * bucket: the highest finite bound). With no observation in between (or a reset, or no `prev`), over
 * everything `cur` counts since the service started. Undefined when the histogram is absent or empty.
 */
export function histogramQuantile(
  prev: Scrape | undefined,
  cur: Scrape | undefined,
  name: string,
  q: number,
): number | undefined {
  if (!cur) return undefined;
  const now = buckets(cur.samples, name);
  const before = new Map(prev ? buckets(prev.samples, name) : []);
  let counts = now.map(([le, n]): [number, number] => [le, n - (before.get(le) ?? 0)]);
  const reset = counts.some(([, n]) => n < 0);
  if (reset || (counts.at(-1)?.[1] ?? 0) === 0) counts = now;
  const all = counts.at(-1)?.[1] ?? 0;
  if (all <= 0) return undefined;
  const rank = q * all;
  let lower = 0;
  let below = 0;
  for (const [le, n] of counts) {
    if (n >= rank) {
      if (le === Number.POSITIVE_INFINITY) return lower;
      if (n === below) return le;
      return lower + ((le - lower) * (rank - below)) / (n - below);
    }
    lower = le;
    below = n;
  }
  return lower;
}

/**
 * What the supervisor knows of a child: alive, and how its `/readyz` answered (`no answer`: it did
 * before, not this time; `running`: a child without ops port, the simulator).
 */
export type ServiceState = 'starting' | 'ready' | 'not ready' | 'no answer' | 'running' | 'exited';

/** One service's line of the dashboard. */
export interface ServiceRow {
  name: string;
  pid: number | undefined;
  state: ServiceState;
  /** What {@link rate} and {@link count} count (e.g. `published`, `processed`). */
  unit: string | undefined;
  /** Per second, between the last two scrapes. */
  rate: number | undefined;
  /** Running total of the same counter. */
  count: number | undefined;
  /** Messages not yet delivered to its JetStream consumers (their `num_pending`). */
  lag: number | undefined;
  /** Messages it dead-lettered. */
  dlq: number | undefined;
  /** Service-specific figures, e.g. `roll-ups 12/s`. */
  notes: string[];
}

/** The throughput counter of a service: the first of these it exposes. */
const THROUGHPUT: ReadonlyArray<[metric: string, unit: string]> = [
  ['sluice_events_published_total', 'published'],
  ['sluice_messages_processed_total', 'processed'],
  ['sluice_sink_records_written_total', 'written'],
];

type Note = (prev: Scrape | undefined, cur: Scrape) => string | undefined;

const count =
  (label: string, name: string, where?: Record<string, string>): Note =>
  (_prev, cur) => {
    const v = total(cur.samples, name, where);
    return v === undefined ? undefined : `${label} ${compact(v)}`;
  };
const rate =
  (label: string, name: string): Note =>
  (prev, cur) => {
    const v = ratePerSecond(prev, cur, name);
    return v === undefined ? undefined : `${label} ${compact(v)}/s`;
  };
/** `p50 0.8s p99 2.1s` of a histogram in seconds (see {@link histogramQuantile}). */
const quantiles =
  (label: string, name: string): Note =>
  (prev, cur) => {
    const p50 = histogramQuantile(prev, cur, name, 0.5);
    const p99 = histogramQuantile(prev, cur, name, 0.99);
    if (p50 === undefined || p99 === undefined) return undefined;
    return `${label} p50 ${seconds(p50)} p99 ${seconds(p99)}`;
  };
const seconds = (v: number) => (v < 1 ? `${Math.round(v * 1000)}ms` : `${v.toFixed(1)}s`);
const gauge =
  (label: string, name: string, unit: string): Note =>
  (_prev, cur) => {
    const v = total(cur.samples, name);
    return v === undefined ? undefined : `${label} ${compact(v)}${unit}`;
  };

/** Figures worth a glance per service (absent metrics are left out). */
const NOTES: Record<string, Note[]> = {
  ingestion: [
    count('rejected', 'sluice_events_rejected_total'),
    count('rate-limited', 'sluice_ingest_rate_limited_total'),
  ],
  dedupe: [count('duplicates', 'sluice_dedupe_duplicates_total')],
  aggregator: [
    rate('roll-ups', 'sluice_aggregator_rollups_published_total'),
    // Roll-up freshness: clean batch published → its readings visible in the query API.
    quantiles('fresh', 'sluice_aggregator_visible_seconds'),
    count('late', 'sluice_aggregator_late_events_total'),
  ],
  'webhook-dispatcher': [
    count('alerts', 'sluice_webhook_matched_total'),
    count('delivered', 'sluice_webhook_attempts_total', { outcome: 'success' }),
    count('failed', 'sluice_webhook_attempts_total', { outcome: '!success' }),
  ],
  archiver: [
    count('rows', 'sluice_archiver_rows_written_total'),
    count('files', 'sluice_archiver_files_written_total'),
    gauge('oldest unflushed', 'sluice_archiver_oldest_unflushed_event_age_seconds', 's'),
  ],
};

const DLQ_METRICS = ['sluice_messages_dead_lettered_total', 'sluice_webhook_dead_lettered_total'];

/** A service's row from its state and its last two scrapes (`cur` undefined: no answer yet). */
export function serviceRow(
  name: string,
  pid: number | undefined,
  state: ServiceState,
  prev: Scrape | undefined,
  cur: Scrape | undefined,
): ServiceRow {
  const row: ServiceRow = {
    name,
    pid,
    state,
    unit: undefined,
    rate: undefined,
    count: undefined,
    lag: undefined,
    dlq: undefined,
    notes: [],
  };
  if (!cur) return row;
  const through = THROUGHPUT.find(([m]) => total(cur.samples, m) !== undefined);
  if (through) {
    row.unit = through[1];
    row.count = total(cur.samples, through[0]);
    row.rate = ratePerSecond(prev, cur, through[0]);
  }
  row.lag = total(cur.samples, 'sluice_consumer_pending_messages');
  // A labelled counter shows no series before its first increment: none yet is 0.
  row.dlq = DLQ_METRICS.reduce((sum, m) => sum + (total(cur.samples, m) ?? 0), 0);
  for (const note of NOTES[name] ?? []) {
    const text = note(prev, cur);
    if (text !== undefined) row.notes.push(text);
  }
  return row;
}

/** Everything one frame of the dashboard shows. */
export interface DashboardSnapshot {
  /** Seconds since the supervisor started. */
  uptimeS: number;
  tls: boolean;
  rows: ServiceRow[];
  /** The fleet simulator's row and its last live line, when it runs. */
  sim?: { pid: number | undefined; state: ServiceState; line: string | undefined } | undefined;
  /** Label → value lines under the table (addresses, token, folders). */
  info: ReadonlyArray<[label: string, value: string]>;
  /** The supervisor's last message (a child that exited, …). */
  lastMessage?: string | undefined;
}

/** `1234` → `1.2k`, `0.5` → `0.5`, `12` → `12`. */
export function compact(n: number): string {
  const abs = Math.abs(n);
  if (abs >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (abs >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (abs >= 1e4) return `${(n / 1e3).toFixed(0)}k`;
  if (abs >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  if (abs >= 10 || Number.isInteger(n)) return n.toFixed(0);
  return n.toFixed(1);
}

function duration(s: number): string {
  const t = Math.max(0, Math.floor(s));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(sec).padStart(2, '0')}s`;
}

const dash = (v: number | undefined) => (v === undefined ? '-' : compact(v));

/** A line cut to `width` characters (the terminal must not wrap it: the frame would scroll). */
function clipToWidth(line: string, width: number): string {
  const chars = [...line];
  return chars.length <= width ? line : `${chars.slice(0, Math.max(0, width - 1)).join('')}…`;
}

/**
 * The lines of one frame, none longer than `width`. The count depends only on the services, the
 * simulator and the info lines, so redrawing from the top never scrolls.
 */
export function renderDashboard(s: DashboardSnapshot, width: number): string[] {
  const nameW = Math.max(9, ...s.rows.map((r) => r.name.length), s.sim ? 'fleet-sim'.length : 0);
  const cols = (
    name: string,
    pid: string,
    state: string,
    rateS: string,
    countS: string,
    lag: string,
    dlq: string,
    notes: string,
  ) =>
    `${name.padEnd(nameW)}  ${pid.padStart(7)}  ${state.padEnd(9)}  ${rateS.padStart(8)}  ${countS.padStart(8)}  ${lag.padStart(7)}  ${dlq.padStart(5)}  ${notes}`.trimEnd();
  const lines = [
    `Sluice dev pipeline · up ${duration(s.uptimeS)} · ${s.tls ? 'TLS' : 'plaintext'} · Ctrl-C stops everything`,
    '',
    cols('SERVICE', 'PID', 'STATE', 'RATE/s', 'TOTAL', 'LAG', 'DLQ', 'NOTES'),
  ];
  for (const r of s.rows)
    lines.push(
      cols(
        r.name,
        r.pid === undefined ? '-' : String(r.pid),
        r.state,
        dash(r.rate),
        dash(r.count),
        dash(r.lag),
        dash(r.dlq),
        [r.unit, ...r.notes].filter(Boolean).join(' · '),
      ),
    );
  if (s.sim)
    lines.push(
      cols(
        'fleet-sim',
        s.sim.pid === undefined ? '-' : String(s.sim.pid),
        s.sim.state,
        '',
        '',
        '',
        '',
        s.sim.line ?? '',
      ),
    );
  lines.push('');
  const labelW = Math.max(0, ...s.info.map(([l]) => l.length));
  for (const [label, value] of s.info) lines.push(`${label.padEnd(labelW)}  ${value}`);
  lines.push('', s.lastMessage ?? '');
  return lines.map((l) => clipToWidth(l, width));
}
