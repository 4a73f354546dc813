// PostgreSQL access: subscriptions and their secrets, the attempt log and the dead letters.
import { randomUUID } from 'node:crypto';
import { inTransaction } from '@sluice/pg';
import type { Pool, PoolClient } from 'pg';
import type { DeliveryMessage } from './delivery';
import type { SealedSecret, SecretKeyring } from './envelope';
import { SecretKeyUnknownError, SecretUndecryptableError } from './errors';
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
  /** Secrets that currently sign, decrypted (never returned by the API). */
  secrets: string[];
  /**
   * Unexpired secrets this process cannot decrypt (under a key it is not given): its deliveries
   * wait for a replica that has the key rather than go out with some signatures missing.
   */
  unreadableSecrets: number;
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

/** A `webhook_secrets` row as read: sealed, or plaintext when written before encryption at rest. */
interface SecretRow {
  id: string;
  subscription_id: string;
  secret: string | null;
  key_id: string | null;
  wrapped_key: Buffer | null;
  ciphertext: Buffer | null;
}

const SECRET_COLUMNS = 'id, subscription_id, secret, key_id, wrapped_key, ciphertext';

const sealedOf = (r: SecretRow): SealedSecret => ({
  keyId: r.key_id!,
  wrappedKey: r.wrapped_key!,
  ciphertext: r.ciphertext!,
});

/** A secret this process could not decrypt. */
export type UnreadableSecretError = SecretKeyUnknownError | SecretUndecryptableError;

const isUnreadable = (err: unknown): err is UnreadableSecretError =>
  err instanceof SecretKeyUnknownError || err instanceof SecretUndecryptableError;

/**
 * The decrypted secrets by row id, so that re-reading the subscriptions every few seconds decrypts
 * only rows that are new or changed. A re-wrap keeps a row's ciphertext, so the secret stays valid
 * while its ciphertext is the same; a row that failed is tried again once it changes.
 */
class OpenedSecrets {
  private readonly opened = new Map<string, { ciphertext: Buffer; secret: string }>();
  private readonly failed = new Map<string, SealedSecret>();

  constructor(
    private readonly keyring: SecretKeyring,
    private readonly onUnreadable: ((err: UnreadableSecretError) => void) | undefined,
  ) {}

  /** The secret of `r`, or undefined when it cannot be decrypted here. */
  read(r: SecretRow): string | undefined {
    if (r.secret !== null) return r.secret;
    const sealed = sealedOf(r);
    const known = this.opened.get(r.id);
    if (known?.ciphertext.equals(sealed.ciphertext)) return known.secret;
    const failed = this.failed.get(r.id);
    if (
      failed &&
      failed.keyId === sealed.keyId &&
      failed.wrappedKey.equals(sealed.wrappedKey) &&
      failed.ciphertext.equals(sealed.ciphertext)
    )
      return undefined;
    try {
      const secret = this.keyring.open(r.subscription_id, sealed);
      this.failed.delete(r.id);
      this.opened.set(r.id, { ciphertext: sealed.ciphertext, secret });
      return secret;
    } catch (err) {
      if (!isUnreadable(err)) throw err;
      this.failed.set(r.id, sealed);
      this.onUnreadable?.(err);
      return undefined;
    }
  }

  remember(id: string, ciphertext: Buffer, secret: string): void {
    this.opened.set(id, { ciphertext, secret });
  }

  /** Forgets every row but `ids` (the rows of a full read). */
  retain(ids: ReadonlySet<string>): void {
    for (const m of [this.opened, this.failed])
      for (const id of m.keys()) if (!ids.has(id)) m.delete(id);
  }
}

/** Secrets of each subscription: the readable ones, and how many are not. */
function groupSecrets(
  rows: readonly SecretRow[],
  opened: OpenedSecrets,
): Map<string, { secrets: string[]; unreadable: number }> {
  const bySub = new Map<string, { secrets: string[]; unreadable: number }>();
  for (const r of rows) {
    let g = bySub.get(r.subscription_id);
    if (!g) bySub.set(r.subscription_id, (g = { secrets: [], unreadable: 0 }));
    const secret = opened.read(r);
    if (secret === undefined) g.unreadable++;
    else g.secrets.push(secret);
  }
  return bySub;
}

