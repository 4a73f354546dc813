// A destination's filters: regions become the subject filters of its consumer (the server does not
// even send the rest); kinds, labels, confidence and streams are applied to each record by a wrapper
// around the sink, which also narrows a frame to its matching detections.
import type { Topology } from '@sluice/contracts';
import {
  float32,
  type Sink,
  type SinkHealth,
  type SinkRecord,
  type WriteResult,
} from '@sluice/sinks-core';
import type { DestinationFilters } from './config';

/** The clean subjects a destination's consumer reads: its regions, or every region. */
export function consumerSubjects(filters: DestinationFilters, topology: Topology): string[] {
  return filters.regions?.length
    ? filters.regions.map((r) => topology.clean(r))
    : [topology.filters.clean];
}

/** Applies {@link DestinationFilters} to one record at a time. */
export class RecordFilter {
  private readonly kinds: ReadonlySet<string> | undefined;
  private readonly labels: ReadonlySet<string> | undefined;
  private readonly regions: ReadonlySet<string> | undefined;
  private readonly streams: ReadonlySet<string> | undefined;
  private readonly minConfidence: number | undefined;
  /** Whether detections within a frame are filtered (labels or confidence). */
  readonly narrowsFrames: boolean;

  constructor(
    filters: DestinationFilters,
    private readonly topology: Topology,
  ) {
    const set = (v: string[] | undefined) => (v?.length ? new Set(v) : undefined);
    this.kinds = set(filters.kinds);
    this.labels = set(filters.labels);
    this.regions = set(filters.regions);
    this.streams = set(filters.streams);
    this.minConfidence = filters.minConfidence;
    this.narrowsFrames = this.labels !== undefined || this.minConfidence !== undefined;
  }

  /** Whether every record passes unchanged (no filter set but regions, which the consumer applies). */
  get passesAll(): boolean {
    return (
      this.kinds === undefined &&
      this.streams === undefined &&
      this.regions === undefined &&
      !this.narrowsFrames
    );
  }

  private region(r: SinkRecord): string {
    const parsed = this.topology.parse(r.source.subject);
    if (parsed && (parsed.kind === 'clean' || parsed.kind === 'replay')) return parsed.region;
    return r.event.kind?.value.region ?? '';
  }

  /**
   * The record as the destination receives it, or `undefined` when it is filtered out. A frame whose
   * detections are narrowed is a copy with only the matching ones; a frame left with none (or that had
   * none) is dropped when labels or a minimum confidence are set.
   */
  apply(r: SinkRecord): SinkRecord | undefined {
    const kind = r.event.kind;
    if (!kind) return r; // flatten() hands out no record without a kind
    if (this.kinds && !this.kinds.has(kind.$case)) return undefined;
    // Replayed batches come through a consumer of their own that has no region filter.
    if (this.regions && !this.regions.has(this.region(r))) return undefined;
    if (kind.$case !== 'detection') return r;
    const frame = kind.value;
    if (this.streams && !this.streams.has(frame.streamId)) return undefined;
    if (!this.narrowsFrames) return r;
    const labels = this.labels;
    const min = this.minConfidence;
    const kept = frame.detections.filter(
      (d) =>
        (labels === undefined || labels.has(d.label)) &&
        (min === undefined || float32(d.confidence) >= min),
    );
    if (kept.length === 0) return undefined;
    if (kept.length === frame.detections.length) return r;
    return {
      id: r.id,
      source: r.source,
      event: { kind: { $case: 'detection', value: { ...frame, detections: kept } } },
    };
  }
}

/**
 * A sink that hands the inner sink only the records its filter keeps (narrowed frames as copies) and
 * maps the inner sink's rejections back to the caller's indexes. Records filtered out count as
 * settled: they are acked with their message.
 */
export class FilteredSink implements Sink {
  readonly name: string;

  constructor(
    private readonly inner: Sink,
    private readonly filter: RecordFilter,
    private readonly onFiltered: (count: number) => void = () => undefined,
  ) {
    this.name = inner.name;
  }

  connect(): Promise<void> {
    return this.inner.connect();
  }

  async write(records: ReadonlyArray<SinkRecord>): Promise<WriteResult> {
    if (this.filter.passesAll) return this.inner.write(records);
    const kept: SinkRecord[] = [];
    const at: number[] = [];
    records.forEach((r, i) => {
      const out = this.filter.apply(r);
      if (out === undefined) return;
      kept.push(out);
      at.push(i);
    });
    if (kept.length < records.length) this.onFiltered(records.length - kept.length);
    if (kept.length === 0) return { rejected: [] };
    const result = await this.inner.write(kept);
    return {
      // An index the inner sink made up stays out of range, so the runner's contract check sees it.
      rejected: result.rejected.map((r) => ({ index: at[r.index] ?? -1, error: r.error })),
    };
  }

  isRetriable(error: unknown): boolean {
    return this.inner.isRetriable(error);
  }

  close(deadline: number): Promise<void> {
    return this.inner.close(deadline);
  }

  health(): Promise<SinkHealth> {
    return this.inner.health();
  }
}
