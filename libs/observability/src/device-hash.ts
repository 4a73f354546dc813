import { createHmac } from 'node:crypto';

/** Keyed, stable, non-reversible form of a device id for logs and span attributes (16 hex chars). */
export type DeviceHasher = (deviceId: string) => string;

/** Builds a hasher; ids are HMAC-SHA256'd with `key` so a log reader cannot brute-force short ids. */
export function createDeviceHasher(key: string): DeviceHasher {
  const cache = new Map<string, string>();
  return (deviceId) => {
    let h = cache.get(deviceId);
    if (h === undefined) {
      h = createHmac('sha256', key).update(deviceId).digest('hex').slice(0, 16);
      // Bounded: the cache only saves CPU for the active fleet, it is never a source of truth.
      if (cache.size >= 100_000) cache.clear();
      cache.set(deviceId, h);
    }
    return h;
  };
}
