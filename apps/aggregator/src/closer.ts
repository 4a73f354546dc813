import { createHmac } from 'node:crypto';
import type { AsyncPublisher } from '@sluice/jetstream';
import { CONTENT_TYPES, encodeRollup, RollupScope, type Topology } from '@sluice/contracts';
import {
  context,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Link,
} from '@opentelemetry/api';
import { ATTR, spansExported, tracer, type Logger } from '@sluice/observability';
import type { Pool } from 'pg';
import { inTransaction, numberArray, textArray } from './pg';
import type { AggregatorMetrics } from './metrics';
import { SCOPE_DEVICE } from './partial';
import { resolutionTable, type Resolution } from './resolutions';
import { readWatermarks } from './watermark';
import { TRACE_LINK_BYTES } from './writer';

export interface CloserOptions {
  pool: Pool;
  /** Publishes Rollups (owned by the caller, who closes it after the closer is idle). */
  publisher: AsyncPublisher;
  topology: Topology;
  /** The configured resolutions, read once per pass (the live configuration may change them). */
  pipeline: { readonly resolutions: readonly Resolution[] };
  /** Resolutions whose windows are published; the others are only marked closed. Default: every one. */
  publish?: ReadonlySet<string> | undefined;
  allowedLatenessMs: number;
  /** A region without arrivals for this long is idle (see `regionWatermark`); 0 disables. */
  idleTimeoutMs: number;
  log: Logger;
  metrics: AggregatorMetrics;
  /** Names a device in Rollup message ids ({@link deviceDigest} of DEVICE_ID_HASH_KEY). */
  deviceDigest: (deviceId: string) => string;
  /** Rows closed per transaction. Default 1000. */
  batchSize?: number;
  /** Longest time between two full passes (see {@link WindowCloser.trigger}). Default 5 s. */
  fullPassEveryMs?: number;
  /** Wall clock (tests). Default `Date.now`. */
  now?: () => number;
}

interface PendingRow {
  resolution: string;
  scope: number;
  series_key: string;
  sensor: string;
  ws: number;
  region: string;
  count: number;
  sum: number;
  min: number;
  max: number;
  ft: number;
  first_value: number;
  lt: number;
  last_value: number;
  late_count: number;
  revision: number;
  /** Links to the clean messages merged since the last publish (see `ROLLUP_TRACE_LINKS`). */
  trace_links: Buffer | null;
}

/** One region's share of a closer round: windows with start in [from, upTo] are due. */
interface DueRegion {
  region: string;
  upTo: number;
  /** Where the region's last completed pass ended; undefined: from the start. */
  from: number | undefined;
}

/** The span links stored in a row's `trace_links` (whole 25-byte entries only). */
export function decodeTraceLinks(stored: Buffer | null): Link[] {
  const links: Link[] = [];
  if (stored === null) return links;
  for (let o = 0; o + TRACE_LINK_BYTES <= stored.length; o += TRACE_LINK_BYTES) {
    links.push({
      context: {
        traceId: stored.toString('hex', o, o + 16),
        spanId: stored.toString('hex', o + 16, o + 24),
        traceFlags: stored[o + 24]! & TraceFlags.SAMPLED,
        isRemote: true,
      },
    });
  }
  return links;
}

const closedKey = (region: string, r: Resolution) => `${region}\u0001${r.name}`;

const MS = (col: string) => `(extract(epoch from ${col}) * 1000)::float8`;
const TS = (col: string) => `'epoch'::timestamptz + ${col} * interval '1 millisecond'`;

/**
 * `<scope>:<device digest|region>:<sensor>:<resolution>:<window_start_ms>:<revision>`: a re-publish
 * is dropped by JetStream. A device is named by `deviceDigest` (the message id is a header and a
 * span attribute, where a raw device id must not appear).
 */
export function rollupMsgId(
  r: {
    scope: number;
    key: string;
    sensor: string;
    resolution: string;
    start: number;
    revision: number;
  },
  deviceDigest: (deviceId: string) => string,
): string {
  const key = r.scope === SCOPE_DEVICE ? deviceDigest(r.key) : r.key;
  return `${r.scope === SCOPE_DEVICE ? 'device' : 'region'}:${key}:${r.sensor}:${r.resolution}:${r.start}:${r.revision}`;
}

/**
 * The full keyed HMAC-SHA256 of a device id (base64url): unique enough for a de-duplication id,
 * unlike the 16-character hash of logs, and not reversible without the key.
 */
export function deviceDigest(key: string): (deviceId: string) => string {
  return (deviceId) => createHmac('sha256', key).update(deviceId).digest('base64url');
}

/**
 * Publishes a Rollup for every window the watermark has passed (revision 1) and for every closed
 * window changed since (revision + 1). Rows are locked `FOR UPDATE SKIP LOCKED` while their Rollups
 * are published and marked, so replicas split the work and a flush merging into a row waits until
 * it is marked closed (the merge then counts as late and flags the next revision).
 */
