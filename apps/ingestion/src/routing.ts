import type { StreamSpec } from '@sluice/jetstream';
import { assertNameToken, type Topology } from '@sluice/contracts';
import { ConfigError } from '@sluice/errors';

/** Where one served region's events go. */
export interface RegionRoute {
  region: string;
  /** `rt.topology.raw(region)`. */
  subject: string;
  /** Name of the stream capturing `subject` (checked on publish). */
  stream: string;
}

/** Options of {@link buildRoutes}. */
export interface RoutingOptions {
  regions: readonly string[];
  /** `shared`: the topology's raw stream; `per-region`: `<RAW>_<REGION>` per region. */
  layout: 'shared' | 'per-region';
  /** Placement tags per region (per-region layout only). */
  placement: ReadonlyMap<string, string[]>;
  replicas: number;
  maxAgeMs: number;
  duplicateWindowMs: number;
  maxMsgSize: number;
}

/** `eu-west=region:eu|zone:a,us-east=region:us` → region → tags. */
export function parsePlacement(raw: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const part of raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = part.indexOf('=');
    const region = part.slice(0, eq).trim();
    const tags = part
      .slice(eq + 1)
      .split('|')
      .map((t) => t.trim())
      .filter(Boolean);
    if (eq < 1 || tags.length === 0)
      throw new ConfigError('INGEST_PLACEMENT', `expected region=tag[|tag], got "${part}"`);
    out.set(region, tags);
  }
  return out;
}

/** Name of the raw stream of one region in the per-region layout: `<RAW>_<REGION>`. */
export function regionalStreamName(topology: Topology, region: string): string {
  return `${topology.streams.raw.name}_${region.toUpperCase().replace(/-/g, '_')}`;
}

/** The route of every served region and the streams to provision. Throws {@link ConfigError}. */
export function buildRoutes(
  topology: Topology,
  opts: RoutingOptions,
): { routes: Map<string, RegionRoute>; streams: StreamSpec[] } {
  for (const r of opts.regions) {
    try {
      assertNameToken(r, 'region');
    } catch (err) {
      throw new ConfigError('INGEST_REGIONS', (err as Error).message);
    }
  }
  for (const r of opts.placement.keys()) {
    if (!opts.regions.includes(r))
      throw new ConfigError(
        'INGEST_PLACEMENT',
        `names region "${r}" which is not in INGEST_REGIONS`,
      );
  }
  if (opts.layout === 'shared' && opts.placement.size > 0) {
    throw new ConfigError(
      'INGEST_PLACEMENT',
      'needs INGEST_STREAM_LAYOUT=per-region (one shared stream cannot be placed per region)',
    );
  }
  const common = {
    replicas: opts.replicas,
    maxAgeMs: opts.maxAgeMs,
    duplicateWindowMs: opts.duplicateWindowMs,
    maxMsgSize: opts.maxMsgSize,
  };
  const routes = new Map<string, RegionRoute>();
  const streams: StreamSpec[] = [];
  if (opts.layout === 'shared') {
    const s = topology.streams.raw;
    streams.push({
      name: s.name,
      subjects: [...s.subjects],
      ...common,
      description: 'Device batches accepted by the ingestion gateway (EventBatch), all regions',
    });
    for (const r of opts.regions)
      routes.set(r, { region: r, subject: topology.raw(r), stream: s.name });
  } else {
    for (const r of opts.regions) {
      const name = regionalStreamName(topology, r);
      const tags = opts.placement.get(r);
      streams.push({
        name,
        subjects: [topology.raw(r)],
        ...common,
        ...(tags ? { placementTags: tags } : {}),
        description: `Device batches accepted by the ingestion gateway (EventBatch), region ${r}`,
      });
      routes.set(r, { region: r, subject: topology.raw(r), stream: name });
    }
  }
  return { routes, streams };
}
