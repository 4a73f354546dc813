// Watch: fleet rules on the pipeline's streams. Silence rules on clean telemetry (a device, or one of
// its sensors, quiet for N times its learned usual interval or a fixed timeout, and its recovery) and
// anomaly rules on the roll-ups of one resolution (EWMA baseline, z-score). Alerts go to the ALERTS
// stream (`alerts.<region>.<kind>`) with deterministic ids; the webhook dispatcher delivers them.
// State is in PostgreSQL, so replicas share the durable consumers and the sweep, and a restart or a
// replica change continues from the same baselines with no double alerts. Serves only the ops endpoints.
import { jetstreamManager } from '@nats-io/jetstream';
import { Actor, isConnectionLoss, StoreGate } from '@sluice/actor';
import {
  decodeBatch,
  decodeRollup,
  rollupFilter,
  type EventBatch,
  type Rollup,
  type Topology,
} from '@sluice/contracts';
import { ensureStream } from '@sluice/jetstream';
import { createPool } from '@sluice/pg';
import type { Runtime, Service } from '@sluice/runtime';
import { Counter, Histogram } from 'prom-client';
import { AlertPublisher } from './alert';
import type { Config } from './config';
import { checkMigrated, migrate } from './migrations';
import { CONSUMERS, SERVICE, WATCH_METRICS } from './names';
import { Watcher } from './watcher';

export { SERVICE };

/** The roll-up subjects of one resolution (of the deployment's region, when it has one). */
export function rollupsOf(t: Topology, resolution: string): string {
  const f = rollupFilter({ resolution, ...(t.region !== undefined ? { region: t.region } : {}) });
  return t.namespace ? `${t.namespace}.${f}` : f;
}

export function createService(rt: Runtime<Config>): Service {
  const c = rt.config;
  const log = rt.log;
  const pool = createPool({ service: SERVICE, url: c.PG_URL, max: c.WATCH_PG_POOL, log });
  const gate = new StoreGate({
    store: 'postgres',
    probe: async () => {
      await pool.query('SELECT 1');
    },
    isOutage: isConnectionLoss,
    log,
    registry: rt.registry,
  });
  const alerts = new AlertPublisher(rt.nc, rt.topology.namespace);
  const watcher = new Watcher({
    pool,
    alerts,
    silence: {
      scope: c.WATCH_SILENCE_SCOPE,
      factor: c.WATCH_SILENCE_FACTOR,
      floorMs: c.WATCH_SILENCE_FLOOR,
      timeoutMs: c.WATCH_SILENCE_TIMEOUT,
      alpha: c.WATCH_SILENCE_ALPHA,
      minGaps: c.WATCH_SILENCE_MIN_GAPS,
      sweepBatch: c.WATCH_SWEEP_BATCH,
    },
    anomaly: {
      resolution: c.WATCH_ANOMALY_RESOLUTION,
      alpha: c.WATCH_ANOMALY_ALPHA,
      z: c.WATCH_ANOMALY_Z,
      minHistory: c.WATCH_ANOMALY_MIN_HISTORY,
      minStd: c.WATCH_ANOMALY_MIN_STD,
    },
    log,
    registry: rt.registry,
    failpoint: c.WATCH_FAILPOINT,
  });
  const dlq = { stream: rt.topology.streams.dlq, subject: rt.topology.dlq(SERVICE) };
  const silenceOn = c.WATCH_SILENCE_FACTOR > 0 || c.WATCH_SILENCE_TIMEOUT > 0;

  const clean = new Actor<EventBatch>({
    service: SERVICE,
    nc: rt.nc,
    topology: rt.topology,
    stream: rt.topology.streams.clean,
    consumer: {
      durable: CONSUMERS.clean,
      filterSubjects: [rt.topology.filters.clean],
      deliverPolicy: c.WATCH_START_FROM,
    },
    dlq,
    decode: (m) => decodeBatch(m.data),
    batch: { maxMessages: 256 },
    gates: [gate],
    logger: log,
    registry: rt.registry,
    handle: (batch) => watcher.handleClean(batch),
  });
  const resolution = c.WATCH_ANOMALY_RESOLUTION;
  const rollups =
    resolution === ''
      ? undefined
      : new Actor<Rollup>({
          service: SERVICE,
          nc: rt.nc,
          topology: rt.topology,
          stream: rt.topology.streams.rollups,
          consumer: {
            durable: CONSUMERS.rollups,
            filterSubjects: [rollupsOf(rt.topology, resolution)],
            deliverPolicy: c.WATCH_START_FROM,
          },
          dlq,
          decode: (m) => decodeRollup(m.data),
          batch: { maxMessages: 256 },
          gates: [gate],
          logger: log,
          registry: rt.registry,
          handle: (batch) => watcher.handleRollups(batch),
        });

  // The sweep judges silence by arrival clock: only while the clean consumer is caught up, so what
  // JetStream holds for this service and it has not read yet never looks like silence.
  const deferred = new Counter({
    name: WATCH_METRICS.sweepsDeferred,
    help: 'Sweeps skipped while the clean consumer had a backlog',
    registers: [rt.registry],
  });
  const sweepSeconds = new Histogram({
    name: WATCH_METRICS.sweepSeconds,
    help: 'Duration of one silence sweep',
    registers: [rt.registry],
  });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  const sweepOnce = async () => {
    const jsm = await jetstreamManager(rt.nc);
    const info = await jsm.consumers.info(rt.topology.streams.clean.name, CONSUMERS.clean);
    if (info.num_pending > c.WATCH_SWEEP_MAX_PENDING) {
      deferred.inc();
      return;
    }
    const end = sweepSeconds.startTimer();
    try {
      await watcher.sweep();
    } finally {
      end();
    }
  };
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = sweepOnce()
        .catch((err: unknown) => {
          if (isConnectionLoss(err))
            gate.warnUnlessOutage(log, err, 'silence sweep failed; the next one retries');
          else log.warn({ err }, 'silence sweep failed; the next one retries');
        })
        .finally(schedule);
    }, c.WATCH_SWEEP_INTERVAL);
    timer.unref();
  };

  return {
    async prepare() {
      if (c.WATCH_MIGRATE_ON_START) await migrate(pool, log);
      else await checkMigrated(pool);
      const jsm = await jetstreamManager(rt.nc);
      await ensureStream(jsm, alerts.topology.stream);
      await ensureStream(jsm, rt.topology.streams.clean, { update: false });
      if (rollups) await ensureStream(jsm, rt.topology.streams.rollups, { update: false });
    },
    actors: [clean, ...(rollups ? [rollups] : [])],
    ready: { postgres: () => gate.isUp() },
    background: silenceOn
      ? [
          {
            name: 'silence-sweep',
            start: schedule,
            stop: async () => {
              stopped = true;
              clearTimeout(timer);
              await running;
            },
          },
        ]
      : [],
    close: [
      {
        name: 'stores',
        stop: async () => {
          alerts.close();
          gate.close();
          await pool.end();
        },
      },
    ],
  };
}
