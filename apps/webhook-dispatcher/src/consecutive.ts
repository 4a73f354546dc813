// "N consecutive matching readings" (filter `consecutive: N`), counted for every replica at once.
//
// Ordering guarantee: a run is counted over one (subscription, device, sensor)'s readings in event
// time order; readings with the same event time in stream order (clean message sequence, then
// position in the batch). The state of a series is one Redis hash holding the last counted reading's
// position and the run length, updated by one script per matcher batch (compare-and-set inside the
// script, so replicas never count a reading twice nor lose each other's updates). A reading older
// than (or equal to) the last counted one — its message was handled after a later one of the same
// series by another replica, the device sent late data, or the message is a redelivery — does not
// extend or break the run and never fires (metered as skipped). The reading that completes a run of
// N fires once: the script records it (`fired`, for the duplicate window), so a redelivery of its
// message fires it again with the same webhook-id, which the deliveries stream drops.
//
// Without Redis (WEBHOOK_SHARED_STATE=local, or while it cannot answer) the per-process
// ConsecutiveState counts instead, in the same order within each batch.
import type { TelemetryEvent } from '@sluice/contracts';
import type { DeviceHasher } from '@sluice/observability';
import type Redis from 'ioredis';
import { Counter, type Registry } from 'prom-client';
import type { ConsecutiveState } from './filters';
import { SHARED_STATE_METRICS } from './names';
import type { SharedStateHealth } from './shared-state';

/** One in-scope reading of a subscription with `consecutive` > 1. */
export interface RunObservation {
  subscriptionId: string;
  event: TelemetryEvent;
  /** Whether the reading satisfies the value condition. */
  matched: boolean;
  /** The subscription's N. */
  n: number;
  /** Stream sequence of the clean message: orders readings with equal event times. */
  seq: number;
  /** Position of the reading in its batch. */
  index: number;
}

/**
 * Per observation: KEYS run hash, fired marker; ARGV event time ms, seq, index, matched (1/0), N.
 * ARGV[1] run TTL ms, ARGV[2] fired-marker TTL ms. Returns per observation: the run length when the
 * reading fires (now, or before: a redelivery), 0 when counted without firing, -1 when skipped.
 */
const OBSERVE = `
local ttl = tonumber(ARGV[1])
local firedTtl = tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS / 2 do
  local runKey = KEYS[2 * i - 1]
  local firedKey = KEYS[2 * i]
  local a = 2 + (i - 1) * 5
  local fired = redis.call('GET', firedKey)
  if fired then
    out[i] = tonumber(fired)
  else
    local t = tonumber(ARGV[a + 1])
    local s = tonumber(ARGV[a + 2])
    local x = tonumber(ARGV[a + 3])
    local h = redis.call('HMGET', runKey, 't', 's', 'x', 'run')
    local lt = tonumber(h[1])
    local older = false
    if lt then
      local ls = tonumber(h[2])
      older = t < lt or (t == lt and (s < ls or (s == ls and x <= tonumber(h[3]))))
    end
    if older then
      out[i] = -1
    else
      local run = 0
      if ARGV[a + 4] == '1' then run = tonumber(h[4] or '0') + 1 end
      out[i] = 0
      if run >= tonumber(ARGV[a + 5]) then
        out[i] = run
        redis.call('SET', firedKey, run, 'PX', firedTtl)
        run = 0
      end
      redis.call('HSET', runKey, 't', ARGV[a + 1], 's', ARGV[a + 2], 'x', ARGV[a + 3], 'run', run)
      redis.call('PEXPIRE', runKey, ttl)
    end
  end
end
return out
`;

interface ScriptedRedis extends Redis {
  whkObserveRuns(numKeys: number, ...args: Array<string | number>): Promise<number[]>;
}

/** Observations per script call; the calls of one batch go out together (one round trip). */
const PER_CALL = 500;

