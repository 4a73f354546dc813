// PostgreSQL access: subscriptions and their secrets, the attempt log and the dead letters.
import { randomUUID } from 'node:crypto';
import { inTransaction } from '@sluice/pg';
import type { Pool } from 'pg';
import type { DeliveryMessage } from './delivery';
import { filterSchema, type Filter } from './filters';

export interface Subscription {
  id: string;
  url: string;
  description: string;
  filter: Filter;
  enabled: boolean;
  disabledReason: string | null;
  /** Requests per second; null = the configured default. */
  rateLimitPerS: number | null;
  /** Concurrent requests; null = the configured default. */
  maxConcurrency: number | null;
  failingSince: Date | null;
  createdAt: Date;
  updatedAt: Date;
  /** Secrets that currently sign (never returned by the API). */
  secrets: string[];
}

export interface AttemptRecord {
  subscriptionId: string;
  webhookId: string;
  generation: number;
  attempt: number;
  eventType: string;
  /** `success`, `retry`, `dead`, `gone`, `disabled`. */
  outcome: string;
  status: number | null;
  latencyMs: number | null;
  error: string | null;
  responseBody: string | null;
}

export interface DeadLetterRecord {
  webhookId: string;
  subscriptionId: string;
  eventType: string;
  generation: number;
  delivery: DeliveryMessage;
  attempts: number;
  reason: string;
  lastStatus: number | null;
  lastError: string | null;
  deadAt: Date;
  redrivenAt: Date | null;
}

type Row = Record<string, unknown>;

function toSubscription(r: Row, secrets: string[]): Subscription {
  return {
    id: r['id'] as string,
    url: r['url'] as string,
    description: r['description'] as string,
    filter: filterSchema.parse(r['filter']),
    enabled: r['enabled'] as boolean,
    disabledReason: (r['disabled_reason'] as string | null) ?? null,
    rateLimitPerS: (r['rate_limit_per_s'] as number | null) ?? null,
    maxConcurrency: (r['max_concurrency'] as number | null) ?? null,
    failingSince: (r['failing_since'] as Date | null) ?? null,
    createdAt: r['created_at'] as Date,
    updatedAt: r['updated_at'] as Date,
    secrets,
  };
}

function toDeadLetter(r: Row): DeadLetterRecord {
  return {
    webhookId: r['webhook_id'] as string,
    subscriptionId: r['subscription_id'] as string,
    eventType: r['event_type'] as string,
    generation: r['generation'] as number,
    delivery: r['delivery'] as DeliveryMessage,
    attempts: r['attempts'] as number,
    reason: r['reason'] as string,
    lastStatus: (r['last_status'] as number | null) ?? null,
    lastError: (r['last_error'] as string | null) ?? null,
    deadAt: r['dead_at'] as Date,
    redrivenAt: (r['redriven_at'] as Date | null) ?? null,
  };
}

export interface NewSubscription {
  url: string;
  description: string;
  filter: Filter;
  enabled: boolean;
  rateLimitPerS: number | null;
  maxConcurrency: number | null;
  secret: string;
}

export type SubscriptionPatch = Partial<Omit<NewSubscription, 'secret'>>;

export class Store {
  constructor(readonly pool: Pool) {}

