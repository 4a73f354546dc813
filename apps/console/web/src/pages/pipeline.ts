// Pipeline: live per-stage rates and health, consumer lag, dead letters and roll-up freshness, all
// from the console's event stream (one sample every CONSOLE_INTERVAL for every open page).
import type uPlot from 'uplot';
import { stream } from '../api';
import { axes, css, mountChart, PALETTE } from '../chart';
import { h, ms, num, table } from '../dom';
import type { PageContext } from '../main';

interface Stage {
  name: string;
  health: 'ready' | 'not ready' | 'down';
  failing: string[];
  rates: Record<string, number>;
  dlq: number;
}
interface PipelineState {
  at: string;
  intervalMs: number;
  stages: Stage[];
  consumers: Array<{
    stream: string;
    name: string;
    pending: number;
    ackPending: number;
    redelivered: number;
  }>;
  dlq: Record<string, number>;
  freshness: { p50Ms: number | null; p99Ms: number | null; sloMs: number; rollups: number };
  streams: Array<{ name: string; messages: number; bytes: number }>;
}

/** The rate that stands for a stage's throughput, first found. */
const PRIMARY = [
  'events published',
  'messages',
  'events aggregated',
  'webhook attempts',
  'records written',
  'rows archived',
];
const primaryRate = (s: Stage): number | undefined => {
  for (const k of PRIMARY) if (s.rates[k] !== undefined) return s.rates[k];
  return undefined;
};
const HISTORY = 150;

export async function renderPipeline({ root, signal }: PageContext): Promise<void> {
  const status = h('p', { class: 'muted', role: 'status' }, 'Connecting to the live stream…');
  const chartHost = h('div', {
    class: 'chart',
    'aria-label': 'Events per second by stage over time',
    role: 'img',
  });
  const cards = h('div', { class: 'cards', 'aria-live': 'off' });
  const fresh = h('div', { class: 'card freshness' });
  const lag = h('div', {});
  const dlq = h('div', {});
  root.append(
    h('h1', {}, 'Pipeline'),
    status,
    h(
      'div',
      { class: 'grid2' },
      fresh,
      h('div', { class: 'card' }, h('h2', {}, 'Throughput'), chartHost),
    ),
    h('h2', {}, 'Stages'),
    cards,
    h('div', { class: 'grid2' }, lag, dlq),
  );

  const times: number[] = [];
  const series = new Map<string, number[]>();
  let plot: uPlot | undefined;

  const draw = (s: PipelineState) => {
    root.dataset['sampledAt'] = s.at;
    status.textContent = `Live · sampled ${new Date(s.at).toLocaleTimeString()} every ${ms(s.intervalMs)}`;
    // freshness
    const slo = s.freshness.sloMs;
    const over = (v: number | null) => (v !== null && v > slo ? 'bad' : 'good');
    fresh.replaceChildren(
      h('h2', {}, 'Roll-up freshness'),
      h(
        'dl',
        { class: 'stats' },
        h(
          'div',
          { class: over(s.freshness.p50Ms), 'data-metric': 'freshness-p50' },
          h('dt', {}, 'p50'),
          h('dd', {}, ms(s.freshness.p50Ms)),
        ),
        h(
          'div',
          { class: over(s.freshness.p99Ms), 'data-metric': 'freshness-p99' },
          h('dt', {}, 'p99'),
          h('dd', {}, ms(s.freshness.p99Ms)),
        ),
        h('div', {}, h('dt', {}, 'SLO'), h('dd', {}, ms(slo))),
        h('div', {}, h('dt', {}, 'roll-ups seen'), h('dd', {}, num(s.freshness.rollups, 0))),
      ),
    );
    // stage cards
    cards.replaceChildren(
      ...s.stages.map((st) =>
        h(
          'article',
          {
            class: `card stage ${st.health.replace(' ', '-')}`,
            'data-stage': st.name,
            'data-health': st.health,
            'aria-label': `${st.name}: ${st.health}`,
          },
          h(
            'h3',
            {},
            h('span', { class: 'dot', 'aria-hidden': 'true' }),
            st.name,
            ' ',
            h('span', { class: 'badge' }, st.health),
          ),
          st.failing.length > 0
            ? h('p', { class: 'error' }, `failing: ${st.failing.join(', ')}`)
            : null,
          h(
            'dl',
            { class: 'rates' },
            ...Object.entries(st.rates).map(([k, v]) =>
              h('div', { 'data-rate': k }, h('dt', {}, k), h('dd', {}, `${num(v, 1)}/s`)),
            ),
            h(
              'div',
              { 'data-rate': 'dlq', class: st.dlq > 0 ? 'bad' : '' },
              h('dt', {}, 'dead letters'),
              h('dd', {}, num(st.dlq, 0)),
            ),
          ),
        ),
      ),
    );
    lag.replaceChildren(
      table(
        'Consumer lag (JetStream)',
        ['Stream', 'Consumer', 'Pending', 'Unacked', 'Redelivered'],
        s.consumers.map((c) => ({
          cells: [c.stream, c.name, num(c.pending, 0), num(c.ackPending, 0), num(c.redelivered, 0)],
          className: c.pending > 10_000 ? 'warn' : '',
          attrs: { 'data-consumer': c.name },
        })),
      ),
    );
    dlq.replaceChildren(
      table(
        'Dead letters by service (DLQ stream)',
        ['Service', 'Dead letters'],
        Object.keys(s.dlq).length === 0
          ? [{ cells: ['none', '0'] }]
          : Object.entries(s.dlq).map(([k, v]) => ({ cells: [k, num(v, 0)], className: 'bad' })),
      ),
      table(
        'Streams',
        ['Stream', 'Messages', 'MiB'],
        s.streams.map((x) => ({ cells: [x.name, num(x.messages, 0), num(x.bytes / 1048576, 1)] })),
      ),
    );
    // throughput history
    times.push(Date.parse(s.at) / 1000);
    for (const st of s.stages) {
      if (!series.has(st.name)) series.set(st.name, new Array<number>(times.length - 1).fill(NaN));
    }
    for (const [name, values] of series) {
      const st = s.stages.find((x) => x.name === name);
      values.push((st && primaryRate(st)) ?? NaN);
    }
    if (times.length > HISTORY) {
      times.shift();
      for (const v of series.values()) v.shift();
    }
    const names = [...series.keys()];
    const data = [times, ...names.map((n) => series.get(n)!)] as uPlot.AlignedData;
    if (!plot || plot.series.length !== names.length + 1) {
      plot?.destroy();
      chartHost.replaceChildren();
      plot = mountChart(
        chartHost,
        {
          height: 220,
          axes: axes(),
          scales: { x: { time: true } },
          series: [
            {},
            ...names.map((n, i) => ({
              label: n,
              stroke: css(PALETTE[i % PALETTE.length]!),
              width: 2,
              spanGaps: true,
            })),
          ],
        },
        data,
        signal,
      );
    } else plot.setData(data);
  };

  // The stream runs until the page is left; the page counts as drawn at the first sample.
  await new Promise<void>((drawn) => {
    signal.addEventListener('abort', () => drawn());
    void stream(
      signal,
      (event, data) => {
        if (event !== 'pipeline') return;
        draw(data as PipelineState);
        drawn();
      },
      (connected) => {
        root.dataset['live'] = String(connected);
        if (!connected) status.textContent = 'Stream interrupted; reconnecting…';
      },
    );
  });
}
