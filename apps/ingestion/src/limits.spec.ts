import { Authenticator, parseInlineTokens, principalFromCertificate, sha256Hex } from './auth';
import { ByteBudget, BudgetTimeoutError } from './byte-budget';
import { ConfigError } from '@sluice/errors';
import { AuthenticationError } from './errors';
import { DeviceRateLimiter } from './rate-limiter';
import { buildRoutes, parsePlacement } from './routing';
import { topology } from '@sluice/contracts';
import type { PeerCertificate } from 'node:tls';

describe('DeviceRateLimiter', () => {
  it('allows a burst, then refuses with the wait until the batch fits, all or nothing', () => {
    let now = 0;
    const l = new DeviceRateLimiter({ ratePerSec: 10, burst: 20, maxDevices: 10, now: () => now });
    expect(l.take(new Map([['a', 20]]))).toBe(0);
    expect(l.take(new Map([['a', 5]]))).toBe(500);
    // b fits but a does not: nothing is taken from b either.
    expect(
      l.take(
        new Map([
          ['b', 20],
          ['a', 1],
        ]),
      ),
    ).toBe(100);
    expect(l.take(new Map([['b', 20]]))).toBe(0);
    now = 500;
    expect(l.take(new Map([['a', 5]]))).toBe(0);
    expect(l.take(new Map([['c', 21]]))).toBeGreaterThan(0);
  });

  it('forgets the least recently seen device beyond maxDevices', () => {
    const l = new DeviceRateLimiter({ ratePerSec: 1, burst: 1, maxDevices: 2, now: () => 0 });
    l.take(new Map([['a', 1]]));
    l.take(new Map([['b', 1]]));
    l.take(new Map([['c', 1]]));
    expect(l.trackedDevices).toBe(2);
    expect(l.take(new Map([['a', 1]]))).toBe(0); // a was forgotten: full bucket again
  });
});

describe('ByteBudget', () => {
  it('serves waiters in order and times out a wait', async () => {
    const b = new ByteBudget(100);
    await b.acquire(80, 10);
    const order: number[] = [];
    const w1 = b.acquire(50, 1_000).then(() => order.push(1));
    const w2 = b.acquire(10, 1_000).then(() => order.push(2));
    b.release(80);
    await Promise.all([w1, w2]);
    expect(order).toEqual([1, 2]);
    expect(b.inUse).toBe(60);
    await expect(b.acquire(50, 20)).rejects.toBeInstanceOf(BudgetTimeoutError);
    expect(b.waiting).toBe(0);
  });
});

describe('Authenticator', () => {
  const tokens = parseInlineTokens(`${sha256Hex('t1')}=boat-1|boat-2;${sha256Hex('gw')}=*`);
  const auth = new Authenticator(tokens);

  it('maps hashed tokens to device scopes', () => {
    expect(auth.authenticate('Bearer t1').devices).toEqual(new Set(['boat-1', 'boat-2']));
    expect(auth.authenticate('bearer gw').devices).toBe('*');
    expect(() => auth.authenticate(undefined)).toThrow(AuthenticationError);
    expect(() => auth.authenticate('Bearer nope')).toThrow(/unknown bearer token/);
    expect(() => auth.authenticate('Basic abc')).toThrow(/malformed/);
  });

  it('takes device ids from a verified client certificate', () => {
    const cert = {
      subject: { CN: 'boat-9' },
      subjectaltname: 'DNS:boat-9.fleet, URI:spiffe://x/boat-9',
    } as unknown as PeerCertificate;
    expect(principalFromCertificate(cert)!.devices).toEqual(
      new Set(['boat-9', 'boat-9.fleet', 'spiffe://x/boat-9']),
    );
    expect(auth.authenticate(undefined, cert).name).toBe('cert:boat-9');
  });

  it('refuses malformed token config with the variable name', () => {
    expect(() => parseInlineTokens('abc=boat')).toThrow(ConfigError);
    expect(() => parseInlineTokens(`${sha256Hex('x')}=`)).toThrow(/INGEST_AUTH_TOKENS entry 1/);
  });
});

describe('routing', () => {
  const t = topology('ns1');
  const base = {
    regions: ['eu-west', 'us-east'],
    replicas: 1,
    maxAgeMs: 1,
    duplicateWindowMs: 1,
    maxMsgSize: -1,
  };

  it('builds one placed stream per region', () => {
    const { routes, streams } = buildRoutes(t, {
      ...base,
      layout: 'per-region',
      placement: parsePlacement('eu-west=region:eu|zone:a'),
    });
    expect(routes.get('eu-west')).toEqual({
      region: 'eu-west',
      subject: 'ns1.telemetry.raw.eu-west',
      stream: 'NS1_TELEMETRY_RAW_EU_WEST',
    });
    expect(streams.map((s) => [s.name, s.subjects, s.placementTags])).toEqual([
      ['NS1_TELEMETRY_RAW_EU_WEST', ['ns1.telemetry.raw.eu-west'], ['region:eu', 'zone:a']],
      ['NS1_TELEMETRY_RAW_US_EAST', ['ns1.telemetry.raw.us-east'], undefined],
    ]);
  });

  it('uses the shared raw stream and refuses placement with it', () => {
    const { routes, streams } = buildRoutes(t, { ...base, layout: 'shared', placement: new Map() });
    expect(streams.map((s) => s.name)).toEqual(['NS1_TELEMETRY_RAW']);
    expect(routes.get('us-east')!.stream).toBe('NS1_TELEMETRY_RAW');
    expect(() =>
      buildRoutes(t, { ...base, layout: 'shared', placement: parsePlacement('eu-west=x') }),
    ).toThrow(/per-region/);
    expect(() =>
      buildRoutes(t, { ...base, layout: 'per-region', placement: parsePlacement('ap=x') }),
    ).toThrow(/not in INGEST_REGIONS/);
    expect(() =>
      buildRoutes(t, { ...base, regions: ['EU'], layout: 'shared', placement: new Map() }),
    ).toThrow(/INGEST_REGIONS/);
  });
});
