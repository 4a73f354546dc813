import {
  decodeBatch,
  DecodeError,
  DetectionEvent,
  encodeBatch,
  eventId,
  eventTime,
  TelemetryEvent,
  topology,
  type Event,
} from '@sluice/contracts';
import { rng } from '@sluice/testing';
import { loadConfig } from '@sluice/config';
import { PoisonMessageError } from '@sluice/actor';
import { config } from './config';
import { batchOfEvents } from './clean-payload';
import { ClaimBatch, claimOwner, cleanMessageId, MAX_PLAIN_ID_BYTES } from './keys';
import { decodeRawMessage } from './raw-message';
import { telemetryEvent } from './test-fixtures/events';

const topo = topology('');

function raw(subject: string, ids: string[], region = 'eu') {
  return {
    subject,
    data: encodeBatch({ batchId: 'b1', events: ids.map((id) => telemetryEvent(id, region)) }),
  };
}

describe('claim slots', () => {
  const layout = { prefix: 't1:', bucketMs: 600_000, shards: 64 };
  const t = Date.UTC(2026, 10, 28, 12, 34, 56);
  const bucket = Date.UTC(2026, 10, 28, 12, 30);
  /** The slot of one claim. */
  const slotOf = (id: string, time: number) => {
    const b = new ClaimBatch(layout);
    b.add(id, time, b.owner('o'));
    return b.slot(0);
  };

  it('puts an id in the hash of its event-time bucket and shard, as the field', () => {
    const slot = slotOf('evt-42', t);
    expect(slot.key).toMatch(new RegExp(`^t1:claims:${bucket}:(\\d+)$`));
    expect(slot.field).toBe('evt-42');
    expect(slot.bucketEndMs).toBe(bucket + 600_000);
    // Same id, any time in the same bucket: the same slot; the next bucket: another hash.
    expect(slotOf('evt-42', bucket)).toEqual(slot);
    expect(slotOf('evt-42', bucket + 600_000).key).not.toBe(slot.key);
  });

  it('spreads ids over every shard and keeps each id on one', () => {
    const shards = new Set(Array.from({ length: 5000 }, (_, i) => slotOf(`e-${i}`, t).key));
    expect(shards.size).toBe(64);
    expect(slotOf('e-1', t).key).toBe(slotOf('e-1', t + 1).key);
  });

  it('keeps claims column-wise with their owners', () => {
    const b = new ClaimBatch(layout);
    const o1 = b.owner('RAW:1');
    const o2 = b.owner('RAW:2');
    b.add('a', t, o1);
    b.add('b', t, o2);
    expect(b.length).toBe(2);
    expect(b.owners[b.ownerOf[1]!]).toBe('RAW:2');
    expect(b.fields).toEqual(['a', 'b']);
  });

  it('hashes long ids and ids with a newline into a separate key family', () => {
    const long = 'x'.repeat(MAX_PLAIN_ID_BYTES + 1);
    const slot = slotOf(long, t);
    expect(slot.key).toMatch(new RegExp(`^t1:claims-h:${bucket}:\\d+$`));
    expect(slot.field).toMatch(/^[0-9a-f]{64}$/);
    expect(slotOf(`${long}y`, t).field).not.toBe(slot.field);
    expect(slotOf('x'.repeat(MAX_PLAIN_ID_BYTES), t).field).toBe('x'.repeat(MAX_PLAIN_ID_BYTES));
    // 67 three-byte characters = 201 bytes: hashed, although 67 UTF-16 units are few.
    expect(slotOf('€'.repeat(67), t).key).toContain('claims-h:');
    expect(slotOf('a\nb', t).field).toMatch(/^[0-9a-f]{64}$/);
  });

  it('refuses a layout whose slot numbers would not stay exact', () => {
    expect(() => new ClaimBatch({ ...layout, bucketMs: 500 })).toThrow(RangeError);
    expect(() => new ClaimBatch({ ...layout, shards: 5000 })).toThrow(/1–4096 shards/);
  });

  it('buckets a missing, negative or absurd event time at the ends of the range', () => {
    expect(slotOf('a', Number.NaN).key).toBe(slotOf('a', 0).key);
    expect(slotOf('a', -5).key).toBe(slotOf('a', 0).key);
    expect(slotOf('a', 0).bucketEndMs).toBe(600_000);
    expect(Number.isSafeInteger(slotOf('a', 8.64e15).bucketEndMs)).toBe(true);
  });

  it('names owners and clean message ids by stream and sequence', () => {
    expect(claimOwner('EU_RAW', 7)).toBe('EU_RAW:7');
    expect(cleanMessageId('EU_RAW', 7)).toBe('raw:EU_RAW:7');
  });
});

