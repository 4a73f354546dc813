/// <reference lib="dom" />
// The web console in headless Chromium (Debian's `chromium`, driven by playwright-core) against a
// real pipeline: ingestion, dedupe, aggregator, webhook dispatcher and the console as processes on
// local NATS, Redis and PostgreSQL, fed by the fleet simulator. Every page must render real data; a
// device chart's points must be the query API's; zooming must change the resolution; a delivered
// alert must show; a redrive from the page must re-deliver; a wrong token must get the sign-in prompt
// and no data. The same run writes the README's screenshots into docs/images/.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { topology, type Topology } from '@sluice/contracts';
import {
  createTestDatabase,
  natsFixture,
  spawnService,
  testUrls,
  uniqueId,
  waitFor,
  type ChildService,
  type NatsFixture,
  type PgDatabase,
} from '@sluice/testing';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startWebhookReceiver, type WebhookReceiver } from './test-fixtures/receiver';

const ROOT = join(__dirname, '..', '..', '..');
const IMAGES = join(ROOT, 'docs', 'images');
const QUERY_TOKEN = randomBytes(24).toString('hex');
const ADMIN_TOKEN = randomBytes(24).toString('hex');
const DEVICE_TOKEN = randomBytes(24).toString('hex');
const REGION = 'eu-west';
const DEVICES = 3;
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

interface Proc {
  name: string;
  child: ChildService;
  info: Record<string, unknown>;
}

/** Starts `entry` with `env`, resolving once it logs `<name> running` (with that line's fields). */
async function start(name: string, env: Record<string, string>): Promise<Proc> {
  const child = spawnService(`apps/${name}/src/main.ts`, {
    TSX_TSCONFIG_PATH: join(ROOT, 'tsconfig.base.json'),
    OTEL_SDK_DISABLED: 'true',
    ...env,
  });
  const line = await child
    .waitForLine(new RegExp(`"msg":"${name} running"`), 90_000)
    .catch((err: Error) => {
      throw new Error(`${err.message}\n${child.lines.slice(-20).join('\n')}`);
    });
  return { name, child, info: JSON.parse(line) as Record<string, unknown> };
}

