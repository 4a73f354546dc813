"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.createDeviceHasher = createDeviceHasher;
const node_crypto_1 = require("node:crypto");
/** Builds a hasher; ids are HMAC-SHA256'd with `key` so a log reader cannot brute-force short ids. */
function createDeviceHasher(key) {
    const cache = new Map();
    return (deviceId) => {
        let h = cache.get(deviceId);
        if (h === undefined) {
            h = (0, node_crypto_1.createHmac)('sha256', key).update(deviceId).digest('hex').slice(0, 16);
            // Bounded: the cache only saves CPU for the active fleet, it is never a source of truth.
            if (cache.size >= 100_000)
                cache.clear();
            cache.set(deviceId, h);
        }
        return h;
    };
}
//# sourceMappingURL=device-hash.js.map