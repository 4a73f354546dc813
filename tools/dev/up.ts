/**
 * `npm start`: runs the whole pipeline on this machine.
 *
 * Starts every app that has `apps/<name>/src/main.ts` as a child process (TypeScript through tsx),
 * each with local defaults (NATS_URL, REDIS_URL, … and its own OPS_PORT from 9401), waits until their
 * `/healthz` answers, then starts the fleet simulator (`tools/fleet-sim/src/main.ts`) when it exists.
 * On a terminal it shows a live view that redraws in place (live.ts: per-service state, rates, lag,
 * DLQ, addresses and the token) and writes each child's output to tmp/logs/<name>.log; with --logs,
 * or when stdout is no terminal, every output line is printed, prefixed with the child's name.
 * Ctrl-C / SIGTERM stops all children (SIGTERM, then SIGKILL after the grace period); a child that
 * exits on its own stops everything with exit 1. With ingestion, it prints a device token (kept in
 * the git-ignored tmp/dev-device-token) and ready-to-paste curl and grpcurl commands that send one
 * event with it. With --tls, a development CA and server certificate (dev-tls.ts, tmp/dev-tls/) put
 * the gateway, the query API and the webhook admin API on TLS, and the simulator trusts that CA.
 * When scripts/lib.sh has built Jaeger v2, it starts it first (jaeger.ts: UI on 16686) and points the
 * children's OTLP exporter at it; a Jaeger that exits stops only tracing, not the run.
 *
 *   npm start -- [--tls] [--logs] [--no-sim] [--only ingestion,dedupe] [--grace 10s]
 *
 * Not an Nx project: a plain script run by scripts/run.sh after the services are ensured.
 */
import { createHash, randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
  type WriteStream,
} from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs as parseCli } from 'node:util';
import { Client } from 'pg';
import { consoleUrl as consoleUrlOf, ensureConsolePages } from '../../apps/console/src/dev';
import { ensureDevTls, type DevTls } from './dev-tls';
import { planJaeger, spawnJaeger, tcpAnswers, waitJaegerHealthy, type JaegerPlan } from './jaeger';
import { LiveView } from './live';

const ROOT = resolve(__dirname, '..', '..');

/** Stable ops ports for the services of the design; any other app gets one from 9410 upwards. */
const KNOWN_OPS_PORTS: Record<string, number> = {
  ingestion: 9401,
  dedupe: 9402,
  aggregator: 9403,
  'webhook-dispatcher': 9404,
  'mongo-capture': 9405,
  archiver: 9406,
  exporter: 9407,
  console: 9408,
  watch: 9409,
};
const FIRST_OTHER_OPS_PORT = 9410;
/** Where --tls keeps the development CA and server certificate (git-ignored). */
const DEV_TLS_DIR = join(ROOT, 'tmp', 'dev-tls');
/** Where the live view sends each child's output by default: `<name>.log` (git-ignored). */
const DEFAULT_LOG_DIR = join(ROOT, 'tmp', 'logs');
const SIM_NAME = 'fleet-sim';
const JAEGER_NAME = 'jaeger';

/** Defaults for the local services (the ones scripts/lib.sh starts); the caller's env wins. */
const LOCAL_DEFAULTS: Record<string, string> = {
  NATS_URL: 'nats://127.0.0.1:4222',
  REDIS_URL: 'redis://127.0.0.1:6379',
  PG_URL: 'postgres://postgres@127.0.0.1:5432/test',
  MONGO_URL: 'mongodb://127.0.0.1:27017',
  AMQP_URL: 'amqp://guest:guest@127.0.0.1:5672',
  MQTT_URL: 'mqtt://127.0.0.1:1883',
  OPS_HOST: '127.0.0.1',
  SLUICE_ENV: 'development',
  LOG_LEVEL: 'info',
};

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

// One throwaway gateway credential per run: the gateway knows only its hash (`*`: any device), the
// simulator presents it.
const DEV_TOKEN = randomBytes(24).toString('hex');
// A device token for trying the gateway by hand (device DEMO_DEVICE only), printed at start with
// curl and grpcurl examples. Kept in a git-ignored file so pasted commands survive a restart.
const DEMO_DEVICE = 'D-789';
const DEVICE_TOKEN_FILE = join(ROOT, 'tmp', 'dev-device-token');
const DEVICE_TOKEN = loadDeviceToken();
// Likewise the webhook admin API's bearer token (printed at start so the API can be tried).
const DEV_ADMIN_TOKEN = randomBytes(24).toString('hex');
// A query API token for the dev pipeline's regions (the gateway's INGEST_REGIONS), kept like the
// device token so pasted curl lines survive a restart; the aggregator knows only its hash.
const DEV_REGIONS = (process.env['INGEST_REGIONS'] || 'eu-west')
  .split(',')
  .map((r) => r.trim())
  .filter(Boolean);