export interface SharedRunsOptions {
  redis: Redis;
  health: SharedStateHealth;
  /** Key prefix of this namespace (`sharedStatePrefix()`). */
  prefix: string;
  /** Keys name a series by the keyed hash of its device id: the raw id never reaches Redis. */
  hashDeviceId: DeviceHasher;
  /** A series' run state expires this long after its last counted reading. */
  ttlMs: number;
  /** How long a fired reading is remembered (the deliveries stream's duplicate window). */
  firedTtlMs: number;
}

export interface ConsecutiveRunsOptions {
  /** Per-process counter: the only one without `shared`, the fallback with it. */
  local: ConsecutiveState;
  /** Redis state shared by the replicas. Default none (per process). */
  shared?: SharedRunsOptions;
  registry: Registry;
}

const timeOf = (e: TelemetryEvent) => e.eventTime?.getTime() ?? 0;

export class ConsecutiveRuns {
  private readonly redis: ScriptedRedis | undefined;
  private readonly skipped: Counter;

  constructor(private readonly opts: ConsecutiveRunsOptions) {
    const redis = opts.shared?.redis as ScriptedRedis | undefined;
    if (redis && !redis.whkObserveRuns) redis.defineCommand('whkObserveRuns', { lua: OBSERVE });
    this.redis = redis;
    this.skipped = new Counter({
      name: SHARED_STATE_METRICS.consecutiveSkipped,
      help: 'Readings not counted in a consecutive run because a newer (or the same) reading of the series was counted already',
      registers: [opts.registry],
    });
  }

  /**
   * Counts a batch's readings; per observation (in the order given) the run length when the reading
   * completes a run of N (a delivery is due), else 0.
   */
  async observe(obs: readonly RunObservation[]): Promise<number[]> {
    const order = obs
      .map((_, i) => i)
      .sort((a, b) => {
        const x = obs[a]!;
        const y = obs[b]!;
        return timeOf(x.event) - timeOf(y.event) || x.seq - y.seq || x.index - y.index;
      });
    const out = new Array<number>(obs.length).fill(0);
    const shared = this.opts.shared;
    if (shared && this.redis) {
      if (!shared.health.usable()) shared.health.fellBack('consecutive');
      else {
        try {
          const results = await this.observeShared(obs, order, shared, this.redis);
          shared.health.succeeded();
          for (let k = 0; k < order.length; k++) {
            const r = results[k]!;
            if (r < 0) this.skipped.inc();
            else out[order[k]!] = r;
          }
          return out;
        } catch (err) {
          shared.health.fellBack('consecutive', err);
        }
      }
    }
    for (const i of order) {
      const o = obs[i]!;
      out[i] = this.opts.local.observe(o.subscriptionId, o.event, o.matched, o.n);
    }
    return out;
  }

  private async observeShared(
    obs: readonly RunObservation[],
    order: readonly number[],
    s: SharedRunsOptions,
    redis: ScriptedRedis,
  ): Promise<number[]> {
    const calls: Array<Promise<number[]>> = [];
    for (let start = 0; start < order.length; start += PER_CALL) {
      const part = order.slice(start, start + PER_CALL);
      const keys: string[] = [];
      const args: Array<string | number> = [s.ttlMs, s.firedTtlMs];
      for (const i of part) {
        const o = obs[i]!;
        const e = o.event;
        const sub = `${s.prefix}run:{${o.subscriptionId}}:`;
        keys.push(
          `${sub}${s.hashDeviceId(e.deviceId)}:${e.sensorType}`,
          `${s.prefix}fired:{${o.subscriptionId}}:${e.eventId}`,
        );
        args.push(timeOf(e), o.seq, o.index, o.matched ? 1 : 0, o.n);
      }
      // Sent back to back on one connection: Redis runs them in this order.
      calls.push(redis.whkObserveRuns(keys.length, ...keys, ...args));
    }
    return (await Promise.all(calls)).flat();
  }
}
