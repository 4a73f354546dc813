import { createHmac } from 'node:crypto';
import { loadConfig } from '@sluice/config';
import { TelemetryEvent } from '@sluice/contracts';
import { config } from './config';
import { decodeDelivery, encodeDelivery } from './delivery';
import { EndpointGates } from './endpoint-gate';
import { ConsecutiveState, filterSchema, holds } from './filters';
import { parseRetryAfter } from './http-client';
import { generateSecret, secretKey, signatureHeader, webhookId } from './signing';
import { embeddedIPv4, SsrfPolicy } from './ssrf';

describe('signing', () => {
  it('matches the Standard Webhooks construction and is deterministic per (event, subscription)', () => {
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const header = signatureHeader(
      [secret],
      'msg_p5jXN8AQM9LWM0D4loKWxJek',
      1614265330,
      '{"test": 2432232314}',
    );
    // The example from the Standard Webhooks specification.
    expect(header).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
    const key = Buffer.from(secret.slice(6), 'base64');
    expect(header.slice(3)).toBe(
      createHmac('sha256', key)
        .update('msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}')
        .digest('base64'),
    );
    expect(signatureHeader([secret, generateSecret()], 'a', 1, 'b').split(' ')).toHaveLength(2);
    expect(webhookId('ev-1', 'sub-1')).toBe(webhookId('ev-1', 'sub-1'));
    expect(webhookId('ev-1', 'sub-1')).not.toBe(webhookId('ev-1', 'sub-2'));
    expect(() => secretKey('abc')).toThrow(/whsec_/);
    expect(() => secretKey('whsec_AAAA')).toThrow(/24..64 bytes/);
  });
});

describe('SSRF policy', () => {
  const p = new SsrfPolicy([]);
  it.each([
    '127.0.0.1',
    '10.0.0.1',
    '172.31.255.255',
    '192.168.0.1',
    '169.254.169.254',
    '0.0.0.0',
    '224.0.0.5',
    '255.255.255.255',
    '100.64.0.1',
    '::1',
    '::',
    'fe80::1',
    'fd12::1',
    'ff02::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:10.0.0.1',
    '64:ff9b::a9fe:a9fe',
    '2002:7f00:1::1',
  ])('refuses %s', (a) => expect(p.refusal(a)).toBeDefined());
  it.each(['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8'])('allows %s', (a) =>
    expect(p.refusal(a)).toBeUndefined(),
  );
  it('honours the allow-list, including for mapped addresses', () => {
    const q = new SsrfPolicy(['127.0.0.0/8']);
    expect(q.refusal('127.0.0.1')).toBeUndefined();
    expect(q.refusal('::ffff:127.0.0.1')).toBeUndefined();
    expect(q.refusal('10.0.0.1')).toBeDefined();
    expect(() => new SsrfPolicy(['nonsense'])).toThrow(/invalid CIDR/);
    expect(embeddedIPv4('::ffff:1.2.3.4')).toBe('1.2.3.4');
  });
});

describe('filters', () => {
  it('validates and evaluates conditions', () => {
    expect(filterSchema.safeParse({ type: 'telemetry', value: {} }).success).toBe(false);
    expect(filterSchema.safeParse({ type: 'telemetry', value: { inside: [5, 1] } }).success).toBe(
      false,
    );
    expect(filterSchema.safeParse({ type: 'rollup', avg: { gt: 1 } }).success).toBe(true);
    expect(filterSchema.safeParse({ type: 'nope' }).success).toBe(false);
    expect(holds({ inside: [1, 3] }, 3)).toBe(true);
    expect(holds({ outside: [1, 3] }, 3)).toBe(false);
    expect(holds({ gt: 1, lt: 3 }, 2)).toBe(true);
    expect(holds({ gt: 1, lt: 3 }, 3)).toBe(false);
  });

  it('counts consecutive readings per (subscription, device, sensor), idempotent per event', () => {
    const s = new ConsecutiveState(10);
    const ev = (id: string, device = 'd') =>
      TelemetryEvent.fromPartial({ eventId: id, deviceId: device, sensorType: 't' });
    expect(s.observe('s', ev('1'), true, 2)).toBe(0);
    expect(s.observe('s', ev('x', 'other'), true, 2)).toBe(0);
    expect(s.observe('s', ev('2'), true, 2)).toBe(2);
    expect(s.observe('s', ev('2'), true, 2)).toBe(2); // redelivered: same decision
    expect(s.observe('s', ev('3'), true, 2)).toBe(0); // run restarted
    expect(s.observe('s', ev('4'), false, 2)).toBe(0);
    expect(s.observe('s', ev('5'), true, 2)).toBe(0);
  });
});

describe('endpoint gates', () => {
  it('bounds concurrency, queues a bounded number and defers the rest', async () => {
    const g = new EndpointGates({ queueSize: 1, maxQueueWaitMs: 1_000, busyDelayMs: 100 });
    const lim = { maxConcurrency: 1, ratePerS: 1000 };
    expect(g.acquire('a', lim)).toEqual({ type: 'go' });
    const queued = g.acquire('a', lim);
    expect(queued).toBeInstanceOf(Promise);
    expect(g.acquire('a', lim)).toMatchObject({ type: 'defer', reason: 'busy' });
    expect(g.acquire('b', lim)).toEqual({ type: 'go' }); // another endpoint is unaffected
    g.release('a');
    await expect(queued).resolves.toEqual({ type: 'go' });
    g.pause('a', lim, Date.now() + 5_000);
    expect(g.acquire('a', lim)).toMatchObject({ type: 'defer', reason: 'paused' });
    g.close();
  });
});

describe('config, delivery format, Retry-After', () => {
  it('parses the retry schedule and names bad values', () => {
    const env = { WEBHOOK_ADMIN_TOKEN: 'x'.repeat(16) };
    expect(loadConfig(config, env).WEBHOOK_RETRY_SCHEDULE).toEqual([
      5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000,
    ]);
    expect(() => loadConfig(config, { ...env, WEBHOOK_RETRY_SCHEDULE: '5s,soon' })).toThrow(
      /WEBHOOK_RETRY_SCHEDULE/,
    );
    expect(() => loadConfig(config, {})).toThrow(/WEBHOOK_ADMIN_TOKEN/);
  });

  it('round-trips deliveries and rejects malformed ones', () => {
    const d = {
      v: 1 as const,
      webhookId: 'msg_1',
      subscriptionId: '00000000-0000-4000-8000-000000000000',
      type: 'sluice.test.v1' as const,
      body: '{}',
      generation: 0,
      createdAt: 'now',
    };
    expect(decodeDelivery(encodeDelivery(d))).toEqual(d);
    expect(() => decodeDelivery(Buffer.from('nope'))).toThrow(/not JSON/);
    expect(() => decodeDelivery(Buffer.from('{"v":2}'))).toThrow(/does not match/);
  });

  it('reads Retry-After as seconds or a date', () => {
    expect(parseRetryAfter('3')).toBe(3_000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6_000);
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});