const QUERY_TOKEN_FILE = join(ROOT, 'tmp', 'dev-query-token');
const QUERY_TOKEN = loadToken(QUERY_TOKEN_FILE);
// The operator token of the aggregator's pipeline admin routes (resolutions, derived series).
const OPERATOR_TOKEN_FILE = join(ROOT, 'tmp', 'dev-operator-token');
const OPERATOR_TOKEN = loadToken(OPERATOR_TOKEN_FILE);
const DEV_AUTH: Record<string, string> = {
  INGEST_AUTH_TOKENS: `${sha256(DEV_TOKEN)}=*;${sha256(DEVICE_TOKEN)}=${DEMO_DEVICE}`,
  FLEET_SIM_TOKEN: DEV_TOKEN,
  WEBHOOK_ADMIN_TOKEN: DEV_ADMIN_TOKEN,
  AGGREGATOR_API_TOKENS: `${sha256(QUERY_TOKEN)}=${DEV_REGIONS.join('|')}`,
  AGGREGATOR_ADMIN_TOKENS: `${sha256(OPERATOR_TOKEN)}=developer`,
};

/** The device token of the last run (tmp/ is git-ignored), or a new one written there (mode 0600). */
function loadDeviceToken(): string {
  return loadToken(DEVICE_TOKEN_FILE);
}

/** The token saved in `file` by the last run, or a new one written there (mode 0600). */
function loadToken(file: string): string {
  try {
    const saved = readFileSync(file, 'utf8').trim();
    if (/^[0-9a-f]{48}$/.test(saved)) return saved;
  } catch {
    // first run
  }
  const token = randomBytes(24).toString('hex');
  mkdirSync(join(ROOT, 'tmp'), { recursive: true });
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return token;
}

/** A path as the user would type it: relative to the current directory when under it. */
const rel = (path: string) => {
  const r = relative(process.cwd(), path);
  return r && !r.startsWith('..') ? r : path;
};

/** The TLS files of this run (--tls), set before anything is printed. */
let devTls: DevTls | undefined;
/** `http` or, with --tls, `https`. */
const scheme = () => (devTls ? 'https' : 'http');
/** curl's option trusting the dev CA (with a trailing space), or nothing. */
const cacert = () => (devTls ? `--cacert ${rel(devTls.caFile)} ` : '');
/** The query API's base URL. */
const queryApiUrl = () => `${scheme()}://127.0.0.1:${process.env['AGGREGATOR_API_PORT'] || '9480'}`;
/** The webhook admin API's base URL. */
const webhookAdminUrl = () =>
  `${scheme()}://127.0.0.1:${process.env['WEBHOOK_ADMIN_PORT'] || '8090'}`;

/** How to query the aggregator's API with the dev token (its regions: the dev pipeline's). */
function printQueryExamples(): void {
  const base = queryApiUrl();
  say(
    `  query API token (regions ${DEV_REGIONS.join(', ')}): ${QUERY_TOKEN}  (also in ${rel(QUERY_TOKEN_FILE)})`,
  );
  say('  try it:');
  print(
    `curl -sS ${cacert()}-H "authorization: Bearer ${QUERY_TOKEN}" '${base}/v1/devices?limit=5'`,
  );
  print(
    `curl -sS ${cacert()}-H "authorization: Bearer ${QUERY_TOKEN}" "${base}/v1/series?region=${DEV_REGIONS[0]}&sensor=engine_temp&from=$(date -u -d '-10 min' +%Y-%m-%dT%H:%M:%SZ)&to=$(date -u +%Y-%m-%dT%H:%M:%SZ)"`,
  );
  if (process.env['AGGREGATOR_ADMIN_TOKENS']) return;
  say(
    `  pipeline admin (operator) token: ${OPERATOR_TOKEN}  (also in ${rel(OPERATOR_TOKEN_FILE)}); add a derived series live:`,
  );
  print(
    `curl -sS ${cacert()}-X PUT -H "authorization: Bearer ${OPERATOR_TOKEN}" -H 'content-type: application/json' -d '{"expression": "engine_temp * 1.8 + 32"}' '${base}/v1/pipeline/derived/engine_temp_f'`,
  );
}

