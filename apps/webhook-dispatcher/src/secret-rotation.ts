// The signing secrets at rest over time: at start, a key that is missing or wrong stops the process
// and plaintext secrets (from before encryption at rest) are encrypted; then, in the background,
// secrets under any key but the active one are re-wrapped to it in bounded batches, every replica
// taking other rows, and the secrets under each key are counted for the metrics.
import type { StoreGate } from '@sluice/actor';
import { ConfigError, type ConfigIssue } from '@sluice/config';
import type { Logger } from '@sluice/observability';
import { withClient } from '@sluice/pg';
import { Counter, Gauge, type Registry } from 'prom-client';
import { SecretKeyUnknownError, SecretUndecryptableError } from './errors';
import { SECRET_METRICS } from './names';
import { DEV_KEY, DEV_KEY_ID } from './secret-keys';
import type { Store, UnreadableSecretError } from './store';

export interface SecretRotationOptions {
  store: Store;
  log: Logger;
  registry: Registry;
  /** Secrets per transaction (WEBHOOK_SECRET_REWRAP_BATCH). */
  batch: number;
  /** Pause between two passes (WEBHOOK_SECRET_REWRAP_INTERVAL). */
  intervalMs: number;
  /** PostgreSQL's gate: an outage is logged once there, not per pass. Default none. */
  storeGate?: StoreGate;
  /** Whether the keys are the public development key (logged at start). Default `false`. */
  developmentKey?: boolean;
}

/** Reports a stored secret this process cannot decrypt: logged and counted (once per row and content). */
export function unreadableSecretReporter(
  log: Logger,
  registry: Registry,
): (err: UnreadableSecretError) => void {
  const counter = new Counter({
    name: SECRET_METRICS.unreadable,
    help: 'Stored signing secrets this process could not decrypt, by key id (a key it lacks, or an altered row)',
    labelNames: ['key_id'],
    registers: [registry],
  });
  return (err) => {
    counter.inc({ key_id: err.keyId });
    log.error(
      { err, keyId: err.keyId, subscriptionId: err.subscriptionId },
      'a signing secret cannot be decrypted by this process; the deliveries of its subscription wait for a replica that can',
    );
  };
}

export class SecretRotation {
  private readonly rows: Gauge<'key_id'>;
  private readonly pending: Gauge;
  /** Rows this process failed to decrypt: logged once, left to a replica that has their key. */
  private readonly skip = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private pass: Promise<void> | undefined;
  private stopped = false;
  /** Whether every secret was under the active key at the last count; undefined before the first. */
  private done: boolean | undefined;

  constructor(private readonly o: SecretRotationOptions) {
    const registers = [o.registry];
    this.rows = new Gauge({
      name: SECRET_METRICS.rows,
      help: 'Signing secrets encrypted under each key id (0 for a configured key that none uses); the same on every replica',
      labelNames: ['key_id'],
      registers,
    });
    this.pending = new Gauge({
      name: SECRET_METRICS.pending,
      help: 'Signing secrets not under the active key yet (under an older key, or plaintext from before encryption at rest)',
      registers,
    });
  }

  private get keyring() {
    return this.o.store.keyring;
  }

  /**
   * At start: throws a {@link ConfigError} naming the variable when a key id in use is not configured
   * or its key does not decrypt; encrypts plaintext secrets; counts. Then passes run every interval.
   */
  async start(): Promise<void> {
    if (this.o.developmentKey)
      this.o.log.warn(
        `signing secrets are encrypted with the public development key "${DEV_KEY_ID}": set WEBHOOK_SECRET_KEYS outside development`,
      );
    await this.checkKeys();
    const encrypted = await this.drain(true);
    if (encrypted > 0) {
      this.o.log.info(
        { count: encrypted, keyId: this.keyring.activeKeyId },
        'encrypted plaintext signing secrets written before encryption at rest',
      );
      await this.vacuum();
    }
    await this.count();
    this.stopped = false;
    this.timer = setInterval(() => {
      this.pass ??= this.runOnce()
        .catch((err: unknown) =>
          this.o.storeGate
            ? this.o.storeGate.warnUnlessOutage(this.o.log, err, 'secret key rotation pass failed')
            : this.o.log.warn({ err }, 'secret key rotation pass failed'),
        )
        .finally(() => {
          this.pass = undefined;
        });
    }, this.o.intervalMs);
    this.timer.unref();
  }