export class WindowCloser {
  private running: Promise<void> | undefined;
  private again = false;
  private againFull = false;
  private readonly batchSize: number;
  private readonly now: () => number;
  /**
   * Per (region, resolution), the window start from which a bounded pass looks: every window before
   * it was closed by an earlier pass. Closed rows leave dead entries in the pending index until vacuum, and
   * a scan from the partition's start walked over all of them on every pass (3–4× the cost per row).
   */
  private readonly closedBefore = new Map<string, number>();
  private lastFull = Number.NEGATIVE_INFINITY;
  private readonly tracer = tracer('sluice-aggregator');

  constructor(private readonly opts: CloserOptions) {
    this.batchSize = opts.batchSize ?? 1000;
    this.now = opts.now ?? Date.now;
  }

  /**
   * Runs a pass now (or right after the one in progress). Never rejects: errors are logged, the next
   * pass retries. A bounded pass only looks at windows from where the previous pass finished; a full
   * pass (`full`, or when the last one is `fullPassEveryMs` old) also finds rows that appeared or
   * changed below that: late readings in a new row, or merged into a closed one (dirty).
   */
  trigger(opts: { full?: boolean } = {}): Promise<void> {
    if (this.running) {
      this.again = true;
      this.againFull ||= opts.full === true;
      return this.running;
    }
    let full = opts.full === true;
    // A pass belongs to no flush's trace (a flush triggers it): each Rollup starts its own.
    this.running = context.with(ROOT_CONTEXT, async () => {
      try {
        do {
          this.again = false;
          this.againFull = false;
          await this.pass(full);
          full = this.againFull;
        } while (this.again);
      } catch (err) {
        this.opts.log.warn({ err }, 'closing windows failed; will retry');
      } finally {
        this.running = undefined;
      }
    });
    return this.running;
  }

  /** Completes the pass in progress, if any. */
  async idle(): Promise<void> {
    await this.running;
  }

  private async pass(requestedFull: boolean): Promise<void> {
    const startedAt = this.now();
    const full = requestedFull || startedAt - this.lastFull >= (this.opts.fullPassEveryMs ?? 5_000);
    const watermarks = await readWatermarks(this.opts.pool, this.opts);
    for (const r of this.opts.pipeline.resolutions) {
      let due: DueRegion[] = [];
      for (const [region, watermark] of watermarks) {
        const upTo = watermark - r.ms;
        const from = full ? undefined : this.closedBefore.get(closedKey(region, r));
        // Windows start on multiples of r.ms: unless one starts in (from, upTo], every window up to
        // upTo was there for the pass that set `from` (a row that appeared since is late: full pass).
        if (from !== undefined && Math.floor(upTo / r.ms) <= Math.floor(from / r.ms)) continue;
        due.push({ region, upTo, from });
      }
      // Each round closes up to batchSize rows (at least one per due region), shared among the
      // regions not done yet; the cap on rounds only stops a pathological loop.
      for (let round = 0; round < 1_000 && due.length > 0; round++) {
        const limit = Math.max(1, Math.floor(this.batchSize / due.length));
        const closed = await this.closeSome(r, due, limit);
        due = due.filter((d) => {
          if ((closed.get(d.region) ?? 0) >= limit) return true;
          // Every window of the region up to `upTo` is closed now, but for rows a concurrent flush
          // held locked (skipped): a late merge or a new row, which a full pass finds.
          const key = closedKey(d.region, r);
          this.closedBefore.set(key, Math.max(this.closedBefore.get(key) ?? d.upTo, d.upTo));
          return false;
        });
      }
    }
    if (full) this.lastFull = startedAt;
    this.opts.metrics.closerPasses.inc({ kind: full ? 'full' : 'bounded' });
  }