function toSubscription(
  r: Row,
  secrets: { secrets: string[]; unreadable: number } | undefined,
): Subscription {
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
    secrets: secrets?.secrets ?? [],
    unreadableSecrets: secrets?.unreadable ?? 0,
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

export interface StoreOptions {
  /** Encrypts the secrets written and decrypts those read (docs/services/webhook-dispatcher.md#secrets-at-rest). */
  keyring: SecretKeyring;
  /** Called once for each stored secret this process cannot decrypt (again if its row changes). Default none. */
  onUnreadable?: (err: UnreadableSecretError) => void;
}

/** How many secrets are under each key, and how many are still plaintext. */
export interface SecretKeyUsage {
  byKey: Map<string, number>;
  plaintext: number;
}

/** What one {@link Store.sealPendingSecrets} transaction did. */
export interface SealBatch {
  /** Rows locked by this call (rows locked by another replica are skipped, not waited for). */
  claimed: number;
  /** Rows now under the active key. */
  sealed: number;
  /** Rows that could not be decrypted (left as they were), by row id. */
  failed: Array<{ id: string; error: UnreadableSecretError }>;
}

export class Store {
  readonly keyring: SecretKeyring;
  private readonly opened: OpenedSecrets;

  constructor(
    readonly pool: Pool,
    opts: StoreOptions,
  ) {
    this.keyring = opts.keyring;
    this.opened = new OpenedSecrets(opts.keyring, opts.onUnreadable);
  }

  /** Inserts `secret` of subscription `id`, encrypted under the active key. */
  private async insertSecret(client: PoolClient, id: string, secret: string): Promise<void> {
    const s = this.keyring.seal(id, secret);
    const r = await client.query<{ id: string }>(
      'INSERT INTO webhook_secrets (subscription_id, key_id, wrapped_key, ciphertext) VALUES ($1, $2, $3, $4) RETURNING id',
      [id, s.keyId, s.wrappedKey, s.ciphertext],
    );
    this.opened.remember(r.rows[0]!.id, s.ciphertext, secret);
  }

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
      await this.insertSecret(client, id, s.secret);
    });
    return (await this.getSubscription(id))!;
  }

  async listSubscriptions(): Promise<Subscription[]> {
    const [subs, secrets] = await Promise.all([
      this.pool.query('SELECT * FROM webhook_subscriptions ORDER BY created_at, id'),
      this.pool.query<SecretRow>(
        `SELECT ${SECRET_COLUMNS} FROM webhook_secrets WHERE expires_at IS NULL OR expires_at > now() ORDER BY created_at DESC, id DESC`,
      ),
    ]);
    this.opened.retain(new Set(secrets.rows.map((r) => r.id)));
    const bySub = groupSecrets(secrets.rows, this.opened);
    return subs.rows.map((r: Row) => toSubscription(r, bySub.get(r['id'] as string)));
  }

  async getSubscription(id: string): Promise<Subscription | undefined> {
    const r = await this.pool.query('SELECT * FROM webhook_subscriptions WHERE id = $1', [id]);
    if (r.rowCount === 0) return undefined;
    const secrets = await this.pool.query<SecretRow>(
      `SELECT ${SECRET_COLUMNS} FROM webhook_secrets WHERE subscription_id = $1 AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at DESC, id DESC`,
      [id],
    );
    return toSubscription(r.rows[0] as Row, groupSecrets(secrets.rows, this.opened).get(id));
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
      await this.insertSecret(client, id, secret);
      await client.query(`UPDATE webhook_subscriptions SET updated_at = now() WHERE id = $1`, [id]);
      return true;
    });
  }

  /**
   * Encrypts up to `limit` plaintext secrets under the active key and, unless `plaintextOnly`,
   * re-wraps secrets under other keys to it, in one transaction. Rows are claimed with
   * `FOR UPDATE SKIP LOCKED`, so replicas doing the same take disjoint rows and never wait for each
   * other; rows in `skip` (failed before) are left alone.
   */
  async sealPendingSecrets(opts: {
    limit: number;
    plaintextOnly: boolean;
    skip: readonly string[];
  }): Promise<SealBatch> {
    const active = this.keyring.activeKeyId;
    return inTransaction(this.pool, async (client) => {
      const rows = await client.query<SecretRow>(
        `SELECT ${SECRET_COLUMNS} FROM webhook_secrets
         WHERE (secret IS NOT NULL OR ($1::text IS NOT NULL AND key_id <> $1)) AND NOT (id = ANY($3::bigint[]))
         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`,
        [opts.plaintextOnly ? null : active, opts.limit, opts.skip],
      );
      const ids: string[] = [];
      const wrapped: Buffer[] = [];
      const ciphertexts: Buffer[] = [];
      const failed: SealBatch['failed'] = [];
      for (const r of rows.rows) {
        let s: SealedSecret;
        try {
          s =
            r.secret !== null
              ? this.keyring.seal(r.subscription_id, r.secret)
              : this.keyring.rewrap(r.subscription_id, sealedOf(r));
        } catch (err) {
          if (!isUnreadable(err)) throw err;
          failed.push({ id: r.id, error: err });
          continue;
        }
        ids.push(r.id);
        wrapped.push(s.wrappedKey);
        ciphertexts.push(s.ciphertext);
      }
      if (ids.length > 0)
        await client.query(
          `UPDATE webhook_secrets AS w SET secret = NULL, key_id = $1, wrapped_key = v.wrapped_key, ciphertext = v.ciphertext
           FROM unnest($2::bigint[], $3::bytea[], $4::bytea[]) AS v(id, wrapped_key, ciphertext) WHERE w.id = v.id`,
          [active, ids, wrapped, ciphertexts],
        );
      return { claimed: rows.rowCount ?? 0, sealed: ids.length, failed };
    });
  }

  /** Secrets (expired ones too) per key id, and plaintext ones. */
  async secretKeyUsage(): Promise<SecretKeyUsage> {
    const r = await this.pool.query<{ key_id: string | null; n: number }>(
      'SELECT key_id, count(*)::int AS n FROM webhook_secrets GROUP BY key_id',
    );
    const byKey = new Map<string, number>();
    let plaintext = 0;
    for (const row of r.rows)
      if (row.key_id === null) plaintext += row.n;
      else byKey.set(row.key_id, row.n);
    return { byKey, plaintext };
  }

  /** One sealed secret per key id in use: enough to tell whether each configured key is the right one. */
  async secretPerKey(): Promise<Array<{ subscriptionId: string; sealed: SealedSecret }>> {
    const r = await this.pool.query<SecretRow>(
      `SELECT DISTINCT ON (key_id) ${SECRET_COLUMNS} FROM webhook_secrets WHERE key_id IS NOT NULL ORDER BY key_id, id`,
    );
    return r.rows.map((row) => ({ subscriptionId: row.subscription_id, sealed: sealedOf(row) }));
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