/** The definition: the generated decoder, then dedupe's rules. */
function reference(data: Uint8Array): { ids: string[]; times: number[] } | 'decode' | 'poison' {
  let batch;
  try {
    batch = decodeBatch(data);
  } catch {
    return 'decode';
  }
  const out = { ids: [] as string[], times: [] as number[] };
  for (const e of batch.events) {
    if (e.kind === undefined) return 'poison';
    const id = eventId(e);
    if (id === '') return 'poison';
    if (out.ids.includes(id)) continue;
    out.ids.push(id);
    out.times.push(eventTime(e)?.getTime() ?? 0);
  }
  return out;
}

function randomBatch(seed: number, n: number): Uint8Array {
  const random = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const events = Array.from({ length: n }, (_, i): Event => {
    const id = pick([`e-${i}`, `e-${i}`, 'dup', 'ünï-⛵', 'x'.repeat(300)]);
    const time = pick([new Date(1_700_000_000_123), new Date(-5), undefined]);
    if (random() < 0.2) {
      return {
        kind: {
          $case: 'detection',
          value: DetectionEvent.fromPartial({
            eventId: id,
            deviceId: 'cam',
            region: 'eu',
            ...(time ? { frameTime: time } : {}),
            detections: [{ label: 'boat', bbox: { left: 1, top: 2, width: 3, height: 4 } }],
            attributes: { k: 'v' },
          }),
        },
      };
    }
    return {
      kind: {
        $case: 'telemetry',
        value: TelemetryEvent.fromPartial({
          eventId: id,
          deviceId: 'd',
          region: 'eu',
          sensorType: 's',
          value: 1.5,
          ...(time ? { eventTime: time } : {}),
          attributes: random() < 0.5 ? { a: 'b' } : {},
        }),
      },
    };
  });
  return encodeBatch({ batchId: `b-${seed}`, events });
}

