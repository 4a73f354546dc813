import { HEADERS } from './subjects';
import {
  parseReplaySource,
  replayConsumerDescription,
  replayModeOf,
  ReplayHeaderError,
} from './replay';

const headers = (h: Record<string, string>) => (name: string) => h[name];
const base = {
  [HEADERS.SOURCE_STREAM]: 'TELEMETRY',
  [HEADERS.SOURCE_SEQUENCE]: '42',
  [HEADERS.SOURCE_SUBJECT]: 'telemetry.clean.eu',
};

describe('parseReplaySource', () => {
  it('is undefined for a message without replay provenance', () => {
    expect(parseReplaySource(headers({}), 3)).toBeUndefined();
  });

  it('reads the original batch, its positions and the replay ids', () => {
    expect(
      parseReplaySource(
        headers({
          ...base,
          [HEADERS.SOURCE_TIME]: '1764000000000',
          [HEADERS.SOURCE_INDEXES]: '0,4,7',
          [HEADERS.REPLAY_ID]: 'r1',
          [HEADERS.REPLAY_REBUILD]: 'r1',
        }),
        3,
      ),
    ).toEqual({
      stream: 'TELEMETRY',
      seq: 42,
      subject: 'telemetry.clean.eu',
      storedAt: 1764000000000,
      indexes: [0, 4, 7],
      replayId: 'r1',
      rebuild: 'r1',
      redriveOf: undefined,
    });
  });

  it.each([
    [{ [HEADERS.SOURCE_SEQUENCE]: '' }, /Sequence of at least 1/],
    [{ [HEADERS.SOURCE_SEQUENCE]: '0' }, /at least 1/],
    [{ [HEADERS.SOURCE_SEQUENCE]: '-3' }, /decimal/],
    [{ [HEADERS.SOURCE_SEQUENCE]: '1e3' }, /decimal/],
    [{ [HEADERS.SOURCE_SEQUENCE]: '99999999999999999999' }, /decimal/],
    [{ [HEADERS.SOURCE_SUBJECT]: '' }, /no Sluice-Source-Subject/],
    [{ [HEADERS.SOURCE_SUBJECT]: 'a\u0000b' }, /printable/],
    [{ [HEADERS.SOURCE_TIME]: 'yesterday' }, /decimal/],
    [{ [HEADERS.SOURCE_INDEXES]: '0,1' }, /2 positions for 3 events/],
    [{ [HEADERS.SOURCE_INDEXES]: '0,,2' }, /empty or out-of-range/],
    [{ [HEADERS.SOURCE_INDEXES]: '0,1,x' }, /decimal/],
  ])('refuses %j', (bad, reason) => {
    const h = headers({ ...base, ...bad });
    expect(() => parseReplaySource(h, 3)).toThrow(ReplayHeaderError);
    expect(() => parseReplaySource(h, 3)).toThrow(reason);
  });
});

describe('replay consumer description', () => {
  it('round-trips the mode and ignores other consumers', () => {
    expect(replayModeOf(replayConsumerDescription('rebuild'))).toBe('rebuild');
    expect(replayModeOf(replayConsumerDescription('store'))).toBe('store');
    expect(replayModeOf('some other consumer')).toBeUndefined();
    expect(replayModeOf(undefined)).toBeUndefined();
  });
});
