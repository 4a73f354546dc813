import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Metric names of the archiver (Prometheus, on `/metrics`). */
export const ARCHIVER_METRICS = {
  filesWritten: 'sluice_archiver_files_written_total',
  bytesWritten: 'sluice_archiver_bytes_written_total',
  rowsWritten: 'sluice_archiver_rows_written_total',
  commitDuration: 'sluice_archiver_commit_duration_seconds',
  commitFailures: 'sluice_archiver_commit_failures_total',
  bufferRows: 'sluice_archiver_buffer_rows',
  bufferBytes: 'sluice_archiver_buffer_bytes',
  bufferFill: 'sluice_archiver_buffer_fill',
  oldestUnflushedAge: 'sluice_archiver_oldest_unflushed_event_age_seconds',
  duplicatesSkipped: 'sluice_archiver_duplicate_messages_total',
  eventsRejected: 'sluice_archiver_events_rejected_total',
  segmentsRecovered: 'sluice_archiver_segments_recovered_total',
  partitionsExpired: 'sluice_archiver_partitions_expired_total',
  filesCompacted: 'sluice_archiver_files_compacted_total',
  leader: 'sluice_archiver_leader',
  leaseRenewalDuration: 'sluice_archiver_lease_renewal_duration_seconds',
  leaseTickDelay: 'sluice_archiver_lease_tick_delay_seconds',
  leaseStepDowns: 'sluice_archiver_lease_step_downs_total',
} as const;

export class ArchiverMetrics {
  readonly filesWritten: Counter<'dataset' | 'format'>;
  readonly bytesWritten: Counter<'dataset' | 'format'>;
  readonly rowsWritten: Counter<'dataset'>;
  readonly commitDuration: Histogram;
  readonly commitFailures: Counter<'retriable'>;
  readonly bufferRows: Gauge;
  readonly bufferBytes: Gauge;
  readonly bufferFill: Gauge;
  readonly oldestUnflushedAge: Gauge;
  readonly duplicatesSkipped: Counter;
  readonly eventsRejected: Counter<'error_class'>;
  readonly segmentsRecovered: Counter;
  readonly partitionsExpired: Counter<'dataset'>;
  readonly filesCompacted: Counter<'dataset'>;
  readonly leader: Gauge<'stream' | 'consumer'>;
  readonly leaseRenewalDuration: Histogram<'outcome' | 'late'>;
  readonly leaseTickDelay: Histogram;
  readonly leaseStepDowns: Counter;
  private leaderOf:
    { labels: { stream: string; consumer: string }; isLeader: () => boolean } | undefined;

  constructor(registry: Registry) {
    const registers = [registry];
    const m = ARCHIVER_METRICS;
    this.filesWritten = new Counter({
      name: m.filesWritten,
      help: 'Archive files written (segment files and compaction outputs)',
      labelNames: ['dataset', 'format'],
      registers,
    });
    this.bytesWritten = new Counter({
      name: m.bytesWritten,
      help: 'Bytes of archive files written',
      labelNames: ['dataset', 'format'],
      registers,
    });
    this.rowsWritten = new Counter({
      name: m.rowsWritten,
      help: 'Events archived (committed segments)',
      labelNames: ['dataset'],
      registers,
    });
    this.commitDuration = new Histogram({
      name: m.commitDuration,
      help: 'Duration of one segment commit: encode, upload, manifests, journal',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.commitFailures = new Counter({
      name: m.commitFailures,
      help: 'Failed segment commit attempts',
      labelNames: ['retriable'],
      registers,
    });
    this.bufferRows = new Gauge({
      name: m.bufferRows,
      help: 'Events buffered in the open segment',
      registers,
    });
    this.bufferBytes = new Gauge({
      name: m.bufferBytes,
      help: 'Payload bytes buffered in the open segment',
      registers,
    });
    this.bufferFill = new Gauge({
      name: m.bufferFill,
      help: 'Fill of the open segment against its closest limit (rows, bytes, age): 0..1',
      registers,
    });
    this.oldestUnflushedAge = new Gauge({
      name: m.oldestUnflushedAge,
      help: 'Age of the oldest event not yet durable in the archive (since JetStream stored it)',
      registers,
    });
    this.duplicatesSkipped = new Counter({
      name: m.duplicatesSkipped,
      help: 'Redelivered messages already in the archive (acknowledged without writing)',
      registers,
    });
    this.eventsRejected = new Counter({
      name: m.eventsRejected,
      help: 'Events the archive cannot hold, dead-lettered',
      labelNames: ['error_class'],
      registers,
    });
    this.segmentsRecovered = new Counter({
      name: m.segmentsRecovered,
      help: 'Interrupted segment commits undone at start or before the next commit',
      registers,
    });
    this.partitionsExpired = new Counter({
      name: m.partitionsExpired,
      help: 'Partitions removed by retention',
      labelNames: ['dataset'],
      registers,
    });
    this.filesCompacted = new Counter({
      name: m.filesCompacted,
      help: 'Small files merged away by compaction',
      labelNames: ['dataset'],
      registers,
    });
    this.leader = new Gauge({
      name: m.leader,
      help: '1 while this replica holds the lease of its durable consumer (the one that consumes and writes), 0 on a standby',
      labelNames: ['stream', 'consumer'],
      registers,
      collect: () => {
        const l = this.leaderOf;
        if (l) this.leader.set(l.labels, l.isLeader() ? 1 : 0);
      },
    });
    const leaseBuckets = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
    this.leaseRenewalDuration = new Histogram({
      name: m.leaseRenewalDuration,
      help: 'Round trip of a lease renewal (KV update), by outcome (renewed, lost, failed) and whether it was sent past the validity (late)',
      labelNames: ['outcome', 'late'],
      buckets: leaseBuckets,
      registers,
    });
    this.leaseTickDelay = new Histogram({
      name: m.leaseTickDelay,
      help: 'How long after its due time a lease tick (renewal or acquisition attempt) ran: event-loop stalls and CPU starvation',
      buckets: leaseBuckets,
      registers,
    });
    this.leaseStepDowns = new Counter({
      name: m.leaseStepDowns,
      help: 'Times the leader lost its lease and stepped down to standby',
      registers,
    });
  }

  /** Reports {@link ARCHIVER_METRICS.leader} of the durable from `isLeader`, read at each scrape. */
  watchLeader(stream: string, consumer: string, isLeader: () => boolean): void {
    this.leaderOf = { labels: { stream, consumer }, isLeader };
    this.leader.set(this.leaderOf.labels, isLeader() ? 1 : 0);
  }
}
