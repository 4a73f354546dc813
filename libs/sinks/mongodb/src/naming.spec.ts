import { ConfigError } from '@sluice/errors';
import { InvalidCollectionNameError, parseCollectionTemplate } from './naming';
import { resolveMongoOptions } from './options';

describe('collection templates', () => {
  it('renders placeholders from safe values', () => {
    const t = parseCollectionTemplate('telemetry_{region}_{sensor_type}', 'telemetry', 'X');
    expect(t.render({ region: 'eu-west', sensor_type: 'engine_temp' })).toBe(
      'telemetry_eu-west_engine_temp',
    );
    expect(parseCollectionTemplate('detections', 'detection', 'X').constant).toBe(true);
  });

  it('rejects unsafe substituted values as a record problem', () => {
    const t = parseCollectionTemplate('t_{sensor_type}', 'telemetry', 'X');
    for (const bad of ['a.b', '$x', '', 'a b', 'x'.repeat(65), 'ü']) {
      expect(() => t.render({ sensor_type: bad })).toThrow(InvalidCollectionNameError);
    }
  });

  it('rejects bad templates naming the setting', () => {
    expect(() =>
      parseCollectionTemplate('t_{device}', 'telemetry', 'MONGO_TELEMETRY_COLLECTION'),
    ).toThrow(/MONGO_TELEMETRY_COLLECTION: unknown placeholder \{device\}/);
    expect(() => parseCollectionTemplate('t.{region}', 'telemetry', 'S')).toThrow(ConfigError);
    expect(() => parseCollectionTemplate('system_{region}', 'telemetry', 'S')).toThrow(/reserved/);
    expect(() => parseCollectionTemplate('{region}', 'telemetry', 'S')).toThrow(
      /must start with a letter/,
    );
    expect(() => parseCollectionTemplate('d_{sensor_type}', 'detection', 'S')).toThrow(
      /unknown placeholder/,
    );
  });

  it('validates options up front', () => {
    expect(() => resolveMongoOptions({ url: 'http://x' })).toThrow(/url: must start with mongodb/);
    expect(() => resolveMongoOptions({ url: 'mongodb://h', database: 'a.b' })).toThrow(/database/);
    expect(() => resolveMongoOptions({ url: 'mongodb://h', writeConcernW: -1 })).toThrow(
      /writeConcernW/,
    );
    expect(() => resolveMongoOptions({ url: 'mongodb://h', ttlDays: -3 })).toThrow(/ttlDays/);
    const r = resolveMongoOptions({ url: 'mongodb://h' });
    expect(r).toMatchObject({
      database: 'sluice',
      writeConcern: { w: 'majority', journal: true, wtimeoutMS: 10_000 },
      ttlDays: 0,
      timeseries: false,
      name: 'mongodb',
    });
    expect(r.telemetry.source).toBe('telemetry_{region}');
    expect(r.detection.source).toBe('detections_{region}');
  });
});