/** How to send one event by hand, for the ingestion gateway started with the dev credentials. */
function printDeviceExamples(): void {
  const httpPort = process.env['INGEST_HTTP_PORT'] || '8080';
  const grpcPort = process.env['INGEST_GRPC_PORT'] || '50051';
  const region = (process.env['INGEST_REGIONS'] || 'eu-west').split(',')[0]!.trim();
  const uuid = `'"$(cat /proc/sys/kernel/random/uuid)"'`;
  const now = `'"$(date -u +%Y-%m-%dT%H:%M:%SZ)"'`;
  const event = `{"event_id":"${uuid}","device_id":"${DEMO_DEVICE}","event_time":"${now}","sensor_type":"temperature","value":21.4,"unit":"C","firmware_version":"1.2.3","region":"${region}"}`;
  say(`  device token for ${DEMO_DEVICE}: ${DEVICE_TOKEN}  (also in ${rel(DEVICE_TOKEN_FILE)})`);
  say('  try it (HTTP):');
  print(
    `curl -sS ${cacert()}-X POST ${scheme()}://127.0.0.1:${httpPort}/v1/events -H "authorization: Bearer ${DEVICE_TOKEN}" -H 'content-type: application/json' -d '${event}'`,
  );
  say('  try it (gRPC, reflection is on):');
  const grpcTls = devTls ? `-cacert ${rel(devTls.caFile)}` : '-plaintext';
  print(
    `grpcurl ${grpcTls} -H "authorization: Bearer ${DEVICE_TOKEN}" -d '{"batch":{"batch_id":"${uuid}","events":[{"telemetry":${event}}]}}' 127.0.0.1:${grpcPort} sluice.gateway.v1.IngestService/IngestBatch`,
  );
}

/** The exporter's destinations file when EXPORTER_CONFIG is not set: files, plus MQTT/RabbitMQ if up. */
const EXPORTER_DEV_CONFIG = join('examples', 'exporter', 'dev.yaml');
const EXPORT_DIR = join(ROOT, 'tmp', 'export');

/** Whether something accepts TCP connections at the host and port of `url` (bounded: 500 ms). */
function portAnswers(url: string, fallbackPort: number): Promise<boolean> {
  let host = '127.0.0.1';
  let port = fallbackPort;
  try {
    const u = new URL(url);
    host = u.hostname || host;
    port = Number(u.port) || fallbackPort;
  } catch {
    // the default
  }
  return tcpAnswers(host, port);
}

/**
 * The exporter's environment: the dev destinations file (unless EXPORTER_CONFIG is set), its output
 * folder, and whether the local MQTT broker and RabbitMQ answer (the file enables those destinations
 * through `${EXPORT_DEV_MQTT}` / `${EXPORT_DEV_AMQP}`). Prints where to look.
 */
async function exporterEnv(): Promise<Record<string, string>> {
  const own = process.env['EXPORTER_CONFIG'];
  if (own) {
    say(`  exporter   destinations in ${own} (edit it: the exporter reloads it)`);
    return {};
  }
  const mqttUrl = process.env['MQTT_URL'] || LOCAL_DEFAULTS['MQTT_URL']!;
  const amqpUrl = process.env['AMQP_URL'] || LOCAL_DEFAULTS['AMQP_URL']!;
  const [mqtt, amqp] = await Promise.all([portAnswers(mqttUrl, 1883), portAnswers(amqpUrl, 5672)]);
  const dir = relative(process.cwd(), EXPORT_DIR) || EXPORT_DIR;
  say(`  exporter   destinations in ${EXPORTER_DEV_CONFIG} (edit it: the exporter reloads it)`);
  say(
    `    files    ${dir}/jsonl and ${dir}/csv: the open file is *.tmp (whole lines), renamed each minute; try: tail -qn 3 ${dir}/jsonl/*.tmp`,
  );
  if (mqtt) say("    mqtt     try: mosquitto_sub -h 127.0.0.1 -t 'sluice/detections/#' -v");
  if (amqp)
    say(
      '    amqp     exchange sluice.export; try: bash scripts/run.sh tsx examples/detection-export/amqp-tail.ts sluice.export',
    );
  return {
    EXPORTER_CONFIG: join(ROOT, EXPORTER_DEV_CONFIG),
    EXPORT_DIR,
    EXPORT_DEV_MQTT: String(mqtt),
    EXPORT_DEV_AMQP: String(amqp),
  };
}

interface Options {
  sim: boolean;
  tls: boolean;
  logs: boolean;
  opsPortBase: number;
  logDir: string;
  only: string[] | undefined;
  graceMs: number;
  readyTimeoutMs: number;
}

interface Child {
  name: string;
  proc: ChildProcess;
  opsPort: number | undefined;
  exited: Promise<void>;
  /** Its last output line (the live view shows the simulator's). */
  lastLine: string | undefined;
}