  /** Closes up to `limit` due rows of each region; returns the count per region. */
  private async closeSome(
    r: Resolution,
    due: readonly DueRegion[],
    limit: number,
  ): Promise<Map<string, number>> {
    return inTransaction(this.opts.pool, async (client) => {
      // One statement picks, locks and marks the batch (it used to be SELECT … FOR UPDATE, then an
      // UPDATE joined on an unnest of the keys). RETURNING gives the row as it was (revision before
      // the bump). The Rollups are published before COMMIT: a failed publish rolls the marks back,
      // and a flush merging into one of these rows waits on the row lock until the commit.
      // Per region: a range scan of the pending index (region, window_start) that stops at the
      // limit. The lower bound is an index condition (-infinity on a full pass), not an OR that would
      // leave it a filter. No ORDER BY: the planner cannot estimate a range bounded by the lateral
      // row, so it sorted every due row before the limit (measured: 3,033 rows read per region to
      // close 333); the index order already is window order within a partition. The `resolution`
      // condition is always true in this table; without it the UPDATE joined by a sequential scan
      // (the primary key leads with resolution).
      const table = resolutionTable(r);
      const { rows } = await client.query<PendingRow>(
        `WITH picked AS (
           SELECT p.scope, p.series_key, p.sensor, p.window_start, p.trace_links
           FROM unnest($1::text[], $2::float8[], $3::float8[]) AS w(region, up_to, from_ms)
           CROSS JOIN LATERAL (
             SELECT scope, series_key, sensor, window_start, trace_links FROM ${table}
             WHERE region = w.region AND (NOT closed OR dirty)
               AND window_start <= ${TS('w.up_to')}
               AND window_start >= COALESCE(${TS('w.from_ms')}, '-infinity'::timestamptz)
             LIMIT $4 FOR UPDATE SKIP LOCKED) p)
         UPDATE ${table} t SET closed = true, dirty = false, revision = t.revision + 1, trace_links = NULL
         FROM picked p
         WHERE t.resolution = $5 AND t.scope = p.scope AND t.series_key = p.series_key
           AND t.sensor = p.sensor AND t.window_start = p.window_start
         RETURNING t.resolution, t.scope, t.series_key, t.sensor, ${MS('t.window_start')} AS ws, t.region, t.count::float8 AS count, t.sum, t.min, t.max,
                   ${MS('t.first_time')} AS ft, t.first_value, ${MS('t.last_time')} AS lt, t.last_value, t.late_count::float8 AS late_count, t.revision - 1 AS revision,
                   p.trace_links`,
        [
          textArray(due.map((d) => d.region)),
          numberArray(due.map((d) => d.upTo)),
          `{${due.map((d) => d.from ?? 'NULL').join(',')}}`,
          limit,
          r.name,
        ],
      );
      if (rows.length === 0) return rows;
      // All publishes of the batch in flight at once; the batch commits only when every ack is in.
      if (!this.opts.publish || this.opts.publish.has(r.name))
        await Promise.all(rows.map((row) => this.publish(row, r)));
      return rows;
    }).then((rows) => {
      const perRegion = new Map<string, number>();
      for (const row of rows) {
        perRegion.set(row.region, (perRegion.get(row.region) ?? 0) + 1);
        this.opts.metrics.windowsClosed.inc({
          resolution: r.name,
          kind: row.revision === 0 ? 'closed' : 'revision',
        });
      }
      return perRegion;
    });
  }

  private async publish(row: PendingRow, r: Resolution): Promise<void> {
    const revision = row.revision + 1;
    const scope = row.scope === SCOPE_DEVICE ? RollupScope.DEVICE : RollupScope.REGION;
    const payload = encodeRollup({
      scope,
      deviceId: row.scope === SCOPE_DEVICE ? row.series_key : '',
      region: row.region,
      sensorType: row.sensor,
      resolution: r.name,
      windowStart: new Date(row.ws),
      windowEnd: new Date(row.ws + r.ms),
      count: row.count,
      sum: row.sum,
      min: row.min,
      max: row.max,
      avg: row.count > 0 ? row.sum / row.count : 0,
      firstValue: row.first_value,
      firstTime: new Date(row.ft),
      lastValue: row.last_value,
      lastTime: new Date(row.lt),
      revision,
      lateCount: row.late_count,
    });
    const subject = this.opts.topology.rollup(r.name, row.region);
    const msgId = rollupMsgId(
      {
        scope: row.scope,
        key: row.series_key,
        sensor: row.sensor,
        resolution: r.name,
        start: row.ws,
        revision,
      },
      this.opts.deviceDigest,
    );
    if (!spansExported()) {
      // Nobody receives spans: a span per Rollup (tens of thousands a second in a backlog) would be
      // made and dropped for nothing.
      await this.opts.publisher.publish(subject, payload, {
        msgId,
        contentType: CONTENT_TYPES.ROLLUP,
        expectStream: this.opts.topology.streams.rollups.name,
      });
      this.opts.metrics.rollupsPublished.inc({ resolution: r.name });
      return;
    }
    // A new trace per Rollup, linked to the clean messages merged into it; the webhook dispatcher
    // continues it from the message's traceparent.
    const span = this.tracer.startSpan(
      `send ${subject}`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          [ATTR.messagingSystem]: 'nats',
          [ATTR.messagingOperation]: 'send',
          [ATTR.messagingDestination]: subject,
          [ATTR.messagingMessageId]: msgId,
          [ATTR.region]: row.region,
          [ATTR.rollupResolution]: r.name,
          [ATTR.rollupRevision]: revision,
        },
        links: decodeTraceLinks(row.trace_links),
      },
      ROOT_CONTEXT,
    );
    try {
      await this.opts.publisher.publish(subject, payload, {
        msgId,
        contentType: CONTENT_TYPES.ROLLUP,
        expectStream: this.opts.topology.streams.rollups.name,
        context: trace.setSpan(ROOT_CONTEXT, span),
      });
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
    this.opts.metrics.rollupsPublished.inc({ resolution: r.name });
  }
}
