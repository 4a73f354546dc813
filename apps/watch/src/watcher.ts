// The two rules on their streams. State lives in PostgreSQL and every change to it is made in one
// transaction that holds the series' rows locked while the alerts it implies are published; the
// source message is acked (or the sweep moves on) only after the commit. A crash anywhere redoes the
// same transaction from the same state: the same alerts with the same ids, dropped as repeats.
import type { PoolClient, Pool } from 'pg';
import { Outcomes, type Delivery, type Outcome } from '@sluice/actor';
import { RollupScope, type EventBatch, type Rollup } from '@sluice/contracts';
import { inTransaction } from '@sluice/pg';
import type { Logger } from '@sluice/observability';
import { Counter, type Registry } from 'prom-client';
import { newAlert, type AlertPublisher } from './alert';
import { judge, std, type AnomalyParams, type Baseline } from './anomaly';
import { WATCH_METRICS } from './names';
import { isSilent, observe, thresholdMs, type SeriesState, type SilenceParams } from './silence';

/** Series key: `sensorType` `''` is the device as a whole. */
interface Key {
  deviceId: string;
  sensorType: string;
}
const keyOf = (k: Key) => `${k.deviceId}\n${k.sensorType}`;
const iso = (ms: number) => new Date(ms).toISOString();

export interface WatcherOptions {
  pool: Pool;
  alerts: AlertPublisher;
  silence: SilenceParams & { scope: 'device' | 'sensor' | 'both'; sweepBatch: number };
  anomaly: AnomalyParams & { resolution: string };
  log: Logger;
  registry: Registry;
  /** Test only: see WATCH_FAILPOINT. */
  failpoint?: '' | 'sweep-after-publish';
}

interface Row {
  device_id: string;
  sensor_type: string;
  region: string;
  last_arrival: Date;
  last_event_time: Date;
  interval_ms: number | null;
  gaps: number;
  episode_start: Date | null;
}

const stateOf = (r: Row): SeriesState => ({
  lastArrival: r.last_arrival.getTime(),
  lastEventTime: r.last_event_time.getTime(),
  intervalMs: r.interval_ms ?? undefined,
  gaps: r.gaps,
});

export class Watcher {
  private readonly raised: Counter;
  private readonly skipped: Counter;

  constructor(private readonly o: WatcherOptions) {
    this.skipped = new Counter({
      name: WATCH_METRICS.windowsSkipped,
      help: 'Roll-up windows not judged because a later window of the series was judged first (replays, or a backlog consumed by several replicas at once)',
      registers: [o.registry],
    });
    this.raised = new Counter({
      name: WATCH_METRICS.alerts,
      help: 'Alerts raised (published; a repeat after a crash is counted again), by kind',
      labelNames: ['kind'],
      registers: [o.registry],
    });
  }

