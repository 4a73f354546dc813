/** Keyed, stable, non-reversible form of a device id for logs and span attributes (16 hex chars). */
export type DeviceHasher = (deviceId: string) => string;
/** Builds a hasher; ids are HMAC-SHA256'd with `key` so a log reader cannot brute-force short ids. */
export declare function createDeviceHasher(key: string): DeviceHasher;