  /** One pass: re-wraps (and encrypts) every secret this process can claim, then counts. */
  async runOnce(): Promise<void> {
    const n = await this.drain(false);
    if (n > 0)
      this.o.log.info(
        { count: n, keyId: this.keyring.activeKeyId },
        'signing secrets re-encrypted under the active key',
      );
    await this.count();
  }

  /** Stops the passes, waiting for one that runs (its current batch commits or rolls back). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.pass;
  }

  private async checkKeys(): Promise<void> {
    const issues: ConfigIssue[] = [];
    let cause: unknown;
    for (const { subscriptionId, sealed } of await this.o.store.secretPerKey()) {
      try {
        this.keyring.open(subscriptionId, sealed);
      } catch (err) {
        cause ??= err;
        if (err instanceof SecretKeyUnknownError) {
          const hint =
            err.keyId === DEV_KEY_ID
              ? ` ("${DEV_KEY_ID}" is the development default key: list it as ${DEV_KEY_ID}:${DEV_KEY.toString('base64')} to have them re-encrypted under the active key)`
              : '';
          issues.push({
            variable: 'WEBHOOK_SECRET_KEYS',
            reason: `has no key "${err.keyId}" (nor WEBHOOK_SECRET_KEYS_FILE), and secrets are stored under it${hint}`,
          });
        } else if (err instanceof SecretUndecryptableError) {
          const variable =
            err.variable === '(development default)' ? 'WEBHOOK_SECRET_KEYS' : err.variable;
          const which =
            err.variable === '(development default)'
              ? `is unset, and the development key "${err.keyId}"`
              : `key "${err.keyId}"`;
          issues.push({
            variable,
            reason: `${which} does not decrypt the secret of subscription ${err.subscriptionId} stored under that id: not the key it was encrypted with (or the row was altered)`,
          });
        } else throw err;
      }
    }
    const [first, ...more] = issues;
    if (first) throw new ConfigError(first.variable, first.reason, more, { cause });
  }

  /** Claims batches until none is left for this process; the secrets sealed. */
  private async drain(plaintextOnly: boolean): Promise<number> {
    let total = 0;
    for (;;) {
      const b = await this.o.store.sealPendingSecrets({
        limit: this.o.batch,
        plaintextOnly,
        skip: [...this.skip],
      });
      total += b.sealed;
      for (const f of b.failed) {
        this.skip.add(f.id);
        this.o.log.error(
          { err: f.error, keyId: f.error.keyId, subscriptionId: f.error.subscriptionId },
          'a signing secret cannot be re-encrypted by this process: it stays under its key',
        );
      }
      if (b.claimed < this.o.batch || this.stopped) return total;
    }
  }

  private async count(): Promise<void> {
    const usage = await this.o.store.secretKeyUsage();
    const active = this.keyring.activeKeyId;
    this.rows.reset();
    for (const id of this.keyring.keyIds) this.rows.set({ key_id: id }, 0);
    let pending = usage.plaintext;
    for (const [id, n] of usage.byKey) {
      this.rows.set({ key_id: id }, n);
      if (id !== active) pending += n;
    }
    this.pending.set(pending);
    const done = pending === 0;
    if (done && this.done !== true)
      this.o.log.info(
        { keyId: active },
        `every signing secret is under the active key "${active}"`,
      );
    else if (!done && this.done === undefined)
      this.o.log.info(
        { pending, keyId: active, byKey: Object.fromEntries(usage.byKey) },
        `${pending} signing secret(s) to re-encrypt under the active key "${active}", in the background`,
      );
    this.done = done;
  }

  /**
   * Rewrites the table so that the old row versions, which still hold the plaintext, leave its files
   * (VACUUM FULL; the lock lasts as long as copying the few rows). Needs the table's owner.
   */
  private async vacuum(): Promise<void> {
    const warnings: string[] = [];
    try {
      await withClient(this.o.store.pool, async (c) => {
        const onNotice = (n: { severity?: string; message?: string }) => {
          if (n.severity === 'WARNING') warnings.push(n.message ?? '');
        };
        c.on('notice', onNotice);
        try {
          await c.query(`SET lock_timeout = '5s'`);
          await c.query('VACUUM FULL webhook_secrets');
          await c.query('RESET lock_timeout');
        } finally {
          c.off('notice', onNotice);
        }
      });
      if (warnings.length > 0) throw new Error(warnings.join('; '));
    } catch (err) {
      this.o.log.warn(
        { err },
        'could not VACUUM FULL webhook_secrets: old row versions with plaintext secrets stay in its files until then; run it as the table owner',
      );
    }
  }
}