  /** Clean batches: fold every reading into its series; a reading of a silent series raises its recovery. */
  async handleClean(batch: ReadonlyArray<Delivery<EventBatch>>): Promise<Outcome[]> {
    const p = this.o.silence;
    const groups = new Map<string, Key & { region: string; times: number[]; arrival: number }>();
    for (const d of batch) {
      const arrival = Math.floor(d.msg.info.timestampNanos / 1e6);
      for (const ev of d.value.events) {
        if (ev.kind?.$case !== 'telemetry') continue;
        const e = ev.kind.value;
        const t = e.eventTime?.getTime();
        if (t === undefined || !e.deviceId) continue;
        const keys: Key[] = [];
        if (p.scope !== 'sensor') keys.push({ deviceId: e.deviceId, sensorType: '' });
        if (p.scope !== 'device') keys.push({ deviceId: e.deviceId, sensorType: e.sensorType });
        for (const k of keys) {
          const id = keyOf(k);
          let g = groups.get(id);
          if (!g) groups.set(id, (g = { ...k, region: e.region, times: [], arrival }));
          g.times.push(t);
          g.arrival = Math.max(g.arrival, arrival);
        }
      }
    }
    if (groups.size === 0) return batch.map(() => Outcomes.ack());
    // Keys in one order in every transaction: two replicas locking overlapping series cannot deadlock.
    const list = [...groups.values()].sort((a, b) =>
      a.deviceId === b.deviceId
        ? a.sensorType < b.sensorType
          ? -1
          : 1
        : a.deviceId < b.deviceId
          ? -1
          : 1,
    );
    const context = batch[batch.length - 1]!.context;
    try {
      await inTransaction(this.o.pool, async (c) => {
        const rows = await lockSeries(c, list);
        const out = list.map((g) => {
          const row = rows.get(keyOf(g));
          const next = observe(row && stateOf(row), g.times, g.arrival, p);
          const limit = thresholdMs(next, p);
          // A reading that arrived after the silence began ends the episode.
          const recovered =
            row?.episode_start != null && g.arrival > row.last_arrival.getTime() ? row : undefined;
          return {
            g,
            next,
            limit,
            recovered,
            episodeOpen: row?.episode_start != null && !recovered,
          };
        });
        const recoveries = out.filter((x) => x.recovered);
        await Promise.all(
          recoveries.map(({ g, recovered, next }) =>
            this.o.alerts.publish(
              newAlert({
                kind: 'recovery',
                region: recovered!.region,
                deviceId: g.deviceId,
                sensorType: g.sensorType,
                rule: 'silence',
                episodeStart: recovered!.episode_start!.toISOString(),
                details: {
                  silent_since: recovered!.last_arrival.toISOString(),
                  resumed_at: iso(g.arrival),
                  silent_ms: g.arrival - recovered!.last_arrival.getTime(),
                  last_event_time: iso(next.lastEventTime),
                },
              }),
              context,
            ),
          ),
        );
        await c.query(
          `INSERT INTO watch_series AS s (device_id, sensor_type, region, last_arrival, last_event_time, interval_ms, gaps, due_at, episode_start)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::float8[], $7::int[], $8::timestamptz[], $9::timestamptz[])
           ON CONFLICT (device_id, sensor_type) DO UPDATE SET
             region = EXCLUDED.region, last_arrival = GREATEST(s.last_arrival, EXCLUDED.last_arrival),
             last_event_time = GREATEST(s.last_event_time, EXCLUDED.last_event_time), interval_ms = EXCLUDED.interval_ms,
             gaps = EXCLUDED.gaps, due_at = EXCLUDED.due_at, episode_start = EXCLUDED.episode_start`,
          [
            out.map((x) => x.g.deviceId),
            out.map((x) => x.g.sensorType),
            out.map((x) => x.g.region),
            out.map((x) => iso(x.next.lastArrival)),
            out.map((x) => iso(x.next.lastEventTime)),
            out.map((x) => x.next.intervalMs ?? null),
            out.map((x) => x.next.gaps),
            out.map((x) => (x.limit === undefined ? null : iso(x.next.lastArrival + x.limit))),
            out.map((x) =>
              x.episodeOpen ? rows.get(keyOf(x.g))!.episode_start!.toISOString() : null,
            ),
          ],
        );
        for (let i = 0; i < recoveries.length; i++) this.raised.inc({ kind: 'recovery' });
      });
    } catch (err) {
      return batch.map(() => Outcomes.retry(err as Error));
    }
    return batch.map(() => Outcomes.ack());
  }

