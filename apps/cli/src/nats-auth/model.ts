// Who may do what on NATS: one user per service, with the subjects it publishes, the JetStream API
// calls it makes (bind, pull, ack its own consumers; read stream info) and the reply prefix it
// subscribes to; plus the streams and consumers an admin provisions for them. Built from the topology
// and each service's defaults (durables, replay targets, consumer settings), read from the services:
// change both together.
import {
  alertsTopology,
  replayConsumerDescription,
  rollupFilter,
  topology,
  type RegionalDeployment,
  type Topology,
} from '@sluice/contracts';
import type { ConsumerSpec, StreamSpec } from '@sluice/jetstream';

/** A gateway user and the regions it may publish (`--regions eu=eu-west+eu-central`). */
export interface GatewaySpec {
  /** User `ingestion-<name>`. */
  name: string;
  regions: string[];
}

/** An exporter destination (`--exporter name[=region+region]`); no regions = every region. */
export interface ExporterSpec {
  name: string;
  regions: string[];
}

/** Services whose durable consumer name is configurable (`<SERVICE>_DURABLE`). */
export const DURABLE_SERVICES = ['dedupe', 'aggregator', 'archiver', 'mongo-capture'] as const;
export type DurableService = (typeof DURABLE_SERVICES)[number];

export interface AccessOptions {
  topology: Topology;
  /** Empty: one user `ingestion` that may publish every region. */
  gateways: GatewaySpec[];
  /** The gateways' INGEST_STREAM_LAYOUT. */
  layout: 'shared' | 'per-region';
  exporters: ExporterSpec[];
  /** Durable names other than the services' defaults (their `<SERVICE>_DURABLE`). */
  durables: Partial<Record<DurableService, string>>;
  /** Replicas of every provisioned stream. */
  replicas: number;
  /**
   * Regional deployments (services run with SLUICE_REGION and SLUICE_REGION_PLACEMENT): each has its
   * own clean and roll-up stream, placed by its tags, as does its region's raw stream, and the
   * consumers of each bind there. Default none: one clean and one roll-up stream for every region.
   */
  deployments?: readonly RegionalDeployment[];
}

/** Allow and deny lists of one direction; deny wins. */
export interface SubjectRules {
  allow: string[];
  deny: string[];
}

export interface UserAccess {
  /** Also names its seed file and Kubernetes Secret. */
  user: string;
  /** What it runs as, one line, for the config's comments. */
  role: string;
  publish: SubjectRules;
  subscribe: SubjectRules;
  /** NATS_INBOX_PREFIX the service must use: the only reply subjects it may subscribe to. */
  inboxPrefix: string | undefined;
}

/** A stream to provision; `workQueue` streams keep a message until one consumer acked it. */
export interface PlannedStream extends StreamSpec {
  workQueue?: boolean;
  /** A KV bucket (this stream is its `KV_<bucket>`), created as one with this TTL and history 1. */
  kv?: { bucket: string; ttlMs: number };
}

/**
 * The KV bucket of the archiver's leader lease for `durable` (spelled first in
 * apps/archiver/src/lease.ts `leaseBucket`, which an app cannot import from another).
 */
export function archiverLeaseBucket(t: Topology, durable: string): string {
  return `${t.namespace ? `${t.namespace}_` : ''}archiver-lease_${durable}${t.region ? `_${t.region}` : ''}`;
}

/** ARCHIVER_LEASE_TTL's default: the bucket's max_age, which an existing bucket keeps. */
const ARCHIVER_LEASE_TTL_MS = 10_000;

export interface PlannedConsumer {
  stream: string;
  /** The user that binds it. */
  user: string;
  spec: ConsumerSpec;
}

export interface AccessModel {
  users: UserAccess[];
  streams: PlannedStream[];
  consumers: PlannedConsumer[];
  /** Things the operator should know about this layout (printed on stderr). */
  warnings: string[];
}

const API = '$JS.API';
const DAY = 86_400_000;

/** Streams and subjects of the webhook dispatcher (spelled once in apps/webhook-dispatcher/src/names.ts). */
function webhookNames(t: Topology) {
  const ns = t.namespace;
  const subj = (s: string) => (ns ? `${ns}.${s}` : s);
  const stream = (s: string) => (ns ? `${ns.toUpperCase().replace(/-/g, '_')}_${s}` : s);
  return {
    deliveries: { name: stream('WEBHOOK_DELIVERIES'), subjects: [subj('webhook.deliveries.>')] },
    ops: { name: stream('WEBHOOK_OPS'), subjects: [subj('webhook.ops.>')] },
    consumers: {
      clean: 'webhook-dispatcher-clean',
      rollups: 'webhook-dispatcher-rollups',
      sender: 'webhook-dispatcher-sender',
    },
  };
}

