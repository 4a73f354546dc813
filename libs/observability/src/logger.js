"use strict";
var __importDefault = (this && this.__importDefault) || function (mod) {
    return (mod && mod.__esModule) ? mod : { "default": mod };
};
Object.defineProperty(exports, "__esModule", { value: true });
exports.createLogger = createLogger;
const api_1 = require("@opentelemetry/api");
const pino_1 = __importDefault(require("pino"));
/** Keys whose values are device ids wherever they appear at the top level of a log record. */
const DEVICE_KEYS = ['device_id', 'deviceId', 'device'];
/**
 * JSON logger with `trace_id`/`span_id` of the active span on every line. Device ids are replaced
 * by their keyed hash (as `device_hash`) in the formatter, so no call site can log one raw.
 */
function createLogger(opts) {
    return (0, pino_1.default)({
        level: opts.level ?? 'info',
        base: { service: opts.service },
        timestamp: pino_1.default.stdTimeFunctions.isoTime,
        mixin() {
            const ctx = api_1.trace.getActiveSpan()?.spanContext();
            return ctx ? { trace_id: ctx.traceId, span_id: ctx.spanId } : {};
        },
        formatters: {
            level: (label) => ({ level: label }),
            log(obj) {
                for (const key of DEVICE_KEYS) {
                    const v = obj[key];
                    if (typeof v === 'string') {
                        delete obj[key];
                        obj['device_hash'] = opts.hashDeviceId(v);
                    }
                }
                return obj;
            },
        },
    }, opts.destination ?? pino_1.default.destination({ sync: false }));
}
//# sourceMappingURL=logger.js.map