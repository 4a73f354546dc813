import { InvalidSubjectTokenError } from './subjects';
import { topology } from './topology';

describe('topology', () => {
  it('is the canonical layout without a namespace', () => {
    const t = topology();
    expect(t.streams.raw).toEqual({ name: 'TELEMETRY_RAW', subjects: ['telemetry.raw.>'] });
    expect(t.raw('eu-west')).toBe('telemetry.raw.eu-west');
    expect(t.parse('telemetry.clean.eu')).toEqual({ kind: 'clean', region: 'eu' });
  });

  it('prefixes subjects and stream names with a namespace', () => {
    const t = topology('test-ab12');
    expect(t.streams.clean).toEqual({
      name: 'TEST_AB12_TELEMETRY',
      subjects: ['test-ab12.telemetry.clean.>'],
    });
    expect(t.rollup('1m', 'eu')).toBe('test-ab12.telemetry.rollup.1m.eu');
    expect(t.dlq('dedupe')).toBe('test-ab12.dlq.dedupe');
    expect(t.filters.raw).toBe('test-ab12.telemetry.raw.>');
    expect(t.parse('test-ab12.telemetry.raw.eu')).toEqual({ kind: 'raw', region: 'eu' });
    expect(t.parse('telemetry.raw.eu')).toBeUndefined();
  });

  it('rejects a namespace that is not one name token', () => {
    expect(() => topology('a.b')).toThrow(InvalidSubjectTokenError);
    expect(() => topology('UPPER')).toThrow(InvalidSubjectTokenError);
  });
});