  async createSubscription(s: NewSubscription): Promise<Subscription> {
    const id = randomUUID();
    await inTransaction(this.pool, async (client) => {
      await client.query(
        `INSERT INTO webhook_subscriptions (id, url, description, filter, enabled, rate_limit_per_s, max_concurrency)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [
          id,
          s.url,
          s.description,
          JSON.stringify(s.filter),
          s.enabled,
          s.rateLimitPerS,
          s.maxConcurrency,
        ],
      );
      await client.query('INSERT INTO webhook_secrets (subscription_id, secret) VALUES ($1, $2)', [
        id,
        s.secret,
      ]);
    });
    return (await this.getSubscription(id))!;
  }

  async listSubscriptions(): Promise<Subscription[]> {
    const [subs, secrets] = await Promise.all([
      this.pool.query('SELECT * FROM webhook_subscriptions ORDER BY created_at, id'),
      this.pool.query<{ subscription_id: string; secret: string }>(
        'SELECT subscription_id, secret FROM webhook_secrets WHERE expires_at IS NULL OR expires_at > now() ORDER BY created_at DESC',
      ),
    ]);
    const bySub = new Map<string, string[]>();
    for (const r of secrets.rows)
      bySub.set(r.subscription_id, [...(bySub.get(r.subscription_id) ?? []), r.secret]);
    return subs.rows.map((r: Row) => toSubscription(r, bySub.get(r['id'] as string) ?? []));
  }

  async getSubscription(id: string): Promise<Subscription | undefined> {
    const r = await this.pool.query('SELECT * FROM webhook_subscriptions WHERE id = $1', [id]);
    if (r.rowCount === 0) return undefined;
    const secrets = await this.pool.query<{ secret: string }>(
      'SELECT secret FROM webhook_secrets WHERE subscription_id = $1 AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at DESC',
      [id],
    );
    return toSubscription(
      r.rows[0] as Row,
      secrets.rows.map((s) => s.secret),
    );
  }

  async updateSubscription(id: string, p: SubscriptionPatch): Promise<Subscription | undefined> {
    const sets: string[] = [];
    const values: unknown[] = [id];
    const set = (col: string, v: unknown) => {
      values.push(v);
      sets.push(`${col} = $${values.length}`);
    };
    if (p.url !== undefined) set('url', p.url);
    if (p.description !== undefined) set('description', p.description);
    if (p.filter !== undefined) set('filter', JSON.stringify(p.filter));
    if (p.rateLimitPerS !== undefined) set('rate_limit_per_s', p.rateLimitPerS);
    if (p.maxConcurrency !== undefined) set('max_concurrency', p.maxConcurrency);
    if (p.enabled !== undefined) {
      set('enabled', p.enabled);
      if (p.enabled) sets.push('disabled_reason = NULL', 'failing_since = NULL');
      else sets.push(`disabled_reason = 'disabled through the API'`);
    }
    sets.push('updated_at = now()');
    const r = await this.pool.query(
      `UPDATE webhook_subscriptions SET ${sets.join(', ')} WHERE id = $1`,
      values,
    );
    return r.rowCount === 0 ? undefined : this.getSubscription(id);
  }

  async deleteSubscription(id: string): Promise<boolean> {
    const r = await this.pool.query('DELETE FROM webhook_subscriptions WHERE id = $1', [id]);
    return (r.rowCount ?? 0) > 0;
  }

  /** Adds `secret` as the newest signing secret; older ones expire after `graceMs` (still signing until then). */
  async rotateSecret(id: string, secret: string, graceMs: number): Promise<boolean> {
    return inTransaction(this.pool, async (client) => {
      const r = await client.query('SELECT 1 FROM webhook_subscriptions WHERE id = $1 FOR UPDATE', [
        id,
      ]);
      if (r.rowCount === 0) return false; // nothing written: the commit only ends the transaction
      await client.query(
        `UPDATE webhook_secrets SET expires_at = now() + make_interval(secs => $2::double precision / 1000)
         WHERE subscription_id = $1 AND (expires_at IS NULL OR expires_at > now() + make_interval(secs => $2::double precision / 1000))`,
        [id, graceMs],
      );
      await client.query('INSERT INTO webhook_secrets (subscription_id, secret) VALUES ($1, $2)', [
        id,
        secret,
      ]);
      await client.query(`UPDATE webhook_subscriptions SET updated_at = now() WHERE id = $1`, [id]);
      return true;
    });
  }

  /** Disables the subscription; true when this call changed it (so one replica reports it). */
  async disable(id: string, reason: string): Promise<boolean> {
    const r = await this.pool.query(
      'UPDATE webhook_subscriptions SET enabled = false, disabled_reason = $2, updated_at = now() WHERE id = $1 AND enabled',
      [id, reason],
    );
    return (r.rowCount ?? 0) > 0;
  }

  async setFailingSince(id: string, since: Date | null): Promise<void> {
    if (since)
      await this.pool.query(
        'UPDATE webhook_subscriptions SET failing_since = $2 WHERE id = $1 AND failing_since IS NULL',
        [id, since],
      );
    else
      await this.pool.query(
        'UPDATE webhook_subscriptions SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL',
        [id],
      );
  }

  async insertAttempts(rows: readonly AttemptRecord[]): Promise<void> {
    if (rows.length === 0) return;
    const cols = 10;
    const values: unknown[] = [];
    const tuples = rows.map((a, i) => {
      values.push(
        a.subscriptionId,
        a.webhookId,
        a.generation,
        a.attempt,
        a.eventType,
        a.outcome,
        a.status,
        a.latencyMs,
        a.error,
        a.responseBody,
      );
      return `(${Array.from({ length: cols }, (_, j) => `$${i * cols + j + 1}`).join(', ')})`;
    });
    // A subscription deleted meanwhile has no attempt log any more: skip its rows instead of failing the lot.
    await this.pool.query(
      `INSERT INTO webhook_attempts (subscription_id, webhook_id, generation, attempt, event_type, outcome, status, latency_ms, error, response_body)
       SELECT v.* FROM (VALUES ${tuples.join(', ')}) AS v(subscription_id, webhook_id, generation, attempt, event_type, outcome, status, latency_ms, error, response_body)
       WHERE EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE s.id = v.subscription_id::uuid)`.replace(
        /\$(\d+)/g,
        (m, n: string) => {
          const k = (Number(n) - 1) % cols;
          return `${m}::${['uuid', 'text', 'int', 'int', 'text', 'text', 'int', 'double precision', 'text', 'text'][k]}`;
        },
      ),
      values,
    );
  }

  /** Highest attempt number recorded for a delivery generation (0 if none). */
  async lastAttempt(webhookId: string, generation: number): Promise<number> {
    const r = await this.pool.query<{ n: number | null }>(
      'SELECT max(attempt) AS n FROM webhook_attempts WHERE webhook_id = $1 AND generation = $2',
      [webhookId, generation],
    );
    return r.rows[0]?.n ?? 0;
  }

  async listAttempts(
    subscriptionId: string,
    limit: number,
    webhookId?: string,
  ): Promise<Array<AttemptRecord & { id: string; attemptedAt: Date }>> {
    const r = await this.pool.query(
      `SELECT * FROM webhook_attempts WHERE subscription_id = $1 AND ($3::text IS NULL OR webhook_id = $3) ORDER BY id DESC LIMIT $2`,
      [subscriptionId, limit, webhookId ?? null],
    );
    return r.rows.map((x: Row) => ({
      id: String(x['id']),
      subscriptionId: x['subscription_id'] as string,
      webhookId: x['webhook_id'] as string,
      generation: x['generation'] as number,
      attempt: x['attempt'] as number,
      eventType: x['event_type'] as string,
      outcome: x['outcome'] as string,
      status: (x['status'] as number | null) ?? null,
      latencyMs: (x['latency_ms'] as number | null) ?? null,
      error: (x['error'] as string | null) ?? null,
      responseBody: (x['response_body'] as string | null) ?? null,
      attemptedAt: x['attempted_at'] as Date,
    }));
  }

  /** Records a dead delivery (a later death of a redriven delivery replaces the row). */
  async deadLetter(d: Omit<DeadLetterRecord, 'deadAt' | 'redrivenAt'>): Promise<void> {
    await this.pool.query(
      `INSERT INTO webhook_dead_letters (webhook_id, subscription_id, event_type, generation, delivery, attempts, reason, last_status, last_error)
       SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE EXISTS (SELECT 1 FROM webhook_subscriptions WHERE id = $2)
       ON CONFLICT (webhook_id) DO UPDATE SET generation = EXCLUDED.generation, delivery = EXCLUDED.delivery, attempts = EXCLUDED.attempts,
         reason = EXCLUDED.reason, last_status = EXCLUDED.last_status, last_error = EXCLUDED.last_error, dead_at = now(), redriven_at = NULL`,
      [
        d.webhookId,
        d.subscriptionId,
        d.eventType,
        d.generation,
        JSON.stringify(d.delivery),
        d.attempts,
        d.reason,
        d.lastStatus,
        d.lastError,
      ],
    );
  }

  async listDeadLetters(
    subscriptionId: string,
    opts: { since?: Date; includeRedriven?: boolean; limit: number },
  ): Promise<DeadLetterRecord[]> {
    const r = await this.pool.query(
      `SELECT * FROM webhook_dead_letters WHERE subscription_id = $1 AND dead_at >= $2 AND ($3 OR redriven_at IS NULL)
       ORDER BY dead_at, webhook_id LIMIT $4`,
      [subscriptionId, opts.since ?? new Date(0), opts.includeRedriven ?? false, opts.limit],
    );
    return r.rows.map(toDeadLetter);
  }

  async getDeadLetter(
    subscriptionId: string,
    webhookId: string,
  ): Promise<DeadLetterRecord | undefined> {
    const r = await this.pool.query(
      'SELECT * FROM webhook_dead_letters WHERE subscription_id = $1 AND webhook_id = $2',
      [subscriptionId, webhookId],
    );
    return r.rowCount === 0 ? undefined : toDeadLetter(r.rows[0] as Row);
  }

  async markRedriven(webhookId: string): Promise<void> {
    await this.pool.query(
      'UPDATE webhook_dead_letters SET redriven_at = now() WHERE webhook_id = $1',
      [webhookId],
    );
  }

  /** Deletes attempt rows older than `retentionMs` and beyond the newest `perSubscription` of each subscription. */
  async pruneAttempts(retentionMs: number, perSubscription: number): Promise<number> {
    const a = await this.pool.query(
      `DELETE FROM webhook_attempts WHERE attempted_at < now() - make_interval(secs => $1::double precision / 1000)`,
      [retentionMs],
    );
    const b = await this.pool.query(
      `DELETE FROM webhook_attempts w USING (
         SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY subscription_id ORDER BY id DESC) AS rn FROM webhook_attempts) x WHERE x.rn > $1
       ) old WHERE w.id = old.id`,
      [perSubscription],
    );
    return (a.rowCount ?? 0) + (b.rowCount ?? 0);
  }
}
