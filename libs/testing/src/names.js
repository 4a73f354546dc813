"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.uniqueId = uniqueId;
exports.uniqueStreamName = uniqueStreamName;
const node_crypto_1 = require("node:crypto");
/** `prefix-<time>-<random>` in lower case: safe as a subject token, key prefix or database name. */
function uniqueId(prefix = 't') {
    return `${prefix}-${Date.now().toString(36)}-${(0, node_crypto_1.randomBytes)(4).toString('hex')}`.toLowerCase();
}
/** Upper-case variant for JetStream stream and consumer names (no `.`, `*`, `>`). */
function uniqueStreamName(prefix = 'T') {
    return uniqueId(prefix).toUpperCase().replace(/-/g, '_');
}
//# sourceMappingURL=names.js.map