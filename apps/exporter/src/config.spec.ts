import { ConfigError } from '@sluice/config';
import { parseDestinations } from './config';
import { DestinationsConfigError } from './errors';
import { interpolateString } from './interpolate';

const FILE = 'config/exporter.yaml';

function issuesOf(text: string, env: Record<string, string> = {}, file = FILE) {
  try {
    parseDestinations(text, file, env);
  } catch (err) {
    expect(err).toBeInstanceOf(DestinationsConfigError);
    expect(err).toBeInstanceOf(ConfigError);
    const e = err as DestinationsConfigError;
    expect(e.file).toBe(file);
    return e;
  }
  throw new Error('parsed without an error');
}

describe('interpolation', () => {
  const env = { HOST: 'broker.local', EMPTY: '', PASS: 'p$ss}' };

  it('replaces ${VAR}, takes the default of ${VAR:-default} when unset or empty, keeps $$ and lone $', () => {
    expect(interpolateString('mqtt://${HOST}:1883', env)).toBe('mqtt://broker.local:1883');
    expect(interpolateString('${MISSING:-127.0.0.1}', env)).toBe('127.0.0.1');
    expect(interpolateString('${EMPTY:-fallback}', env)).toBe('fallback');
    expect(interpolateString('${HOST:-unused}', env)).toBe('broker.local');
    expect(interpolateString('${MISSING:-}', env)).toBe('');
    expect(interpolateString('cost $$5 and $ alone', env)).toBe('cost $5 and $ alone');
    // A value is inserted as it is: its own $ and } are not read again.
    expect(interpolateString('u:${PASS}@h', env)).toBe('u:p$ss}@h');
  });

  it('refuses an unset variable without default, a bad name and an unclosed reference', () => {
    expect(() => interpolateString('${NOPE}', env)).toThrow(
      'environment variable NOPE is not set (write ${NOPE:-default} to give a default)',
    );
    expect(() => interpolateString('${EMPTY}', env)).toThrow('EMPTY is not set');
    expect(() => interpolateString('${1X}', env)).toThrow('"1X" is not an environment variable');
    expect(() => interpolateString('a ${HOST', env)).toThrow('is not closed');
  });
});

