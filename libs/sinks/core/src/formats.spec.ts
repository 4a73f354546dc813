import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { decodeBatch, encodeBatch, Event } from '@sluice/contracts';
import {
  csvHeader,
  csvRow,
  CSV_COLUMNS,
  decodeRecord,
  encodeJsonRecord,
  EXPORT_CONTENT_TYPES,
  EXPORT_SCHEMA_VERSION,
  float32,
  InvalidExportRecordError,
  parseCsv,
  recordsFromCsv,
  renderRecord,
  toExportRecord,
  type ExportKind,
} from './formats';
import { GOLDEN_EVENTS, GOLDEN_RECORDS } from './test-fixtures/golden';
import goldenText from './test-fixtures/golden-records.json';
import { detectionEvent, telemetryEvent } from './test-events';

/** The events as a sink receives them: through the clean stream's protobuf (floats become 32-bit). */
const viaStream = (events: readonly Event[]) =>
  decodeBatch(encodeBatch({ batchId: 'b', events: [...events] })).events;

describe('export formats (golden)', () => {
  it('builds the golden record of each event, in memory and after the protobuf of the clean stream', () => {
    expect(GOLDEN_EVENTS.map(toExportRecord)).toEqual(GOLDEN_RECORDS);
    const decoded = viaStream(GOLDEN_EVENTS);
    // The stream's protobuf really changed the floats; the record did not.
    const d = decoded[1]!.kind!.value as { detections: Array<{ confidence: number }> };
    expect(d.detections[0]!.confidence).not.toBe(0.91);
    expect(decoded.map(toExportRecord)).toEqual(GOLDEN_RECORDS);
  });

  it('JSON: one line per record, the golden fields in the golden order', () => {
    GOLDEN_EVENTS.forEach((event, i) => {
      const r = renderRecord(event, 'json');
      expect(r.contentType).toBe('application/json');
      const text = r.body.toString('utf8');
      expect(text).not.toContain('\n');
      // Byte for byte the golden file's record (its key order included).
      expect(text).toBe(JSON.stringify(goldenText[i]));
      expect(decodeRecord('json', r.body)).toEqual(GOLDEN_RECORDS[i]);
      expect(encodeJsonRecord(GOLDEN_RECORDS[i]!).toString()).toBe(text);
    });
  });

  it('protobuf: the single sluice.telemetry.v1.Event, which reads back into the golden record', () => {
    expect(EXPORT_CONTENT_TYPES.protobuf).toBe(
      'application/x-protobuf; proto=sluice.telemetry.v1.Event',
    );
    GOLDEN_EVENTS.forEach((event, i) => {
      const r = renderRecord(event, 'protobuf');
      expect(Event.decode(r.body).kind!.value.eventId).toBe(GOLDEN_RECORDS[i]!.event_id);
      expect(decodeRecord('protobuf', r.body)).toEqual(GOLDEN_RECORDS[i]);
    });
    expect(() => decodeRecord('protobuf', Buffer.from('{"x":1}'))).toThrow(
      /cannot decode sluice.telemetry.v1.Event/,
    );
  });

  it('CSV: a fixed header per kind, one row per event (JSON cells), read back into the golden record', () => {
    expect(csvHeader('telemetry')).toBe(
      'export_schema_version,kind,event_id,device_id,event_time,sensor_type,value,unit,firmware_version,region,schema_version,attributes\n',
    );
    expect(csvHeader('detection')).toBe(
      'export_schema_version,kind,event_id,device_id,stream_id,frame_time,region,schema_version,firmware_version,attributes,detections\n',
    );
    // Every field of the record is a column, in the record's order.
    GOLDEN_RECORDS.forEach((rec) => expect(CSV_COLUMNS[rec.kind]).toEqual(Object.keys(rec)));
    GOLDEN_RECORDS.forEach((rec) => {
      const text = csvHeader(rec.kind as ExportKind) + csvRow(rec);
      expect(recordsFromCsv(text)).toEqual([rec]);
    });
    expect(csvRow(GOLDEN_RECORDS[0]!)).toBe(
      '1,telemetry,golden-t-1,pump-ü-7,2026-11-01T12:00:00.123Z,engine_temp,0.30000000000000004,celsius,1.2.3,eu-west,2,"{""note"":""a,b \\""quoted\\""\\nnext line"",""site"":""plant-7""}"\n',
    );
  });

  it('CSV parsing keeps quoted commas, quotes and newlines, and drops a final partial row', () => {
    expect(parseCsv('a,"b,""c""\nd",e\r\nx,y')).toEqual([['a', 'b,"c"\nd', 'e']]);
    expect(() => recordsFromCsv('nope,header\n1,2\n')).toThrow(/unknown CSV header/);
  });

  it('carries the schema version as a JSON field, and a JSON reader refuses another version', () => {
    expect(GOLDEN_RECORDS.every((r) => r.export_schema_version === EXPORT_SCHEMA_VERSION)).toBe(
      true,
    );
    const other = Buffer.from(JSON.stringify({ ...GOLDEN_RECORDS[0], export_schema_version: 9 }));
    expect(() => decodeRecord('json', other)).toThrow(/export_schema_version is 9/);
  });

  it('32-bit floats are written as the shortest decimal of the float', () => {
    expect(float32(Math.fround(0.91))).toBe(0.91);
    expect(float32(0.1)).toBe(0.1);
    expect(float32(1 / 3)).toBe(0.33333334);
    expect(float32(0)).toBe(0);
    expect(float32(1)).toBe(1);
    expect(float32(1e-7)).toBe(1e-7);
  });

  it('refuses events a destination could not hold the same way everywhere', () => {
    const noTime = telemetryEvent('t-x');
    if (noTime.kind?.$case === 'telemetry') noTime.kind.value.eventTime = undefined;
    expect(() => toExportRecord(noTime)).toThrow(InvalidExportRecordError);
    expect(() => toExportRecord(telemetryEvent('t-nan', { value: Number.NaN }))).toThrow(
      /t-nan: value is NaN/,
    );
    const d = detectionEvent('d-inf');
    if (d.kind?.$case === 'detection') d.kind.value.detections[0]!.confidence = Infinity;
    expect(() => toExportRecord(d)).toThrow(/detections\[0\]\.confidence is Infinity/);
    expect(() => toExportRecord({})).toThrow(/no kind/);
  });

  it('times are UTC milliseconds: a protobuf Timestamp with nanos is cut to the millisecond', () => {
    // Event{telemetry: {event_id: "t-ns", event_time: {seconds: 1700000000, nanos: 123456789}}}
    const w = new BinaryWriter();
    w.uint32(10).fork();
    w.uint32(10).string('t-ns');
    w.uint32(26).fork().uint32(8).int64(1_700_000_000).uint32(16).int32(123_456_789).join();
    w.join();
    const rec = decodeRecord('protobuf', w.finish());
    expect(rec).toMatchObject({ event_id: 't-ns', event_time: '2023-11-14T22:13:20.123Z' });
  });
});
