import type { AsyncPublisher } from '@sluice/actor';
import { CONTENT_TYPES, encodeRollup, RollupScope, type Topology } from '@sluice/contracts';
import type { Logger } from '@sluice/observability';
import type { Pool } from 'pg';
import { inTransaction } from './pg';
import type { AggregatorMetrics } from './metrics';
import { SCOPE_DEVICE } from './partial';
import type { Resolution } from './resolutions';

export interface CloserOptions {
  pool: Pool;
  /** Publishes Rollups (owned by the caller, who closes it after the closer is idle). */
  publisher: AsyncPublisher;
  topology: Topology;
  resolutions: readonly Resolution[];
  /** Resolutions whose windows are published; the others are only marked closed. */
  publish: ReadonlySet<string>;
  allowedLatenessMs: number;
  log: Logger;
  metrics: AggregatorMetrics;
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
}

const MS = (col: string) => `(extract(epoch from ${col}) * 1000)::float8`;

/** `<scope>:<device|region>:<sensor>:<resolution>:<window_start_ms>:<revision>`: a re-publish is dropped by JetStream. */
export function rollupMsgId(r: {
  scope: number;
  key: string;
  sensor: string;
  resolution: string;
  start: number;
  revision: number;
}): string {
  return `${r.scope === SCOPE_DEVICE ? 'device' : 'region'}:${r.key}:${r.sensor}:${r.resolution}:${r.start}:${r.revision}`;
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
   * Per resolution, the window start from which a bounded pass looks: every window before it was
   * closed by an earlier pass. Closed rows leave dead entries in the pending index until vacuum, and
   * a scan from the partition's start walked over all of them on every pass (3–4× the cost per row).
   */
  private readonly closedBefore = new Map<string, number>();
  private lastFull = Number.NEGATIVE_INFINITY;

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
    this.running = (async () => {
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
    })();
    return this.running;
  }

  /** Completes the pass in progress, if any. */
  async idle(): Promise<void> {
    await this.running;
  }

  private async pass(requestedFull: boolean): Promise<void> {
    const startedAt = this.now();
    const full = requestedFull || startedAt - this.lastFull >= (this.opts.fullPassEveryMs ?? 5_000);
    const { rows } = await this.opts.pool.query<{ wm: number }>(
      `SELECT ${MS('max_event_time')} AS wm FROM aggregator_state WHERE id = 1`,
    );
    const watermark = (rows[0]?.wm ?? 0) - this.opts.allowedLatenessMs;
    for (const r of this.opts.resolutions) {
      const upTo = watermark - r.ms;
      const from = full ? null : (this.closedBefore.get(r.name) ?? null);
      // Bounded: each round closes up to batchSize rows; the cap only stops a pathological loop.
      for (let round = 0; round < 1_000; round++) {
        if ((await this.closeSome(r, from, upTo)) < this.batchSize) {
          // Every window up to `upTo` is closed now, but for rows a concurrent flush held locked
          // (skipped): a late merge or a new row, which a full pass finds.
          this.closedBefore.set(r.name, Math.max(this.closedBefore.get(r.name) ?? upTo, upTo));
          break;
        }
      }
    }
    if (full) this.lastFull = startedAt;
    this.opts.metrics.closerPasses.inc({ kind: full ? 'full' : 'bounded' });
  }

  private async closeSome(r: Resolution, from: number | null, upTo: number): Promise<number> {
    return inTransaction(this.opts.pool, async (client) => {
      // One statement picks, locks and marks the batch (it used to be SELECT … FOR UPDATE, then an
      // UPDATE joined on an unnest of the keys). RETURNING gives the row as it was (revision before
      // the bump). The Rollups are published before COMMIT: a failed publish rolls the marks back,
      // and a flush merging into one of these rows waits on the row lock until the commit.
      const { rows } = await client.query<PendingRow>(
        `WITH picked AS (
           SELECT scope, series_key, sensor, window_start FROM rollups
           WHERE resolution = $1 AND (NOT closed OR dirty) AND window_start <= 'epoch'::timestamptz + $2::float8 * interval '1 millisecond'
             AND ($4::float8 IS NULL OR window_start >= 'epoch'::timestamptz + $4::float8 * interval '1 millisecond')
           ORDER BY window_start LIMIT $3 FOR UPDATE SKIP LOCKED)
         UPDATE rollups t SET closed = true, dirty = false, revision = t.revision + 1
         FROM picked p
         WHERE t.resolution = $1 AND t.scope = p.scope AND t.series_key = p.series_key
           AND t.sensor = p.sensor AND t.window_start = p.window_start
         RETURNING t.resolution, t.scope, t.series_key, t.sensor, ${MS('t.window_start')} AS ws, t.region, t.count::float8 AS count, t.sum, t.min, t.max,
                   ${MS('t.first_time')} AS ft, t.first_value, ${MS('t.last_time')} AS lt, t.last_value, t.late_count::float8 AS late_count, t.revision - 1 AS revision`,
        [r.name, upTo, this.batchSize, from],
      );
      if (rows.length === 0) return rows;
      // All publishes of the batch in flight at once; the batch commits only when every ack is in.
      if (this.opts.publish.has(r.name)) await Promise.all(rows.map((row) => this.publish(row, r)));
      return rows;
    }).then((rows) => {
      for (const row of rows)
        this.opts.metrics.windowsClosed.inc({
          resolution: r.name,
          kind: row.revision === 0 ? 'closed' : 'revision',
        });
      return rows.length;
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
    await this.opts.publisher.publish(this.opts.topology.rollup(r.name, row.region), payload, {
      msgId: rollupMsgId({
        scope: row.scope,
        key: row.series_key,
        sensor: row.sensor,
        resolution: r.name,
        start: row.ws,
        revision,
      }),
      contentType: CONTENT_TYPES.ROLLUP,
      expectStream: this.opts.topology.streams.rollups.name,
    });
    this.opts.metrics.rollupsPublished.inc({ resolution: r.name });
  }
}