  /**
   * One pass over the series due at arrival-clock `now`: each silent one gets its alert and is marked
   * silent. Rows are claimed with SKIP LOCKED, so replicas sweeping at once share the work. Returns
   * the number of alerts raised.
   */
  async sweep(now = Date.now()): Promise<number> {
    const p = this.o.silence;
    let total = 0;
    for (;;) {
      const n = await inTransaction(this.o.pool, async (c) => {
        const { rows } = await c.query<Row>(
          `SELECT device_id, sensor_type, region, last_arrival, last_event_time, interval_ms, gaps, episode_start
             FROM watch_series
            WHERE episode_start IS NULL AND due_at IS NOT NULL AND due_at < $1
            ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED`,
          [iso(now), p.sweepBatch],
        );
        const silent = rows.filter((r) => isSilent(stateOf(r), now, p));
        await Promise.all(
          silent.map((r) => {
            const s = stateOf(r);
            return this.o.alerts.publish(
              newAlert({
                kind: 'silence',
                region: r.region,
                deviceId: r.device_id,
                sensorType: r.sensor_type,
                rule: 'silence',
                episodeStart: r.last_arrival.toISOString(),
                details: {
                  last_arrival: r.last_arrival.toISOString(),
                  last_event_time: r.last_event_time.toISOString(),
                  usual_interval_ms: s.gaps >= p.minGaps ? (s.intervalMs ?? null) : null,
                  threshold_ms: thresholdMs(s, p),
                  silent_ms: now - s.lastArrival,
                },
              }),
            );
          }),
        );
        if (silent.length > 0 && this.o.failpoint === 'sweep-after-publish') {
          this.o.log.warn({ alerts: silent.length }, 'failpoint sweep-after-publish: SIGKILL');
          process.kill(process.pid, 'SIGKILL');
          await new Promise(() => undefined);
        }
        if (silent.length > 0)
          await c.query(
            `UPDATE watch_series SET episode_start = last_arrival
              WHERE (device_id, sensor_type) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
            [silent.map((r) => r.device_id), silent.map((r) => r.sensor_type)],
          );
        // Due by a threshold computed under other settings, not silent under these: due again later.
        const notYet = rows.filter((r) => !isSilent(stateOf(r), now, p));
        if (notYet.length > 0)
          await c.query(
            `UPDATE watch_series AS s SET due_at = t.due
               FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS t(d, k, due)
              WHERE s.device_id = t.d AND s.sensor_type = t.k`,
            [
              notYet.map((r) => r.device_id),
              notYet.map((r) => r.sensor_type),
              notYet.map((r) => {
                const limit = thresholdMs(stateOf(r), p);
                return limit === undefined ? null : iso(r.last_arrival.getTime() + limit);
              }),
            ],
          );
        for (let i = 0; i < silent.length; i++) this.raised.inc({ kind: 'silence' });
        return { rows: rows.length, silent: silent.length };
      });
      total += n.silent;
      if (n.rows < p.sweepBatch) return total;
    }
  }

  /** Roll-ups of the chosen resolution: judge each device window against its series' baseline. */
  async handleRollups(batch: ReadonlyArray<Delivery<Rollup>>): Promise<Outcome[]> {
    const p = this.o.anomaly;
    const groups = new Map<string, Key & { windows: Array<{ r: Rollup; d: Delivery<Rollup> }> }>();
    for (const d of batch) {
      const r = d.value;
      // First publications of device windows only: a revision re-states a window already judged.
      if (r.scope !== RollupScope.DEVICE || !r.deviceId || r.resolution !== p.resolution) continue;
      if (r.revision > 1 || !r.windowStart || !Number.isFinite(r.avg)) continue;
      const k = { deviceId: r.deviceId, sensorType: r.sensorType };
      let g = groups.get(keyOf(k));
      if (!g) groups.set(keyOf(k), (g = { ...k, windows: [] }));
      g.windows.push({ r, d });
    }
    if (groups.size === 0) return batch.map(() => Outcomes.ack());
    const list = [...groups.values()].sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : 1));
    try {
      await inTransaction(this.o.pool, async (c) => {
        const { rows } = await c.query<{
          device_id: string;
          sensor_type: string;
          mean: number;
          variance: number;
          n: number;
          last_window: Date;
        }>(
          `SELECT device_id, sensor_type, mean, variance, n, last_window FROM watch_baselines
            WHERE resolution = $3 AND (device_id, sensor_type) IN (SELECT * FROM unnest($1::text[], $2::text[]))
            ORDER BY device_id, sensor_type FOR UPDATE`,
          [list.map((g) => g.deviceId), list.map((g) => g.sensorType), p.resolution],
        );
        const byKey = new Map(
          rows.map((r) => [keyOf({ deviceId: r.device_id, sensorType: r.sensor_type }), r]),
        );
        const updates: Array<Key & { b: Baseline; last: number }> = [];
        const pending: Array<Promise<void>> = [];
        for (const g of list) {
          const row = byKey.get(keyOf(g));
          let b: Baseline | undefined = row && { mean: row.mean, variance: row.variance, n: row.n };
          let last = row ? row.last_window.getTime() : -Infinity;
          const windows = g.windows.sort(
            (x, y) => x.r.windowStart!.getTime() - y.r.windowStart!.getTime(),
          );
          let changed = false;
          for (const { r, d } of windows) {
            const start = r.windowStart!.getTime();
            if (start <= last) {
              if (start < last) this.skipped.inc();
              continue;
            }
            const j = judge(b, r.avg, p);
            if (j.anomalous && j.before) {
              const windowStart = r.windowStart!.toISOString();
              pending.push(
                this.o.alerts.publish(
                  newAlert({
                    kind: 'anomaly',
                    region: r.region,
                    deviceId: g.deviceId,
                    sensorType: g.sensorType,
                    rule: `anomaly:${p.resolution}`,
                    episodeStart: windowStart,
                    details: {
                      resolution: p.resolution,
                      window_start: windowStart,
                      window_end: r.windowEnd?.toISOString() ?? null,
                      value: r.avg,
                      baseline_mean: j.before.mean,
                      baseline_std: std(j.before, p.minStd),
                      baseline_windows: j.before.n,
                      score: j.score,
                      threshold: p.z,
                    },
                  }),
                  d.context,
                ),
              );
              this.raised.inc({ kind: 'anomaly' });
            }
            b = j.next;
            last = start;
            changed = true;
          }
          if (changed && b) updates.push({ ...g, b, last });
        }
        await Promise.all(pending);
        if (updates.length > 0)
          await c.query(
            `INSERT INTO watch_baselines (device_id, sensor_type, resolution, mean, variance, n, last_window)
             SELECT d, s, $3, m, v, n, w FROM unnest($1::text[], $2::text[], $4::float8[], $5::float8[], $6::int[], $7::timestamptz[]) AS t(d, s, m, v, n, w)
             ON CONFLICT (device_id, sensor_type, resolution) DO UPDATE SET
               mean = EXCLUDED.mean, variance = EXCLUDED.variance, n = EXCLUDED.n, last_window = EXCLUDED.last_window`,
            [
              updates.map((u) => u.deviceId),
              updates.map((u) => u.sensorType),
              p.resolution,
              updates.map((u) => u.b.mean),
              updates.map((u) => u.b.variance),
              updates.map((u) => u.b.n),
              updates.map((u) => iso(u.last)),
            ],
          );
      });
    } catch (err) {
      return batch.map(() => Outcomes.retry(err as Error));
    }
    return batch.map(() => Outcomes.ack());
  }
}

async function lockSeries(c: PoolClient, keys: Key[]): Promise<Map<string, Row>> {
  const { rows } = await c.query<Row>(
    `SELECT device_id, sensor_type, region, last_arrival, last_event_time, interval_ms, gaps, episode_start
       FROM watch_series
      WHERE (device_id, sensor_type) IN (SELECT * FROM unnest($1::text[], $2::text[]))
      ORDER BY device_id, sensor_type FOR UPDATE`,
    [keys.map((k) => k.deviceId), keys.map((k) => k.sensorType)],
  );
  return new Map(rows.map((r) => [keyOf({ deviceId: r.device_id, sensorType: r.sensor_type }), r]));
}