describe('decodeRawMessage', () => {
  it.each([1, 2, 3])(
    'scans what the generated decoder decodes, nested messages checked (seed %i)',
    (seed) => {
      const data = randomBatch(seed, 200);
      const want = reference(data);
      const got = decodeRawMessage({ subject: 'telemetry.raw.eu', data }, topo);
      expect(want).not.toBe('decode');
      expect({ ids: got.ids, times: got.times }).toEqual({
        ids: (want as { ids: string[] }).ids,
        times: (want as { times: number[] }).times,
      });
      // The spans are the events' own bytes: concatenated under a batch id they decode to the same events.
      const rebuilt = decodeBatch(batchOfEvents(data, 'x', got.spans));
      expect(rebuilt.events.map(eventId)).toEqual(got.ids);
    },
  );

  it('rejects with a DecodeError whatever the generated decoder rejects, wherever the bytes are cut', () => {
    const data = randomBatch(4, 30);
    let decodeErrors = 0;
    for (let cut = 1; cut < data.length; cut += 5) {
      const part = data.subarray(0, cut);
      const want = reference(part);
      const scan = () => decodeRawMessage({ subject: 'telemetry.raw.eu', data: part }, topo);
      if (want === 'decode') {
        expect(scan).toThrow(DecodeError);
        decodeErrors++;
      } else if (want === 'poison') expect(scan).toThrow(PoisonMessageError);
      else expect(scan().ids).toEqual(want.ids);
    }
    expect(decodeErrors).toBeGreaterThan(20);
  });

  it('checks nested messages it does not read (a broken bounding box is a DecodeError)', () => {
    const bbox = new Uint8Array([0x0d, 0x00, 0x00]); // float field cut short
    const detection = new Uint8Array([0x32, bbox.length, ...bbox]); // Detection.bbox
    const event = new Uint8Array([0x0a, 0x01, 0x78, 0x3a, detection.length, ...detection]); // DetectionEvent{id "x", detections}
    const wrapped = new Uint8Array([0x12, event.length, ...event]); // Event.detection
    const data = new Uint8Array([0x12, wrapped.length, ...wrapped]); // EventBatch.events
    expect(reference(data)).toBe('decode');
    expect(() => decodeRawMessage({ subject: 'telemetry.raw.eu', data }, topo)).toThrow(
      DecodeError,
    );
  });

  it('keeps the first occurrence of an id repeated in one message', () => {
    const m = decodeRawMessage(raw('telemetry.raw.eu', ['a', 'b', 'a', 'c', 'b']), topo);
    expect(m.ids).toEqual(['a', 'b', 'c']);
    expect(m.spans).toHaveLength(6);
    expect(m.repeatedInMessage).toBe(2);
    expect(m.region).toBe('eu');
  });

  it('takes the region from the subject, or from the events outside the topology', () => {
    expect(decodeRawMessage(raw('telemetry.raw.us-east', ['a'], 'eu'), topo).region).toBe(
      'us-east',
    );
    expect(decodeRawMessage(raw('edge.eu.raw', ['a', 'b'], 'ap'), topo).region).toBe('ap');
    const mixed = {
      subject: 'edge.raw',
      data: encodeBatch({
        batchId: 'b',
        events: [telemetryEvent('a', 'eu'), telemetryEvent('b', 'us')],
      }),
    };
    expect(() => decodeRawMessage(mixed, topo)).toThrow(PoisonMessageError);
  });

  it('rejects bytes that are not an EventBatch with a DecodeError', () => {
    expect(() =>
      decodeRawMessage(
        { subject: 'telemetry.raw.eu', data: new TextEncoder().encode('{"not":"protobuf"}') },
        topo,
      ),
    ).toThrow(DecodeError);
  });

  it('rejects events without an id or a kind', () => {
    expect(() => decodeRawMessage(raw('telemetry.raw.eu', ['a', '']), topo)).toThrow(
      /event 1 has an empty event_id/,
    );
    const noKind = {
      subject: 'telemetry.raw.eu',
      data: encodeBatch({ batchId: 'b', events: [{}] }),
    };
    expect(() => decodeRawMessage(noKind, topo)).toThrow(/event 0 has no kind/);
  });
});

describe('dedupe config', () => {
  it('has safe defaults', () => {
    const c = loadConfig(config, {});
    expect(c.DEDUPE_TTL).toBe(7 * 86_400_000);
    expect(c.DEDUPE_CLAIM_BUCKET).toBe(600_000);
    expect(c.DEDUPE_CLAIM_SHARDS).toBe(64);
    expect(c.DEDUPE_ON_REDIS_DOWN).toBe('retry');
    expect(c.DEDUPE_STREAMS).toEqual([]);
    expect(c.DEDUPE_CLEAN_DUPLICATE_WINDOW).toBe(600_000);
    expect(c.DEDUPE_BACKOFF).toEqual([250, 1000, 5000, 15000, 60000]);
    expect(c.DEDUPE_CRASH_AT).toBeUndefined();
  });

  it('names the variable in errors', () => {
    expect(() => loadConfig(config, { DEDUPE_ON_REDIS_DOWN: 'drop' })).toThrow(
      /DEDUPE_ON_REDIS_DOWN/,
    );
    expect(() => loadConfig(config, { DEDUPE_CLAIM_SHARDS: '5000' })).toThrow(
      /DEDUPE_CLAIM_SHARDS.*4096/,
    );
    expect(() => loadConfig(config, { DEDUPE_CLAIM_BUCKET: '500ms' })).toThrow(
      /DEDUPE_CLAIM_BUCKET.*1s/,
    );
    expect(() => loadConfig(config, { DEDUPE_BACKOFF: '1s,soon' })).toThrow(/DEDUPE_BACKOFF.*soon/);
    expect(() => loadConfig(config, { DEDUPE_ACK_WAIT: '10m' })).toThrow(
      /DEDUPE_CLEAN_DUPLICATE_WINDOW/,
    );
    expect(() =>
      loadConfig(config, {
        DEDUPE_CRASH_AT: 'after-claim',
        SLUICE_ENV: 'production',
        DEVICE_ID_HASH_KEY: 'a-real-secret-key-123',
      }),
    ).toThrow(/DEDUPE_CRASH_AT/);
  });
});