const useColor = process.stdout.isTTY && !process.env.NO_COLOR;
const COLORS = [36, 33, 35, 32, 34, 91, 96, 93, 95, 92];
/** A terminal without --logs: the live view owns the screen, the logs go to files. */
let liveMode = false;
const paint = (code: number, s: string) => (useColor && !liveMode ? `\x1b[${code}m${s}\x1b[0m` : s);
/** The live view (live mode), from the first child on until the stop. */
let view: LiveView | undefined;
/** In live mode, the supervisor's own lines go to tmp/logs/up.log (the live view owns the screen). */
let upLog: WriteStream | undefined;
/** A line as is (a command to paste): on stdout, or into up.log in live mode. */
const print = (line: string) => (upLog ?? process.stdout).write(`${line}\n`);
/** A supervisor message; in live mode also the live view's last line. */
const say = (msg: string) => {
  print(`${paint(1, 'up')} | ${msg}`);
  view?.message(msg.trim());
};

function usage(code: number): never {
  (code === 0 ? process.stdout : process.stderr).write(
    [
      'usage: npm start -- [--tls] [--logs] [--no-sim] [--only a,b] [--grace 10s] [--ready-timeout 60s]',
      '  --tls              TLS on the gateway, query API and webhook admin API with a development CA',
      '                     (tmp/dev-tls/ca.crt, made once and reused); the simulator trusts it',
      '  --logs             print every service log line (default on a terminal: a live view, with the',
      '                     logs in tmp/logs/<service>.log)',
      '  --no-sim           do not start the fleet simulator',
      '  --only a,b         start only these apps (names under apps/)',
      '  --grace D          how long children get after SIGTERM before SIGKILL (default 10s)',
      '  --ready-timeout D  how long to wait for /healthz before starting the simulator (default 60s)',
      '  --ops-port-base N  first ops port (default 9401: ingestion 9401, dedupe 9402, ...)',
      '  --log-dir DIR      where the live view writes <service>.log (default tmp/logs)',
      '',
    ].join('\n'),
  );
  process.exit(code);
}

function parseDuration(raw: string | undefined, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(raw ?? '');
  if (!m) {
    process.stderr.write(`${flag} needs a duration like 500ms, 10s or 1m, got "${raw ?? ''}"\n`);
    usage(2);
  }
  const unit = m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000;
  return Math.round(Number(m[1]) * unit);
}