describe('destinations file', () => {
  it('reads YAML: defaults merged, env interpolated, format mapped onto the sink option, name set', () => {
    const text = `
defaults:
  batch: { linger: 5ms }
  retry: { budget: 1s }
destinations:
  - name: audit
    type: file
    format: csv
    filters:
      kinds: [detection]
      labels: [person, car, person]
      min_confidence: "0.5"
      regions: [eu-west]
    batch: { max_messages: 8 }
    options:
      dir: \${EXPORT_DIR:-tmp/export}
      prefix: audit-{kind}
  - name: warehouse
    type: postgres
    enabled: \${PG_ENABLED:-true}
    replay: false
    options:
      url: postgres://app:\${PG_PASSWORD}@db:5432/owner
      schema: exports
  - name: docs
    type: mongodb
    enabled: false
    options: { url: "mongodb://127.0.0.1:27017", writeConcernW: "1", serverSelectionTimeoutMs: 2s }
`;
    const f = parseDestinations(text, FILE, { PG_PASSWORD: 's3cret', PG_ENABLED: 'no' });
    expect(f.file).toBe(FILE);
    expect(f.hash).toMatch(/^[0-9a-f]{64}$/);
    const [audit, warehouse, docs] = f.destinations;
    expect(audit).toMatchObject({
      name: 'audit',
      type: 'file',
      enabled: true,
      format: 'csv',
      filters: { kinds: ['detection'], labels: ['person', 'car'], minConfidence: 0.5 },
      batch: { maxMessages: 8, maxBytes: 4 * 1024 * 1024, lingerMs: 5 },
      bufferBytes: 8 * 1024 * 1024,
      replay: true,
      options: { dir: 'tmp/export', prefix: 'audit-{kind}', format: 'csv', name: 'audit' },
    });
    expect(audit!.filters.regions).toEqual(['eu-west']);
    expect(audit!.retry).toMatchObject({ budgetMs: 1000, maxDeliver: 50, ackWaitMs: 30_000 });
    expect(warehouse).toMatchObject({
      enabled: false,
      replay: false,
      format: undefined,
      options: { url: 'postgres://app:s3cret@db:5432/owner', schema: 'exports', name: 'warehouse' },
    });
    expect(docs!.enabled).toBe(false);
    // Same content, same fingerprints; one changed setting changes one fingerprint.
    const again = parseDestinations(text, FILE, { PG_PASSWORD: 's3cret', PG_ENABLED: 'no' });
    expect(again.destinations.map((d) => d.fingerprint)).toEqual(
      f.destinations.map((d) => d.fingerprint),
    );
    const other = parseDestinations(text, FILE, { PG_PASSWORD: 'rotated', PG_ENABLED: 'no' });
    expect(
      other.destinations.map((d, i) => d.fingerprint === f.destinations[i]!.fingerprint),
    ).toEqual([true, false, true]);
  });

  it('reads JSON when the file ends in .json', () => {
    const f = parseDestinations(
      JSON.stringify({ destinations: [{ name: 'j', type: 'file', options: { dir: '/tmp/x' } }] }),
      'exporter.json',
      {},
    );
    expect(f.destinations[0]).toMatchObject({ name: 'j', options: { dir: '/tmp/x', name: 'j' } });
    const e = issuesOf('{"destinations": [', {}, 'exporter.json');
    expect(e.fileIssues[0]!.path).toBe('(JSON)');
    expect(e.message).toContain('exporter.json: (JSON): ');
  });

  it('names the file, the path inside it and the reason for each problem', () => {
    const e = issuesOf(`
destinations:
  - name: a
    type: file
    options: { dir: /tmp/a }
  - name: b
    type: postgres
    options: { url: "postgres://h/db", poolSize: 0 }
  - name: c
    type: file
    options: { dir: /tmp/c, topic: "x/{label}" }
  - name: a
    type: kafka
  - name: Bad.Name
    type: file
    filters: { min_confidence: 2, regions: ["eu.west"], kinds: [] }
    options: { dir: /tmp/e, name: e }
`);
    const byPath = Object.fromEntries(e.fileIssues.map((i) => [i.path, i.reason]));
    expect(byPath).toMatchObject({
      'destinations[1].options.poolSize': 'must be greater than 0',
      'destinations[2].options.topic': 'is not an option of a file destination',
      'destinations[3].type':
        '"kafka" is not a destination type; one of mqtt, amqp, postgres, mongodb, file',
      'destinations[4].name': expect.stringContaining('lowercase letters'),
      'destinations[4].filters.min_confidence': expect.stringContaining('<=1'),
      'destinations[4].filters.regions[0]': expect.stringContaining('"."'),
      'destinations[4].filters.kinds': expect.stringContaining('at least one'),
    });
    expect(e.message).toContain(
      `invalid configuration: ${FILE}: destinations[1].options.poolSize: must be greater than 0`,
    );
    expect(e.message).toContain(
      `${FILE}: destinations[2].options.topic: is not an option of a file destination`,
    );
    expect(e.variable).toBe(`${FILE}: destinations[1].options.poolSize`);
  });

  it('checks what only the sink knows (templates) and the exporter rules (name, format, unique names)', () => {
    const e = issuesOf(`
destinations:
  - name: a
    type: file
    format: csv
    options: { dir: /tmp/a, prefix: "plain" }
  - name: b
    type: postgres
    format: json
    options: { url: "postgres://h/db" }
  - name: c
    type: file
    format: xml
    options: { dir: /tmp/c, name: c }
  - name: d
    type: file
    format: json
    options: { dir: /tmp/d, format: csv }
  - name: d
    type: file
    options: { dir: /tmp/d2 }
  - name: m
    type: mongodb
    options: { url: "http://nope", writeConcernW: "many", database: "a b" }
  - name: t
    type: file
    filters: { kinds: [telemetry], labels: [person] }
    options: { dir: /tmp/t }
  - name: broker
    type: mqtt
    format: protobuf
    options: { url: "mqtt://127.0.0.1:1883", detectionTopic: "cams/{camera}/#", qos: 3 }
`);
    const byPath = Object.fromEntries(e.fileIssues.map((i) => [i.path, i.reason]));
    expect(byPath['destinations[0].options.prefix']).toContain('needs {kind} for CSV');
    expect(byPath['destinations[1].format']).toBe(
      'a postgres destination stores typed rows or documents: it has no format',
    );
    expect(byPath['destinations[2].format']).toBe('"xml" is not a file format; one of json, csv');
    expect(byPath['destinations[3].options.format']).toContain('set the format once');
    expect(byPath['destinations[4].name']).toBe(
      '"d" is also the name of destinations[3]; names are unique',
    );
    expect(byPath['destinations[5].options.writeConcernW']).toContain('"majority"');
    expect(byPath['destinations[6].filters']).toContain('kinds keeps telemetry only');
    expect(byPath['destinations[7].options.qos']).toBe('must be 0, 1 or 2');
    const topic = issuesOf(`
destinations:
  - name: broker
    type: mqtt
    options: { url: "mqtt://127.0.0.1:1883", detectionTopic: "cams/{camera}/x" }
`);
    expect(topic.fileIssues).toEqual([
      {
        path: 'destinations[0].options.detectionTopic',
        reason: expect.stringContaining('{camera}'),
      },
    ]);
    // The mongodb resolver's own checks are named under the destination's options too.
    const m = issuesOf(`
destinations:
  - name: m
    type: mongodb
    options: { url: "http://nope" }
`);
    expect(m.fileIssues).toEqual([
      {
        path: 'destinations[0].options.url',
        reason: 'must start with mongodb:// or mongodb+srv://',
      },
    ]);
  });

  it('refuses YAML syntax errors with their line and column, duplicate keys, unknown top-level keys, an empty file', () => {
    const syntax = issuesOf('destinations:\n  - name: x\n   type: file\n');
    expect(syntax.fileIssues[0]).toEqual({
      path: 'line 3, column 1',
      reason: 'Sequence item without - indicator',
    });
    const dup = issuesOf('destinations: []\ndestinations: []\n');
    expect(dup.fileIssues[0]!.reason).toContain('Map keys must be unique');
    const top = issuesOf('destinatons: []\n');
    expect(top.fileIssues).toEqual([
      { path: 'destinations', reason: 'is required' },
      { path: 'destinatons', reason: 'is not a known setting' },
    ]);
    expect(issuesOf('# nothing\n').fileIssues).toEqual([
      { path: '(file)', reason: 'is empty; it needs a list of destinations' },
    ]);
    const env = issuesOf(
      'destinations:\n  - name: a\n    type: file\n    options: { dir: "${EXPORT_DIR}" }\n',
    );
    expect(env.fileIssues).toEqual([
      {
        path: 'destinations[0].options.dir',
        reason:
          'environment variable EXPORT_DIR is not set (write ${EXPORT_DIR:-default} to give a default)',
      },
    ]);
    const defaults = issuesOf('defaults: { batch: { lingr: 5ms } }\ndestinations: []\n');
    expect(defaults.fileIssues).toEqual([
      { path: 'defaults.batch.lingr', reason: 'is not a known setting' },
    ]);
  });

  it('takes an empty list: an exporter with no destinations runs and waits for a reload', () => {
    expect(parseDestinations('destinations: []\n', FILE, {}).destinations).toEqual([]);
  });
});