describe('web console in headless Chromium against a running pipeline', () => {
  let nats: NatsFixture;
  let topo: Topology;
  let aggDb: PgDatabase;
  let hookDb: PgDatabase;
  let receiver: WebhookReceiver;
  let browser: Browser;
  let page: Page;
  let staticDir: string;
  let consoleUrl: string;
  let queryUrl: string;
  let adminUrl: string;
  const procs: Proc[] = [];
  let sim: ChildProcess | undefined;
  const subs: Record<'ok' | 'fail', string> = { ok: '', fail: '' };

  const admin = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${adminUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json() as Promise<Record<string, unknown> & Array<Record<string, unknown>>>;
  };
  const api = async <T>(path: string, token = QUERY_TOKEN): Promise<T> => {
    const res = await fetch(`${queryUrl}${path}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return res.json() as Promise<T>;
  };
  const signIn = async (p: Page, token: string) => {
    await p.goto(`${consoleUrl}#/pipeline`);
    await p.fill('#token', token);
    await p.press('#token', 'Enter');
  };
  const shot = (p: Page, name: string) =>
    p.screenshot({ path: join(IMAGES, `console-${name}.png`), fullPage: true });

  beforeAll(async () => {
    // Chromium (apt, once) and the pages (Vite, into a folder of this run) while the pipeline starts.
    const executablePath = execFileSync(
      'bash',
      ['-c', 'source scripts/lib.sh >/dev/null; ensure_chromium'],
      { cwd: ROOT, encoding: 'utf8' },
    ).trim();
    staticDir = mkdtempSync(join(tmpdir(), 'console-pages-'));
    const built = promisify(execFile)(
      process.execPath,
      [
        join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js'),
        'build',
        '--config',
        'apps/console/vite.config.mts',
        '--outDir',
        staticDir,
        '--emptyOutDir',
      ],
      { cwd: ROOT },
    );
    nats = await natsFixture();
    topo = topology(uniqueId('cons'));
    const upper = topo.namespace.toUpperCase().replace(/-/g, '_');
    for (const s of [
      ...Object.values(topo.streams).map((x) => x.name),
      `${upper}_WEBHOOK_DELIVERIES`,
      `${upper}_WEBHOOK_OPS`,
    ])
      nats.track(s);
    [aggDb, hookDb, receiver] = await Promise.all([
      createTestDatabase('consagg'),
      createTestDatabase('conshook'),
      startWebhookReceiver(),
    ]);
    const common = {
      SLUICE_NAMESPACE: topo.namespace,
      SLUICE_ENV: 'test',
      NATS_URL: testUrls.nats,
      OPS_PORT: '0',
      OPS_HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
    };
    procs.push(
      ...(await Promise.all([
        start('ingestion', {
          ...common,
          INGEST_HOST: '127.0.0.1',
          INGEST_HTTP_PORT: '0',
          INGEST_GRPC_PORT: '0',
          INGEST_REGIONS: REGION,
          INGEST_AUTH_TOKENS: `${sha256(DEVICE_TOKEN)}=*`,
        }),
        start('dedupe', {
          ...common,
          REDIS_URL: testUrls.redis,
          DEDUPE_KEY_PREFIX: `${topo.namespace}:`,
        }),
        start('aggregator', {
          ...common,
          PG_URL: aggDb.url,
          AGGREGATOR_API_HOST: '127.0.0.1',
          AGGREGATOR_API_PORT: '0',
          AGGREGATOR_API_TOKENS: `${sha256(QUERY_TOKEN)}=*`,
          AGGREGATOR_ALLOWED_LATENESS: '1s',
          AGGREGATOR_CLOSE_INTERVAL: '250ms',
        }),
        start('webhook-dispatcher', {
          ...common,
          PG_URL: hookDb.url,
          WEBHOOK_ADMIN_HOST: '127.0.0.1',
          WEBHOOK_ADMIN_PORT: '0',
          WEBHOOK_ADMIN_TOKEN: ADMIN_TOKEN,
          WEBHOOK_SSRF_ALLOW_CIDRS: '127.0.0.0/8',
          WEBHOOK_SUBSCRIPTION_REFRESH: '300ms',
          WEBHOOK_RETRY_SCHEDULE: '200ms',
          WEBHOOK_RETRY_JITTER: '0',
          WEBHOOK_SHARED_STATE: 'local',
        }),
      ])),
    );
    const [ingestion, , aggregator, dispatcher] = procs as [Proc, Proc, Proc, Proc];
    queryUrl = `http://127.0.0.1:${String(aggregator.info['apiPort'])}`;
    adminUrl = `http://127.0.0.1:${String(
      JSON.parse(await dispatcher.child.waitForLine(/"msg":"admin API listening"/))['port'],
    )}`;
    const targets = procs.map((p) => `${p.name}=http://127.0.0.1:${String(p.info['opsPort'])}`);
    await built;
    procs.push(
      await start('console', {
        ...common,
        CONSOLE_HOST: '127.0.0.1',
        CONSOLE_PORT: '0',
        CONSOLE_STATIC_DIR: staticDir,
        CONSOLE_QUERY_URL: queryUrl,
        CONSOLE_ADMIN_URL: adminUrl,
        WEBHOOK_ADMIN_TOKEN: ADMIN_TOKEN,
        AGGREGATOR_API_TOKENS: `${sha256(QUERY_TOKEN)}=*`,
        CONSOLE_TARGETS: targets.join(','),
        CONSOLE_INTERVAL: '1s',
      }),
    );
    consoleUrl = `http://127.0.0.1:${String(procs.at(-1)!.info['consolePort'])}/`;

    // Alerts: one endpoint that answers, one that fails until told otherwise (its deliveries die
    // after one retry and wait in the dead-delivery list for the redrive).
    const filter = {
      type: 'telemetry',
      deviceIds: ['sim-0'],
      sensorTypes: ['engine_temp'],
    };
    subs.ok = String(
      (
        await admin('POST', '/v1/subscriptions', {
          url: `${receiver.url}/ok`,
          description: 'engine alarm',
          filter,
        })
      )['id'],
    );
    // The pager alerts on every 10th consecutive reading: a few dead deliveries, not hundreds.
    subs.fail = String(
      (
        await admin('POST', '/v1/subscriptions', {
          url: `${receiver.url}/fail`,
          description: 'flaky pager',
          filter: { ...filter, consecutive: 10 },
        })
      )['id'],
    );

    // The fleet simulator, as `npm start` runs it, with a small fleet: every device has a camera.
    sim = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'tools/fleet-sim/src/main.ts',
        ...[
          '--transport',
          'http',
          '--target',
          `http://127.0.0.1:${String(ingestion.info['httpPort'])}`,
        ],
        ...['--devices', String(DEVICES), '--sensors', '3', '--min-hz', '1', '--max-hz', '4'],
        ...['--cameras', '1', '--camera-hz', '1', '--regions', REGION, '--seconds', '600'],
      ],
      {
        cwd: ROOT,
        env: {
          ...process.env,
          TSX_TSCONFIG_PATH: join(ROOT, 'tsconfig.base.json'),
          FLEET_SIM_TOKEN: DEVICE_TOKEN,
        },
        stdio: 'ignore',
      },
    );

    browser = await chromium.launch({
      executablePath,
      headless: true,
      args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    sim?.kill('SIGKILL');
    await Promise.all(
      procs.map(async (p) => {
        p.child.kill('SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([p.child.exited, new Promise((r) => (timer = setTimeout(r, 10_000)))]);
        clearTimeout(timer);
        p.child.kill('SIGKILL');
      }),
    );
    await receiver?.close();
    await nats?.cleanup();
    await Promise.all([aggDb?.drop(), hookDb?.drop()]);
    if (staticDir) rmSync(staticDir, { recursive: true, force: true });
  }, 60_000);

  it('a wrong token gets the sign-in prompt and no data', async () => {
    const p = await browser.newPage();
    await signIn(p, 'not-the-token-0123456789abcdef');
    await p.waitForSelector('form.login [role="alert"]');
    expect(await p.locator('section.page').count()).toBe(0);
    expect(await p.locator('[data-stage]').count()).toBe(0);
    // The API behind the pages refuses it too, stream and query alike.
    for (const path of ['api/session', 'api/stream', 'api/query/v1/devices', 'api/webhooks']) {
      const res = await fetch(`${consoleUrl}${path}`, {
        headers: { authorization: 'Bearer not-the-token-0123456789abcdef' },
      });
      expect([path, res.status]).toEqual([path, 401]);
      expect(await res.text()).not.toContain('sim-');
    }
    await shot(p, 'login');
    await p.close();
  });

  it('the pipeline page shows every stage live: health, rates, consumer lag, freshness', async () => {
    await signIn(page, QUERY_TOKEN);
    await page.waitForSelector('section[data-page="pipeline"] [data-stage="ingestion"]');
    // Live rates arrive with the second sample; events flow once the simulator runs.
    await page.waitForFunction(
      () => {
        const rate = document.querySelector(
          '[data-stage="aggregator"] [data-rate="events aggregated"] dd',
        );
        return rate !== null && Number.parseFloat(rate.textContent ?? '') > 0;
      },
      undefined,
      { timeout: 60_000 },
    );
    // Every stage answers its /readyz (a loaded machine may miss one sample: the next one counts).
    await page.waitForFunction(
      () =>
        ['ingestion', 'dedupe', 'aggregator', 'webhook-dispatcher'].every(
          (name) =>
            document.querySelector(`[data-stage="${name}"]`)?.getAttribute('data-health') ===
            'ready',
        ),
      undefined,
      { timeout: 30_000 },
    );
    const ingested = await page.textContent(
      '[data-stage="ingestion"] [data-rate="events published"] dd',
    );
    expect(Number.parseFloat(ingested ?? '')).toBeGreaterThan(0);
    expect(await page.locator('[data-consumer="aggregator"]').count()).toBe(1);
    expect(await page.locator('[data-consumer="dedupe"]').count()).toBe(1);
    await page.waitForFunction(
      () => document.querySelector('[data-metric="freshness-p50"] dd')?.textContent !== '—',
      undefined,
      { timeout: 30_000 },
    );
    await shot(page, 'pipeline');
  }, 90_000);

  it('the fleet page lists every simulated device with its last report and rate', async () => {
    await page.goto(`${consoleUrl}#/fleet`);
    await page.waitForSelector('section[data-page="fleet"][aria-busy="false"] [data-device]');
    expect(await page.textContent('[data-metric="devices"]')).toBe(String(DEVICES));
    for (let d = 0; d < DEVICES; d++)
      expect(await page.getAttribute(`tr[data-device="sim-${d}"]`, 'data-silent')).toBe('false');
    // The simulator's boats report GPS (lat/lon at 1 Hz): the map plots one pin per device, at the
    // position the query API has as the device's latest.
    const pins = page.locator('section[data-page="fleet"] svg.map circle.pin');
    expect(await pins.count()).toBe(DEVICES);
    const latest = await api<{ sensors: Array<{ sensor: string }> }>('/v1/devices/sim-0/latest');
    expect(latest.sensors.map((s: { sensor: string }) => s.sensor)).toEqual(
      expect.arrayContaining(['lat', 'lon']),
    );
    const title = await page.textContent('svg.map a[href="#/device/sim-0"] title');
    const [lat, lon] = title!.replace('sim-0 ', '').split(', ').map(Number);
    expect(Math.abs(lat! - 47)).toBeLessThan(12); // eu-west harbours: Bay of Biscay … North Sea
    expect(Math.abs(lon!)).toBeLessThan(10);
    await shot(page, 'fleet');
  });

  it("a device chart shows the query API's points, and zooming changes the resolution", async () => {
    // The comparison below is over windows closed 20 s ago: wait until the query API has one (a fast
    // run reaches this test before the simulator has sent for that long).
    await waitFor(
      'a window of sim-0 engine_temp older than 25 s',
      async () => {
        const now = Date.now();
        const qs = new URLSearchParams({
          device: 'sim-0',
          sensor: 'engine_temp',
          from: new Date(now - 300_000).toISOString(),
          to: new Date(now).toISOString(),
          resolution: '1s',
        });
        const r = await api<{ points: Array<{ time: string }> }>(`/v1/series?${qs.toString()}`);
        return r.points.some((p) => Date.parse(p.time) < now - 25_000);
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );
    await page.goto(`${consoleUrl}#/device/sim-0`);
    const box = page.locator('article.sensor[data-sensor="engine_temp"]');
    await box.waitFor();
    await page.waitForFunction(
      () =>
        document
          .querySelector('article.sensor[data-sensor="engine_temp"]')
          ?.getAttribute('aria-busy') === 'false',
    );
    const first = {
      resolution: (await box.getAttribute('data-resolution'))!,
      from: (await box.getAttribute('data-from'))!,
      to: (await box.getAttribute('data-to'))!,
    };
    const shown = await box.locator('table.points tbody tr').evaluateAll((rows) =>
      rows.map((r) => ({
        time: r.getAttribute('data-time')!,
        avg: Number(r.getAttribute('data-avg')),
        count: Number(r.getAttribute('data-count')),
      })),
    );
    expect(shown.length).toBeGreaterThan(0);
    const qs = new URLSearchParams({ device: 'sim-0', sensor: 'engine_temp', ...first });
    const fromApi = await api<{ points: Array<{ time: string; avg: number; count: number }> }>(
      `/v1/series?${qs.toString()}`,
    );
    // Windows still open may have grown between the two reads; closed ones must be identical.
    const settled = Date.now() - 20_000;
    const closed = (p: { time: string }) => Date.parse(p.time) < settled;
    expect(shown.filter(closed)).toEqual(
      fromApi.points.filter(closed).map((p) => ({ time: p.time, avg: p.avg, count: p.count })),
    );
    expect(shown.filter(closed).length).toBeGreaterThan(0);

    // Zoom: drag across the last few percent of the hour on the chart.
    const over = box.locator('.u-over');
    const r = (await over.boundingBox())!;
    await page.mouse.move(r.x + r.width * 0.97, r.y + r.height / 2);
    await page.mouse.down();
    await page.mouse.move(r.x + r.width * 0.999, r.y + r.height / 2, { steps: 5 });
    await page.mouse.up();
    await page.waitForFunction(
      (before) => {
        const el = document.querySelector('article.sensor[data-sensor="engine_temp"]');
        return (
          el?.getAttribute('aria-busy') === 'false' && el.getAttribute('data-resolution') !== before
        );
      },
      first.resolution,
      { timeout: 20_000 },
    );
    const zoomed = (await box.getAttribute('data-resolution'))!;
    const ms = (r: string) =>
      Number.parseInt(r, 10) * ({ s: 1, m: 60, h: 3600, d: 86400 }[r.slice(-1)] ?? 1);
    expect(ms(zoomed)).toBeLessThan(ms(first.resolution));
    await page.mouse.move(0, 0);
    await shot(page, 'device');
    // And back out: two years is the coarsest resolution.
    await page.click('button[data-range="2 y"]');
    await page.waitForFunction(
      (before) =>
        document
          .querySelector('article.sensor[data-sensor="engine_temp"]')
          ?.getAttribute('data-resolution') !== before,
      zoomed,
      { timeout: 20_000 },
    );
    expect(ms((await box.getAttribute('data-resolution'))!)).toBeGreaterThan(ms(first.resolution));
  }, 180_000);

  it('an alert delivered to the receiver appears; a redrive from the page re-delivers the dead ones', async () => {
    // Delivered: some webhook the receiver answered shows as a successful attempt.
    await waitFor(
      'an alert delivered',
      () => receiver.received.some((h) => h.path === '/ok' && h.status === 204),
      {
        timeoutMs: 60_000,
      },
    );
    // Dead: the failing endpoint's deliveries died after their retry.
    const dead = await waitFor(
      'dead deliveries',
      async () => {
        const list = (await admin(
          'GET',
          `/v1/subscriptions/${subs.fail}/dlq`,
        )) as unknown as Array<{ webhookId: string }>;
        return list.length > 0 && list;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    await page.goto(`${consoleUrl}#/alerts`);
    const ok = page.locator(`[data-subscription="${subs.ok}"]`);
    await ok.waitFor();
    const delivered = new Set(
      receiver.received.filter((h) => h.path === '/ok').map((h) => h.webhookId),
    );
    const shownOk = await ok
      .locator('tr[data-outcome="success"]')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-webhook-id')));
    expect(shownOk.length).toBeGreaterThan(0);
    expect(shownOk.every((id) => delivered.has(id!))).toBe(true);
    const fail = page.locator(`[data-subscription="${subs.fail}"]`);
    expect(
      await fail.locator('tr[data-outcome="dead"], tr[data-outcome="retry"]').count(),
    ).toBeGreaterThan(0);
    expect(await fail.locator('tr[data-dead]').count()).toBeGreaterThan(0);
    await shot(page, 'alerts');

    // The endpoint is fixed; the page's redrive sends the dead deliveries again, and they arrive.
    receiver.failing = false;
    const deadIds = new Set(dead.map((d) => d.webhookId));
    await fail.locator('button[data-action="redrive"]').click();
    await page.waitForFunction(() => document.querySelector('p.outcome')?.textContent, undefined, {
      timeout: 30_000,
    });
    expect(await page.textContent('p.outcome')).toMatch(/^Redriven [1-9]/);
    await waitFor(
      'a dead delivery re-delivered',
      () =>
        receiver.received.some(
          (h) => h.path === '/fail' && h.status === 204 && deadIds.has(h.webhookId),
        ),
      { timeoutMs: 30_000 },
    );

    // Secret rotation through the same page: two clicks (arm, confirm), the new secret shown once.
    const before = (await admin('GET', `/v1/subscriptions/${subs.ok}`))['secretCount'] as number;
    const rotate = ok.locator('button[data-action="rotate"]');
    await rotate.click();
    await rotate.click();
    await ok.locator('output.secret:has-text("New secret")').waitFor();
    expect((await admin('GET', `/v1/subscriptions/${subs.ok}`))['secretCount']).toBe(before + 1);
  }, 150_000);

  it('the detections page draws the boxes of each camera stream', async () => {
    await page.goto(`${consoleUrl}#/detections`);
    await page.waitForSelector('article.camera[data-stream]', { timeout: 20_000 });
    const streams = await page.locator('article.camera').count();
    expect(streams).toBeGreaterThan(0);
    await page.waitForSelector('article.camera:not([data-boxes="0"])', { timeout: 20_000 });
    await shot(page, 'detections');
  }, 40_000);

  it('works by keyboard, on a phone-sized screen, in the dark theme', async () => {
    const phone = await browser.newPage({
      viewport: { width: 390, height: 844 },
      colorScheme: 'dark',
    });
    await signIn(phone, QUERY_TOKEN);
    await phone.waitForSelector('[data-stage="aggregator"]');
    // From the skip link (the first stop), Tab walks the navigation; Enter follows a link.
    await phone.focus('a.skip');
    await phone.keyboard.press('Tab');
    await phone.keyboard.press('Tab');
    expect(await phone.evaluate(() => document.activeElement?.getAttribute('data-page'))).toBe(
      'fleet',
    );
    await phone.keyboard.press('Enter');
    await phone.waitForSelector('section[data-page="fleet"] [data-device]');
    // Nothing wider than the screen but the tables, which scroll inside their own box.
    const wide = await phone.evaluate(() => document.documentElement.scrollWidth);
    expect(wide).toBeLessThanOrEqual(390);
    await phone.goto(`${consoleUrl}#/pipeline`);
    await phone.waitForSelector('[data-stage="aggregator"] [data-rate]');
    await shot(phone, 'phone-dark');
    await phone.close();
  }, 40_000);
});
