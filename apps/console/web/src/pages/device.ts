// Device: one chart per sensor (derived series included) of the device's roll-ups: the average with
// a min/max band, windows revised by late data marked. The resolution follows the range: the query
// API's `resolution=auto` picks it for about one point per two pixels, so zooming in (drag across a
// chart, or a shorter range) fetches finer windows, zooming out coarser ones, from 2 years to seconds.
import type uPlot from 'uplot';
import { query } from '../api';
import { axes, css, mountChart } from '../chart';
import { h, num } from '../dom';
import type { PageContext } from '../main';

interface Point {
  time: string;
  count: number;
  min: number;
  max: number;
  avg: number;
  revision: number;
  late_count: number;
}
interface SeriesPage {
  resolution: string;
  from: string;
  to: string;
  points: Point[];
  next_cursor: string | null;
}
interface DevicePage {
  items: Array<{ id: string; region: string; sensors: string[] }>;
  next_cursor: string | null;
}
interface Latest {
  device: string;
  sensors: Array<{ sensor: string; region: string; value: number; time: string; derived: boolean }>;
}

/** Most extra pages of one series (5000 points each). */
const MAX_PAGES = 8;

const RANGES: Array<[label: string, ms: number]> = [
  ['5 min', 5 * 60_000],
  ['1 h', 3_600_000],
  ['24 h', 86_400_000],
  ['7 d', 7 * 86_400_000],
  ['90 d', 90 * 86_400_000],
  ['2 y', 730 * 86_400_000],
];

