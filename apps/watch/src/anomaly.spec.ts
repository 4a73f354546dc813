import { judge, type AnomalyParams, type Baseline } from './anomaly';

const params: AnomalyParams = { alpha: 0.05, z: 5, minHistory: 20, minStd: 1e-6 };

/** Deterministic standard normal samples (mulberry32 + Box–Muller). */
function gaussian(seed: number): () => number {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}

/** Indexes of the windows judged anomalous, and the judgements. */
function run(series: number[], p = params) {
  let b: Baseline | undefined;
  const fired: number[] = [];
  const judged = series.map((v, i) => {
    const j = judge(b, v, p);
    if (j.anomalous) fired.push(i);
    b = j.next;
    return j;
  });
  return { fired, judged, final: b! };
}

describe('anomaly rule on known series', () => {
  it('noise: 5 × 2000 windows of Gaussian noise raise nothing', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const g = gaussian(seed);
      const series = Array.from({ length: 2000 }, () => 20 + 0.5 * g());
      expect(run(series).fired).toEqual([]);
    }
  });

  it('spike: one window far outside the band fires once, with value, baseline and score', () => {
    const g = gaussian(7);
    const series = Array.from({ length: 200 }, () => 20 + 0.5 * g());
    series[120] = 35;
    const { fired, judged } = run(series);
    expect(fired).toEqual([120]);
    const j = judged[120]!;
    expect(j.before!.mean).toBeGreaterThan(19.5);
    expect(j.before!.mean).toBeLessThan(20.5);
    expect(j.score!).toBeGreaterThan(10);
    // The spike enters the baseline clipped: the band after it stays close to the one before.
    expect(Math.sqrt(judged[121]!.before!.variance)).toBeLessThan(
      2 * Math.sqrt(j.before!.variance),
    );
  });

  it('a negative spike fires too (|score|)', () => {
    const g = gaussian(8);
    const series = Array.from({ length: 100 }, () => 5 + 0.1 * g());
    series[50] = 3;
    const { fired, judged } = run(series);
    expect(fired).toEqual([50]);
    expect(judged[50]!.score!).toBeLessThan(-5);
  });

  it('step: fires from the step on, then the baseline learns the new level and it stops', () => {
    const g = gaussian(9);
    const series = Array.from({ length: 400 }, (_, i) => (i < 100 ? 10 : 20) + 0.5 * g());
    const { fired, final } = run(series);
    expect(fired[0]).toBe(100);
    // Every alert belongs to the step's episode (consecutive windows right after it)...
    expect(fired).toEqual(Array.from({ length: fired.length }, (_, k) => 100 + k));
    // ...which ends: the last 200 windows raise nothing and the baseline sits at the new level.
    expect(fired[fired.length - 1]!).toBeLessThan(200);
    expect(final.mean).toBeGreaterThan(19.5);
    expect(final.mean).toBeLessThan(20.5);
  });

  it('drift: a slow trend (0.002 std per window) is followed, not alerted', () => {
    const g = gaussian(10);
    const series = Array.from({ length: 3000 }, (_, i) => 50 + 0.001 * i + 0.5 * g());
    const { fired, final } = run(series);
    expect(fired).toEqual([]);
    expect(final.mean).toBeGreaterThan(52);
  });

  it('minimum history: nothing fires before minHistory windows', () => {
    const series = [1, 1.1, 0.9, 1, 1000, 1, 1.05, 0.95, 1, 1, 1, 1, 1, 1, 1];
    const { fired } = run(series, { ...params, minHistory: 5, z: 4 });
    expect(fired.every((i) => i >= 5)).toBe(true);
    expect(fired).not.toContain(4);
  });

  it('a flat series uses the std floor: a change is scored, not divided by zero', () => {
    const series = [...Array.from({ length: 20 }, () => 3), 3.5];
    const { fired, judged } = run(series, { ...params, minStd: 0.1, z: 4 });
    expect(fired).toEqual([20]);
    expect(judged[20]!.score).toBeCloseTo(5, 6);
  });
});
