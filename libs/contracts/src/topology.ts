import {
  assertNameToken,
  cleanSubject,
  dlqSubject,
  replayFilter,
  replayStatusSubject,
  replaySubject,
  parseSubject,
  rawSubject,
  rollupSubject,
  STREAMS,
  SUBJECT_FILTERS,
  type ParsedSubject,
  type StreamSpec,
} from './subjects';

/**
 * The streams and subjects of one Sluice installation. The default namespace `''` is the canonical
 * layout of subjects.ts; a namespace (e.g. `staging`, or a test's unique id) prefixes every subject
 * with `<ns>.` and every stream name with `<NS>_`, so several installations or tests share one NATS
 * account without their streams' subjects overlapping.
 */
export interface Topology {
  readonly namespace: string;
  readonly streams: {
    readonly raw: StreamSpec;
    readonly clean: StreamSpec;
    readonly rollups: StreamSpec;
    readonly dlq: StreamSpec;
    readonly replay: StreamSpec;
  };
  readonly filters: {
    readonly raw: string;
    readonly clean: string;
    readonly rollup: string;
    readonly dlq: string;
    readonly replay: string;
  };
  raw(region: string): string;
  clean(region: string): string;
  rollup(resolution: string, region: string): string;
  dlq(service: string): string;
  replay(target: string, region: string): string;
  /** Every replay subject of one target. */
  replayFilter(target: string): string;
  /** Core NATS subject of a replay run's status announcements. */
  replayStatus(replayId: string): string;
  /** {@link parseSubject} of a subject of this namespace; `undefined` for any other. */
  parse(subject: string): ParsedSubject | undefined;
}

/** Builds the topology of `namespace` (a name token, or `''` for the canonical one). */
export function topology(namespace = ''): Topology {
  if (namespace !== '') assertNameToken(namespace, 'token');
  const subj = (s: string) => (namespace ? `${namespace}.${s}` : s);
  const streamName = (s: string) =>
    namespace ? `${namespace.toUpperCase().replace(/-/g, '_')}_${s}` : s;
  const stream = (spec: StreamSpec): StreamSpec => ({
    name: streamName(spec.name),
    subjects: spec.subjects.map(subj),
  });
  return {
    namespace,
    streams: {
      raw: stream(STREAMS.TELEMETRY_RAW),
      clean: stream(STREAMS.TELEMETRY),
      rollups: stream(STREAMS.ROLLUPS),
      dlq: stream(STREAMS.DLQ),
      replay: stream(STREAMS.REPLAY),
    },
    filters: {
      raw: subj(SUBJECT_FILTERS.RAW_ALL),
      clean: subj(SUBJECT_FILTERS.CLEAN_ALL),
      rollup: subj(SUBJECT_FILTERS.ROLLUP_ALL),
      dlq: subj(SUBJECT_FILTERS.DLQ_ALL),
      replay: subj(SUBJECT_FILTERS.REPLAY_ALL),
    },
    raw: (region) => subj(rawSubject(region)),
    clean: (region) => subj(cleanSubject(region)),
    rollup: (resolution, region) => subj(rollupSubject(resolution, region)),
    dlq: (service) => subj(dlqSubject(service)),
    replay: (target, region) => subj(replaySubject(target, region)),
    replayFilter: (target) => subj(replayFilter(target)),
    replayStatus: (id) => subj(replayStatusSubject(id)),
    parse(subject) {
      if (!namespace) return parseSubject(subject);
      return subject.startsWith(`${namespace}.`)
        ? parseSubject(subject.slice(namespace.length + 1))
        : undefined;
    },
  };
}
