// Versioned schema migrations, applied in order at start under a PostgreSQL advisory lock so
// replicas starting together apply each version exactly once.
import type { Pool } from 'pg';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'subscriptions, secrets, attempt log, dead letters',
    sql: `
      CREATE TABLE webhook_subscriptions (
        id uuid PRIMARY KEY,
        url text NOT NULL,
        description text NOT NULL DEFAULT '',
        filter jsonb NOT NULL,
        enabled boolean NOT NULL DEFAULT true,
        disabled_reason text,
        rate_limit_per_s double precision,
        max_concurrency integer,
        failing_since timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE webhook_secrets (
        subscription_id uuid NOT NULL REFERENCES webhook_subscriptions(id) ON DELETE CASCADE,
        secret text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz,
        PRIMARY KEY (subscription_id, secret)
      );
      CREATE TABLE webhook_attempts (
        id bigserial PRIMARY KEY,
        subscription_id uuid NOT NULL REFERENCES webhook_subscriptions(id) ON DELETE CASCADE,
        webhook_id text NOT NULL,
        generation integer NOT NULL,
        attempt integer NOT NULL,
        event_type text NOT NULL,
        outcome text NOT NULL,
        status integer,
        latency_ms double precision,
        error text,
        response_body text,
        attempted_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX webhook_attempts_by_subscription ON webhook_attempts (subscription_id, id DESC);
      CREATE INDEX webhook_attempts_by_webhook ON webhook_attempts (webhook_id, generation);
      CREATE INDEX webhook_attempts_by_time ON webhook_attempts (attempted_at);
      CREATE TABLE webhook_dead_letters (
        webhook_id text PRIMARY KEY,
        subscription_id uuid NOT NULL REFERENCES webhook_subscriptions(id) ON DELETE CASCADE,
        event_type text NOT NULL,
        generation integer NOT NULL,
        delivery jsonb NOT NULL,
        attempts integer NOT NULL,
        reason text NOT NULL,
        last_status integer,
        last_error text,
        dead_at timestamptz NOT NULL DEFAULT now(),
        redriven_at timestamptz
      );
      CREATE INDEX webhook_dead_letters_by_subscription ON webhook_dead_letters (subscription_id, dead_at);
    `,
  },
];

/** Arbitrary constant identifying this service's migration lock. */
const LOCK_KEY = 0x5e_b4_00_01;

/** Applies the missing migrations in one transaction each; returns the versions applied. */
export async function migrate(pool: Pool, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  const client = await pool.connect();
  const applied: number[] = [];
  try {
    await client.query('SELECT pg_advisory_lock($1)', [LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS webhook_schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set((await client.query<{ version: number }>('SELECT version FROM webhook_schema_migrations')).rows.map((r) => r.version));
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (done.has(m.version)) continue;
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO webhook_schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
        await client.query('COMMIT');
        applied.push(m.version);
      } catch (err) {
        await client.query('ROLLBACK');
        throw new Error(`migration ${m.version} (${m.name}) failed: ${(err as Error).message}`, { cause: err });
      }
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [LOCK_KEY]).catch(() => undefined);
    client.release();
  }
  return applied;
}
