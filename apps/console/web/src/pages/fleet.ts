// Fleet: every device the query API knows, by region, with when it last reported, its reading rate
// over the last minute (from 5 s roll-ups), silent devices highlighted, and a plot of positions for
// devices reporting latitude/longitude sensors (no map tiles: the console works offline).
import { query } from '../api';
import { ago, h, num, table } from '../dom';
import type { PageContext } from '../main';

interface DevicePage {
  items: Array<{ id: string; region: string; sensors: string[] }>;
  next_cursor: string | null;
}
interface Latest {
  sensors: Array<{ sensor: string; value: number; time: string; derived: boolean }>;
}
interface SeriesPage {
  points: Array<{ count: number }>;
}

/** A device that has sent nothing for this long is silent. */
const SILENT_MS = 60_000;
const RATE_WINDOW_MS = 60_000;
const LAT = ['lat', 'latitude', 'gps_lat'];
const LON = ['lon', 'lng', 'longitude', 'gps_lon'];

/** Runs `fn` over `items` with at most `n` at once. */
async function pool<T, R>(items: T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

export async function renderFleet({ root, signal }: PageContext): Promise<void> {
  root.append(h('h1', {}, 'Fleet'));
  const devices: DevicePage['items'] = [];
  let cursor: string | null = null;
  do {
    const page: DevicePage = await query<DevicePage>(
      '/v1/devices',
      { limit: 1000, ...(cursor ? { cursor } : {}) },
      signal,
    );
    devices.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && devices.length < 5000);

  const now = Date.now();
  const from = new Date(now - RATE_WINDOW_MS).toISOString();
  const to = new Date(now).toISOString();
  const rows = await pool(devices, 6, async (d) => {
    const latest = await query<Latest>(
      `/v1/devices/${encodeURIComponent(d.id)}/latest`,
      {},
      signal,
    );
    const measured = latest.sensors.filter((s) => !s.derived);
    const lastSeen = measured
      .map((s) => s.time)
      .sort()
      .at(-1);
    const counts = await Promise.all(
      measured.map((s) =>
        query<SeriesPage>(
          '/v1/series',
          { device: d.id, sensor: s.sensor, from, to, resolution: '5s', limit: 100 },
          signal,
        ).then(
          (p) => p.points.reduce((n, x) => n + x.count, 0),
          () => 0,
        ),
      ),
    );
    const value = (names: string[]) => measured.find((s) => names.includes(s.sensor))?.value;
    return {
      ...d,
      lastSeen,
      silent: !lastSeen || now - Date.parse(lastSeen) > SILENT_MS,
      rate: counts.reduce((a, b) => a + b, 0) / (RATE_WINDOW_MS / 1000),
      lat: value(LAT),
      lon: value(LON),
    };
  });

  const regions = [...new Set(rows.map((r) => r.region))].sort();
  const silent = rows.filter((r) => r.silent).length;
  root.append(
    h(
      'dl',
      { class: 'stats card' },
      h(
        'div',
        {},
        h('dt', {}, 'devices'),
        h('dd', { 'data-metric': 'devices' }, String(rows.length)),
      ),
      h('div', {}, h('dt', {}, 'regions'), h('dd', {}, String(regions.length))),
      h(
        'div',
        { class: silent > 0 ? 'bad' : 'good' },
        h('dt', {}, `silent > ${SILENT_MS / 1000} s`),
        h('dd', { 'data-metric': 'silent' }, String(silent)),
      ),
      h(
        'div',
        {},
        h('dt', {}, 'readings/s'),
        h(
          'dd',
          {},
          num(
            rows.reduce((a, r) => a + r.rate, 0),
            1,
          ),
        ),
      ),
    ),
  );

  const positioned = rows.filter((r) => r.lat !== undefined && r.lon !== undefined);
  root.append(positionPlot(positioned));

  for (const region of regions) {
    const inRegion = rows
      .filter((r) => r.region === region)
      .sort((a, b) => Number(b.silent) - Number(a.silent) || a.id.localeCompare(b.id));
    root.append(
      table(
        `Region ${region} (${inRegion.length} devices)`,
        ['Device', 'Last seen', 'Readings/s', 'Sensors', 'State'],
        inRegion.map((r) => ({
          className: r.silent ? 'silent' : '',
          attrs: { 'data-device': r.id, 'data-silent': String(r.silent) },
          cells: [
            h('a', { href: `#/device/${encodeURIComponent(r.id)}` }, r.id),
            h('time', { datetime: r.lastSeen ?? '' }, ago(r.lastSeen, now)),
            num(r.rate, 1),
            r.sensors.join(', '),
            r.silent
              ? h('span', { class: 'badge bad' }, 'silent')
              : h('span', { class: 'badge good' }, 'reporting'),
          ],
        })),
      ),
    );
  }
}

/** Positions on a plain lat/lon plot (equirectangular, fitted to the devices), or a note without any. */
function positionPlot(
  rows: Array<{ id: string; lat?: number | undefined; lon?: number | undefined; silent: boolean }>,
): HTMLElement {
  const card = h(
    'section',
    { class: 'card', 'aria-labelledby': 'map-title' },
    h('h2', { id: 'map-title' }, 'Positions'),
  );
  if (rows.length === 0) {
    card.append(
      h(
        'p',
        { class: 'muted' },
        'No device reports a position (sensors lat/lon, latitude/longitude or gps_lat/gps_lon).',
      ),
    );
    return card;
  }
  const lats = rows.map((r) => r.lat!);
  const lons = rows.map((r) => r.lon!);
  // Longitude degrees shrink by cos(latitude) on the ground: scale them so the plot keeps true
  // proportions, pad by a tenth of the larger span, then widen the narrower axis to fit the frame.
  const k = Math.cos((((Math.min(...lats) + Math.max(...lats)) / 2) * Math.PI) / 180);
  const W = 600;
  const [H_MIN, H_MAX] = [200, 450];
  let ySpan = Math.max(...lats) - Math.min(...lats);
  let xSpan = (Math.max(...lons) - Math.min(...lons)) * k;
  const pad = Math.max(0.01, 0.1 * Math.max(ySpan, xSpan));
  ySpan += 2 * pad;
  xSpan += 2 * pad;
  if (ySpan / xSpan > H_MAX / W) xSpan = (ySpan * W) / H_MAX;
  if (ySpan / xSpan < H_MIN / W) ySpan = (xSpan * H_MIN) / W;
  const H = (W * ySpan) / xSpan;
  const midLat = (Math.min(...lats) + Math.max(...lats)) / 2;
  const midLon = (Math.min(...lons) + Math.max(...lons)) / 2;
  const [minLat, maxLat] = [midLat - ySpan / 2, midLat + ySpan / 2];
  const [minLon, maxLon] = [midLon - xSpan / k / 2, midLon + xSpan / k / 2];
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('class', 'map');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', `Positions of ${rows.length} devices`);
  for (const r of rows) {
    const x = ((r.lon! - minLon) / (maxLon - minLon)) * W;
    const y = H - ((r.lat! - minLat) / (maxLat - minLat)) * H;
    const g = document.createElementNS(NS, 'a');
    g.setAttribute('href', `#/device/${encodeURIComponent(r.id)}`);
    const c = document.createElementNS(NS, 'circle');
    Object.entries({ cx: x, cy: y, r: 6, class: r.silent ? 'pin silent' : 'pin' }).forEach(
      ([k, v]) => c.setAttribute(k, String(v)),
    );
    const t = document.createElementNS(NS, 'title');
    t.textContent = `${r.id} ${r.lat!.toFixed(4)}, ${r.lon!.toFixed(4)}`;
    c.append(t);
    const label = document.createElementNS(NS, 'text');
    Object.entries({ x: x + 9, y: y + 4, class: 'pin-label' }).forEach(([k, v]) =>
      label.setAttribute(k, String(v)),
    );
    label.textContent = r.id;
    g.append(c, label);
    svg.append(g);
  }
  card.append(
    svg,
    h(
      'p',
      { class: 'muted' },
      `lat ${minLat.toFixed(3)}…${maxLat.toFixed(3)}, lon ${minLon.toFixed(3)}…${maxLon.toFixed(3)}`,
    ),
  );
  return card;
}
