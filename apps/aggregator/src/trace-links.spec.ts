import { rng } from '@sluice/testing';
import { decodeTraceLinks } from './closer';
import { accumulate, cellKey, SCOPE_DEVICE, SCOPE_REGION, type CleanMessage } from './partial';
import { parseResolutions, windowStart } from './resolutions';
import { cellLinks, ROLLUP_TRACE_LINKS, TRACE_LINK_BYTES, traceLinkHex } from './writer';

const hex = (n: number, random: () => number) =>
  Array.from({ length: n }, () => Math.floor(random() * 16).toString(16)).join('');

describe('roll-up span links', () => {
  it('keeps only sampled, well-formed traceparents, as trace id + span id + flags', () => {
    const t = 'a'.repeat(32);
    const s = 'b'.repeat(16);
    expect(traceLinkHex(`00-${t}-${s}-01`)).toBe(`${t}${s}01`);
    expect(traceLinkHex(`00-${t}-${s}-03`)).toBe(`${t}${s}03`);
    expect(traceLinkHex(`00-${t}-${s}-00`)).toBeUndefined(); // not sampled: never exported
    expect(traceLinkHex(`00-${'0'.repeat(32)}-${s}-01`)).toBeUndefined();
    expect(traceLinkHex(`00-${t}-${'0'.repeat(16)}-01`)).toBeUndefined();
    expect(traceLinkHex(`01-${t}-${s}-01`)).toBeUndefined();
    expect(traceLinkHex(`00-${t.toUpperCase()}-${s}-01`)).toBeUndefined();
    expect(traceLinkHex('garbage')).toBeUndefined();
    expect(traceLinkHex(undefined)).toBeUndefined();

    const stored = Buffer.from(`${t}${s}01${'c'.repeat(32)}${'d'.repeat(16)}01ff`, 'hex');
    expect(stored.length).toBe(2 * TRACE_LINK_BYTES + 1);
    expect(decodeTraceLinks(stored)).toEqual([
      { context: { traceId: t, spanId: s, traceFlags: 1, isRemote: true } },
      {
        context: { traceId: 'c'.repeat(32), spanId: 'd'.repeat(16), traceFlags: 1, isRemote: true },
      },
    ]);
    expect(decodeTraceLinks(null)).toEqual([]);
  });

  it('links every cell to distinct messages merged into it, at most ROLLUP_TRACE_LINKS, all of them when fewer (against a per-reading reference)', () => {
    const random = rng(12);
    // 5s is not a multiple of the finest (2s): attributed per reading.
    const resolutions = parseResolutions(['2s', '10s', '5s', '1m'], []);
    const now = Date.UTC(2026, 0, 10, 12);
    const devices = ['d1', 'd2', 'd3', 'd4'];
    const messages: CleanMessage[] = Array.from({ length: 120 }, (_, i) => ({
      id: `m${i}`,
      detections: 0,
      invalid: 0,
      // Every fifth message has no (sampled) trace.
      trace:
        i % 5 === 4
          ? i % 10 === 4
            ? undefined
            : `00-${hex(32, random)}-${hex(16, random)}-00`
          : `00-${hex(32, random)}-${hex(16, random)}-01`,
      readings: Array.from({ length: 1 + Math.floor(random() * 6) }, () => ({
        device: devices[Math.floor(random() * devices.length)]!,
        region: random() < 0.7 ? 'eu' : 'us',
        sensor: random() < 0.5 ? 'temp' : 'hum',
        t: now - Math.floor(random() * 90_000),
        value: random(),
      })),
    }));
    const acc = accumulate(messages, resolutions, now, 60_000);
    const links = cellLinks(messages, acc.cells, resolutions)!;

    // Reference: every (reading, resolution, scope) → its cell → the message.
    const expected = new Map<string, Set<string>>();
    for (const m of messages) {
      const h = traceLinkHex(m.trace);
      if (!h) continue;
      for (const r of m.readings)
        for (const res of resolutions) {
          const s = windowStart(r.t, res.ms);
          for (const key of [
            cellKey(res.name, SCOPE_DEVICE, r.device, r.sensor, s),
            cellKey(res.name, SCOPE_REGION, r.region, r.sensor, s),
          ]) {
            let set = expected.get(key);
            if (!set) expected.set(key, (set = new Set()));
            set.add(h);
          }
        }
    }
    let full = 0;
    let partial = 0;
    for (const [key, cell] of acc.cells) {
      const got = links.get(cell);
      const want = expected.get(key) ?? new Set<string>();
      const list = got ? got.match(new RegExp(`.{${TRACE_LINK_BYTES * 2}}`, 'g'))! : [];
      expect(list.join('')).toBe(got ?? '');
      expect(new Set(list).size).toBe(list.length);
      for (const l of list) expect(want.has(l)).toBe(true);
      expect(list.length).toBe(Math.min(ROLLUP_TRACE_LINKS, want.size));
      if (want.size > ROLLUP_TRACE_LINKS) full++;
      else if (want.size > 0) partial++;
    }
    // Both regimes occur: region cells past the bound, device cells under it.
    expect(full).toBeGreaterThan(0);
    expect(partial).toBeGreaterThan(0);
  });

  it('is undefined when no message carries a sampled traceparent', () => {
    const resolutions = parseResolutions(['1s'], []);
    const now = Date.UTC(2026, 0, 10, 12);
    const m: CleanMessage = {
      id: 'x',
      detections: 0,
      invalid: 0,
      readings: [{ device: 'd', region: 'eu', sensor: 's', t: now, value: 1 }],
    };
    expect(cellLinks([m], accumulate([m], resolutions, now, 0).cells, resolutions)).toBeUndefined();
  });
});
