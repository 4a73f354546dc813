// The Grafana dashboards of infra/grafana and the rules of infra/prometheus, checked offline (no
// Grafana runs here): the JSON is well formed and bound to the `datasource` variable, every PromQL
// expression parses (promtool, as a recording rule), every metric a dashboard or rule names is one a
// Sluice service exports or a rule records, and the telemetry explorer's SQL runs against the
// aggregator's real schema (its migrations, on the local PostgreSQL) with the rows it should return.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { migrate } from '@sluice/pg';
import { createTestDatabase, type PgDatabase } from '@sluice/testing';
import { Pool } from 'pg';
import { parse as parseYaml } from 'yaml';
import { ROOT } from './processes';

const run = promisify(execFile);
const DASHBOARDS = join(ROOT, 'infra', 'grafana', 'dashboards');
const ALERTS = join(ROOT, 'infra', 'prometheus', 'alerts.yml');

interface Target {
  expr?: string;
  rawSql?: string;
  format?: string;
  datasource?: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: Target[];
  panels?: Panel[];
  gridPos: { x: number; y: number; w: number; h: number };
}
interface Variable {
  name: string;
  type: string;
  query: unknown;
  datasource?: { type: string; uid: string };
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Variable[] };
}

const files = readdirSync(DASHBOARDS).filter((f) => f.endsWith('.json'));
const dashboards = new Map<string, Dashboard>(
  files.map((f) => [f, JSON.parse(readFileSync(join(DASHBOARDS, f), 'utf8')) as Dashboard]),
);
const panelsOf = (d: Dashboard): Panel[] =>
  d.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');
const promExprs = (): Array<{ where: string; expr: string }> =>
  [...dashboards].flatMap(([f, d]) =>
    panelsOf(d).flatMap((p) =>
      (p.targets ?? [])
        .filter((t) => t.expr !== undefined)
        .map((t) => ({ where: `${f} "${p.title}"`, expr: t.expr! })),
    ),
  );
/** Grafana's range variables as Prometheus sees them once Grafana has substituted them. */
const grafanaToPromql = (expr: string) =>
  expr.replace(/\$__rate_interval|\$__interval|\$__range/g, (v) =>
    v === '$__range' ? '1h' : '1m',
  );

interface RuleGroup {
  name: string;
  rules: Array<{ alert?: string; record?: string; expr: string }>;
}
const ruleGroups = (parseYaml(readFileSync(ALERTS, 'utf8')) as { groups: RuleGroup[] }).groups;

const KEYWORDS = new Set([
  ...['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless'],
  ...['offset', 'bool', 'inf', 'nan', 'atan2'],
]);

