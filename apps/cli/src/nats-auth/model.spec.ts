import { topology } from '@sluice/contracts';
import { UsageError } from '../errors';
import { buildAccessModel, inboxPrefixOf, regionalStreamName, type AccessModel } from './model';
import { parseGenerate, parseProvision } from './options';
import { renderSecrets, renderServerAuth, type KeyedUser } from './render';

/** NATS subject matching: `*` is one token, `>` one or more trailing tokens. */
function matches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}

function may(m: AccessModel, user: string, op: 'publish' | 'subscribe', subject: string): boolean {
  const u = m.users.find((x) => x.user === user)!;
  const rules = u[op];
  return (
    rules.allow.some((a) => matches(a, subject)) && !rules.deny.some((d) => matches(d, subject))
  );
}

const t = topology('acme');
const model = buildAccessModel({
  topology: t,
  ...parseProvision([
    '--regions',
    'eu=eu-west+eu-central,us-east',
    '--layout',
    'per-region',
    '--exporter',
    'files,mqtt=eu-west',
  ]),
});
const services = model.users.map((u) => u.user).filter((u) => u !== 'admin');

describe('sluice nats-auth command lines', () => {
  it('reads gateways, exporter destinations and durable names', () => {
    const f = parseGenerate([
      '--out',
      '/tmp/x',
      '--regions',
      'eu=eu-west+eu-central',
      '--regions',
      'us-east',
      '--exporter',
      'files,mqtt=eu-west',
      '--durable',
      'aggregator=agg-blue',
    ]);
    expect(f.gateways).toEqual([
      { name: 'eu', regions: ['eu-west', 'eu-central'] },
      { name: 'us-east', regions: ['us-east'] },
    ]);
    expect(f.exporters).toEqual([
      { name: 'files', regions: [] },
      { name: 'mqtt', regions: ['eu-west'] },
    ]);
    expect(f.durables).toEqual({ aggregator: 'agg-blue' });
    expect(f.layout).toBe('shared');
  });

  it.each([
    [['--out', 'x', '--layout', 'per-region'], /--layout per-region needs --regions/],
    [['--out', 'x', '--regions', 'eu='], /names no region/],
    [['--out', 'x', '--regions', 'EU=eu-west'], /not a gateway name/],
    [['--out', 'x', '--regions', 'eu=eu-west,eu=eu-central'], /named twice/],
    [['--out', 'x', '--durable', 'ingestion=x'], /service=name/],
    [['--regions', 'eu=eu-west'], /--out is required/],
  ])('refuses %j', (args, message) => {
    expect(() => parseGenerate(args)).toThrow(UsageError);
    expect(() => parseGenerate(args)).toThrow(message);
  });
});

