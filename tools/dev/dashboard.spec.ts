import {
  compact,
  histogramQuantile,
  parsePrometheus,
  ratePerSecond,
  renderDashboard,
  serviceRow,
  total,
  type DashboardSnapshot,
  type Scrape,
} from './dashboard';

const METRICS_A = `# HELP sluice_messages_processed_total Messages handled
# TYPE sluice_messages_processed_total counter
sluice_messages_processed_total{consumer="agg",stream="clean"} 100
sluice_messages_processed_total{consumer="agg-late",stream="clean"} 20
sluice_consumer_pending_messages{consumer="agg"} 7
sluice_consumer_pending_messages{consumer="agg-late"} 3
sluice_messages_dead_lettered_total{consumer="agg",reason="poison"} 2
sluice_aggregator_rollups_published_total 40
sluice_aggregator_late_events_total 1
sluice_webhook_attempts_total{outcome="success"} 5
sluice_webhook_attempts_total{outcome="gone"} 1
sluice_webhook_attempts_total{outcome="http_500"} 2
weird_label{path="a\\"b",x="1"} 3.5
not a sample line
`;

const scrape = (at: number, text: string): Scrape => ({ at, samples: parsePrometheus(text) });

describe('parsePrometheus / total', () => {
  it('reads names, labels (with escapes) and values, and skips comments and junk', () => {
    const s = parsePrometheus(METRICS_A);
    expect(s).toContainEqual({ name: 'weird_label', labels: { path: 'a"b', x: '1' }, value: 3.5 });
    expect(s.some((x) => x.name === 'not')).toBe(false);
    expect(total(s, 'sluice_messages_processed_total')).toBe(120);
    expect(total(s, 'sluice_messages_processed_total', { consumer: 'agg' })).toBe(100);
    expect(total(s, 'sluice_webhook_attempts_total', { outcome: '!success' })).toBe(3);
    expect(total(s, 'absent_total')).toBeUndefined();
  });

  it('computes a per-second rate between two scrapes, none across a counter reset', () => {
    const a = scrape(1_000, 'c_total 10');
    const b = scrape(3_000, 'c_total 50');
    expect(ratePerSecond(a, b, 'c_total')).toBe(20);
    expect(ratePerSecond(b, scrape(4_000, 'c_total 5'), 'c_total')).toBeUndefined();
    expect(ratePerSecond(undefined, b, 'c_total')).toBeUndefined();
  });
});

const visible = (le: Record<string, number>, label = 'a') =>
  Object.entries(le)
    .map(([b, n]) => `sluice_aggregator_visible_seconds_bucket{le="${b}",p="${label}"} ${n}`)
    .join('\n');

describe('histogramQuantile', () => {
  const H = 'sluice_aggregator_visible_seconds';
  it('interpolates p50/p99 within buckets of the observations between two scrapes', () => {
    // Before: 100 observations all under 0.1 s. Between: 100 more, 50 in (0.5, 1], 50 in (1, 2.5].
    const prev = scrape(1, visible({ '0.1': 100, '0.5': 100, '1': 100, '2.5': 100, '+Inf': 100 }));
    const cur = scrape(2, visible({ '0.1': 100, '0.5': 100, '1': 150, '2.5': 200, '+Inf': 200 }));
    expect(histogramQuantile(prev, cur, H, 0.5)).toBeCloseTo(1);
    expect(histogramQuantile(prev, cur, H, 0.99)).toBeCloseTo(1 + 1.5 * (49 / 50));
    // Over everything since start instead, half of it is under 0.1 s.
    expect(histogramQuantile(undefined, cur, H, 0.5)).toBeCloseTo(0.1);
  });

  it('sums label sets, uses the totals when nothing new arrived or after a reset, none when empty', () => {
    const two = (n: number) =>
      `${visible({ '1': n, '+Inf': n }, 'a')}\n${visible({ '1': n, '+Inf': 2 * n }, 'b')}`;
    const cur = scrape(2, two(10));
    // 30 observations: 20 ≤ 1 s, 10 above the last finite bound (reported as that bound).
    expect(histogramQuantile(scrape(1, two(10)), cur, H, 0.5)).toBeCloseTo(0.75);
    expect(histogramQuantile(scrape(1, two(50)), cur, H, 0.99)).toBe(1);
    expect(histogramQuantile(undefined, scrape(1, visible({ '1': 0, '+Inf': 0 })), H, 0.5)).toBe(
      undefined,
    );
    expect(histogramQuantile(undefined, scrape(1, 'other 1'), H, 0.5)).toBeUndefined();
  });

  it('is the aggregator row’s freshness note', () => {
    const prev = scrape(1, visible({ '0.5': 0, '1': 0, '5': 0, '+Inf': 0 }));
    const cur = scrape(2, visible({ '0.5': 0, '1': 100, '5': 100, '+Inf': 100 }));
    expect(serviceRow('aggregator', 1, 'ready', prev, cur).notes).toEqual([
      'fresh p50 750ms p99 995ms',
    ]);
  });
});