/** The gateway's per-region raw stream, `<RAW>_<REGION>` (apps/ingestion/src/routing.ts). */
export function regionalStreamName(t: Topology, region: string): string {
  return `${t.streams.raw.name}_${region.toUpperCase().replace(/-/g, '_')}`;
}

/** `<ns>.sluice.replay-status.*`, the core subject of replay status announcements. */
function replayStatusFilter(t: Topology): string {
  return t.replayStatus('x').replace(/\.x$/, '.*');
}

/** The reply prefix of `user`: `_INBOX.<user>.<namespace or _>` (`_` is never a namespace). */
export function inboxPrefixOf(user: string, namespace: string): string {
  return `_INBOX.${user}.${namespace || '_'}`;
}

class Grants {
  private readonly pub = new Set<string>();
  private readonly pubDeny = new Set<string>();
  private readonly sub = new Set<string>();

  constructor(
    readonly user: string,
    readonly role: string,
    readonly inboxPrefix: string | undefined,
  ) {
    if (inboxPrefix) this.sub.add(`${inboxPrefix}.>`);
  }

  publish(...subjects: string[]): this {
    for (const s of subjects) this.pub.add(s);
    return this;
  }

  subscribe(...subjects: string[]): this {
    for (const s of subjects) this.sub.add(s);
    return this;
  }

  /** The JetStream account check every JetStreamManager makes. */
  jetstream(): this {
    return this.publish(`${API}.INFO`);
  }

  streamInfo(stream: string): this {
    return this.jetstream().publish(`${API}.STREAM.INFO.${stream}`);
  }

  /** Bind, pull from and settle (ack, nak, working, term) one durable consumer of `stream`. */
  bind(stream: string, durable: string): this {
    return this.streamInfo(stream).publish(
      `${API}.CONSUMER.INFO.${stream}.${durable}`,
      `${API}.CONSUMER.MSG.NEXT.${stream}.${durable}`,
      `$JS.ACK.${stream}.${durable}.>`,
    );
  }

  /**
   * Read `stream` through ephemeral ordered consumers (random names, no acks): create, pull, delete
   * any consumer but the durables of `stream`, which stay out of reach.
   */
  readEphemeral(stream: string, durables: readonly string[]): this {
    this.streamInfo(stream).publish(
      `${API}.CONSUMER.CREATE.${stream}.*`,
      `${API}.CONSUMER.CREATE.${stream}.*.>`,
      `${API}.CONSUMER.INFO.${stream}.*`,
      `${API}.CONSUMER.MSG.NEXT.${stream}.*`,
      `${API}.CONSUMER.DELETE.${stream}.*`,
    );
    for (const d of durables) {
      this.pubDeny.add(`${API}.CONSUMER.CREATE.${stream}.${d}`);
      this.pubDeny.add(`${API}.CONSUMER.CREATE.${stream}.${d}.>`);
      this.pubDeny.add(`${API}.CONSUMER.MSG.NEXT.${stream}.${d}`);
      this.pubDeny.add(`${API}.CONSUMER.DELETE.${stream}.${d}`);
    }
    return this;
  }

  build(): UserAccess {
    return {
      user: this.user,
      role: this.role,
      publish: { allow: [...this.pub], deny: [...this.pubDeny] },
      subscribe: { allow: [...this.sub], deny: [] },
      inboxPrefix: this.inboxPrefix,
    };
  }
}