function parseArgs(argv: string[]): Options {
  const parse = () =>
    parseCli({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        'no-sim': { type: 'boolean' },
        tls: { type: 'boolean' },
        logs: { type: 'boolean' },
        'ops-port-base': { type: 'string' },
        'log-dir': { type: 'string' },
        only: { type: 'string' },
        grace: { type: 'string' },
        'ready-timeout': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  let values: ReturnType<typeof parse>['values'];
  try {
    ({ values } = parse());
  } catch (err) {
    // Unknown flag, missing value or stray argument: util.parseArgs names it.
    process.stderr.write(`${(err as Error).message}\n`);
    usage(2);
  }
  if (values.help) usage(0);
  const base = values['ops-port-base'] ?? '9401';
  const opsPortBase = /^\d+$/.test(base) ? Number(base) : Number.NaN;
  if (!(opsPortBase >= 1024 && opsPortBase <= 65_000)) {
    process.stderr.write(`--ops-port-base needs a port in [1024, 65000], got "${base}"\n`);
    usage(2);
  }
  return {
    sim: !values['no-sim'],
    tls: values.tls === true,
    logs: values.logs === true,
    opsPortBase,
    logDir: resolve(values['log-dir'] || DEFAULT_LOG_DIR),
    only: values.only
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    graceMs: values.grace === undefined ? 10_000 : parseDuration(values.grace, '--grace'),
    readyTimeoutMs:
      values['ready-timeout'] === undefined
        ? 60_000
        : parseDuration(values['ready-timeout'], '--ready-timeout'),
  };
}

/** Apps that are commands, not services: not started (the operator CLI runs and exits). */
const COMMANDS = new Set(['cli']);

function discoverApps(): string[] {
  const dir = join(ROOT, 'apps');
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter(
      (d) =>
        d.isDirectory() && !COMMANDS.has(d.name) && existsSync(join(dir, d.name, 'src', 'main.ts')),
    )
    .map((d) => d.name)
    .sort();
}

function assignOpsPorts(apps: string[], base: number): Map<string, number> {
  const shift = base - KNOWN_OPS_PORTS['ingestion']!;
  const ports = new Map<string, number>();
  let next = FIRST_OTHER_OPS_PORT + shift;
  for (const app of apps) {
    const known = KNOWN_OPS_PORTS[app];
    ports.set(app, known === undefined ? next++ : known + shift);
  }
  return ports;
}

/**
 * The web console's environment (the caller's own settings win): the query and admin APIs where this
 * run serves them (https with --tls, its CA trusted through NODE_EXTRA_CA_CERTS) and the ops ports
 * this run assigned.
 */
function consoleEnv(ports: Map<string, number>): Record<string, string> {
  const env: Record<string, string> = {
    CONSOLE_QUERY_URL: queryApiUrl(),
    CONSOLE_ADMIN_URL: webhookAdminUrl(),
    CONSOLE_TARGETS: [...ports]
      .filter(([app]) => app !== 'console')
      .map(([app, port]) => `${app}=http://127.0.0.1:${port}`)
      .join(','),
  };
  for (const k of Object.keys(env)) if (process.env[k]) delete env[k];
  if (devTls) env['NODE_EXTRA_CA_CERTS'] = extraCaBundle(devTls);
  return env;
}

/**
 * NODE_EXTRA_CA_CERTS for a child that must trust the dev CA: the CA file, or (when the caller already
 * sets NODE_EXTRA_CA_CERTS) both in one bundle beside it, since Node reads only one file.
 */
function extraCaBundle(t: DevTls): string {
  const own = process.env['NODE_EXTRA_CA_CERTS'];
  if (!own) return t.caFile;
  let theirs = '';
  try {
    theirs = readFileSync(own, 'utf8');
  } catch {
    return t.caFile; // unreadable: Node would only warn about it
  }
  const bundle = join(t.dir, 'extra-ca-bundle.pem');
  writeFileSync(bundle, `${theirs.trimEnd()}\n${readFileSync(t.caFile, 'utf8')}`);
  return bundle;
}
/** The console's address (its CONSOLE_PORT / CONSOLE_HOST, as it reads them from this env). */
const consoleUrl = () => consoleUrlOf(process.env);
/** How to sign in to the console: this run's query token, or the caller's own AGGREGATOR_API_TOKENS. */
const consoleSignIn = () =>
  process.env['AGGREGATOR_API_TOKENS'] || process.env['AGGREGATOR_API_TOKENS_FILE']
    ? 'sign in with a token of your AGGREGATOR_API_TOKENS'
    : `sign in with the query token ${QUERY_TOKEN}`;

/** With --tls: the services' server certificate (the caller's own settings win). */
function tlsEnv(t: DevTls | undefined): Record<string, string> {
  if (!t) return {};
  const env: Record<string, string> = {};
  for (const prefix of ['INGEST_TLS', 'AGGREGATOR_API_TLS', 'WEBHOOK_ADMIN_TLS']) {
    env[`${prefix}_CERT`] = t.certFile;
    env[`${prefix}_KEY`] = t.keyFile;
  }
  return env;
}

let stopping = false;
const children: Child[] = [];
/** OTEL_EXPORTER_OTLP_ENDPOINT of the Jaeger this run uses, if any (the caller's own setting wins). */
let tracingEnv: Record<string, string> = {};

function startChild(
  name: string,
  entry: string,
  color: number,
  width: number,
  extraEnv: Record<string, string>,
  opsPort?: number,
  args: readonly string[] = [],
): Child {
  const env: NodeJS.ProcessEnv = { ...process.env };
  const defaults = { ...LOCAL_DEFAULTS, ...DEV_AUTH, ...tlsEnv(devTls), ...tracingEnv };
  for (const [k, v] of Object.entries(defaults)) if (!env[k]) env[k] = v;
  Object.assign(env, extraEnv);
  if (opsPort !== undefined) env.OPS_PORT = String(opsPort);
  env.OTEL_SERVICE_NAME ??= name;
  env.TSX_TSCONFIG_PATH ??= join(ROOT, 'tsconfig.base.json');
  if (useColor && !liveMode) env.FORCE_COLOR ??= '1';

  // `node --import tsx <entry>` is `tsx <entry>` without tsx's wrapper process, so signals reach the
  // service itself. detached: a terminal Ctrl-C reaches only this supervisor, which then stops the
  // children in order instead of them all racing. The OpenTelemetry instrumentation preload runs
  // before the entry (docs/OPERATIONS.md, Tracing).
  const preload = './libs/observability/src/preload.ts';
  const proc = spawn(
    process.execPath,
    ['--enable-source-maps', '--import', 'tsx', '--import', preload, entry, ...args],
    {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    },
  );
  return supervise(name, proc, color, width, opsPort);
}

/**
 * Routes a spawned child's output and stops everything when it exits unexpectedly, unless it is not
 * `essential` (then only says so).
 */
function supervise(
  name: string,
  proc: ChildProcess,
  color: number,
  width: number,
  opsPort: number | undefined,
  essential = true,
): Child {
  // Live view: the child's lines go to its own log file, unprefixed; else to ours, prefixed.
  const file = liveMode ? createWriteStream(join(opts.logDir, `${name}.log`)) : undefined;
  const prefix = file ? '' : paint(color, name.padEnd(width)) + ' | ';
  const pipes = [
    [proc.stdout, file ?? process.stdout],
    [proc.stderr, file ?? process.stderr],
  ] as const;
  for (const [input, out] of pipes) {
    if (input)
      createInterface({ input, crlfDelay: Infinity }).on('line', (line) => {
        child.lastLine = line;
        out.write(prefix + line + '\n');
      });
  }
  const exited = new Promise<void>((done) => {
    proc.on('error', (err) => {
      say(paint(91, `✖ ${name} could not be started: ${err.message}`));
      done();
      if (!stopping && essential) void shutdown(1, `${name} could not be started`);
    });
    proc.on('exit', (code, signal) => {
      done();
      if (stopping) return;
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      if (!essential) {
        say(paint(93, `${name} ${how}; the others go on without it`));
        return;
      }
      say(paint(91, `✖ ${name} ${how} unexpectedly; stopping everything`));
      void shutdown(1, `${name} ${how}`);
    });
  });
  const child: Child = { name, proc, opsPort, exited, lastLine: undefined };
  children.push(child);
  return child;
}

const alive = (c: Child) =>
  c.proc.exitCode === null && c.proc.signalCode === null && c.proc.pid !== undefined;

async function shutdown(code: number, reason: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  // Give the terminal back first: the stop is reported on the main screen, as without the view.
  view?.stop();
  view = undefined;
  upLog = undefined;
  const running = children.filter(alive);
  say(`stopping ${running.length} process(es) (${reason}); SIGKILL after ${opts.graceMs} ms`);
  // The simulator first, while the gateway still acks what it has in flight (its drain is then
  // quick), then the services.
  const sim = running.find((c) => c.name === SIM_NAME);
  if (sim) {
    sim.proc.kill('SIGTERM');
    let simTimer: NodeJS.Timeout | undefined;
    await Promise.race([sim.exited, new Promise((r) => (simTimer = setTimeout(r, opts.graceMs)))]);
    clearTimeout(simTimer);
  }
  for (const c of running) if (c !== sim) c.proc.kill('SIGTERM');
  const all = Promise.all(running.map((c) => c.exited));
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    all.then(() => false),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(true), opts.graceMs))),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    for (const c of children.filter(alive)) {
      say(paint(91, `${c.name} did not stop within ${opts.graceMs} ms: SIGKILL`));
      c.proc.kill('SIGKILL');
    }
    await Promise.race([all, new Promise((r) => setTimeout(r, 2000))]);
  }
  say(code === 0 ? 'all stopped' : `all stopped; exit ${code}`);
  process.exit(code);
}

