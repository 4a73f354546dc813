"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.SUPPORTED_SCHEMA_VERSIONS = void 0;
/** The JSON wire schema versions accepted, oldest first. */
exports.SUPPORTED_SCHEMA_VERSIONS = [1, 2];
//# sourceMappingURL=versions.js.map