import {
  compilePipeline,
  documentFromEnvironment,
  formatDuration,
  PipelineConfigError,
} from './pipeline-config';

describe('pipeline configuration documents', () => {
  it('compiles resolutions finest first with their retention, and derived series with their inputs', () => {
    const s = compilePipeline(3, {
      resolutions: [
        { name: '1m', retention: '90d' },
        { name: '1s', retention: '36h' },
      ],
      derived: [{ name: 'power', expression: 'voltage * current' }],
    });
    expect(s.version).toBe(3);
    expect(s.resolutions.map((r) => [r.name, r.retentionMs])).toEqual([
      ['1s', 36 * 3_600_000],
      ['1m', 90 * 86_400_000],
    ]);
    expect([...s.rank]).toEqual([
      ['1s', 0],
      ['1m', 1],
    ]);
    expect([...s.derivedInputs].sort()).toEqual(['current', 'voltage']);
  });

  it('names every problem with its path, and the expression errors with their position', () => {
    let err: unknown;
    try {
      compilePipeline(1, {
        resolutions: [
          { name: '1s', retention: 'forever' },
          { name: '7s', retention: '1d' },
        ],
        derived: [
          { name: 'a', expression: '(x + ' },
          { name: 'b', expression: '2 * 3' },
          { name: 'c', expression: 'a + 1' },
        ],
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PipelineConfigError);
    const issues = (err as PipelineConfigError).issues;
    expect(issues.map((i) => i.path)).toEqual([
      'resolutions[0].retention',
      'resolutions[1].name',
      'derived[0].expression',
      'derived[1].expression',
    ]);
    expect(issues[2]!.message).toMatch(/^a: .*at position 5$/);
    expect(issues[3]!.message).toBe('b: must read at least one sensor');
    // A list that repeats a length, or is empty, is refused as a whole.
    expect(() =>
      compilePipeline(1, {
        resolutions: [
          { name: '1m', retention: '1d' },
          { name: '60s', retention: '1d' },
        ],
        derived: [],
      }),
    ).toThrow(/resolutions: "60s" repeats 1m/);
    expect(() => compilePipeline(1, { resolutions: [], derived: [] })).toThrow(
      /at least one resolution/,
    );
    // Chained derived series are refused.
    expect(() =>
      compilePipeline(1, {
        resolutions: [{ name: '1s', retention: '1d' }],
        derived: [
          { name: 'p', expression: 'v * i' },
          { name: 'q', expression: 'p * 2' },
        ],
      }),
    ).toThrow(/derived\[1\]\.expression: q: reads derived series p/);
  });

  it('reads the environment as a document, retention written in its largest whole unit', () => {
    const doc = documentFromEnvironment({
      AGGREGATOR_RESOLUTIONS: ['1h', '1s'],
      AGGREGATOR_RETENTION: ['1s=36h'],
      AGGREGATOR_DERIVED: 'f = t * 1.8 + 32; p = v * i',
    });
    expect(doc).toEqual({
      resolutions: [
        { name: '1s', retention: '36h' },
        { name: '1h', retention: '730d' },
      ],
      derived: [
        { name: 'f', expression: 't * 1.8 + 32' },
        { name: 'p', expression: 'v * i' },
      ],
    });
    expect([90_000, 1_500, 60_000, 86_400_000].map(formatDuration)).toEqual([
      '90s',
      '1500ms',
      '1m',
      '1d',
    ]);
  });
});
