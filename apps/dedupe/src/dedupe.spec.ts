import { DecodeError, encodeBatch, topology } from '@sluice/contracts';
import { loadConfig } from '@sluice/config';
import { PoisonMessageError } from '@sluice/actor';
import { dedupeConfig } from './config';
import { claimKey, claimOwner, cleanMessageId, MAX_PLAIN_ID_BYTES } from './keys';
import { decodeRawMessage } from './raw-message';
import { telemetryEvent } from './test-helpers';

const topo = topology('');

function raw(subject: string, ids: string[], region = 'eu') {
  return { subject, data: encodeBatch({ batchId: 'b1', events: ids.map((id) => telemetryEvent(id, region)) }) };
}

describe('claim keys', () => {
  it('uses <prefix>dedupe:<event_id> for ordinary ids', () => {
    expect(claimKey('t1:', 'evt-42')).toBe('t1:dedupe:evt-42');
  });

  it('hashes ids longer than the bound into a separate key family', () => {
    const long = 'x'.repeat(MAX_PLAIN_ID_BYTES + 1);
    const key = claimKey('p:', long);
    expect(key).toMatch(/^p:dedupe-h:[0-9a-f]{64}$/);
    expect(claimKey('p:', long)).toBe(key);
    expect(claimKey('p:', `${long}y`)).not.toBe(key);
    expect(claimKey('p:', 'x'.repeat(MAX_PLAIN_ID_BYTES))).toBe(`p:dedupe:${'x'.repeat(MAX_PLAIN_ID_BYTES)}`);
  });

  it('names owners and clean message ids by stream and sequence', () => {
    expect(claimOwner('EU_RAW', 7)).toBe('EU_RAW:7');
    expect(cleanMessageId('EU_RAW', 7)).toBe('raw:EU_RAW:7');
  });
});

describe('decodeRawMessage', () => {
  it('keeps the first occurrence of an id repeated in one message', () => {
    const m = decodeRawMessage(raw('telemetry.raw.eu', ['a', 'b', 'a', 'c', 'b']), topo);
    expect(m.ids).toEqual(['a', 'b', 'c']);
    expect(m.events).toHaveLength(3);
    expect(m.repeatedInMessage).toBe(2);
    expect(m.region).toBe('eu');
  });

  it('takes the region from the subject, or from the events outside the topology', () => {
    expect(decodeRawMessage(raw('telemetry.raw.us-east', ['a'], 'eu'), topo).region).toBe('us-east');
    expect(decodeRawMessage(raw('edge.eu.raw', ['a', 'b'], 'ap'), topo).region).toBe('ap');
    const mixed = { subject: 'edge.raw', data: encodeBatch({ batchId: 'b', events: [telemetryEvent('a', 'eu'), telemetryEvent('b', 'us')] }) };
    expect(() => decodeRawMessage(mixed, topo)).toThrow(PoisonMessageError);
  });

  it('rejects bytes that are not an EventBatch with a DecodeError', () => {
    expect(() => decodeRawMessage({ subject: 'telemetry.raw.eu', data: new TextEncoder().encode('{"not":"protobuf"}') }, topo)).toThrow(DecodeError);
  });

  it('rejects events without an id or a kind', () => {
    expect(() => decodeRawMessage(raw('telemetry.raw.eu', ['a', '']), topo)).toThrow(/event 1 has an empty event_id/);
    const noKind = { subject: 'telemetry.raw.eu', data: encodeBatch({ batchId: 'b', events: [{}] }) };
    expect(() => decodeRawMessage(noKind, topo)).toThrow(/event 0 has no kind/);
  });
});

describe('dedupe config', () => {
  it('has safe defaults', () => {
    const c = loadConfig(dedupeConfig, {});
    expect(c.DEDUPE_TTL).toBe(7 * 86_400_000);
    expect(c.DEDUPE_ON_REDIS_DOWN).toBe('retry');
    expect(c.DEDUPE_STREAMS).toEqual([]);
    expect(c.DEDUPE_CLEAN_DUPLICATE_WINDOW).toBe(600_000);
    expect(c.DEDUPE_BACKOFF).toEqual([250, 1000, 5000, 15000, 60000]);
    expect(c.DEDUPE_CRASH_AT).toBeUndefined();
  });

  it('names the variable in errors', () => {
    expect(() => loadConfig(dedupeConfig, { DEDUPE_ON_REDIS_DOWN: 'drop' })).toThrow(/DEDUPE_ON_REDIS_DOWN/);
    expect(() => loadConfig(dedupeConfig, { DEDUPE_BACKOFF: '1s,soon' })).toThrow(/DEDUPE_BACKOFF.*soon/);
    expect(() => loadConfig(dedupeConfig, { DEDUPE_ACK_WAIT: '10m' })).toThrow(/DEDUPE_CLEAN_DUPLICATE_WINDOW/);
    expect(() => loadConfig(dedupeConfig, { DEDUPE_CRASH_AT: 'after-claim', SLUICE_ENV: 'production', DEVICE_ID_HASH_KEY: 'a-real-secret-key-123' })).toThrow(/DEDUPE_CRASH_AT/);
  });
});
