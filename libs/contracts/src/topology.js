"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.topology = topology;
const subjects_1 = require("./subjects");
/** Builds the topology of `namespace` (a name token, or `''` for the canonical one). */
function topology(namespace = '') {
    if (namespace !== '')
        (0, subjects_1.assertNameToken)(namespace, 'token');
    const subj = (s) => (namespace ? `${namespace}.${s}` : s);
    const streamName = (s) => (namespace ? `${namespace.toUpperCase().replace(/-/g, '_')}_${s}` : s);
    const stream = (spec) => ({ name: streamName(spec.name), subjects: spec.subjects.map(subj) });
    return {
        namespace,
        streams: {
            raw: stream(subjects_1.STREAMS.TELEMETRY_RAW),
            clean: stream(subjects_1.STREAMS.TELEMETRY),
            rollups: stream(subjects_1.STREAMS.ROLLUPS),
            dlq: stream(subjects_1.STREAMS.DLQ),
        },
        filters: {
            raw: subj(subjects_1.SUBJECT_FILTERS.RAW_ALL),
            clean: subj(subjects_1.SUBJECT_FILTERS.CLEAN_ALL),
            rollup: subj(subjects_1.SUBJECT_FILTERS.ROLLUP_ALL),
            dlq: subj(subjects_1.SUBJECT_FILTERS.DLQ_ALL),
        },
        raw: (region) => subj((0, subjects_1.rawSubject)(region)),
        clean: (region) => subj((0, subjects_1.cleanSubject)(region)),
        rollup: (resolution, region) => subj((0, subjects_1.rollupSubject)(resolution, region)),
        dlq: (service) => subj((0, subjects_1.dlqSubject)(service)),
        parse(subject) {
            if (!namespace)
                return (0, subjects_1.parseSubject)(subject);
            return subject.startsWith(`${namespace}.`) ? (0, subjects_1.parseSubject)(subject.slice(namespace.length + 1)) : undefined;
        },
    };
}
//# sourceMappingURL=topology.js.map