import {
  assertNameToken,
  cleanSubject,
  InvalidSubjectTokenError,
  dlqSubject,
  replayFilter as replayFilterOf,
  replayRegionFilter,
  replayStatusSubject,
  replaySubject,
  parseSubject,
  rawSubject,
  rollupFilter as rollupFilterOf,
  rollupSubject,
  STREAMS,
  SUBJECT_FILTERS,
  type ParsedSubject,
  type StreamSpec,
} from './subjects';

/**
 * One region's deployment within an installation (`SLUICE_REGION`): its services keep that region's
 * clean and roll-up streams, placed on that region's servers.
 */
export interface RegionalDeployment {
  /** The region (a name token, e.g. `eu-west`). */
  readonly region: string;
  /**
   * Server tags the regional streams are placed on (e.g. `['region:eu-west']`). Default none: NATS
   * places them anywhere (a single server, or a cluster without region tags).
   */
  readonly placementTags?: readonly string[];
}

/**
 * The streams and subjects of one Sluice installation. The default namespace `''` is the canonical
 * layout of subjects.ts; a namespace (e.g. `staging`, or a test's unique id) prefixes every subject
 * with `<ns>.` and every stream name with `<NS>_`, so several installations or tests share one NATS
 * account without their streams' subjects overlapping.
 */
export interface Topology {
  readonly namespace: string;
  /**
   * The region of a regional deployment: then `streams.clean` is `<NS>_TELEMETRY_<REGION>` capturing
   * only `clean(region)`, `streams.rollups` is `<NS>_ROLLUPS_<REGION>` capturing only that region's
   * roll-ups and `streams.replay` is `<NS>_REPLAY_<REGION>` capturing only that region's replays, all
   * carrying the deployment's placement tags; `filters.clean`, `filters.rollup`, `filters.replay` and
   * `replayFilter(target)` name that region only. Undefined: one clean, one roll-up and one replay
   * stream for every region.
   */
  readonly region: string | undefined;
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

/** Stream-name suffix of a region: `eu-west` → `EU_WEST`. */
export function regionStreamSuffix(region: string): string {
  assertNameToken(region, 'region');
  return region.toUpperCase().replace(/-/g, '_');
}

/**
 * Builds the topology of `namespace` (a name token, or `''` for the canonical one), for every region
 * or (with `deployment`) for one region's deployment. Throws {@link InvalidSubjectTokenError} for a
 * namespace or region that is not a name token, and for an empty or whitespace-holding placement tag.
 */
export function topology(namespace = '', deployment?: RegionalDeployment): Topology {
  if (namespace !== '') assertNameToken(namespace, 'token');
  const subj = (s: string) => (namespace ? `${namespace}.${s}` : s);
  const streamName = (s: string) =>
    namespace ? `${namespace.toUpperCase().replace(/-/g, '_')}_${s}` : s;
  const stream = (spec: StreamSpec): StreamSpec => ({
    name: streamName(spec.name),
    subjects: spec.subjects.map(subj),
  });
  const region = deployment?.region;
  const tags = [...(deployment?.placementTags ?? [])];
  for (const tag of tags) {
    if (tag === '' || /[\s,|]/.test(tag))
      throw new InvalidSubjectTokenError(
        tag,
        'token',
        'a placement tag must be non-empty, without whitespace, "," or "|"',
      );
  }
  let clean = stream(STREAMS.TELEMETRY);
  let rollups = stream(STREAMS.ROLLUPS);
  let cleanFilter = subj(SUBJECT_FILTERS.CLEAN_ALL);
  let rollupFilter = subj(SUBJECT_FILTERS.ROLLUP_ALL);
  let replay = stream(STREAMS.REPLAY);
  let replayAll = subj(SUBJECT_FILTERS.REPLAY_ALL);
  if (region !== undefined) {
    const suffix = regionStreamSuffix(region);
    const placement = tags.length ? { placementTags: tags } : {};
    cleanFilter = subj(cleanSubject(region));
    rollupFilter = subj(rollupFilterOf({ region }));
    clean = {
      name: streamName(`${STREAMS.TELEMETRY.name}_${suffix}`),
      subjects: [cleanFilter],
      ...placement,
    };
    rollups = {
      name: streamName(`${STREAMS.ROLLUPS.name}_${suffix}`),
      subjects: [rollupFilter],
      ...placement,
    };
    replayAll = subj(replayRegionFilter(region));
    replay = {
      name: streamName(`${STREAMS.REPLAY.name}_${suffix}`),
      subjects: [replayAll],
      ...placement,
    };
  }
  return {
    namespace,
    region,
    streams: {
      raw: stream(STREAMS.TELEMETRY_RAW),
      clean,
      rollups,
      dlq: stream(STREAMS.DLQ),
      replay,
    },
    filters: {
      raw: subj(SUBJECT_FILTERS.RAW_ALL),
      clean: cleanFilter,
      rollup: rollupFilter,
      dlq: subj(SUBJECT_FILTERS.DLQ_ALL),
      replay: replayAll,
    },
    raw: (region) => subj(rawSubject(region)),
    clean: (region) => subj(cleanSubject(region)),
    rollup: (resolution, region) => subj(rollupSubject(resolution, region)),
    dlq: (service) => subj(dlqSubject(service)),
    replay: (target, region) => subj(replaySubject(target, region)),
    replayFilter: (target) =>
      region === undefined ? subj(replayFilterOf(target)) : subj(replaySubject(target, region)),
    replayStatus: (id) => subj(replayStatusSubject(id)),
    parse(subject) {
      if (!namespace) return parseSubject(subject);
      return subject.startsWith(`${namespace}.`)
        ? parseSubject(subject.slice(namespace.length + 1))
        : undefined;
    },
  };
}
