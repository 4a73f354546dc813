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

  it('has no region and puts no placement on any stream by default', () => {
    for (const t of [topology(), topology('acme')]) {
      expect(t.region).toBeUndefined();
      for (const spec of Object.values(t.streams)) {
        expect(Object.keys(spec).sort()).toEqual(['name', 'subjects']);
      }
    }
    expect(topology('acme').streams.rollups).toEqual({
      name: 'ACME_ROLLUPS',
      subjects: ['acme.telemetry.rollup.>'],
    });
    expect(topology().filters.clean).toBe('telemetry.clean.>');
  });

  it("names a regional deployment's own clean and roll-up streams, placed by its tags", () => {
    const t = topology('acme', { region: 'eu-west', placementTags: ['region:eu-west', 'zone:a'] });
    expect(t.region).toBe('eu-west');
    expect(t.streams.clean).toEqual({
      name: 'ACME_TELEMETRY_EU_WEST',
      subjects: ['acme.telemetry.clean.eu-west'],
      placementTags: ['region:eu-west', 'zone:a'],
    });
    expect(t.streams.rollups).toEqual({
      name: 'ACME_ROLLUPS_EU_WEST',
      subjects: ['acme.telemetry.rollup.*.eu-west'],
      placementTags: ['region:eu-west', 'zone:a'],
    });
    expect(t.streams.replay).toEqual({
      name: 'ACME_REPLAY_EU_WEST',
      subjects: ['acme.replay.*.eu-west'],
      placementTags: ['region:eu-west', 'zone:a'],
    });
    expect(t.filters.clean).toBe('acme.telemetry.clean.eu-west');
    expect(t.filters.rollup).toBe('acme.telemetry.rollup.*.eu-west');
    expect(t.filters.replay).toBe('acme.replay.*.eu-west');
    expect(t.replayFilter('aggregator')).toBe('acme.replay.aggregator.eu-west');
    // What stays as in the global topology: raw (the gateway's), the DLQ, and every subject.
    const g = topology('acme');
    expect(t.streams.raw).toEqual(g.streams.raw);
    expect(t.streams.dlq).toEqual(g.streams.dlq);
    expect(t.clean('eu-west')).toBe(g.clean('eu-west'));
    expect(t.rollup('1m', 'eu-west')).toBe(g.rollup('1m', 'eu-west'));
    expect(t.replay('aggregator', 'eu-west')).toBe(g.replay('aggregator', 'eu-west'));
    expect(t.dlq('dedupe')).toBe(g.dlq('dedupe'));

    const bare = topology('', { region: 'us-east' });
    expect(bare.streams.clean).toEqual({
      name: 'TELEMETRY_US_EAST',
      subjects: ['telemetry.clean.us-east'],
    });
    expect(bare.streams.rollups.name).toBe('ROLLUPS_US_EAST');
    expect(bare.streams.replay.name).toBe('REPLAY_US_EAST');
    expect(topology().replayFilter('aggregator')).toBe('replay.aggregator.>');
  });

  it('rejects a region that is not a name token and a malformed placement tag', () => {
    expect(() => topology('', { region: 'EU' })).toThrow(InvalidSubjectTokenError);
    expect(() => topology('', { region: 'eu.west' })).toThrow(InvalidSubjectTokenError);
    for (const tag of ['', 'region: eu', 'a,b', 'a|b'])
      expect(() => topology('', { region: 'eu', placementTags: [tag] })).toThrow(
        InvalidSubjectTokenError,
      );
  });

  it('rejects a namespace that is not one name token', () => {
    expect(() => topology('a.b')).toThrow(InvalidSubjectTokenError);
    expect(() => topology('UPPER')).toThrow(InvalidSubjectTokenError);
  });
});