/**
 * Starts Jaeger (not essential: if it exits, the run goes on without tracing) and waits up to 30 s
 * for its health check, so the services' first spans find it; its JAEGER_* variables win.
 */
async function startJaeger(plan: Extract<JaegerPlan, { kind: 'start' }>, width: number) {
  const child = supervise(JAEGER_NAME, spawnJaeger(plan, process.env), 94, width, undefined, false);
  if (
    !(await waitJaegerHealthy(plan, child.proc, Date.now() + 30_000)) &&
    !stopping &&
    alive(child)
  )
    say(paint(93, `no answer from Jaeger's ${plan.healthUrl} within 30 s; going on`));
}

async function waitHealthy(child: Child, deadline: number): Promise<boolean> {
  if (child.opsPort === undefined) return true;
  const url = `http://127.0.0.1:${child.opsPort}/healthz`;
  while (Date.now() < deadline && !stopping && alive(child)) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return true;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  return false;
}

const opts = parseArgs(process.argv.slice(2));

/** The dev pipeline's own database on the PostgreSQL server of `PG_URL` (tests make their own there). */
const DEV_DATABASE = 'sluice';

/** Creates {@link DEV_DATABASE} if it is missing and returns `PG_URL` pointing at it. */
async function ensureDevDatabase(pgUrl: string): Promise<string> {
  const url = new URL(pgUrl);
  const admin = new Client({ connectionString: pgUrl, connectionTimeoutMillis: 5_000 });
  await admin.connect();
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [
      DEV_DATABASE,
    ]);
    if (rowCount === 0)
      await admin.query(`CREATE DATABASE "${DEV_DATABASE}"`).catch((err: { code?: string }) => {
        if (err.code !== '42P04') throw err; // created meanwhile
      });
  } finally {
    await admin.end();
  }
  url.pathname = `/${DEV_DATABASE}`;
  return url.toString();
}

