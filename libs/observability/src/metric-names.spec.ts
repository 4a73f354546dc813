import {
  AGGREGATOR_METRICS,
  DEDUPE_METRICS,
  HTTP_METRICS,
  INGEST_METRICS,
  METRICS,
  SINK_METRICS,
  STORE_METRICS,
  WEBHOOK_METRICS,
} from './index';

const all = [
  METRICS,
  HTTP_METRICS,
  AGGREGATOR_METRICS,
  DEDUPE_METRICS,
  INGEST_METRICS,
  SINK_METRICS,
  STORE_METRICS,
  WEBHOOK_METRICS,
].flatMap((m) => Object.values(m));

describe('metric name registry', () => {
  it('names every metric once, with the sluice_ prefix and Prometheus naming', () => {
    expect(new Set(all).size).toBe(all.length);
    for (const name of all) expect(name).toMatch(/^sluice_[a-z][a-z0-9_]*[a-z0-9]$/);
  });

  it('keeps unit suffixes honest: no counter-style _total on a duration, no unit before _total', () => {
    for (const name of all) {
      expect(name).not.toMatch(/_total_/);
      expect(name).not.toMatch(/_(milliseconds|ms)(_|$)/);
    }
  });
});
