/** Inclusive ranges of stream sequences, sorted, disjoint and not adjacent: `[[1, 5], [8, 8]]`. */
export type SeqRanges = Array<[number, number]>;

/** Ranges of a list of sequences (any order, duplicates allowed). */
export function rangesOf(seqs: Iterable<number>): SeqRanges {
  const sorted = [...new Set(seqs)].sort((a, b) => a - b);
  const out: SeqRanges = [];
  for (const s of sorted) {
    const last = out[out.length - 1];
    if (last && s === last[1] + 1) last[1] = s;
    else out.push([s, s]);
  }
  return out;
}

/** The union of two range lists. */
export function union(a: SeqRanges, b: SeqRanges): SeqRanges {
  const all = [...a, ...b].map(([x, y]) => [x, y] as [number, number]).sort((p, q) => p[0] - q[0]);
  const out: SeqRanges = [];
  for (const r of all) {
    const last = out[out.length - 1];
    if (last && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
    else out.push(r);
  }
  return out;
}

/** Whether `seq` is in one of the ranges (binary search). */
export function contains(ranges: SeqRanges, seq: number): boolean {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const [a, b] = ranges[mid]!;
    if (seq < a) hi = mid - 1;
    else if (seq > b) lo = mid + 1;
    else return true;
  }
  return false;
}

/**
 * Folds ranges into a floor ("everything up to here"): drops ranges at or below `floor` and absorbs
 * a range that starts right after it. Returns the new floor and the ranges above it.
 */
export function fold(floor: number, ranges: SeqRanges): { floor: number; ranges: SeqRanges } {
  let f = floor;
  const out: SeqRanges = [];
  for (const [a, b] of ranges) {
    if (b <= f) continue;
    if (a <= f + 1 && out.length === 0) f = b;
    else out.push([Math.max(a, f + 1), b]);
  }
  return { floor: f, ranges: out };
}

/** Smallest and largest of `values` (a loop: spreading 100k+ values into Math.min overflows the stack). */
export function bounds(values: Iterable<number>): { min: number; max: number } {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}
