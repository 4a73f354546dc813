import {
  ConfigError,
  defineConfig,
  durationMs,
  loadConfig,
  parseDurationMs,
  positiveInt,
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

  it('parses durations', () => {
    expect([
      parseDurationMs('250'),
      parseDurationMs('1.5m'),
      parseDurationMs('7d'),
      parseDurationMs('x'),
    ]).toEqual([250, 90_000, 604_800_000, undefined]);
  });
});
