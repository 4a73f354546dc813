import {
  ProtoFormatError,
  TelemetryEvent,
  decodeBatch,
  encodeBatch,
  type Event,
} from '@sluice/contracts';
import {
  compareRows,
  datasetOf,
  decodeJsonlGz,
  decodeParquet,
  encodeJsonlGz,
  encodeParquet,
  eventDate,
  eventTimeMs,
  partitionKey,
  regionSegment,
  toRow,
  type Row,
  type Rows,
} from '@sluice/archive';
import { SegmentEvents } from './columns';
import { sampleBatches } from './test-fixtures/events';
import { KIND_NONE, scanBatch } from './wire';

const T0 = Date.UTC(2026, 10, 1, 6);

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

/** A length-delimited field. */
function field(no: number, bytes: Uint8Array | number[]): number[] {
  return [(no << 3) | 2, ...varint(bytes.length), ...bytes];
}

const str = (s: string) => [...Buffer.from(s, 'utf8')];

/** An EventBatch of raw TelemetryEvent bytes (what the generated encoder cannot write). */
function rawBatch(batchId: string, telemetry: number[][]): Uint8Array {
  return Uint8Array.from([
    ...field(1, str(batchId)),
    ...telemetry.flatMap((t) => field(2, field(1, t))),
  ]);
}

function telemetry(id: string, over: Partial<TelemetryEvent> = {}): Event {
  return {
    kind: {
      $case: 'telemetry',
      value: {
        eventId: id,
        deviceId: 'dev-1',
        eventTime: new Date(T0),
        sensorType: 'temp',
        value: 1.5,
        unit: 'C',
        firmwareVersion: '1.0',
        region: 'eu-west',
        schemaVersion: 1,
        attributes: {},
        ...over,
      },
    },
  };
}

/** The files the archiver wrote before it read wire bytes: decoded events → rows → sort. */
function rowFiles(payloads: Array<{ region: string; bytes: Uint8Array }>): Map<string, Rows> {
  const parts = new Map<string, Row[]>();
  payloads.forEach((p, b) => {
    const batch = decodeBatch(p.bytes);
    batch.events.forEach((e, i) => {
      const key = partitionKey({
        dataset: datasetOf(e),
        region: regionSegment(e.kind!.value.region || p.region),
        eventDate: eventDate(eventTimeMs(e)!),
      });
      const row = toRow(e, {
        stream: 'S',
        stream_seq: b + 1,
        batch_index: i,
        batch_id: batch.batchId,
        stored_at: 1_000 + b,
      });
      (parts.get(key) ?? parts.set(key, []).get(key)!).push(row);
    });
  });
  const out = new Map<string, Rows>();
  for (const [k, rows] of parts)
    out.set(k, {
      dataset: k.startsWith('telemetry/') ? 'telemetry' : 'detections',
      rows: rows.sort(compareRows),
    } as Rows);
  return out;
}

function segmentOf(payloads: Array<{ region: string; bytes: Uint8Array }>): SegmentEvents {
  const seg = new SegmentEvents();
  payloads.forEach((p, b) =>
    seg.add(
      scanBatch(p.bytes),
      { stream: 'S', seq: b + 1, storedAt: 1_000 + b, subjectRegion: () => p.region },
      new Set(),
    ),
  );
  return seg;
}

/** Rows as plain JSON (maps compare as objects, NaN as null). */
const plain = (x: unknown) => JSON.parse(JSON.stringify(x)) as unknown;

