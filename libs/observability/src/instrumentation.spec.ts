import { redactDevicePath, REDACTED_QUERY_PARAMS } from './instrumentation';

describe('device ids in traced URLs', () => {
  it('replaces each /devices/<id> segment by the route template, and nothing else', () => {
    expect(redactDevicePath('/v1/devices/boat-17/latest')).toBe('/v1/devices/{device}/latest');
    expect(redactDevicePath('/v1/devices/boat%2F17')).toBe('/v1/devices/{device}');
    expect(redactDevicePath('/a/devices/x/b/devices/y')).toBe(
      '/a/devices/{device}/b/devices/{device}',
    );
    expect(redactDevicePath('/v1/devices')).toBe('/v1/devices');
    expect(redactDevicePath('/v1/series')).toBe('/v1/series');
  });

  it('redacts device query parameters beside the default credentials', () => {
    expect(REDACTED_QUERY_PARAMS).toEqual(
      expect.arrayContaining(['device', 'device_id', 'deviceId', 'X-Amz-Signature']),
    );
  });
});