describe('serviceRow', () => {
  it('takes throughput, lag, DLQ and the service notes from two scrapes', () => {
    const prev = scrape(10_000, METRICS_A);
    const cur = scrape(
      12_000,
      METRICS_A.replace('stream="clean"} 100', 'stream="clean"} 300').replace(
        'rollups_published_total 40',
        'rollups_published_total 60',
      ),
    );
    const row = serviceRow('aggregator', 42, 'ready', prev, cur);
    expect(row).toMatchObject({
      name: 'aggregator',
      pid: 42,
      state: 'ready',
      unit: 'processed',
      rate: 100,
      count: 320,
      lag: 10,
      dlq: 2,
      notes: ['roll-ups 10/s', 'late 1'],
    });
    expect(serviceRow('webhook-dispatcher', 1, 'ready', undefined, cur).notes).toEqual([
      'delivered 5',
      'failed 3',
    ]);
  });

  it('prefers the gateway counter and shows no lag for a service without a consumer', () => {
    const cur = scrape(1, 'sluice_events_published_total{region="eu"} 9\nsluice_x 1');
    expect(serviceRow('ingestion', 1, 'ready', undefined, cur)).toMatchObject({
      unit: 'published',
      count: 9,
      rate: undefined,
      lag: undefined,
      dlq: 0,
    });
  });

  it('has nothing but the state before the first scrape', () => {
    expect(serviceRow('dedupe', undefined, 'starting', undefined, undefined)).toMatchObject({
      count: undefined,
      dlq: undefined,
      notes: [],
    });
  });
});

describe('renderDashboard', () => {
  const snapshot = (over: Partial<DashboardSnapshot> = {}): DashboardSnapshot => ({
    uptimeS: 83,
    tls: true,
    rows: [
      serviceRow(
        'ingestion',
        101,
        'ready',
        undefined,
        scrape(1, 'sluice_events_published_total 1500'),
      ),
      serviceRow('dedupe', 102, 'starting', undefined, undefined),
    ],
    sim: { pid: 103, state: 'running', line: 't=3s accepted/s=120' },
    info: [
      ['query API', 'https://127.0.0.1:9480/openapi.json'],
      ['CA', 'tmp/dev-tls/ca.crt'],
    ],
    ...over,
  });

  it('draws a header, one row per service and the simulator, then the info lines', () => {
    const lines = renderDashboard(snapshot(), 200);
    expect(lines[0]).toBe('Sluice dev pipeline · up 1m23s · TLS · Ctrl-C stops everything');
    const row = (name: string) => lines.find((l) => l.startsWith(name))!.split(/\s{2,}/);
    expect(row('ingestion')).toEqual([
      'ingestion',
      '101',
      'ready',
      '-',
      '1.5k',
      '-',
      '0',
      'published',
    ]);
    expect(row('dedupe')).toEqual(['dedupe', '102', 'starting', '-', '-', '-', '-']);
    expect(lines.find((l) => l.startsWith('fleet-sim'))).toMatch(
      /103 {2}running .*t=3s accepted\/s=120$/,
    );
    expect(lines).toContain('query API  https://127.0.0.1:9480/openapi.json');
    expect(lines).toContain('CA         tmp/dev-tls/ca.crt');
  });

  it('keeps the line count whatever the numbers and messages, and fits every line to the width', () => {
    const a = renderDashboard(snapshot(), 40);
    const b = renderDashboard(
      snapshot({
        uptimeS: 7200,
        lastMessage: 'x'.repeat(300),
        sim: { pid: 1, state: 'exited', line: undefined },
      }),
      40,
    );
    expect(b).toHaveLength(a.length);
    for (const l of [...a, ...b]) expect([...l].length).toBeLessThanOrEqual(40);
    expect(b.at(-1)).toMatch(/^x+…$/);
    expect(b[0]).toContain('up 2h00m');
  });
});

describe('compact', () => {
  it.each([
    [0, '0'],
    [0.25, '0.3'],
    [12.4, '12'],
    [1500, '1.5k'],
    [56_789, '57k'],
    [2_500_000, '2.5M'],
  ])('%p → %p', (n, text) => expect(compact(n)).toBe(text));
});
