import { parseTierRules } from '@sluice/contracts';
import { createDeviceHasher, createLogger } from '@sluice/observability';
import { Registry } from 'prom-client';
import { SamplingController, samplingLadder } from './sampling';

const log = createLogger({
  service: 'sampling-test',
  level: 'silent',
  hashDeviceId: createDeviceHasher('test-key-0123456789'),
});

describe('samplingLadder', () => {
  it('halves bulk to its minimum, then diagnostic to its minimum', () => {
    expect(samplingLadder(0.125, 0.25)).toEqual([
      { bulk: 1, diagnostic: 1 },
      { bulk: 0.5, diagnostic: 1 },
      { bulk: 0.25, diagnostic: 1 },
      { bulk: 0.125, diagnostic: 1 },
      { bulk: 0.125, diagnostic: 0.5 },
      { bulk: 0.125, diagnostic: 0.25 },
    ]);
    expect(samplingLadder(0.3, 1)).toEqual([
      { bulk: 1, diagnostic: 1 },
      { bulk: 0.5, diagnostic: 1 },
      { bulk: 0.3, diagnostic: 1 },
    ]);
  });
});

describe('SamplingController', () => {
  function controller(samples: Array<{ peakFill: number; publishLatencyMs: number }>) {
    let i = 0;
    const registry = new Registry();
    const c = new SamplingController(
      {
        rules: parseTierRules('safety=engine_temp;diagnostic=engine_*;bulk=*'),
        enter: 0.8,
        exit: 0.5,
        sustainMs: 100,
        publishLatencyMs: 500,
        minKeep: 0.25,
        diagnosticMinKeep: 1,
      },
      { takeLoadSample: () => samples[Math.min(i++, samples.length - 1)]! },
      registry,
      log,
    );
    return { c, registry };
  }
  const load = (peakFill: number, publishLatencyMs = 0) => ({ peakFill, publishLatencyMs });
  const bulkKeep = (c: SamplingController) => c.advice.tiers.find((t) => t.tier === 'bulk')!.keep;

  it('steps down only when the pressure holds, holds between the thresholds, steps back up below exit', () => {
    const { c } = controller([
      load(0.9),
      load(0.9), // 0, 50: not yet sustained
      load(0.9), // 100: sustained for 100 ms: one step
      load(0.7),
      load(0.7),
      load(0.7), // between enter and exit: hold
      load(0.2, 450), // latency 450/500 = 0.9: pressure again
      load(1.5),
      load(1.5), // 350, 400: the second step at 400 (the floor, 0.25)
      load(1.5),
      load(1.5), // 450, 500: at the floor, stays
      load(0.1),
      load(0.1),
      load(0.1), // 550..650: one step back up at 650
      load(0.1),
      load(0.1), // 700, 750: back to 1 at 750
    ]);
    const seen: number[] = [];
    for (let t = 0; t <= 750; t += 50) {
      c.tick(t);
      seen.push(bulkKeep(c));
    }
    expect(seen).toEqual([
      1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.25, 0.5, 0.5, 1,
    ]);
    expect(c.overloaded).toBe(false);
    // Safety is always 1, diagnostic was never sampled (its minimum is 1).
    expect(c.advice.tiers.map((t) => [t.tier, t.keep])).toEqual([
      ['safety', 1],
      ['diagnostic', 1],
      ['bulk', 1],
    ]);
  });

  it('meters the advice per tier and the overloads', async () => {
    const { c, registry } = controller([load(1), load(1), load(1)]);
    c.tick(0);
    c.tick(100);
    c.observe(['bulk', 'bulk', 'safety', undefined, 'diagnostic']);
    const text = await registry.metrics();
    expect(text).toContain('sluice_ingest_sampling_keep_ratio{tier="bulk"} 0.5');
    expect(text).toContain('sluice_ingest_sampling_keep_ratio{tier="safety"} 1');
    expect(text).toContain('sluice_ingest_overloaded 1');
    expect(text).toContain('sluice_ingest_overloads_total 1');
    expect(text).toContain('sluice_ingest_sampled_tier_events_total{tier="bulk"} 2');
    expect(text).not.toContain('sluice_ingest_sampled_tier_events_total{tier="diagnostic"}');
  });
});