describe('archive columns from wire bytes', () => {
  it('writes the same rows, in the same order and partitions, as decoded events did', () => {
    const batches = sampleBatches('eq', 30, 37);
    batches.push({
      region: 'eu-west',
      events: [
        telemetry('ü-1', {
          deviceId: 'dév-ü',
          sensorType: 'tëmp',
          unit: '°C',
          region: '',
          attributes: { '2': 'b', a: 'x', '1': '', kë: 'v\u{1F600}' },
        }),
        telemetry('same-b', { value: Number.NaN, schemaVersion: 4_294_967_295, region: 'a b/..' }),
        telemetry('same-a', { value: -0, region: 'a b/..' }),
        // One device's events out of time order, and two at the same time.
        telemetry('late', { deviceId: 'dev-9', eventTime: new Date(T0 + 5_000) }),
        telemetry('tie-2', { deviceId: 'dev-9', eventTime: new Date(T0 + 3_000) }),
        telemetry('early', { deviceId: 'dev-9', eventTime: new Date(T0 + 1_000) }),
        telemetry('tie-1', { deviceId: 'dev-9', eventTime: new Date(T0 + 3_000) }),
      ],
    });
    const payloads = batches.map((b, i) => ({
      region: b.region,
      bytes: encodeBatch({ batchId: `bid-${i}`, events: b.events }),
    }));
    const expected = rowFiles(payloads);
    const seg = segmentOf(payloads);
    expect(seg.sorted().map((p) => p.key)).toEqual([...expected.keys()].sort());
    expect(seg.rows).toBe(batches.reduce((n, b) => n + b.events.length, 0));
    for (const p of seg.sorted()) {
      const want = expected.get(p.key)!;
      expect(plain(decodeParquet(seg.encode(p, 'parquet')))).toEqual(
        plain(decodeParquet(encodeParquet(want))),
      );
      expect(decodeJsonlGz(seg.encode(p, 'jsonl.gz'))).toEqual(decodeJsonlGz(encodeJsonlGz(want)));
    }
  });

  it('keeps the last of a repeated field and the last value of a repeated map key', () => {
    const base = [
      ...TelemetryEvent.encode(telemetry('id-1').kind!.value as TelemetryEvent).finish(),
    ];
    const bytes = rawBatch('b', [
      [
        ...base,
        ...field(4, str('humidity')), // sensor_type again
        ...field(10, [...field(1, str('k')), ...field(2, str('v1'))]),
        ...field(10, [...field(1, str('j')), ...field(2, str('w'))]),
        ...field(10, [...field(1, str('k')), ...field(2, str('v2'))]),
        ...field(10, field(1, str('novalue'))),
      ],
    ]);
    const decoded = decodeBatch(bytes).events[0]!.kind!.value as TelemetryEvent;
    expect(decoded.sensorType).toBe('humidity');
    expect(decoded.attributes).toEqual({ k: 'v2', j: 'w', novalue: '' });
    const seg = segmentOf([{ region: 'eu-west', bytes }]);
    const [p] = seg.sorted();
    const [row] = decodeParquet(seg.encode(p!, 'parquet')).rows as unknown as Array<
      Record<string, unknown>
    >;
    expect(row).toMatchObject({ sensor_type: 'humidity', event_id: 'id-1' });
    expect(Object.entries(row!['attributes'] as object)).toEqual([
      ['k', 'v2'],
      ['j', 'w'],
      ['novalue', ''],
    ]);
  });

  it('writes bytes that are not UTF-8 as U+FFFD, as the generated decoder reads them', () => {
    const base = [...TelemetryEvent.encode(telemetry('').kind!.value as TelemetryEvent).finish()];
    const bytes = rawBatch('b', [[...base, ...field(1, [0x61, 0xff, 0x62])]]);
    const id = (decodeBatch(bytes).events[0]!.kind!.value as TelemetryEvent).eventId;
    expect(id).toBe('a\uFFFDb');
    const seg = segmentOf([{ region: 'eu-west', bytes }]);
    const rows = decodeParquet(seg.encode(seg.sorted()[0]!, 'parquet')).rows;
    expect(rows.map((r) => r.event_id)).toEqual([id]);
  });

  it('finds what makes an event unarchivable without decoding it', () => {
    const noKind: Event = { kind: undefined };
    const noTime = telemetry('t-1', { eventTime: undefined });
    const b = scanBatch(
      encodeBatch({ batchId: 'x', events: [telemetry('ok'), noKind, noTime, telemetry('')] }),
    );
    expect(b.count).toBe(4);
    expect(b.kind[1]).toBe(KIND_NONE);
    expect(b.time[0]).toBe(T0);
    expect(Number.isNaN(b.time[2]!)).toBe(true);
    expect(b.idEnd[3]! - b.idStart[3]!).toBe(0);
    expect(b.deviceId[0]).toBe('dev-1');
    expect(b.region[0]).toBe('eu-west');
  });

  it('rejects bytes that are not an EventBatch, as the generated decoder does', () => {
    const good = encodeBatch({ batchId: 'x', events: [telemetry('ok')] });
    for (const bad of [
      good.subarray(0, good.length - 3),
      new TextEncoder().encode('{"not":"protobuf"}'),
      Uint8Array.from(field(2, field(1, field(10, [0x0a, 0x05, 0x61])))),
    ]) {
      expect(() => decodeBatch(bad)).toThrow();
      expect(() => scanBatch(bad)).toThrow(ProtoFormatError);
    }
  });
});
