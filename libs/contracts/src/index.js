"use strict";
var __createBinding = (this && this.__createBinding) || (Object.create ? (function(o, m, k, k2) {
    if (k2 === undefined) k2 = k;
    var desc = Object.getOwnPropertyDescriptor(m, k);
    if (!desc || ("get" in desc ? !m.__esModule : desc.writable || desc.configurable)) {
      desc = { enumerable: true, get: function() { return m[k]; } };
    }
    Object.defineProperty(o, k2, desc);
}) : (function(o, m, k, k2) {
    if (k2 === undefined) k2 = k;
    o[k2] = m[k];
}));
var __exportStar = (this && this.__exportStar) || function(m, exports) {
    for (var p in m) if (p !== "default" && !Object.prototype.hasOwnProperty.call(exports, p)) __createBinding(exports, m, p);
};
Object.defineProperty(exports, "__esModule", { value: true });
exports.ingestStatusToJSON = exports.ingestStatusFromJSON = exports.IngestStatus = exports.IngestServiceService = exports.IngestServiceClient = exports.IngestRequest = exports.IngestAck = exports.EventRejection = exports.DeadLetter = exports.rollupScopeToJSON = exports.rollupScopeFromJSON = exports.RollupScope = exports.Rollup = exports.TelemetryEvent = exports.EventBatch = exports.Event = exports.DetectionEvent = exports.Detection = exports.BoundingBox = void 0;
// Public API of @sluice/contracts. Generated names are re-exported one by one: every generated
// file declares its own protobufPackage/DeepPartial/MessageFns, so `export *` would collide.
var telemetry_1 = require("./gen/sluice/telemetry/v1/telemetry");
Object.defineProperty(exports, "BoundingBox", { enumerable: true, get: function () { return telemetry_1.BoundingBox; } });
Object.defineProperty(exports, "Detection", { enumerable: true, get: function () { return telemetry_1.Detection; } });
Object.defineProperty(exports, "DetectionEvent", { enumerable: true, get: function () { return telemetry_1.DetectionEvent; } });
Object.defineProperty(exports, "Event", { enumerable: true, get: function () { return telemetry_1.Event; } });
Object.defineProperty(exports, "EventBatch", { enumerable: true, get: function () { return telemetry_1.EventBatch; } });
Object.defineProperty(exports, "TelemetryEvent", { enumerable: true, get: function () { return telemetry_1.TelemetryEvent; } });
var rollup_1 = require("./gen/sluice/telemetry/v1/rollup");
Object.defineProperty(exports, "Rollup", { enumerable: true, get: function () { return rollup_1.Rollup; } });
Object.defineProperty(exports, "RollupScope", { enumerable: true, get: function () { return rollup_1.RollupScope; } });
Object.defineProperty(exports, "rollupScopeFromJSON", { enumerable: true, get: function () { return rollup_1.rollupScopeFromJSON; } });
Object.defineProperty(exports, "rollupScopeToJSON", { enumerable: true, get: function () { return rollup_1.rollupScopeToJSON; } });
var dead_letter_1 = require("./gen/sluice/ops/v1/dead_letter");
Object.defineProperty(exports, "DeadLetter", { enumerable: true, get: function () { return dead_letter_1.DeadLetter; } });
var gateway_1 = require("./gen/sluice/gateway/v1/gateway");
Object.defineProperty(exports, "EventRejection", { enumerable: true, get: function () { return gateway_1.EventRejection; } });
Object.defineProperty(exports, "IngestAck", { enumerable: true, get: function () { return gateway_1.IngestAck; } });
Object.defineProperty(exports, "IngestRequest", { enumerable: true, get: function () { return gateway_1.IngestRequest; } });
Object.defineProperty(exports, "IngestServiceClient", { enumerable: true, get: function () { return gateway_1.IngestServiceClient; } });
Object.defineProperty(exports, "IngestServiceService", { enumerable: true, get: function () { return gateway_1.IngestServiceService; } });
Object.defineProperty(exports, "IngestStatus", { enumerable: true, get: function () { return gateway_1.IngestStatus; } });
Object.defineProperty(exports, "ingestStatusFromJSON", { enumerable: true, get: function () { return gateway_1.ingestStatusFromJSON; } });
Object.defineProperty(exports, "ingestStatusToJSON", { enumerable: true, get: function () { return gateway_1.ingestStatusToJSON; } });
__exportStar(require("./subjects"), exports);
__exportStar(require("./codec"), exports);
__exportStar(require("./wire/index"), exports);
__exportStar(require("./topology"), exports);
//# sourceMappingURL=index.js.map