import { bounds, contains, fold, rangesOf } from './seqset';

describe('sequence sets', () => {
  it('bounds a partition-sized list without spreading it onto the stack', () => {
    const seqs = Array.from({ length: 500_000 }, (_, i) => 1_000_000 - i);
    expect(bounds(seqs)).toEqual({ min: 500_001, max: 1_000_000 });
    expect(bounds(new Set([7]))).toEqual({ min: 7, max: 7 });
  });

  it('keeps ranges, answers membership and folds what the ack floor covers', () => {
    const r = rangesOf([5, 1, 2, 3, 9, 10]);
    expect([1, 3, 4, 5, 8, 10].map((s) => contains(r, s))).toEqual([
      true,
      true,
      false,
      true,
      false,
      true,
    ]);
    const folded = fold(3, r);
    expect(folded.floor).toBeGreaterThanOrEqual(3);
    expect(contains(folded.ranges, 9) || folded.floor >= 9).toBe(true);
  });
});