/** The metric names a PromQL expression selects (not functions, labels, keywords or durations). */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of bare.matchAll(/(?<![0-9.a-zA-Z_:])[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const rest = bare.slice(m.index + m[0].length);
    if (/^\s*\(/.test(rest) || KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

/** Every `'sluice_…'` string literal of the services' and libraries' sources (not tests). */
function exportedNames(): Set<string> {
  const names = new Set<string>();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir)) {
      const p = join(dir, e);
      if (e === 'node_modules' || e === 'test-fixtures' || e === 'gen') continue;
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.ts$/.test(e) && !/\.spec\.ts$/.test(e))
        for (const m of readFileSync(p, 'utf8').matchAll(/['"`](sluice_[a-z0-9_]+)['"`]/g))
          names.add(m[1]!);
    }
  };
  for (const top of ['apps', 'libs']) walk(join(ROOT, top));
  return names;
}

function unknownNames(names: Iterable<string>, known: Set<string>): string[] {
  return [...names].filter(
    (n) => !known.has(n) && !known.has(n.replace(/_(bucket|sum|count)$/, '')),
  );
}

async function promtoolParses(exprs: string[]): Promise<{ ok: boolean; output: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-dashboards-'));
  try {
    const file = join(dir, 'exprs.yml');
    const rules = exprs.map((expr, i) => ({ record: `dashboard:expr_${i}`, expr }));
    writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboards', rules }] }));
    try {
      const { stdout, stderr } = await run('promtool', ['check', 'rules', file]);
      return { ok: true, output: stdout + stderr };
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; code?: unknown };
      if (e.code === 'ENOENT')
        throw new Error(
          'promtool not found: install Debian package prometheus (apt-get install --no-install-recommends prometheus), as .ci/run does',
        );
      return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('Grafana dashboards (infra/grafana) and the Prometheus rules they share names with', () => {
  it('are valid dashboards: unique uids and panel ids, on a 24-column grid, every query bound to the datasource variable', () => {
    expect([...dashboards.keys()].sort()).toEqual([
      'sluice-pipeline.json',
      'sluice-telemetry.json',
    ]);
    const uids = [...dashboards.values()].map((d) => d.uid);
    expect(new Set(uids).size).toBe(uids.length);
    for (const [f, d] of dashboards) {
      const ids = d.panels.flatMap((p) => [p, ...(p.panels ?? [])]).map((p) => p.id);
      expect({ f, dup: ids.filter((id, i) => ids.indexOf(id) !== i) }).toEqual({ f, dup: [] });
      const dsVar = d.templating.list.find((v) => v.name === 'datasource');
      expect(dsVar?.type).toBe('datasource');
      for (const p of panelsOf(d)) {
        const where = `${f} "${p.title}"`;
        expect({ where, ok: p.gridPos.x + p.gridPos.w <= 24 && p.gridPos.w > 0 }).toEqual({
          where,
          ok: true,
        });
        expect({ where, ds: p.datasource }).toEqual({
          where,
          ds: { type: dsVar!.query, uid: '${datasource}' },
        });
        expect(p.targets?.length).toBeGreaterThan(0);
        for (const t of p.targets ?? [])
          expect({ where, ds: t.datasource }).toEqual({ where, ds: p.datasource });
      }
      for (const v of d.templating.list.filter((x) => x.type === 'query'))
        expect({ v: v.name, ds: v.datasource }).toEqual({
          v: v.name,
          ds: { type: dsVar!.query, uid: '${datasource}' },
        });
    }
  });

  it('every PromQL expression of the dashboards parses (promtool), and promtool does refuse a broken one', async () => {
    const exprs = promExprs();
    expect(exprs.length).toBeGreaterThan(20);
    const good = await promtoolParses(exprs.map((e) => grafanaToPromql(e.expr)));
    expect({ ok: good.ok, output: good.ok ? '' : good.output }).toEqual({ ok: true, output: '' });
    expect(good.output).toContain(`SUCCESS: ${exprs.length} rules found`);
    const bad = await promtoolParses(['sum(rate(sluice_events_published_total[5m])']);
    expect(bad.ok).toBe(false);
  });

  it('every metric a dashboard or an alert names is exported by a service, or recorded by a rule', () => {
    const known = exportedNames();
    // The extraction finds what it should, and an unknown name is caught.
    expect(
      metricNames(
        'histogram_quantile(0.99, sum by (le) (rate(sluice_aggregator_visible_seconds_bucket{le="30"}[5m]))) > 0 and on (job) up offset 20m',
      ).sort(),
    ).toEqual(['sluice_aggregator_visible_seconds_bucket', 'up']);
    expect(unknownNames(['sluice_nonexistent_total'], known)).toEqual(['sluice_nonexistent_total']);

    const recorded = new Set(ruleGroups.flatMap((g) => g.rules.flatMap((r) => r.record ?? [])));
    const allowed = new Set([...known, ...recorded, 'up']);
    const used = new Map<string, string>();
    for (const { where, expr } of promExprs())
      for (const n of metricNames(grafanaToPromql(expr))) used.set(n, where);
    for (const g of ruleGroups)
      for (const r of g.rules)
        for (const n of metricNames(r.expr))
          used.set(n, `${relative(ROOT, ALERTS)} ${r.alert ?? r.record}`);
    expect(used.size).toBeGreaterThan(30);
    const unknown = unknownNames(used.keys(), allowed).map((n) => `${n} (${used.get(n)})`);
    expect(unknown).toEqual([]);
    // The freshness SLI the SLO panels and burn-rate rules rest on is one of them.
    expect(used.has('sluice_aggregator_visible_seconds_bucket')).toBe(true);
  });

  describe('telemetry explorer SQL on the aggregator schema', () => {
    let db: PgDatabase;
    let pool: Pool;
    const T0 = Date.parse('2026-11-30T10:00:00Z');
    const iso = (ms: number) => new Date(ms).toISOString();
    const telemetry = () => dashboards.get('sluice-telemetry.json')!;
    /** A query as Grafana's PostgreSQL datasource sends it: macros and variables substituted. */
    const render = (sql: string, vars: Record<string, string>, intervalMs: number) =>
      sql
        .replace(
          /\$__timeFilter\(([^)]+)\)/g,
          (_, col: string) =>
            `${col} BETWEEN '${iso(T0 - 3_600_000)}' AND '${iso(T0 + 3_600_000)}'`,
        )
        .replace(/\$__interval_ms/g, String(intervalMs))
        .replace(/\$\{(\w+)\}|\$(\w+)/g, (m, a?: string, b?: string) => vars[a ?? b!] ?? m);
    const vars = { region: 'eu-west', device: 'd1', sensor: 'temp', resolution: 'auto' };
    const query = async (title: string, v = vars, intervalMs = 60_000) => {
      const p = panelsOf(telemetry()).find((x) => x.title.startsWith(title));
      if (!p) throw new Error(`no panel "${title}"`);
      const sql = render(p.targets![0]!.rawSql!, v, intervalMs);
      expect(sql).not.toMatch(/\$/);
      return (await pool.query(sql)).rows as Array<Record<string, unknown>>;
    };

    beforeAll(async () => {
      db = await createTestDatabase('dashboards');
      pool = new Pool({ connectionString: db.url, max: 2 });
      await migrate(pool, {
        service: 'aggregator',
        dir: join(ROOT, 'apps', 'aggregator', 'migrations'),
      });
      // The aggregator adds partitions per resolution and day at run time; one default one will do.
      await pool.query('CREATE TABLE rollups_dashboards PARTITION OF rollups DEFAULT');
      const cell = (
        res: string,
        scope: number,
        key: string,
        t: number,
        n: number,
        sum: number,
        min: number,
        max: number,
        late = 0,
      ) =>
        pool.query(
          `INSERT INTO rollups (resolution, scope, series_key, sensor, window_start, region, count, sum, min, max,
             first_time, first_value, last_time, last_value, late_count, revision)
           VALUES ($1, $2, $3, 'temp', $4, 'eu-west', $5, $6, $7, $8, $4, $7, $4, $8, $9, $10)`,
          [res, scope, key, iso(t), n, sum, min, max, late, late ? 2 : 1],
        );
      await cell('1m', 1, 'd1', T0, 2, 10, 4, 6);
      await cell('1m', 1, 'd1', T0 + 60_000, 4, 8, 1, 3, 1);
      await cell('1s', 1, 'd1', T0, 1, 4, 4, 4);
      await cell('1h', 1, 'd1', T0, 6, 18, 1, 6);
      await cell('1m', 2, 'eu-west', T0, 5, 20, 1, 9);
      await cell('1m', 1, 'd1', T0 + 7_200_000, 1, 1, 1, 1); // outside the time range
      const series = (key: string, sensor: string, agoMs: number, scope = 1) =>
        pool.query(
          `INSERT INTO series (scope, series_key, sensor, region, last_time, last_value)
           VALUES ($1, $2, $3, 'eu-west', now() - $4 * interval '1 millisecond', 1.5)`,
          [scope, key, sensor, agoMs],
        );
      await series('d1', 'temp', 1_000);
      await series('d1', 'rpm', 2_000);
      await series('d2', 'temp', 600_000);
      await series('eu-west', 'temp', 1_000, 2);
    }, 60_000);

    afterAll(async () => {
      await pool?.end();
      await db?.drop();
    });

    it('the device chart picks the resolution from the interval (auto) or the variable, within the range', async () => {
      const pick = (rows: Array<Record<string, unknown>>) =>
        rows.map((r) => [(r['time'] as Date).getTime(), r['avg'], r['min'], r['max']]);
      expect(pick(await query('${device} ${sensor}'))).toEqual([
        [T0, 5, 4, 6],
        [T0 + 60_000, 2, 1, 3],
      ]);
      expect(pick(await query('${device} ${sensor}', vars, 1_000))).toEqual([[T0, 4, 4, 4]]);
      expect(pick(await query('${device} ${sensor}', vars, 7_200_000))).toEqual([[T0, 3, 1, 6]]);
      expect(pick(await query('${device} ${sensor}', { ...vars, resolution: '1s' }))).toEqual([
        [T0, 4, 4, 4],
      ]);
    });

    it('the region chart, the silent devices, the sensors and the late revisions', async () => {
      const region = await query('Region ${region}');
      expect(region.map((r) => [r['avg'], Number(r['readings'])])).toEqual([[4, 5]]);
      const devices = await query('Devices of ${region}');
      expect(devices.map((r) => [r['device'], Number(r['sensors'])])).toEqual([
        ['d2', 1],
        ['d1', 2],
      ]);
      expect(Number(devices[0]!['silent for'])).toBeGreaterThanOrEqual(600);
      expect(Number(devices[1]!['silent for'])).toBeLessThan(300);
      expect((await query('${device}: sensors')).map((r) => r['sensor'])).toEqual(['rpm', 'temp']);
      const late = await query('${device}: late revisions');
      expect(
        late.map((r) => [(r['window'] as Date).getTime(), r['resolution'], r['revision']]),
      ).toEqual([[T0 + 60_000, '1m', 2]]);
    });

    it('the variables list regions, their devices and a device’s sensors', async () => {
      const v = (name: string) => telemetry().templating.list.find((x) => x.name === name)!;
      const rows = async (name: string) =>
        (await pool.query(render(String(v(name).query), vars, 60_000))).rows.map(
          (r: Record<string, unknown>) => Object.values(r)[0],
        );
      expect(await rows('region')).toEqual(['eu-west']);
      expect(await rows('device')).toEqual(['d1', 'd2']);
      expect(await rows('sensor')).toEqual(['rpm', 'temp']);
    });
  });
});