async function main(): Promise<void> {
  const available = discoverApps();
  const unknown = (opts.only ?? []).filter((n) => !available.includes(n));
  if (unknown.length > 0) {
    process.stderr.write(
      `--only: no apps/<name>/src/main.ts for ${unknown.join(', ')} (have: ${available.join(', ') || 'none'})\n`,
    );
    process.exit(2);
  }
  const only = opts.only;
  const apps = only ? available.filter((n) => only.includes(n)) : available;
  const simEntry = join('tools', SIM_NAME, 'src', 'main.ts');
  const withSim = opts.sim && existsSync(join(ROOT, simEntry));
  if (apps.length === 0 && !withSim) {
    process.stderr.write(
      'nothing to start: no apps/<name>/src/main.ts yet (and no fleet simulator)\n',
    );
    process.exit(1);
  }

  if (apps.includes('aggregator') || apps.includes('webhook-dispatcher')) {
    process.env['PG_URL'] = await ensureDevDatabase(
      process.env['PG_URL'] || LOCAL_DEFAULTS['PG_URL']!,
    );
  }

  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      // A repeat while stopping is normal (the terminal and the tsx wrapper both deliver Ctrl-C);
      // the grace period bounds the stop either way.
      if (!stopping) void shutdown(0, sig);
    });
  }
  // Last resort if this process dies without the orderly path: children are in their own groups.
  process.on('exit', () => {
    view?.stop(); // the terminal gets its cursor and main screen back on every way out
    for (const c of children.filter(alive)) c.proc.kill('SIGKILL');
  });

  if (opts.tls) devTls = await ensureDevTls(DEV_TLS_DIR);
  liveMode = process.stdout.isTTY === true && !opts.logs;
  if (liveMode) {
    mkdirSync(opts.logDir, { recursive: true });
    upLog = createWriteStream(join(opts.logDir, 'up.log'));
  }

  const ports = assignOpsPorts(apps, opts.opsPortBase);
  const width = Math.max(SIM_NAME.length, JAEGER_NAME.length, ...apps.map((a) => a.length));
  const jaeger = await planJaeger({ root: ROOT, env: process.env });
  const jaegerUi = jaeger.kind === 'skip' ? undefined : jaeger.uiUrl;
  if (jaeger.kind !== 'skip' && jaeger.otlpEndpoint)
    tracingEnv = { OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpEndpoint };
  say(`starting ${apps.length} app(s)${withSim ? ' and the fleet simulator' : ''}`);
  if (devTls)
    say(
      `  TLS        development CA ${rel(devTls.caFile)} (${devTls.created ? 'made now' : 'reused'}); trust it: curl --cacert, fleet-sim --ca`,
    );
  for (const [app, port] of ports)
    say(`  ${app.padEnd(width)}  ops http://127.0.0.1:${port}/healthz  /readyz  /metrics`);
  if (apps.includes('aggregator')) say(`  query API  ${queryApiUrl()}/openapi.json`);
  if (apps.includes('console')) say(`  console    ${consoleUrl()}  (${consoleSignIn()})`);
  if (jaeger.kind !== 'start') say(`  ${jaeger.note}`);
  if (jaegerUi) say(`  Jaeger UI: ${jaegerUi}  (traces of every service)`);
  if (apps.includes('archiver') && (process.env['ARCHIVER_STORE'] ?? 'fs') === 'fs') {
    const dir = resolve(ROOT, process.env['ARCHIVER_DIR'] || join('tmp', 'archive'));
    say(
      `  archive    ${dir}  (Parquet, region=<r>/event_date=<day>/; try: duckdb -c "SELECT count(*) FROM '${dir}/telemetry/**/*.parquet'")`,
    );
    say(
      `  replay     npm run sluice -- replay --target mongo-capture --from 1h --to now --archive ${dir} --dry-run   (docs/services/cli.md)`,
    );
  }
  say('  dead letters  npm run sluice -- dlq ls');
  const exporterExtra = apps.includes('exporter') ? await exporterEnv() : {};
  if (apps.includes('aggregator') && !process.env['AGGREGATOR_API_TOKENS']) printQueryExamples();
  if (apps.includes('ingestion') && !process.env['INGEST_AUTH_TOKENS']) printDeviceExamples();
  if (apps.includes('webhook-dispatcher') && !process.env['WEBHOOK_ADMIN_TOKEN'])
    say(
      `  webhook admin API  ${webhookAdminUrl()}/openapi.json  (Authorization: Bearer ${DEV_ADMIN_TOKEN})`,
    );
  const grpcTarget = `127.0.0.1:${process.env['INGEST_GRPC_PORT'] || '50051'}`;
  const simArgs = [
    ...['--target', grpcTarget, '--regions', DEV_REGIONS.join(',')],
    ...(devTls ? ['--ca', devTls.caFile] : []),
  ];

  if (liveMode) {
    const info: Array<[string, string]> = [];
    if (apps.includes('console')) info.push(['console', `${consoleUrl()}  (${consoleSignIn()})`]);
    if (apps.includes('aggregator')) {
      info.push(['query API', `${queryApiUrl()}/openapi.json`]);
      if (!process.env['AGGREGATOR_API_TOKENS'])
        info.push([
          'query token',
          `${QUERY_TOKEN}  (Authorization: Bearer …; regions ${DEV_REGIONS.join(', ')}; in ${rel(QUERY_TOKEN_FILE)})`,
        ]);
    }
    if (apps.includes('ingestion'))
      info.push([
        'gateway',
        `gRPC ${grpcTarget} · ${scheme()}://127.0.0.1:${process.env['INGEST_HTTP_PORT'] || '8080'}/v1/events · device token in ${rel(DEVICE_TOKEN_FILE)}`,
      ]);
    if (apps.includes('webhook-dispatcher') && !process.env['WEBHOOK_ADMIN_TOKEN'])
      info.push(['webhook admin', `${webhookAdminUrl()}  (Bearer ${DEV_ADMIN_TOKEN})`]);
    if (devTls) info.push(['CA', `${rel(devTls.caFile)}  (curl --cacert, fleet-sim --ca)`]);
    if (apps.includes('archiver') && (process.env['ARCHIVER_STORE'] ?? 'fs') === 'fs')
      info.push([
        'archive',
        rel(resolve(ROOT, process.env['ARCHIVER_DIR'] || join('tmp', 'archive'))),
      ]);
    info.push([
      'logs',
      `${rel(opts.logDir)}/<service>.log · commands to paste: ${rel(join(opts.logDir, 'up.log'))} · --logs streams them`,
    ]);
    const liveChild = (c: Child) => ({
      name: c.name,
      pid: c.proc.pid,
      alive: () => alive(c),
      opsPort: c.opsPort,
      lastLine: () => c.lastLine,
    });
    view = new LiveView({
      out: process.stdout,
      tls: devTls !== undefined,
      info,
      // Jaeger is its info line (answers or not), not a row of the pipeline.
      services: () =>
        children.filter((c) => c.name !== SIM_NAME && c.name !== JAEGER_NAME).map(liveChild),
      ...(jaegerUi && { jaegerUrl: jaegerUi }),
      sim: () => {
        const sim = children.find((c) => c.name === SIM_NAME);
        return sim ? liveChild(sim) : undefined;
      },
    });
    view.start();
  }

  if (apps.includes('console')) {
    // The console serves its pages from dist/apps/console/public: build them (Vite) when missing or
    // older than apps/console/web.
    await ensureConsolePages(ROOT);
    if (stopping) return;
  }
  if (jaeger.kind === 'start') await startJaeger(jaeger, width);
  if (stopping) return;
  const started = apps.map((app, i) =>
    startChild(
      app,
      join('apps', app, 'src', 'main.ts'),
      COLORS[i % COLORS.length] ?? 0,
      width,
      app === 'exporter' ? exporterExtra : app === 'console' ? consoleEnv(ports) : {},
      ports.get(app),
    ),
  );
  if (!withSim) return;

  const deadline = Date.now() + opts.readyTimeoutMs;
  const health = await Promise.all(started.map((c) => waitHealthy(c, deadline)));
  if (stopping) return;
  const slow = started.filter((_, i) => !health[i]).map((c) => c.name);
  if (slow.length > 0)
    say(
      paint(
        93,
        `no /healthz answer within ${opts.readyTimeoutMs} ms from ${slow.join(', ')}; starting the simulator anyway`,
      ),
    );
  startChild(SIM_NAME, simEntry, 90, width, {}, undefined, simArgs);
}

main().catch((err: unknown) => {
  say(paint(91, `✖ supervisor failed: ${err instanceof Error ? err.stack : String(err)}`));
  void shutdown(1, 'supervisor error');
});
