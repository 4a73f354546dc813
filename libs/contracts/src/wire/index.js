"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.SUPPORTED_SCHEMA_VERSIONS = exports.parseWireEvent = exports.parseWireBody = exports.createWireParser = exports.InvalidWireOptionsError = exports.DEFAULT_WIRE_LIMITS = exports.withoutSchemaVersion = void 0;
var canonical_1 = require("./canonical");
Object.defineProperty(exports, "withoutSchemaVersion", { enumerable: true, get: function () { return canonical_1.withoutSchemaVersion; } });
var options_1 = require("./options");
Object.defineProperty(exports, "DEFAULT_WIRE_LIMITS", { enumerable: true, get: function () { return options_1.DEFAULT_WIRE_LIMITS; } });
Object.defineProperty(exports, "InvalidWireOptionsError", { enumerable: true, get: function () { return options_1.InvalidWireOptionsError; } });
var parser_1 = require("./parser");
Object.defineProperty(exports, "createWireParser", { enumerable: true, get: function () { return parser_1.createWireParser; } });
Object.defineProperty(exports, "parseWireBody", { enumerable: true, get: function () { return parser_1.parseWireBody; } });
Object.defineProperty(exports, "parseWireEvent", { enumerable: true, get: function () { return parser_1.parseWireEvent; } });
var versions_1 = require("./versions");
Object.defineProperty(exports, "SUPPORTED_SCHEMA_VERSIONS", { enumerable: true, get: function () { return versions_1.SUPPORTED_SCHEMA_VERSIONS; } });
//# sourceMappingURL=index.js.map