import { topology, type Detection, type Event } from '@sluice/contracts';
import {
  RecordRejectedError,
  type Sink,
  type SinkRecord,
  type WriteResult,
} from '@sluice/sinks-core';
import { recordsOf, telemetryEvent } from '@sluice/sinks-core/testing';
import { consumerSubjects, FilteredSink, RecordFilter } from './filter';

const topo = topology('');

function det(label: string, confidence: number): Detection {
  return { objectId: label, classId: 1, label, confidence, trackerId: '', bbox: undefined };
}

function frame(id: string, detections: Detection[], streamId = 'cam-1', region = 'eu-west'): Event {
  return {
    kind: {
      $case: 'detection',
      value: {
        eventId: id,
        deviceId: 'cam-dev',
        streamId,
        frameTime: new Date(Date.UTC(2026, 10, 1)),
        region,
        schemaVersion: 2,
        detections,
        attributes: {},
        firmwareVersion: '',
      },
    },
  };
}

const labelsOf = (r: SinkRecord | undefined) =>
  r?.event.kind?.$case === 'detection' ? r.event.kind.value.detections.map((d) => d.label) : null;

/** Records what it was given; rejects the ids in `refuse`. */
class MemorySink implements Sink {
  readonly name = 'memory';
  readonly writes: SinkRecord[][] = [];
  constructor(private readonly refuse = new Set<string>()) {}
  connect = () => Promise.resolve();
  close = () => Promise.resolve();
  health = () => Promise.resolve({ ok: true });
  isRetriable = () => false;
  write(records: ReadonlyArray<SinkRecord>): Promise<WriteResult> {
    this.writes.push([...records]);
    return Promise.resolve({
      rejected: records
        .map((r, index) => ({ r, index }))
        .filter(({ r }) => this.refuse.has(r.id))
        .map(({ index }) => ({ index, error: new RecordRejectedError('refused') })),
    });
  }
}

describe('RecordFilter', () => {
  it('regions are the consumer subject filters; without regions the consumer reads every region', () => {
    expect(consumerSubjects({ regions: ['eu-west', 'us-east'] }, topology('ns'))).toEqual([
      'ns.telemetry.clean.eu-west',
      'ns.telemetry.clean.us-east',
    ]);
    expect(consumerSubjects({}, topology('ns'))).toEqual(['ns.telemetry.clean.>']);
  });

  it('keeps detections by label and confidence (32-bit, as exported); drops frames left empty', () => {
    const f = new RecordFilter({ labels: ['person', 'car'], minConfidence: 0.5 }, topo);
    const [mixed, none, all, empty, reading] = recordsOf([
      frame('f1', [det('person', 0.9), det('dog', 0.99), det('car', 0.3), det('car', 0.5)]),
      frame('f2', [det('dog', 0.9), det('person', 0.49)]),
      frame('f3', [det('person', 0.91), det('car', Math.fround(0.5))]),
      frame('f4', []),
      telemetryEvent('t1'),
    ]);
    const narrowed = f.apply(mixed!);
    expect(labelsOf(narrowed)).toEqual(['person', 'car']);
    expect(narrowed!.id).toBe('f1');
    expect(narrowed!.source).toBe(mixed!.source);
    // The record handed in is not changed.
    expect(labelsOf(mixed)).toEqual(['person', 'dog', 'car', 'car']);
    expect(f.apply(none!)).toBeUndefined();
    expect(f.apply(all!)).toBe(all);
    expect(f.apply(empty!)).toBeUndefined();
    // Telemetry is selected by kinds only.
    expect(f.apply(reading!)).toBe(reading);
  });

  it('kinds, streams and regions (for replayed records, whose subject names their region)', () => {
    const f = new RecordFilter({ kinds: ['detection'], streams: ['cam-2'], regions: ['us'] }, topo);
    const recs = recordsOf([
      frame('a', [det('person', 1)], 'cam-2'),
      frame('b', [det('person', 1)], 'cam-1'),
      telemetryEvent('t'),
    ]);
    expect(recs.map((r) => f.apply(r)?.id)).toEqual([undefined, undefined, undefined]);
    const inUs = recs.map((r) => ({
      ...r,
      source: { ...r.source, subject: 'telemetry.clean.us' },
    }));
    expect(inUs.map((r) => f.apply(r)?.id)).toEqual(['a', undefined, undefined]);
    expect(new RecordFilter({}, topo).passesAll).toBe(true);
    expect(new RecordFilter({ kinds: ['telemetry'] }, topo).passesAll).toBe(false);
  });
});

describe('FilteredSink', () => {
  it('writes only what the filter keeps and maps rejections back to the caller indexes', async () => {
    const inner = new MemorySink(new Set(['f3']));
    let filtered = 0;
    const sink = new FilteredSink(
      inner,
      new RecordFilter({ labels: ['person'] }, topo),
      (n) => (filtered += n),
    );
    const records = recordsOf([
      telemetryEvent('t0'),
      frame('f1', [det('dog', 1)]),
      frame('f2', [det('person', 1), det('dog', 1)]),
      frame('f3', [det('person', 1)]),
    ]);
    const result = await sink.write(records);
    expect(inner.writes).toHaveLength(1);
    expect(inner.writes[0]!.map((r) => r.id)).toEqual(['t0', 'f2', 'f3']);
    expect(labelsOf(inner.writes[0]![1])).toEqual(['person']);
    expect(result.rejected.map((r) => r.index)).toEqual([3]);
    expect(filtered).toBe(1);
    // Nothing kept: the inner sink is not called.
    expect(await sink.write(recordsOf([frame('x', [det('cat', 1)])]))).toEqual({ rejected: [] });
    expect(inner.writes).toHaveLength(1);
    expect(filtered).toBe(2);
  });
});
