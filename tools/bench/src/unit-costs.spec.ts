import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readUnitCosts, recordUnitCosts, UNIT_COSTS_FILE } from './unit-costs';

describe('unit costs file', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'unit-costs-'));
    file = join(dir, 'unit-costs.json');
    writeFileSync(file, readFileSync(UNIT_COSTS_FILE));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('every entry names its bench, unit and source; a value is a positive number or null', () => {
    const { entries } = readUnitCosts();
    expect(Object.keys(entries).length).toBeGreaterThan(5);
    for (const [name, e] of Object.entries(entries)) {
      expect([name, typeof e.bench, typeof e.unit, typeof e.source]).toEqual([
        name,
        'string',
        'string',
        'string',
      ]);
      if (e.value !== null) expect(e.value).toBeGreaterThan(0);
    }
  });

  it('records measured entries with the bench, command and day, and leaves the rest', () => {
    const before = readUnitCosts(file);
    const written = recordUnitCosts(
      'archive',
      'npm run bench -- archive --seconds 3',
      {
        parquet_bytes_per_event: { value: 6.5 },
        jsonl_gz_bytes_per_event: { value: NaN },
        protobuf_bytes_per_event: undefined,
      },
      { file, today: '2027-01-02' },
    );
    expect(written).toEqual(['parquet_bytes_per_event']);
    const after = readUnitCosts(file);
    expect(after.entries['parquet_bytes_per_event']).toEqual({
      ...before.entries['parquet_bytes_per_event'],
      value: 6.5,
      bench: 'archive',
      measured: '2027-01-02',
      source: 'npm run bench -- archive --seconds 3',
    });
    expect(after.entries['jsonl_gz_bytes_per_event']).toEqual(
      before.entries['jsonl_gz_bytes_per_event'],
    );
  });

  it('refuses an entry the file does not define', () => {
    expect(() => recordUnitCosts('x', 'cmd', { nope: { value: 1 } }, { file })).toThrow(/nope/);
  });
});
