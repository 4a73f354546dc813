import { loadConfig } from '@sluice/config';
import { config } from './config';

describe('archiver config', () => {
  it('defaults: every region, a 10 s lease', () => {
    const c = loadConfig(config, {});
    expect(c.ARCHIVER_REGION).toBeUndefined();
    expect(c.ARCHIVER_LEASE_TTL).toBe(10_000);
  });

  it('takes a region name and a lease TTL of at least 2 s', () => {
    const c = loadConfig(config, { ARCHIVER_REGION: 'eu-west', ARCHIVER_LEASE_TTL: '2s' });
    expect(c.ARCHIVER_REGION).toBe('eu-west');
    expect(c.ARCHIVER_LEASE_TTL).toBe(2_000);
  });

  it('refuses a region that is not one subject token, and a lease shorter than 2 s', () => {
    expect(() => loadConfig(config, { ARCHIVER_REGION: 'eu.west' })).toThrow(/ARCHIVER_REGION/);
    expect(() => loadConfig(config, { ARCHIVER_REGION: 'eu-*' })).toThrow(/ARCHIVER_REGION/);
    expect(() => loadConfig(config, { ARCHIVER_LEASE_TTL: '1500ms' })).toThrow(
      /ARCHIVER_LEASE_TTL.*at least 2s/,
    );
  });
});