describe('the access model', () => {
  it('lets only admin create, update or delete streams and consumers', () => {
    const streams = model.streams.map((s) => s.name);
    for (const user of services) {
      for (const s of streams) {
        for (const op of ['CREATE', 'UPDATE', 'DELETE', 'PURGE']) {
          expect([user, op, s, may(model, user, 'publish', `$JS.API.STREAM.${op}.${s}`)]).toEqual([
            user,
            op,
            s,
            false,
          ]);
        }
      }
      for (const c of model.consumers) {
        for (const subject of [
          `$JS.API.CONSUMER.CREATE.${c.stream}.${c.spec.durable}`,
          `$JS.API.CONSUMER.CREATE.${c.stream}.${c.spec.durable}.${t.filters.clean}`,
          `$JS.API.CONSUMER.DURABLE.CREATE.${c.stream}.${c.spec.durable}`,
          `$JS.API.CONSUMER.DELETE.${c.stream}.${c.spec.durable}`,
        ]) {
          expect([user, subject, may(model, user, 'publish', subject)]).toEqual([
            user,
            subject,
            false,
          ]);
        }
      }
    }
    expect(may(model, 'admin', 'publish', `$JS.API.STREAM.DELETE.${t.streams.clean.name}`)).toBe(
      true,
    );
  });

  it('lets a consumer be pulled, acked and read only by its own user', () => {
    for (const c of model.consumers) {
      for (const user of services) {
        const own = user === c.user;
        for (const subject of [
          `$JS.API.CONSUMER.MSG.NEXT.${c.stream}.${c.spec.durable}`,
          `$JS.ACK.${c.stream}.${c.spec.durable}.1.20.3.1700000000000000000.0`,
        ]) {
          expect([user, subject, may(model, user, 'publish', subject)]).toEqual([
            user,
            subject,
            own,
          ]);
        }
      }
    }
  });

  it('lets each service dead-letter under its own name only, and read only its own replies', () => {
    const names = ['dedupe', 'aggregator', 'archiver', 'mongo-capture', 'exporter'];
    for (const user of services) {
      for (const n of [...names, 'webhook-dispatcher', 'ingestion', 'cli']) {
        // The gateway and the CLI dead-letter nothing.
        expect([user, n, may(model, user, 'publish', t.dlq(n))]).toEqual([
          user,
          n,
          user === n && user !== 'cli',
        ]);
      }
      for (const other of services) {
        const reply = `${inboxPrefixOf(other, 'acme')}.abc.1`;
        expect([user, reply, may(model, user, 'subscribe', reply)]).toEqual([
          user,
          reply,
          user === other,
        ]);
      }
      expect(may(model, user, 'subscribe', '_INBOX.abc')).toBe(false);
      // The console watches clean batches pass (a plain subscription); nobody else reads core traffic.
      expect([user, may(model, user, 'subscribe', t.clean('eu-west'))]).toEqual([
        user,
        user === 'console',
      ]);
    }
  });

  it('lets the console read stream and consumer state and see traffic, and nothing else', () => {
    const c = (op: 'publish' | 'subscribe', subject: string) => may(model, 'console', op, subject);
    const u = model.users.find((x) => x.user === 'console')!;
    expect(u.inboxPrefix).toBe(inboxPrefixOf('console', 'acme'));
    expect(c('subscribe', `${inboxPrefixOf('console', 'acme')}.x.1`)).toBe(true);
    expect(c('publish', '$JS.API.INFO')).toBe(true);
    // Exactly the streams apps/console/src/pipeline.ts asks about.
    for (const s of Object.values(t.streams)) {
      expect([s.name, c('publish', `$JS.API.STREAM.INFO.${s.name}`)]).toEqual([s.name, true]);
      expect([s.name, c('publish', `$JS.API.CONSUMER.LIST.${s.name}`)]).toEqual([
        s.name,
        s !== t.streams.dlq,
      ]);
    }
    expect(c('subscribe', t.rollup('1m', 'eu-west'))).toBe(true);
    expect(c('subscribe', t.filters.rollup)).toBe(true);
    expect(c('subscribe', t.filters.clean)).toBe(true);
    // No data, no acks, no consumer of its own, no management, nothing else to read.
    for (const subject of [
      t.clean('eu-west'),
      t.raw('eu-west'),
      t.rollup('1m', 'eu-west'),
      t.dlq('console'),
      t.replay('aggregator', 'eu-west'),
      `$JS.ACK.${t.streams.clean.name}.aggregator.1.1.1.0.0`,
      `$JS.API.CONSUMER.INFO.${t.streams.clean.name}.aggregator`,
      `$JS.API.CONSUMER.CREATE.${t.streams.clean.name}.x`,
      `$JS.API.CONSUMER.MSG.NEXT.${t.streams.clean.name}.aggregator`,
      `$JS.API.STREAM.MSG.GET.${t.streams.dlq.name}`,
      `$JS.API.STREAM.INFO.${regionalStreamName(t, 'eu-west')}`,
      `$JS.API.STREAM.INFO.ACME_WEBHOOK_OPS`,
    ])
      expect([subject, c('publish', subject)]).toEqual([subject, false]);
    for (const subject of [t.raw('eu-west'), t.dlq('dedupe'), t.replayStatus('r1'), '_INBOX.x'])
      expect([subject, c('subscribe', subject)]).toEqual([subject, false]);
    expect(u.publish.deny).toEqual([]);
  });

  it('gives a regional console the streams and subjects of every deployment', () => {
    const m = buildAccessModel({
      ...parseProvision([
        '--regions',
        'eu-west,us-east',
        '--layout',
        'per-region',
        '--deployments',
        'eu-west,us-east',
      ]),
      topology: t,
    });
    for (const r of ['eu-west', 'us-east']) {
      const rt = topology('acme', { region: r });
      for (const s of [rt.streams.clean, rt.streams.rollups, rt.streams.replay])
        expect([s.name, may(m, 'console', 'publish', `$JS.API.CONSUMER.LIST.${s.name}`)]).toEqual([
          s.name,
          true,
        ]);
      expect(may(m, 'console', 'subscribe', rt.filters.rollup)).toBe(true);
      expect(may(m, 'console', 'subscribe', t.clean(r))).toBe(true);
    }
    expect(may(m, 'console', 'subscribe', t.clean('ap-south'))).toBe(false);
    expect(may(m, 'console', 'publish', `$JS.API.STREAM.INFO.${t.streams.clean.name}`)).toBe(false);
  });

  it('keeps gateway users to their regions and streams', () => {
    expect(may(model, 'ingestion-eu', 'publish', t.raw('eu-west'))).toBe(true);
    expect(may(model, 'ingestion-eu', 'publish', t.raw('eu-central'))).toBe(true);
    expect(may(model, 'ingestion-eu', 'publish', t.raw('us-east'))).toBe(false);
    expect(may(model, 'ingestion-us-east', 'publish', t.raw('eu-west'))).toBe(false);
    const usStream = regionalStreamName(t, 'us-east');
    expect(may(model, 'ingestion-us-east', 'publish', `$JS.API.STREAM.MSG.GET.${usStream}`)).toBe(
      true,
    );
    expect(may(model, 'ingestion-eu', 'publish', `$JS.API.STREAM.MSG.GET.${usStream}`)).toBe(false);
    for (const user of services.filter((u) => u !== 'cli' && !u.startsWith('ingestion')))
      expect([user, may(model, user, 'publish', t.raw('eu-west'))]).toEqual([user, false]);
    expect(model.warnings).toEqual([]);
  });

  it('names each regional deployment’s clean and roll-up streams, placed by its tags', () => {
    const f = parseProvision([
      '--regions',
      'eu-west,us-east',
      '--layout',
      'per-region',
      '--deployments',
      'eu-west,us-east=region:us|zone:b',
      '--exporter',
      'files,mqtt=eu-west',
    ]);
    expect(f.deployments).toEqual([
      { region: 'eu-west', placementTags: ['region:eu-west'] },
      { region: 'us-east', placementTags: ['region:us', 'zone:b'] },
    ]);
    const m = buildAccessModel({ ...f, topology: t });
    const stream = (name: string) => m.streams.find((s) => s.name === name);
    for (const [r, tags] of [
      ['eu-west', ['region:eu-west']],
      ['us-east', ['region:us', 'zone:b']],
    ] as const) {
      const rt = topology('acme', { region: r, placementTags: tags });
      expect(stream(rt.streams.clean.name)).toMatchObject({
        subjects: [t.clean(r)],
        placementTags: tags,
        duplicateWindowMs: 600_000,
      });
      expect(stream(rt.streams.rollups.name)).toMatchObject({
        subjects: [rt.filters.rollup],
        placementTags: tags,
      });
      expect(stream(rt.streams.replay.name)).toMatchObject({
        subjects: [`acme.replay.*.${r}`],
        placementTags: tags,
      });
      const replayOf = (durable: string) =>
        m.consumers.find((x) => x.spec.durable === durable && x.stream === rt.streams.replay.name)
          ?.spec.filterSubjects;
      expect(replayOf('aggregator-replay')).toEqual([`acme.replay.aggregator.${r}`]);
      expect(replayOf('mongo-capture-replay')).toEqual([`acme.replay.mongo-capture.${r}`]);
      expect(may(m, 'cli', 'publish', t.replay('aggregator', r))).toBe(true);
      expect(stream(regionalStreamName(t, r))).toMatchObject({
        subjects: [t.raw(r)],
        placementTags: tags,
      });
      for (const user of ['aggregator', 'archiver', 'mongo-capture', 'webhook-dispatcher']) {
        const c = m.consumers.find((x) => x.user === user && x.stream === rt.streams.clean.name);
        expect([user, c?.spec.filterSubjects]).toEqual([user, [t.clean(r)]]);
      }
      expect(may(m, 'dedupe', 'publish', t.clean(r))).toBe(true);
      expect(may(m, 'aggregator', 'publish', t.rollup('1m', r))).toBe(true);
      // Each deployment's archivers hold their own lease.
      const lease = `acme_archiver-lease_archiver_${r}`;
      expect(stream(`KV_${lease}`)).toMatchObject({ kv: { bucket: lease } });
      expect(may(m, 'archiver', 'publish', `$KV.${lease}.leader`)).toBe(true);
    }
    expect(stream('KV_acme_archiver-lease_archiver')).toBeUndefined();
    // No shared clean, roll-up or replay stream; the DLQ stays one.
    expect(stream(t.streams.clean.name)).toBeUndefined();
    expect(stream(t.streams.rollups.name)).toBeUndefined();
    expect(stream(t.streams.replay.name)).toBeUndefined();
    expect(stream(t.streams.dlq.name)).toBeDefined();
    expect(may(m, 'dedupe', 'publish', t.clean('ap-south'))).toBe(false);
    // The destination filtering eu-west binds in the eu-west deployment only.
    const mqtt = m.consumers.filter((c) => c.spec.durable === 'exporter-mqtt');
    expect(mqtt.map((c) => c.stream)).toEqual(['ACME_TELEMETRY_EU_WEST']);
    expect(
      m.consumers.filter((c) => c.spec.durable === 'exporter-mqtt-replay').map((c) => c.stream),
    ).toEqual(['ACME_REPLAY_EU_WEST']);
    expect(m.consumers.filter((c) => c.spec.durable === 'exporter-files')).toHaveLength(2);
    expect(m.warnings).toEqual([]);
    // A gateway region without a deployment: its batches have no clean stream to go to.
    const partial = buildAccessModel({
      ...parseProvision([
        '--regions',
        'eu-west,us-east',
        '--layout',
        'per-region',
        '--deployments',
        'eu-west=none',
      ]),
      topology: t,
    });
    expect(partial.warnings).toContainEqual(
      expect.stringContaining('region us-east has a gateway but no regional deployment'),
    );
    expect(
      partial.streams.find((s) => s.name === 'ACME_TELEMETRY_EU_WEST')?.placementTags,
    ).toBeUndefined();
  });

  it.each([
    [['--deployments', 'eu-west'], /--deployments needs --layout per-region/],
    [['--layout', 'per-region', '--regions', 'eu', '--deployments', 'EU'], /not a region/],
    [['--layout', 'per-region', '--regions', 'eu', '--deployments', 'eu=a b'], /region=tag/],
    [['--layout', 'per-region', '--regions', 'eu', '--deployments', 'eu,eu'], /named twice/],
  ])('refuses deployments %j', (args, message) => {
    expect(() => parseProvision(args)).toThrow(UsageError);
    expect(() => parseProvision(args)).toThrow(message);
  });

  it('writes public keys to the server and seeds only to the Secrets', () => {
    const keyed: KeyedUser[] = model.users.map((u, i) => ({
      ...u,
      publicKey: `UPUBLIC${i}`,
      seed: `SUSECRET${i}`,
    }));
    const conf = renderServerAuth(keyed, { namespace: 'acme', generatedAt: 'now' });
    expect(conf).not.toContain('SUSECRET');
    for (const u of keyed) expect(conf).toContain(`nkey: "${u.publicKey}"`);
    const yaml = renderSecrets(keyed, { namespace: 'acme', mountPath: '/m' });
    const docs = yaml.split('\n---\n');
    expect(docs).toHaveLength(keyed.length);
    const dedupe = docs.find((d) => d.includes('name: sluice-acme-nats-dedupe'))!;
    expect(dedupe).toContain('NATS_PROVISION: "false"');
    expect(dedupe).toContain('NATS_INBOX_PREFIX: "_INBOX.dedupe.acme"');
    expect(dedupe).toContain('NATS_NKEY_SEED_FILE: "/m/seed.nk"');
    expect(docs.find((d) => d.includes('nats-user: admin'))).toContain('NATS_PROVISION: "true"');
  });
});
