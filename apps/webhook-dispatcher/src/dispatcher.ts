// Builds every part of the dispatcher from its config; main.ts wires them into the runtime, tests
// start and stop them in-process.
import { isConnectionLoss, StoreGate, type Actor } from '@sluice/actor';
import type { NatsConnection } from '@nats-io/nats-core';
import { listenerTls, redisTls } from '@sluice/config';
import type { Alert, EventBatch, Rollup, Topology } from '@sluice/contracts';
import { createDeviceHasher, type Logger } from '@sluice/observability';
import { createPool } from '@sluice/pg';
import type { Pool } from 'pg';
import { Registry } from 'prom-client';
import { startAdminApi, type AdminApi } from './admin-api';
import { AttemptLog } from './attempt-log';
import type { Config } from './config';
import { ConsecutiveRuns } from './consecutive';
import { EndpointGates, type Gates } from './endpoint-gate';
import { ConsecutiveState } from './filters';
import { WebhookHttpClient } from './http-client';
import { createMatchers, DeliveryPublisher } from './matcher';
import { checkMigrated, migrate } from './migrations';
import { SERVICE, webhookTopology, type WebhookTopology } from './names';
import { secretKeyring, usesDevelopmentKey } from './secret-keys';
import { SecretRotation, unreadableSecretReporter } from './secret-rotation';
import { Sender } from './sender';
import { SharedEndpointGates } from './shared-gates';
import {
  connectSharedRedis,
  sharedStatePrefix,
  SharedStateHealth,
  whenReady,
} from './shared-state';
import { SsrfPolicy } from './ssrf';
import { Store } from './store';
import { SubscriptionCache } from './subscription-cache';

export interface DispatcherDeps {
  config: Config;
  nc: NatsConnection;
  topology: Topology;
  log: Logger;
  registry: Registry;
}

export interface Dispatcher {
  webhooks: WebhookTopology;
  pool: Pool;
  store: Store;
  cache: SubscriptionCache;
  attemptLog: AttemptLog;
  /** Encryption of plaintext secrets and re-encryption under the active key. */
  secretRotation: SecretRotation;
  clean: Actor<EventBatch>;
  rollups: Actor<Rollup>;
  alerts: Actor<Alert>;
  sender: Sender;
  http: WebhookHttpClient;
  /** Per-endpoint admission (shared by the replicas with WEBHOOK_SHARED_STATE=redis). */
  gates: Gates;
  /** Redis availability of the shared state; undefined with WEBHOOK_SHARED_STATE=local. */
  sharedState: SharedStateHealth | undefined;
  /** Started by {@link startAdmin}. */
  api: AdminApi | undefined;
  /**
   * Migrates, checks the secret keys (a missing or wrong one throws a ConfigError), encrypts plaintext
   * secrets, loads subscriptions, starts the attempt log and the key rotation. Actors are started by
   * the caller.
   */
  prepare(): Promise<void>;
  startAdmin(): Promise<AdminApi>;
  /** Closes what {@link prepare} and {@link startAdmin} opened (after the actors stopped). */
  close(): Promise<void>;
}

