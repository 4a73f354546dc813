import { NothingToDoError, UsageError } from '../errors';
import {
  dlqHarness,
  hash,
  seedLetters,
  type DlqHarness,
  type Seeded,
} from './test-fixtures/dlq-harness';

describe('sluice dlq purge (real NATS)', () => {
  let h: DlqHarness;
  let s: Seeded;
  let dlqName: string;

  beforeEach(async () => {
    h = await dlqHarness();
    s = await seedLetters(h);
    dlqName = h.topo.streams.dlq.name;
  });
  afterEach(() => h.cleanup());

  it('deletes exactly the selected letters', async () => {
    const before = await h.dlqSeqs();
    const r = await h.run(['purge', '--seq', `${s.webhook},${s.dedupeR1}`, '--yes']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('deleted 2 of 2 dead letters');
    expect(await h.dlqSeqs()).toEqual(before.filter((q) => q !== s.webhook && q !== s.dedupeR1));

    const byDevice = await h.run(['purge', '--device-hash', hash('dev-B'), '--yes', '--json']);
    expect(JSON.parse(byDevice.out)).toMatchObject({ selected: 2, deleted: 2, gone: 0 });
    expect(await h.dlqSeqs()).not.toContain(s.mongoE2);
    expect(await h.dlqSeqs()).not.toContain(s.aggregatorB1);
    expect(await h.dlqSeqs()).toContain(s.mongoE3);
  });

  it('--dry-run lists and deletes nothing; --all --yes empties the DLQ', async () => {
    const before = await h.state(dlqName);
    const dry = await h.run(['purge', '--service', 'aggregator', '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.out).toContain('would delete 2 dead letters');
    expect(await h.state(dlqName)).toEqual(before);

    const all = await h.run(['purge', '--all', '--yes']);
    expect(all.code).toBe(0);
    expect((await h.state(dlqName)).messages).toBe(0);
    // Nothing left to purge.
    const again = await h.run(['purge', '--all', '--yes']);
    expect(again.code).toBe(3);
  });

  it('refuses without --yes, without a selection, or when nothing matches, and deletes nothing', async () => {
    const before = await h.state(dlqName);
    const cases: Array<[string[], number, unknown]> = [
      [['purge', '--seq', String(s.webhook)], 2, UsageError],
      [['purge', '--yes'], 2, UsageError],
      [['purge', '--seq', 'x', '--yes'], 2, UsageError],
      [['purge', '--until', 'soon', '--yes'], 2, UsageError],
      [['purge', '--seq', '999999', '--yes'], 3, NothingToDoError],
      [['purge', '--service', 'nobody', '--yes'], 3, NothingToDoError],
    ];
    for (const [args, code, type] of cases) {
      const r = await h.run(args);
      expect({ args, code: r.code }).toEqual({ args, code });
      expect(r.error).toBeInstanceOf(type as never);
    }
    expect(await h.state(dlqName)).toEqual(before);
  });
});
