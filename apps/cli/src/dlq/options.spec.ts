import { UsageError } from '../errors';
import { parseTime } from '../args';
import { printable, renderTable } from '../table';
import {
  DEFAULT_REPLAY_SERVICES,
  DEFAULT_SCAN_LIMIT,
  filterOf,
  hasSelector,
  isReplayService,
  MAX_SEQS,
  parseLs,
  parsePurge,
  parseRedrive,
  parseSeqList,
  parseShow,
} from './options';

const NOW = Date.UTC(2026, 10, 29, 12, 0, 0);
const now = () => NOW;

function usageError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error('no UsageError');
}

describe('parseSeqList', () => {
  it.each([
    [['12'], [12]],
    [
      ['12,3', '3'],
      [3, 12],
    ],
    [
      ['20-23', '1'],
      [1, 20, 21, 22, 23],
    ],
    [['5-5'], [5]],
    [['8,'], [8]],
  ])('%j → %j', (items, seqs) => {
    expect(parseSeqList(items)).toEqual(seqs);
  });

  it.each([
    [['abc'], /not a sequence/],
    [['-3'], /not a sequence/],
    [['1.5'], /not a sequence/],
    [['0'], /start at 1/],
    [['9-3'], /ends before it starts/],
    [[`1-${MAX_SEQS + 1}`], /more than/],
    [['1-6000', '7000-12000'], /more than/],
  ])('%j is refused', (items, reason) => {
    expect(parseSeqList(items)).toMatch(reason);
  });
});

describe('parseTime', () => {
  it.each([
    ['2h', NOW - 2 * 3_600_000],
    ['30m', NOW - 30 * 60_000],
    ['7d', NOW - 7 * 86_400_000],
    ['now', NOW],
    ['2026-11-01', Date.UTC(2026, 10, 1)],
    ['2026-11-01T10:00', Date.UTC(2026, 10, 1, 10)],
    ['2026-11-01T10:00:05Z', Date.UTC(2026, 10, 1, 10, 0, 5)],
    ['2026-11-01T10:00:05.250+02:00', Date.UTC(2026, 10, 1, 8, 0, 5, 250)],
  ])('%s', (raw, t) => {
    expect(parseTime(raw, NOW)?.getTime()).toBe(t);
  });

  it.each(['yesterday', '2h ago', '-2h', '2', '2026-13-45', '2026-11-01T25:00Z', ''])(
    '%j is not a time',
    (raw) => {
      expect(parseTime(raw, NOW)).toBeUndefined();
    },
  );
});

