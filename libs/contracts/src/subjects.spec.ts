import {
  CONTENT_TYPES,
  HEADERS,
  InvalidSubjectTokenError,
  STREAMS,
  SUBJECT_FILTERS,
  assertSubjectToken,
  cleanSubject,
  dlqSubject,
  parseSubject,
  rawSubject,
  rollupFilter,
  replayFilter,
  replaySubject,
  rollupSubject,
} from './subjects';

describe('subject builders', () => {
  it('build the documented subjects', () => {
    expect(rawSubject('eu-west')).toBe('telemetry.raw.eu-west');
    expect(cleanSubject('eu-west')).toBe('telemetry.clean.eu-west');
    expect(rollupSubject('1m', 'eu-west')).toBe('telemetry.rollup.1m.eu-west');
    expect(dlqSubject('webhook-dispatcher')).toBe('dlq.webhook-dispatcher');
    expect(replaySubject('mongo-capture', 'eu-west')).toBe('replay.mongo-capture.eu-west');
    expect(replayFilter('aggregator')).toBe('replay.aggregator.>');
  });

  it('build narrowed roll-up filters', () => {
    expect(rollupFilter()).toBe('telemetry.rollup.*.*');
    expect(rollupFilter({ resolution: '5s' })).toBe('telemetry.rollup.5s.*');
    expect(rollupFilter({ region: 'us_east-2' })).toBe('telemetry.rollup.*.us_east-2');
  });

  const hostile = ['eu.west', '*', '>', '', ' a', 'a b', 'eu-*', 'a>', 'a\tb', 'a\u0000'];
  const builders: [string, (token: string) => string][] = [
    ['rawSubject', (t) => rawSubject(t)],
    ['cleanSubject', (t) => cleanSubject(t)],
    ['rollupSubject resolution', (t) => rollupSubject(t, 'eu-west')],
    ['rollupSubject region', (t) => rollupSubject('1m', t)],
    ['rollupFilter', (t) => rollupFilter({ region: t })],
    ['dlqSubject', (t) => dlqSubject(t)],
    ['replaySubject target', (t) => replaySubject(t, 'eu-west')],
    ['replaySubject region', (t) => replaySubject('aggregator', t)],
    ['replayFilter', (t) => replayFilter(t)],
  ];
  it.each(builders)('%s rejects hostile tokens', (_name, build) => {
    for (const token of hostile) {
      expect(() => build(token)).toThrow(InvalidSubjectTokenError);
    }
  });

  it('says which token is wrong and why', () => {
    const reasons = hostile.slice(0, 5).map((token) => {
      try {
        rawSubject(token);
        return 'accepted';
      } catch (error) {
        return (error as InvalidSubjectTokenError).message;
      }
    });
    expect(reasons).toEqual([
      'invalid region "eu.west": must not contain "." (it separates subject tokens)',
      'invalid region "*": must not contain the wildcard "*"',
      'invalid region ">": must not contain the wildcard ">"',
      'invalid region "": must not be empty',
      'invalid region " a": must not contain whitespace or control characters',
    ]);
  });

  it('keeps region and resolution tokens to lowercase names', () => {
    expect(() => rawSubject('EU-West')).toThrow(/must match/);
    expect(() => rollupSubject('-1m', 'eu')).toThrow(/invalid resolution "-1m"/);
    expect(() => rawSubject('r'.repeat(65))).toThrow(InvalidSubjectTokenError);
    expect(rawSubject('r'.repeat(64))).toBe(`telemetry.raw.${'r'.repeat(64)}`);
  });

  it('asserts tokens given by untyped callers', () => {
    expect(() => assertSubjectToken(undefined, 'service')).toThrow(
      'invalid service undefined: must be a string, got undefined',
    );
    const error = (() => {
      try {
        dlqSubject('a.b');
      } catch (e) {
        return e;
      }
    })() as InvalidSubjectTokenError;
    expect(error).toMatchObject({
      name: 'InvalidSubjectTokenError',
      token: 'a.b',
      role: 'service',
    });
  });
});

describe('parseSubject', () => {
  it('inverts the builders', () => {
    expect(parseSubject(rawSubject('eu-west'))).toEqual({ kind: 'raw', region: 'eu-west' });
    expect(parseSubject(cleanSubject('eu-west'))).toEqual({ kind: 'clean', region: 'eu-west' });
    expect(parseSubject(rollupSubject('1h', 'ap'))).toEqual({
      kind: 'rollup',
      resolution: '1h',
      region: 'ap',
    });
    expect(parseSubject(dlqSubject('dedupe'))).toEqual({ kind: 'dlq', service: 'dedupe' });
    expect(parseSubject(replaySubject('aggregator', 'eu'))).toEqual({
      kind: 'replay',
      target: 'aggregator',
      region: 'eu',
    });
  });

  it.each([
    'telemetry.raw',
    'telemetry.raw.EU',
    'telemetry.raw.a.b',
    'telemetry.rollup.1m',
    'dlq.>',
    'other.x',
  ])('returns undefined for %s', (subject) => expect(parseSubject(subject)).toBeUndefined());
});

describe('streams and headers', () => {
  it('spell the stream names and subjects of the design', () => {
    expect(STREAMS).toEqual({
      TELEMETRY_RAW: { name: 'TELEMETRY_RAW', subjects: ['telemetry.raw.>'] },
      TELEMETRY: { name: 'TELEMETRY', subjects: ['telemetry.clean.>'] },
      ROLLUPS: { name: 'ROLLUPS', subjects: ['telemetry.rollup.>'] },
      DLQ: { name: 'DLQ', subjects: ['dlq.>'] },
      REPLAY: { name: 'REPLAY', subjects: ['replay.>'] },
    });
    expect(SUBJECT_FILTERS.RAW_ALL).toBe('telemetry.raw.>');
  });

  it('capture every subject the builders make', () => {
    const captured = (stream: { subjects: readonly string[] }, subject: string): boolean =>
      stream.subjects.some((filter) => subject.startsWith(filter.slice(0, -1)));
    expect(captured(STREAMS.TELEMETRY_RAW, rawSubject('eu'))).toBe(true);
    expect(captured(STREAMS.TELEMETRY, cleanSubject('eu'))).toBe(true);
    expect(captured(STREAMS.ROLLUPS, rollupSubject('1s', 'eu'))).toBe(true);
    expect(captured(STREAMS.DLQ, dlqSubject('archiver'))).toBe(true);
    expect(captured(STREAMS.REPLAY, replaySubject('aggregator', 'eu'))).toBe(true);
    expect(captured(STREAMS.TELEMETRY, rawSubject('eu'))).toBe(false);
  });

  it('name headers and content types', () => {
    expect(HEADERS.MSG_ID).toBe('Nats-Msg-Id');
    expect(HEADERS.DLQ_ORIGINAL_SEQUENCE).toBe('Sluice-Dlq-Original-Sequence');
    expect(CONTENT_TYPES).toEqual({
      EVENT_BATCH: 'application/x-protobuf; proto=sluice.telemetry.v1.EventBatch',
      ROLLUP: 'application/x-protobuf; proto=sluice.telemetry.v1.Rollup',
      DEAD_LETTER: 'application/x-protobuf; proto=sluice.ops.v1.DeadLetter',
      REPLAY_CONTROL: 'application/json; sluice=replay-control',
      WIRE_JSON: 'application/json',
    });
  });
});
