/**
 * Latency histogram with log-scaled buckets (16 per power of two, ~4 % resolution) from 1 µs to
 * ~1 h: constant memory, no allocation per sample.
 */
export class LatencyHistogram {
  private static readonly SUB = 16;
  private readonly counts = new Float64Array(32 * LatencyHistogram.SUB);
  private n = 0;
  private maxMs = 0;

  record(ms: number): void {
    const us = Math.max(1, ms * 1000);
    const i = Math.min(this.counts.length - 1, Math.floor(Math.log2(us) * LatencyHistogram.SUB));
    this.counts[i]!++;
    this.n++;
    if (ms > this.maxMs) this.maxMs = ms;
  }

  get count(): number {
    return this.n;
  }

  /** Upper edge of the bucket holding the p-th percentile, ms; 0 when empty. */
  percentile(p: number): number {
    if (this.n === 0) return 0;
    const rank = Math.ceil((p / 100) * this.n);
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(this.maxMs, 2 ** ((i + 1) / LatencyHistogram.SUB) / 1000);
    }
    return this.maxMs;
  }

  reset(): void {
    this.counts.fill(0);
    this.n = 0;
    this.maxMs = 0;
  }
}

/** Counters of one run; the live line and the summary read them. */
export class RunStats {
  batchesSent = 0;
  eventsSent = 0;
  batchesAcked = 0;
  eventsAccepted = 0;
  eventsRejected = 0;
  /** Acks with status RETRY and transport errors answered by a resend. */
  retries = 0;
  /** Batches given up after their retries, or lost to a broken stream. */
  failures = 0;
  /** Batches not sent because every connection had its maximum in flight (offered load not met). */
  skipped = 0;
  duplicatesSent = 0;
  /** Readings not sent because the gateway advised sampling their tier (gRPC sender). */
  eventsSampled = 0;
  /** Readings the overloaded gateway shed (rejected at field `sampling`). */
  eventsShed = 0;
  readonly latency = new LatencyHistogram();
  /** Latency since the last live line. */
  readonly window = new LatencyHistogram();

  recordAck(ms: number, accepted: number, rejected: number): void {
    this.batchesAcked++;
    this.eventsAccepted += accepted;
    this.eventsRejected += rejected;
    this.latency.record(ms);
    this.window.record(ms);
  }
}

const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;

/** The JSON summary printed at the end. */
export function summarise(stats: RunStats, seconds: number) {
  return {
    seconds: round(seconds),
    batches_sent: stats.batchesSent,
    events_sent: stats.eventsSent,
    batches_acked: stats.batchesAcked,
    events_accepted: stats.eventsAccepted,
    events_rejected: stats.eventsRejected,
    duplicates_sent: stats.duplicatesSent,
    events_sampled: stats.eventsSampled,
    events_shed: stats.eventsShed,
    retries: stats.retries,
    failures: stats.failures,
    skipped: stats.skipped,
    accepted_events_per_s: round(stats.eventsAccepted / Math.max(seconds, 1e-9), 0),
    ack_p50_ms: round(stats.latency.percentile(50), 3),
    ack_p99_ms: round(stats.latency.percentile(99), 3),
  };
}