describe('the dlq command lines', () => {
  it('ls: filters, lists given several ways, defaults', () => {
    const o = parseLs(
      [
        '--service',
        'dedupe,aggregator',
        '--service',
        'archiver',
        '--error-class',
        'X',
        '--since',
        '2h',
        '--json',
      ],
      now,
    );
    expect(o).toEqual({
      help: false,
      json: true,
      selector: {
        limit: DEFAULT_SCAN_LIMIT,
        services: ['dedupe', 'aggregator', 'archiver'],
        errorClasses: ['X'],
        since: new Date(NOW - 7_200_000),
      },
    });
    expect(parseLs([], now).selector).toEqual({ limit: DEFAULT_SCAN_LIMIT });
  });

  it('ls: malformed values name the flag', () => {
    expect(usageError(() => parseLs(['--since', 'soon'], now))).toMatch(
      /^--since: "soon" is not a time/,
    );
    expect(usageError(() => parseLs(['--limit', '1e3'], now))).toMatch(
      /^--limit: must be a whole number/,
    );
    expect(usageError(() => parseLs(['--limit', '0'], now))).toMatch(
      /^--limit: must be at least 1/,
    );
    expect(usageError(() => parseLs(['--service', 'a b'], now))).toMatch(
      /^--service: invalid service/,
    );
    expect(usageError(() => parseLs(['--service', ','], now))).toMatch(/at least one value/);
    expect(usageError(() => parseLs(['--device-hash', 'ABC'], now))).toMatch(/16 lowercase hex/);
    expect(usageError(() => parseLs(['--since', '1h', '--until', '2h'], now))).toMatch(
      /--since must be before --until/,
    );
    expect(usageError(() => parseLs(['--what'], now))).toMatch(/Unknown option '--what'/);
    expect(usageError(() => parseLs(['extra'], now))).toMatch(/Unexpected argument 'extra'/);
    expect(usageError(() => parseLs(['--since'], now))).toMatch(/argument missing/);
  });

  it('show: a positional seq and --seq merge; something must be named', () => {
    expect(parseShow(['7', '--seq', '3,7'], now).selector.seqs).toEqual([3, 7]);
    expect(parseShow(['--device', 'dev-1'], now).selector.devices).toEqual(['dev-1']);
    expect(usageError(() => parseShow([], now))).toMatch(/name a dead letter/);
    expect(usageError(() => parseShow(['x'], now))).toMatch(/^<seq>:/);
    expect(usageError(() => parseShow(['1', '2'], now))).toMatch(/unexpected argument "2"/);
    expect(parseShow(['--help'], now).help).toBe(true);
  });

  it('redrive: needs a selector or --all; rate and replay services', () => {
    const o = parseRedrive(['--seq', '4-6', '--rate', '2.5', '--keep'], now);
    expect(o).toMatchObject({
      selector: { seqs: [4, 5, 6] },
      rate: 2.5,
      keep: true,
      dryRun: false,
      all: false,
      skipRefused: false,
      replayServices: DEFAULT_REPLAY_SERVICES,
    });
    expect(parseRedrive(['--all'], now).all).toBe(true);
    expect(
      parseRedrive(['--all', '--replay-services', 'aggregator,exporter-*'], now).replayServices,
    ).toEqual(['aggregator', 'exporter-*']);
    expect(usageError(() => parseRedrive([], now))).toMatch(/needs a selection/);
    expect(usageError(() => parseRedrive(['--limit', '5', '--json'], now))).toMatch(
      /needs a selection/,
    );
    expect(usageError(() => parseRedrive(['--all', '--rate', '0'], now))).toMatch(
      /^--rate: must be greater than 0/,
    );
    expect(usageError(() => parseRedrive(['--all', '--replay-services', 'A'], now))).toMatch(
      /^--replay-services:/,
    );
  });

  it('purge: needs a selector or --all, and --yes or --dry-run', () => {
    expect(parsePurge(['--service', 'dedupe', '--yes'], now).selector.services).toEqual(['dedupe']);
    expect(parsePurge(['--all', '--dry-run'], now)).toMatchObject({ all: true, dryRun: true });
    expect(usageError(() => parsePurge(['--yes'], now))).toMatch(/needs a selection/);
    expect(usageError(() => parsePurge(['--all'], now))).toMatch(/add --yes/);
  });
});

describe('selectors', () => {
  it('hasSelector: anything but --limit', () => {
    expect(hasSelector({ limit: 5 })).toBe(false);
    expect(hasSelector({ limit: 5, seqs: [1] })).toBe(true);
    expect(hasSelector({ limit: 5, until: new Date() })).toBe(true);
    expect(hasSelector({ limit: 5, devices: ['d'] })).toBe(true);
  });

  it('filterOf hashes raw device ids and keeps given hashes', () => {
    const f = filterOf(
      { limit: 1, devices: ['d1'], deviceHashes: ['00000000000000aa'], services: ['s'] },
      (id) => `h(${id})`,
    );
    expect(f).toEqual({ services: ['s'], deviceHashes: ['00000000000000aa', 'h(d1)'] });
  });

  it.each([
    ['mongo-capture', true],
    ['aggregator', true],
    ['exporter', true],
    ['exporter-mqtt', true],
    ['exporters', false],
    ['dedupe', false],
    ['webhook-dispatcher', false],
  ])('replay service %s: %s', (service, expected) => {
    expect(isReplayService(service, DEFAULT_REPLAY_SERVICES)).toBe(expected);
  });
});

describe('table', () => {
  it('aligns columns, right-aligns numbers and trims trailing spaces', () => {
    expect(
      renderTable(
        [{ header: 'NAME' }, { header: 'N', align: 'right' }, { header: 'NOTE' }],
        [
          ['a', '1', ''],
          ['longer', '100', 'x'],
        ],
      ),
    ).toBe(['NAME      N  NOTE', 'a         1', 'longer  100  x'].join('\n'));
  });

  it('makes message text safe for a terminal', () => {
    expect(printable('a\u001b[2Jb\nc\td')).toBe('a?[2Jb?c?d');
    expect(printable('abcdef', 4)).toBe('abc…');
    expect(renderTable([{ header: 'X' }], [['\u001b]0;pwned\u0007']])).toBe('X\n?]0;pwned?');
  });
});