export async function renderDevice({ root, args, signal }: PageContext): Promise<void> {
  const devices = await query<DevicePage>('/v1/devices', { limit: 1000 }, signal);
  const id = args[0] ?? devices.items[0]?.id;
  root.append(h('h1', {}, 'Device'));
  const picker = h(
    'select',
    { id: 'device-pick', 'aria-label': 'Device' },
    ...devices.items.map((d) =>
      h('option', { value: d.id, selected: d.id === id }, `${d.id} (${d.region})`),
    ),
  );
  picker.addEventListener(
    'change',
    () => (location.hash = `#/device/${encodeURIComponent(picker.value)}`),
  );
  root.append(
    h('div', { class: 'toolbar' }, h('label', { for: 'device-pick' }, 'Device '), picker),
  );
  if (!id) {
    root.append(h('p', { class: 'muted' }, 'No device has reported yet.'));
    return;
  }
  const device = devices.items.find((d) => d.id === id);
  const latest = await query<Latest>(`/v1/devices/${encodeURIComponent(id)}/latest`, {}, signal);
  const derived = new Set(latest.sensors.filter((s) => s.derived).map((s) => s.sensor));
  const sensors = [
    ...new Set([...(device?.sensors ?? []), ...latest.sensors.map((s) => s.sensor)]),
  ].sort();
  root.dataset['device'] = id;

  let range = { to: Date.now(), from: Date.now() - 3_600_000 };
  const rangeLabel = h('span', { class: 'muted', role: 'status' });
  const buttons = RANGES.map(([label, span]) =>
    h(
      'button',
      {
        type: 'button',
        class: 'ghost',
        'data-range': label,
        onclick: () => setRange(Date.now() - span, Date.now()),
      },
      label,
    ),
  );
  root.append(
    h(
      'div',
      { class: 'toolbar', role: 'group', 'aria-label': 'Time range' },
      ...buttons,
      h(
        'button',
        {
          type: 'button',
          class: 'ghost',
          'data-range': 'out',
          onclick: () => {
            const span = range.to - range.from;
            setRange(range.from - span, Math.min(Date.now(), range.to + span));
          },
        },
        'Zoom out',
      ),
      rangeLabel,
    ),
    h('p', { class: 'muted' }, 'Drag across a chart to zoom in; the resolution follows the range.'),
  );
  const charts = h('div', { class: 'charts' });
  root.append(charts);

  const views = sensors.map((sensor) => {
    const host = h('div', { class: 'chart' });
    const meta = h('span', { class: 'muted' });
    const rows = h('tbody', {});
    const box = h(
      'article',
      { class: 'card sensor', 'data-sensor': sensor },
      h(
        'h2',
        {},
        sensor,
        derived.has(sensor) ? h('span', { class: 'badge' }, 'derived') : null,
        ' ',
        meta,
      ),
      host,
      h(
        'details',
        {},
        h('summary', {}, 'Data table'),
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { class: 'points' },
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                ...['time', 'avg', 'min', 'max', 'count', 'revision'].map((c) =>
                  h('th', { scope: 'col' }, c),
                ),
              ),
            ),
            rows,
          ),
        ),
      ),
    );
    charts.append(box);
    return {
      sensor,
      host,
      meta,
      rows,
      box,
      plot: undefined as uPlot | undefined,
      scale: { min: 0, max: 0 },
      ctl: undefined as AbortController | undefined,
    };
  });

  async function load(v: (typeof views)[number]): Promise<void> {
    v.ctl?.abort();
    const ctl = new AbortController();
    v.ctl = ctl;
    signal.addEventListener('abort', () => ctl.abort());
    v.box.setAttribute('aria-busy', 'true');
    const width = Math.max(240, v.host.clientWidth);
    const params = {
      device: id!,
      sensor: v.sensor,
      from: new Date(range.from).toISOString(),
      to: new Date(range.to).toISOString(),
      resolution: 'auto',
      points: Math.min(1000, Math.max(50, Math.round(width / 2))),
    };
    const page = await query<SeriesPage>('/v1/series', params, ctl.signal);
    // The coarsest resolution may still give more than a page over a long range: follow the cursor
    // (bounded), asking for the resolution the first page chose.
    const pts = [...page.points];
    let cursor = page.next_cursor;
    for (let n = 0; cursor && n < MAX_PAGES; n++) {
      const next = await query<SeriesPage>(
        '/v1/series',
        { ...params, resolution: page.resolution, cursor },
        ctl.signal,
      );
      pts.push(...next.points);
      cursor = next.next_cursor;
    }
    if (ctl.signal.aborted) return;
    const revised = pts.filter((p) => p.revision > 1 || p.late_count > 0).length;
    Object.assign(v.box.dataset, {
      resolution: page.resolution,
      from: page.from,
      to: page.to,
      points: String(pts.length),
    });
    v.meta.textContent = ` · ${page.resolution} windows · ${pts.length} points${revised > 0 ? ` · ${revised} revised by late data` : ''}`;
    v.rows.replaceChildren(
      ...pts.map((p) =>
        h(
          'tr',
          {
            class: p.revision > 1 ? 'revised' : '',
            'data-time': p.time,
            'data-avg': p.avg,
            'data-count': p.count,
          },
          ...[
            p.time,
            num(p.avg, 3),
            num(p.min, 3),
            num(p.max, 3),
            String(p.count),
            String(p.revision),
          ].map((c) => h('td', {}, c)),
        ),
      ),
    );
    const data: uPlot.AlignedData = [
      pts.map((p) => Date.parse(p.time) / 1000),
      pts.map((p) => p.avg),
      pts.map((p) => p.min),
      pts.map((p) => p.max),
      pts.map((p) => (p.revision > 1 || p.late_count > 0 ? p.avg : null)),
    ];
    // The range function reads the view's current scale: the chart shows exactly the range asked.
    v.scale = { min: range.from / 1000, max: range.to / 1000 };
    const scale = v.scale;
    if (!v.plot) {
      const c1 = css('--c1');
      v.plot = mountChart(
        v.host,
        {
          height: 200,
          axes: axes(),
          scales: { x: { time: true, range: () => [v.scale.min, v.scale.max] } },
          series: [
            {},
            { label: 'avg', stroke: c1, width: 2 },
            { label: 'min', stroke: css('--band-edge'), width: 1 },
            { label: 'max', stroke: css('--band-edge'), width: 1 },
            {
              label: 'late revision',
              stroke: css('--warn'),
              width: 0,
              paths: () => null,
              points: { show: true, size: 8, fill: css('--warn') },
            },
          ],
          bands: [{ series: [3, 2], fill: css('--band') }],
          cursor: { drag: { x: true, y: false, setScale: false } },
          hooks: {
            setSelect: [
              (u) => {
                if (u.select.width < 4) return;
                const from = u.posToVal(u.select.left, 'x') * 1000;
                const to = u.posToVal(u.select.left + u.select.width, 'x') * 1000;
                u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
                setRange(from, to);
              },
            ],
          },
        },
        data,
        signal,
      );
      v.plot.setScale('x', scale);
    } else {
      v.plot.setData(data, false);
      v.plot.setScale('x', scale);
    }
    v.box.setAttribute('aria-busy', 'false');
  }

  function setRange(from: number, to: number): void {
    // Never finer than a few seconds across, never before two years ago.
    const span = Math.max(5_000, to - from);
    range = { from: Math.max(Date.now() - 730 * 86_400_000, to - span), to };
    rangeLabel.textContent = `${new Date(range.from).toLocaleString()} – ${new Date(range.to).toLocaleString()}`;
    root.dataset['rangeMs'] = String(Math.round(range.to - range.from));
    void Promise.all(views.map((v) => load(v))).catch((err: unknown) => {
      if (!signal.aborted && !(err instanceof DOMException))
        rangeLabel.textContent = `Failed: ${String(err)}`;
    });
  }

  rangeLabel.textContent = `${new Date(range.from).toLocaleString()} – ${new Date(range.to).toLocaleString()}`;
  root.dataset['rangeMs'] = String(range.to - range.from);
  await Promise.all(views.map((v) => load(v)));
}