/** Builds the users, streams and consumers of one installation. */
export function buildAccessModel(o: AccessOptions): AccessModel {
  const t = o.topology;
  const ns = t.namespace;
  const wh = webhookNames(t);
  const warnings: string[] = [];
  const grants = (user: string, role: string) => new Grants(user, role, inboxPrefixOf(user, ns));
  const durable = (s: DurableService) => o.durables[s] ?? s;
  const common = { replicas: o.replicas };
  // One topology per regional deployment, or the installation's one.
  const deployments = o.deployments ?? [];
  const regional: Topology[] = deployments.length ? deployments.map((d) => topology(ns, d)) : [t];
  const placementOf = (region: string) => {
    const tags = deployments.find((d) => d.region === region)?.placementTags ?? [];
    return tags.length ? { placementTags: [...tags] } : {};
  };

  // Streams, with the settings the services give them by default.
  const regions = [...new Set(o.gateways.flatMap((g) => g.regions))];
  for (const r of regions) {
    if (deployments.length && !deployments.some((d) => d.region === r))
      warnings.push(
        `region ${r} has a gateway but no regional deployment (--deployments): its raw batches have no clean stream to go to`,
      );
  }
  const rawStreams: PlannedStream[] =
    o.layout === 'shared'
      ? [
          {
            name: t.streams.raw.name,
            subjects: [...t.streams.raw.subjects],
            maxAgeMs: 30 * DAY,
            duplicateWindowMs: 120_000,
            description:
              'Device batches accepted by the ingestion gateway (EventBatch), all regions',
            ...common,
          },
        ]
      : regions.map((r) => ({
          name: regionalStreamName(t, r),
          subjects: [t.raw(r)],
          maxAgeMs: 30 * DAY,
          duplicateWindowMs: 120_000,
          description: `Device batches accepted by the ingestion gateway (EventBatch), region ${r}`,
          ...placementOf(r),
          ...common,
        }));
  const rawStreamOf = (region: string) =>
    o.layout === 'shared' ? t.streams.raw.name : regionalStreamName(t, region);
  const streams: PlannedStream[] = [
    ...rawStreams,
    ...regional.map((rt) => ({ ...rt.streams.clean, duplicateWindowMs: 600_000, ...common })),
    ...regional.map((rt) => ({ ...rt.streams.rollups, ...common })),
    { ...t.streams.dlq, ...common },
    ...regional.map((rt) => ({ ...rt.streams.replay, maxAgeMs: 7 * DAY, ...common })),
    {
      ...wh.deliveries,
      workQueue: true,
      maxAgeMs: 4 * DAY,
      duplicateWindowMs: 600_000,
      ...common,
    },
    { ...wh.ops, maxAgeMs: 7 * DAY, ...common },
  ];
  // The watch service's alerts: one stream for every region (the dispatcher filters by region).
  const alerts = alertsTopology(t.namespace);
  streams.push({ ...alerts.stream, ...common });
  // One leader lease per deployment: a region's archivers must not take turns with another's.
  const leases = regional.map((rt) => archiverLeaseBucket(rt, durable('archiver')));
  for (const lease of leases)
    streams.push({
      name: `KV_${lease}`,
      subjects: [`$KV.${lease}.>`],
      kv: { bucket: lease, ttlMs: ARCHIVER_LEASE_TTL_MS },
      ...common,
    });

  // Durable consumers, with the settings the services give them by default.
  const consumers: PlannedConsumer[] = [];
  const add = (user: string, stream: string, spec: ConsumerSpec) =>
    consumers.push({ stream, user, spec });
  for (const s of rawStreams) {
    add('dedupe', s.name, {
      durable: durable('dedupe'),
      ackWaitMs: 30_000,
      description: 'dedupe: claims event ids in Redis, publishes unique events to the clean stream',
    });
  }
  const cleanOf = (rt: Topology) => rt.streams.clean.name;
  for (const rt of regional) {
    add('aggregator', cleanOf(rt), {
      durable: durable('aggregator'),
      filterSubjects: [rt.filters.clean],
      ackWaitMs: 30_000,
      maxAckPending: 10_000,
    });
  }
  for (const rt of regional) {
    add('aggregator', rt.streams.replay.name, {
      durable: `${durable('aggregator')}-replay`,
      filterSubjects: [rt.replayFilter('aggregator')],
      ackWaitMs: 30_000,
      maxAckPending: 8_000,
      description: replayConsumerDescription('rebuild'),
    });
  }
  for (const rt of regional) {
    add('archiver', cleanOf(rt), {
      durable: durable('archiver'),
      filterSubjects: [rt.filters.clean],
      ackWaitMs: 30_000,
      maxAckPending: 32 * 256 + 1_000,
    });
  }
  /** `filters(rt)`: the consumer's filter in one deployment; undefined: it binds none there. */
  const sink = (
    user: string,
    name: string,
    target: string,
    filters: (rt: Topology) => string[] | undefined,
  ) => {
    for (const rt of regional) {
      const f = filters(rt);
      if (!f) continue;
      add(user, cleanOf(rt), {
        durable: name,
        filterSubjects: f,
        ackWaitMs: 30_000,
        maxAckPending: 1_000,
      });
      add(user, rt.streams.replay.name, {
        durable: `${name}-replay`,
        filterSubjects: [rt.replayFilter(target)],
        ackWaitMs: 30_000,
        maxAckPending: 1_000,
        description: replayConsumerDescription('store'),
      });
    }
  };
  sink('mongo-capture', durable('mongo-capture'), 'mongo-capture', (rt) => [rt.filters.clean]);
  for (const e of o.exporters) {
    const target = `exporter-${e.name}`;
    // A destination filtering by region binds in the deployments of its regions only.
    sink('exporter', target, target, (rt) =>
      !e.regions.length
        ? [rt.filters.clean]
        : rt.region === undefined
          ? e.regions.map((r) => rt.clean(r))
          : e.regions.includes(rt.region)
            ? [rt.filters.clean]
            : undefined,
    );
  }
  for (const rt of regional) {
    add('webhook-dispatcher', cleanOf(rt), {
      durable: wh.consumers.clean,
      filterSubjects: [rt.filters.clean],
      deliverPolicy: 'new',
    });
  }
  for (const rt of regional) {
    add('webhook-dispatcher', rt.streams.rollups.name, {
      durable: wh.consumers.rollups,
      filterSubjects: [rt.filters.rollup],
      deliverPolicy: 'new',
    });
  }
  for (const rt of regional) {
    add('webhook-dispatcher', alerts.stream.name, {
      durable: `webhook-dispatcher-alerts${rt.region ? `-${rt.region}` : ''}`,
      filterSubjects: [alerts.filter(rt.region)],
      deliverPolicy: 'new',
    });
    // The watch service (apps/watch/src/names.ts): silence on clean batches, anomalies on 1m roll-ups.
    add('watch', cleanOf(rt), {
      durable: 'watch-clean',
      filterSubjects: [rt.filters.clean],
      deliverPolicy: 'new',
    });
    const rollups1m = rollupFilter({
      resolution: '1m',
      ...(rt.region !== undefined ? { region: rt.region } : {}),
    });
    add('watch', rt.streams.rollups.name, {
      durable: 'watch-rollups',
      filterSubjects: [t.namespace ? `${t.namespace}.${rollups1m}` : rollups1m],
      deliverPolicy: 'new',
    });
  }
  add('webhook-dispatcher', wh.deliveries.name, {
    durable: wh.consumers.sender,
    ackWaitMs: 60_000,
    maxAckPending: 100_000,
  });

  const durablesOf = (stream: string) =>
    consumers.filter((c) => c.stream === stream).map((c) => c.spec.durable);
  const bindAll = (g: Grants) => {
    for (const c of consumers.filter((x) => x.user === g.user)) g.bind(c.stream, c.spec.durable);
    return g;
  };
  const dlq = t.streams.dlq.name;
  const deadLetters = (g: Grants, service: string) => g.streamInfo(dlq).publish(t.dlq(service));

  const users: UserAccess[] = [
    {
      user: 'admin',
      role: 'creates, updates and deletes streams and consumers (sluice nats-auth provision)',
      publish: { allow: ['>'], deny: [] },
      subscribe: { allow: ['>'], deny: [] },
      inboxPrefix: undefined,
    },
  ];

  // The gateway: publishes raw batches of its regions, reads its stored batches back by sequence.
  const gateways: GatewaySpec[] = o.gateways.length ? o.gateways : [{ name: '', regions: [] }];
  for (const gw of gateways) {
    const user = gw.name ? `ingestion-${gw.name}` : 'ingestion';
    const g = grants(
      user,
      gw.regions.length
        ? `ingestion gateway for ${gw.regions.join(', ')}`
        : 'ingestion gateway, every region',
    );
    const own = gw.regions.length
      ? [...new Set(gw.regions.map(rawStreamOf))]
      : rawStreams.map((s) => s.name);
    if (gw.regions.length) g.publish(...gw.regions.map((r) => t.raw(r)));
    else g.publish(t.filters.raw);
    for (const s of own) g.streamInfo(s).publish(`${API}.STREAM.MSG.GET.${s}`);
    users.push(g.build());
  }
  if (o.layout === 'shared' && o.gateways.length > 1) {
    warnings.push(
      `the shared raw stream ${t.streams.raw.name} holds every region: each gateway user may read ` +
        'any stored raw batch by sequence (STREAM.MSG.GET, its duplicate-content check); ' +
        'use --layout per-region (INGEST_STREAM_LAYOUT=per-region) to keep regions apart',
    );
  }

  // dedupe: raw in, clean out; reads the clean stream back to re-seed its claims.
  const dd = bindAll(grants('dedupe', 'raw batches in, clean batches out'));
  for (const rt of regional) {
    const clean = rt.streams.clean.name;
    dd.publish(rt.filters.clean).readEphemeral(clean, durablesOf(clean));
  }
  deadLetters(dd, 'dedupe');
  users.push(dd.build());

  const agg = bindAll(grants('aggregator', 'clean batches and its replays in, roll-ups out'));
  for (const rt of regional) agg.streamInfo(rt.streams.rollups.name).publish(rt.filters.rollup);
  agg.publish(replayStatusFilter(t));
  users.push(deadLetters(agg, 'aggregator').build());

  // The leader lease: read and write its key (create, update, release), never manage the bucket.
  const arch = bindAll(grants('archiver', 'clean batches in, its leader lease'));
  for (const lease of leases)
    arch
      .streamInfo(`KV_${lease}`)
      .publish(
        `$KV.${lease}.>`,
        `${API}.DIRECT.GET.KV_${lease}`,
        `${API}.DIRECT.GET.KV_${lease}.>`,
        `${API}.STREAM.MSG.GET.KV_${lease}`,
      );
  users.push(deadLetters(arch, 'archiver').build());
  users.push(
    deadLetters(
      bindAll(grants('mongo-capture', 'clean batches and its replays in')),
      'mongo-capture',
    ).build(),
  );
  if (o.exporters.length === 0) {
    warnings.push(
      'no --exporter destinations: the exporter user may bind no consumer (name each destination of its destinations file)',
    );
  }
  users.push(
    deadLetters(
      bindAll(
        grants('exporter', `destinations ${o.exporters.map((e) => e.name).join(', ') || '(none)'}`),
      ),
      'exporter',
    ).build(),
  );

  const wd = bindAll(
    grants('webhook-dispatcher', 'clean batches, roll-ups and alerts in, deliveries out'),
  )
    .streamInfo(wh.ops.name)
    .publish(wh.deliveries.subjects[0]!, wh.ops.subjects[0]!);
  users.push(deadLetters(wd, 'webhook-dispatcher').build());
  const watch = bindAll(grants('watch', 'clean batches and roll-ups in, alerts out'))
    .streamInfo(alerts.stream.name)
    .publish(...regional.map((rt) => alerts.filter(rt.region)));
  users.push(deadLetters(watch, 'watch').build());

  // The web console (apps/console/src/pipeline.ts, detections.ts): the state of its topology's
  // streams (the DLQ's per-subject counts included) and their consumers, and clean batches and
  // roll-ups seen as they pass through plain subscriptions: it consumes, acks and publishes nothing.
  const con = grants('console', 'stream and consumer state, clean batches and roll-ups seen');
  for (const rt of regional) {
    for (const s of Object.values(rt.streams)) {
      con.streamInfo(s.name);
      if (s !== rt.streams.dlq) con.publish(`${API}.CONSUMER.LIST.${s.name}`);
    }
    con.subscribe(rt.filters.rollup, rt.filters.clean);
  }
  users.push(con.build());

  // The operator CLI: replay and dlq (ls, show, redrive, purge).
  const cli = grants('cli', 'sluice replay and sluice dlq');
  for (const rt of regional) {
    const replay = rt.streams.replay.name;
    cli.streamInfo(replay).publish(`${API}.CONSUMER.LIST.${replay}`, rt.filters.replay);
  }
  cli.subscribe(replayStatusFilter(t)).readEphemeral(dlq, []).publish(
    `${API}.STREAM.MSG.GET.${dlq}`,
    `${API}.STREAM.MSG.DELETE.${dlq}`,
    // Redrives to the original subject: raw batches (dedupe), webhook deliveries (the sender).
    t.filters.raw,
    wh.deliveries.subjects[0]!,
  );
  users.push(cli.build());

  return { users, streams, consumers, warnings };
}