export function createDispatcher({
  config: c,
  nc,
  topology,
  log,
  registry,
}: DispatcherDeps): Dispatcher {
  const webhooks = webhookTopology(topology.namespace);
  // Read before anything connects: an unreadable certificate is a ConfigError at start.
  const adminTls = listenerTls(c, 'WEBHOOK_ADMIN');
  const pool = createPool({ service: SERVICE, url: c.PG_URL, max: c.WEBHOOK_PG_POOL, log });
  const store = new Store(pool, {
    keyring: secretKeyring(c),
    onUnreadable: unreadableSecretReporter(log, registry),
  });
  const storeGate = new StoreGate({
    store: 'postgres',
    probe: async () => {
      await pool.query('SELECT 1');
    },
    isOutage: isConnectionLoss,
    log,
    registry,
  });
  const cache = new SubscriptionCache(store, log, c.WEBHOOK_SUBSCRIPTION_REFRESH, storeGate);
  const secretRotation = new SecretRotation({
    store,
    log,
    registry,
    batch: c.WEBHOOK_SECRET_REWRAP_BATCH,
    intervalMs: c.WEBHOOK_SECRET_REWRAP_INTERVAL,
    storeGate,
    developmentKey: usesDevelopmentKey(c),
  });
  const ssrf = new SsrfPolicy(c.WEBHOOK_SSRF_ALLOW_CIDRS);
  const http = new WebhookHttpClient(ssrf, {
    timeoutMs: c.WEBHOOK_REQUEST_TIMEOUT,
    bodyPrefixBytes: c.WEBHOOK_LOG_BODY_BYTES,
  });
  const gateOptions = {
    queueSize: c.WEBHOOK_ENDPOINT_QUEUE,
    maxQueueWaitMs: Math.floor(c.WEBHOOK_ACK_WAIT / 2),
  };
  // Shared state (docs/DECISIONS.md #28): limits and runs hold across replicas; per process while
  // Redis cannot answer.
  const shared =
    c.WEBHOOK_SHARED_STATE === 'redis'
      ? connectSharedRedis({
          url: c.REDIS_URL,
          tls: redisTls(c),
          commandTimeoutMs: c.WEBHOOK_REDIS_TIMEOUT,
          log,
        })
      : undefined;
  const health = shared && new SharedStateHealth({ redis: shared.redis, log, registry });
  const prefix = sharedStatePrefix(topology.namespace);
  const gates: Gates =
    shared && health
      ? new SharedEndpointGates({
          ...gateOptions,
          redis: shared.redis,
          health,
          prefix,
          leaseMs: c.WEBHOOK_SLOT_LEASE,
        })
      : new EndpointGates(gateOptions);
  const runs = new ConsecutiveRuns({
    local: new ConsecutiveState(c.WEBHOOK_CONSECUTIVE_STATE_MAX),
    ...(shared && health
      ? {
          shared: {
            redis: shared.redis,
            health,
            prefix,
            hashDeviceId: createDeviceHasher(c.DEVICE_ID_HASH_KEY),
            ttlMs: c.WEBHOOK_CONSECUTIVE_TTL,
            firedTtlMs: c.WEBHOOK_DUPLICATE_WINDOW,
          },
        }
      : {}),
    registry,
  });
  const attemptLog = new AttemptLog(
    store,
    log,
    {
      retentionMs: c.WEBHOOK_ATTEMPT_RETENTION,
      perSubscription: c.WEBHOOK_ATTEMPTS_PER_SUBSCRIPTION,
    },
    storeGate,
  );
  const publisher = new DeliveryPublisher(nc, webhooks);
  const matchers = createMatchers({
    nc,
    topology,
    webhooks,
    cache,
    logger: log,
    registry,
    startFrom: c.WEBHOOK_MATCH_FROM,
    runs,
    publisher,
  });
  const sender = new Sender({
    nc,
    topology,
    webhooks,
    store,
    cache,
    http,
    gates,
    attemptLog,
    logger: log,
    registry,
    retryScheduleMs: c.WEBHOOK_RETRY_SCHEDULE,
    jitter: c.WEBHOOK_RETRY_JITTER,
    retryAfterMaxMs: c.WEBHOOK_RETRY_AFTER_MAX,
    defaultConcurrency: c.WEBHOOK_ENDPOINT_CONCURRENCY,
    defaultRatePerS: c.WEBHOOK_DEFAULT_RATE_PER_S,
    maxInFlight: c.WEBHOOK_MAX_IN_FLIGHT,
    maxAckPending: c.WEBHOOK_MAX_ACK_PENDING,
    disableAfterMs: c.WEBHOOK_DISABLE_AFTER,
    ackWaitMs: c.WEBHOOK_ACK_WAIT,
    deliveriesMaxAgeMs: c.WEBHOOK_DELIVERIES_MAX_AGE,
    duplicateWindowMs: c.WEBHOOK_DUPLICATE_WINDOW,
    logBodyBytes: c.WEBHOOK_LOG_BODY_BYTES,
    storeGate,
  });

  const d: Dispatcher = {
    webhooks,
    pool,
    store,
    cache,
    attemptLog,
    secretRotation,
    clean: matchers.clean,
    rollups: matchers.rollups,
    alerts: matchers.alerts,
    sender,
    http,
    gates,
    sharedState: health,
    api: undefined,
    async prepare() {
      if (c.WEBHOOK_MIGRATE_ON_START) await migrate(pool, log);
      else await checkMigrated(pool);
      await secretRotation.start();
      // Start with the shared state when Redis is there; without it, begin per process (reported once).
      if (shared && health && !(await whenReady(shared.redis, 5_000)))
        health.failed(
          new Error(`redis at ${c.REDIS_URL.replace(/\/\/[^@/]*@/, '//')} is not ready`),
        );
      await cache.start();
      attemptLog.start();
    },
    async startAdmin() {
      d.api = await startAdminApi({
        port: c.WEBHOOK_ADMIN_PORT,
        host: c.WEBHOOK_ADMIN_HOST,
        token: c.WEBHOOK_ADMIN_TOKEN,
        store,
        cache,
        publisher,
        ssrf,
        requireHttps: c.WEBHOOK_REQUIRE_HTTPS,
        logger: log,
        requestTimeoutMs: c.WEBHOOK_ADMIN_REQUEST_TIMEOUT,
        bodyLimitBytes: c.WEBHOOK_ADMIN_BODY_LIMIT,
        registry,
        tls: adminTls,
      });
      log.info({ port: d.api.port }, 'admin API listening');
      return d.api;
    },
    async close() {
      await d.api?.close();
      await secretRotation.stop();
      cache.stop();
      storeGate.close();
      await attemptLog.stop();
      publisher.close();
      http.close();
      await shared?.stoppable.stop();
      await pool.end();
    },
  };
  return d;
}
