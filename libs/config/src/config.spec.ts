import {
  ConfigError,
  defineConfig,
  durationMs,
  loadConfig,
  parseDurationMs,
  positiveInt,
  regionalDeploymentOf,
  z,
} from './index';

describe('loadConfig', () => {
  const schema = defineConfig({
    BATCH_MAX: positiveInt(500),
    CLAIM_TTL: durationMs('7d'),
    REGIONS: z.string(),
  });

  it('applies defaults and parses values', () => {
    const cfg = loadConfig(schema, { REGIONS: 'eu', CLAIM_TTL: '90s', OPS_PORT: '9500' });
    expect(cfg).toMatchObject({
      NATS_URL: 'nats://127.0.0.1:4222',
      BATCH_MAX: 500,
      CLAIM_TTL: 90_000,
      OPS_PORT: 9500,
    });
  });

  it('names every bad variable with its reason', () => {
    let err: unknown;
    try {
      loadConfig(schema, {
        BATCH_MAX: '-3',
        NATS_URL: 'http://x',
        OPS_PORT: '70000',
        CLAIM_TTL: 'soon',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const issues = (err as ConfigError).issues;
    const byVar = Object.fromEntries(issues.map((i) => [i.variable, i.reason]));
    expect(byVar['REGIONS']).toBe('is required but not set');
    expect(byVar['BATCH_MAX']).toMatch(/greater than 0/);
    expect(byVar['NATS_URL']).toMatch(/nats:\/\//);
    expect(byVar['OPS_PORT']).toMatch(/port/);
    expect(byVar['CLAIM_TTL']).toMatch(/duration like/);
    expect((err as Error).message).toMatch(/^invalid configuration: /);
  });

  it('treats blank values as unset', () => {
    expect(loadConfig(schema, { REGIONS: 'eu', BATCH_MAX: '  ' }).BATCH_MAX).toBe(500);
  });

  it('refuses the development hash key in production', () => {
    expect(() => loadConfig(schema, { REGIONS: 'eu', SLUICE_ENV: 'production' })).toThrow(
      /DEVICE_ID_HASH_KEY: must be set/,
    );
  });

  it('takes one way of authenticating to NATS, a valid inbox prefix, and provisions by default', () => {
    const base = { REGIONS: 'eu' };
    const cfg = loadConfig(schema, { ...base, NATS_NKEY_SEED_FILE: '/s/seed.nk' });
    expect(cfg).toMatchObject({ NATS_PROVISION: true, NATS_INBOX_PREFIX: '_INBOX' });
    expect(
      loadConfig(schema, {
        ...base,
        NATS_USER: 'u',
        NATS_PASSWORD: 'p',
        NATS_INBOX_PREFIX: '_INBOX.dedupe._',
        NATS_PROVISION: 'false',
      }),
    ).toMatchObject({
      NATS_USER: 'u',
      NATS_INBOX_PREFIX: '_INBOX.dedupe._',
      NATS_PROVISION: false,
    });
    expect(() =>
      loadConfig(schema, { ...base, NATS_CREDS: '/c.creds', NATS_NKEY_SEED_FILE: '/s.nk' }),
    ).toThrow(/NATS_NKEY_SEED_FILE: cannot be combined with NATS_CREDS/);
    expect(() => loadConfig(schema, { ...base, NATS_USER: 'u' })).toThrow(/NATS_PASSWORD: /);
    expect(() => loadConfig(schema, { ...base, NATS_PASSWORD: 'p' })).toThrow(/NATS_USER: /);
    for (const bad of ['_INBOX.>', '_INBOX..x', '_INBOX.*', 'a b', '.x'])
      expect(() => loadConfig(schema, { ...base, NATS_INBOX_PREFIX: bad })).toThrow(
        /NATS_INBOX_PREFIX/,
      );
  });

  it('reads a regional deployment: SLUICE_REGION and its placement tags', () => {
    const base = { REGIONS: 'eu' };
    const none = loadConfig(schema, base);
    expect(none.SLUICE_REGION).toBeUndefined();
    expect(regionalDeploymentOf(none)).toBeUndefined();
    expect(regionalDeploymentOf(loadConfig(schema, { ...base, SLUICE_REGION: 'eu-west' }))).toEqual(
      { region: 'eu-west', placementTags: ['region:eu-west'] },
    );
    expect(
      regionalDeploymentOf(
        loadConfig(schema, {
          ...base,
          SLUICE_REGION: 'eu-west',
          SLUICE_REGION_PLACEMENT: 'region:eu | zone:a',
        }),
      ),
    ).toEqual({ region: 'eu-west', placementTags: ['region:eu', 'zone:a'] });
    expect(
      regionalDeploymentOf(
        loadConfig(schema, { ...base, SLUICE_REGION: 'eu-west', SLUICE_REGION_PLACEMENT: 'none' }),
      ),
    ).toEqual({ region: 'eu-west', placementTags: [] });
    expect(() => loadConfig(schema, { ...base, SLUICE_REGION: 'EU West' })).toThrow(
      /SLUICE_REGION: must be lowercase/,
    );
    expect(() => loadConfig(schema, { ...base, SLUICE_REGION_PLACEMENT: 'region:eu' })).toThrow(
      /SLUICE_REGION_PLACEMENT: needs SLUICE_REGION/,
    );
    for (const bad of ['region:eu||zone:a', 'region:eu,zone:a', 'region eu'])
      expect(() =>
        loadConfig(schema, { ...base, SLUICE_REGION: 'eu', SLUICE_REGION_PLACEMENT: bad }),
      ).toThrow(/SLUICE_REGION_PLACEMENT: must be server tags/);
  });

  it('parses durations', () => {
    expect([
      parseDurationMs('250'),
      parseDurationMs('1.5m'),
      parseDurationMs('7d'),
      parseDurationMs('x'),
    ]).toEqual([250, 90_000, 604_800_000, undefined]);
  });
});
