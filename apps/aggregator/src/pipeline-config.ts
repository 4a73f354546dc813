// Live pipeline configuration: roll-up resolutions, retention per resolution and derived series,
// stored in PostgreSQL as versioned documents with an audit log. The environment
// (AGGREGATOR_RESOLUTIONS / _RETENTION / _DERIVED) seeds it; once the admin API has changed it, the
// stored version wins. Every replica polls the newest version and swaps in an immutable snapshot
// between operations: a flush, a closer pass or a rebuild reads one snapshot from start to end.
import { ConfigError, SluiceError } from '@sluice/errors';
import type { Logger } from '@sluice/observability';
import { inTransaction } from '@sluice/pg';
import type { Pool, PoolClient } from 'pg';
import { compileDerived, splitDerived, type DerivedSeries } from './derived';
import { parseResolutions, type Resolution } from './resolutions';

/** The stored form of the pipeline configuration. */
export interface PipelineDocument {
  /** Window lengths with their retention (`7d`, `730d`, …). */
  readonly resolutions: ReadonlyArray<{ readonly name: string; readonly retention: string }>;
  /** Derived series: `name = expression` over sensors of the same device. */
  readonly derived: ReadonlyArray<{ readonly name: string; readonly expression: string }>;
}

/** One compiled version, as the writer, closer, partitions and query API use it. */
export interface PipelineSnapshot {
  readonly version: number;
  readonly document: PipelineDocument;
  /** Finest first. */
  readonly resolutions: readonly Resolution[];
  readonly derived: readonly DerivedSeries[];
  /** Sensors any derived series reads. */
  readonly derivedInputs: ReadonlySet<string>;
  /** Resolution name → position, finest first. */
  readonly rank: ReadonlyMap<string, number>;
}

/** One problem of a refused configuration: where (`resolutions[1].retention`, `derived[0].expression`) and why. */
export interface PipelineIssue {
  readonly path: string;
  readonly message: string;
}

/** A pipeline configuration the aggregator cannot run (HTTP 422 with every issue). */
export class PipelineConfigError extends SluiceError {
  override readonly name = 'PipelineConfigError';
  readonly code = 'pipeline_config_invalid';
  constructor(readonly issues: readonly PipelineIssue[]) {
    super(issues.map((i) => `${i.path}: ${i.message}`).join('; '), { httpStatus: 422 });
  }
}

/** A change made against a version that is no longer the newest (HTTP 409). */
export class PipelineVersionConflictError extends SluiceError {
  override readonly name = 'PipelineVersionConflictError';
  readonly code = 'pipeline_version_conflict';
  constructor(
    readonly expected: number,
    readonly current: number,
  ) {
    super(`the change was made against version ${expected}, but the newest is ${current}`, {
      httpStatus: 409,
    });
  }
}

/** Compiles a document, or throws {@link PipelineConfigError} naming every problem. */
export function compilePipeline(version: number, document: PipelineDocument): PipelineSnapshot {
  const issues: PipelineIssue[] = [];
  let resolutions: Resolution[] = [];
  const names = document.resolutions.map((r) => r.name);
  document.resolutions.forEach((r, i) => {
    try {
      parseResolutions([r.name], [`${r.name}=${r.retention}`]);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      const field = err.issues[0]!.variable === 'AGGREGATOR_RETENTION' ? 'retention' : 'name';
      issues.push({ path: `resolutions[${i}].${field}`, message: err.issues[0]!.reason });
    }
  });
  if (issues.length === 0) {
    try {
      resolutions = parseResolutions(
        names,
        document.resolutions.map((r) => `${r.name}=${r.retention}`),
      );
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      issues.push({ path: 'resolutions', message: err.issues[0]!.reason });
    }
  }
  const compiled = compileDerived(document.derived);
  if (!compiled.ok)
    for (const p of compiled.problems)
      issues.push({
        path: `derived[${p.index}]${p.message.startsWith('name') ? '.name' : '.expression'}`,
        message: `${p.name}: ${p.message}`,
      });
  if (issues.length > 0) throw new PipelineConfigError(issues);
  const derived = compiled.ok ? compiled.derived : [];
  return {
    version,
    document,
    resolutions,
    derived,
    derivedInputs: new Set(derived.flatMap((d) => d.inputs)),
    rank: new Map(resolutions.map((r, i) => [r.name, i])),
  };
}

/** The document the environment describes (AGGREGATOR_RESOLUTIONS, _RETENTION, _DERIVED). */
export function documentFromEnvironment(config: {
  AGGREGATOR_RESOLUTIONS: readonly string[];
  AGGREGATOR_RETENTION: readonly string[];
  AGGREGATOR_DERIVED: string;
}): PipelineDocument {
  const resolutions = parseResolutions(config.AGGREGATOR_RESOLUTIONS, config.AGGREGATOR_RETENTION);
  return {
    resolutions: resolutions.map((r) => ({
      name: r.name,
      retention: formatDuration(r.retentionMs),
    })),
    derived: splitDerived(config.AGGREGATOR_DERIVED),
  };
}

/** Milliseconds as the largest whole unit (`7d`, `36h`, `90s`, `250ms`). */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1_000],
  ] as const)
    if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

/** The document in one canonical form (PostgreSQL's jsonb does not keep key order). */
function canonical(d: PipelineDocument): string {
  return JSON.stringify({
    resolutions: d.resolutions.map((r) => [r.name, r.retention]),
    derived: d.derived.map((x) => [x.name, x.expression]),
  });
}

/** Documents compare by value, list order included (resolutions are kept finest first). */
function sameDocument(a: PipelineDocument, b: PipelineDocument): boolean {
  return canonical(a) === canonical(b);
}

/** A stored version. */
export interface PipelineVersion {
  readonly version: number;
  readonly document: PipelineDocument;
  readonly createdAt: string;
  readonly actor: string;
  readonly source: 'environment' | 'api';
}

/** One audit entry. */
export interface PipelineAuditEntry {
  readonly id: number;
  readonly at: string;
  readonly version: number;
  readonly actor: string;
  readonly action: 'seed' | 'create' | 'update' | 'delete' | 'backfill';
  readonly kind: 'pipeline' | 'resolution' | 'derived';
  readonly name: string;
  readonly before: unknown;
  readonly after: unknown;
}

/** What a change does to the document, for {@link PipelineConfigStore.change}. */
export interface PipelineChange {
  readonly action: 'create' | 'update' | 'delete';
  readonly kind: 'resolution' | 'derived';
  readonly name: string;
  /**
   * The new document from the newest one (and the action, when it depends on that document);
   * throws a typed error (404, 409, 422) to refuse.
   */
  apply(current: PipelineDocument): {
    document: PipelineDocument;
    before: unknown;
    after: unknown;
    action?: PipelineChange['action'];
  };
}

/** Serialises configuration writes across replicas. */
const CONFIG_LOCK = 0x51cec0f;

const SELECT_VERSION = `SELECT version::int8 AS version, document, created_at, actor, source FROM pipeline_config`;

type VersionRow = {
  version: string;
  document: PipelineDocument;
  created_at: Date;
  actor: string;
  source: 'environment' | 'api';
};

const toVersion = (r: VersionRow): PipelineVersion => ({
  version: Number(r.version),
  document: r.document,
  createdAt: r.created_at.toISOString(),
  actor: r.actor,
  source: r.source,
});

/** The versions and audit log in PostgreSQL. */
export class PipelineConfigStore {
  constructor(private readonly pool: Pool) {}

  /**
   * Makes the environment's document the newest version unless the API has changed the
   * configuration since (then the stored one wins and `overridden` is true). Returns the newest.
   */
  async seed(env: PipelineDocument): Promise<{ version: PipelineVersion; overridden: boolean }> {
    compilePipeline(0, env);
    return inTransaction(this.pool, async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1)', [CONFIG_LOCK]);
      const latest = await this.latestIn(c);
      if (latest && (latest.source === 'api' || sameDocument(latest.document, env)))
        return { version: latest, overridden: !sameDocument(latest.document, env) };
      const version = (latest?.version ?? 0) + 1;
      const stored = await this.insert(c, version, env, 'environment', 'environment');
      await this.audit(c, {
        version,
        actor: 'environment',
        action: 'seed',
        kind: 'pipeline',
        name: 'pipeline',
        before: latest?.document ?? null,
        after: env,
      });
      return { version: stored, overridden: false };
    });
  }

  /** The newest version number (0 when none). */
  async latestVersion(): Promise<number> {
    const { rows } = await this.pool.query<{ v: string | null }>(
      'SELECT max(version)::int8 AS v FROM pipeline_config',
    );
    return Number(rows[0]?.v ?? 0);
  }

  /** One version, the newest by default. */
  async get(version?: number): Promise<PipelineVersion | undefined> {
    const { rows } = await this.pool.query<VersionRow>(
      version === undefined
        ? `${SELECT_VERSION} ORDER BY version DESC LIMIT 1`
        : `${SELECT_VERSION} WHERE version = $1`,
      version === undefined ? [] : [version],
    );
    return rows[0] ? toVersion(rows[0]) : undefined;
  }

  /** Versions, newest first. */
  async versions(limit: number, before?: number): Promise<PipelineVersion[]> {
    const { rows } = await this.pool.query<VersionRow>(
      `${SELECT_VERSION} WHERE ($2::int8 IS NULL OR version < $2) ORDER BY version DESC LIMIT $1`,
      [limit, before ?? null],
    );
    return rows.map(toVersion);
  }

  /** Audit entries, newest first. */
  async auditLog(limit: number, before?: number): Promise<PipelineAuditEntry[]> {
    const { rows } = await this.pool.query<{
      id: string;
      at: Date;
      version: string;
      actor: string;
      action: PipelineAuditEntry['action'];
      kind: PipelineAuditEntry['kind'];
      name: string;
      before: unknown;
      after: unknown;
    }>(
      `SELECT id, at, version, actor, action, kind, name, before, after FROM pipeline_config_audit
       WHERE ($2::int8 IS NULL OR id < $2) ORDER BY id DESC LIMIT $1`,
      [limit, before ?? null],
    );
    return rows.map((r) => ({
      ...r,
      id: Number(r.id),
      version: Number(r.version),
      at: r.at.toISOString(),
    }));
  }

  /**
   * Applies `change` to the newest version and stores the result as the next one, with its audit
   * entry, in one transaction. With `expectedVersion`, refuses ({@link PipelineVersionConflictError})
   * unless it is still the newest. The result must compile ({@link PipelineConfigError}).
   */
  async change(
    actor: string,
    change: PipelineChange,
    expectedVersion?: number,
  ): Promise<PipelineVersion> {
    return inTransaction(this.pool, async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1)', [CONFIG_LOCK]);
      const latest = await this.latestIn(c);
      const current = latest?.version ?? 0;
      if (expectedVersion !== undefined && expectedVersion !== current)
        throw new PipelineVersionConflictError(expectedVersion, current);
      const { document, before, after, action } = change.apply(
        latest?.document ?? { resolutions: [], derived: [] },
      );
      compilePipeline(current + 1, document);
      const stored = await this.insert(c, current + 1, document, actor, 'api');
      await this.audit(c, {
        version: stored.version,
        actor,
        action: action ?? change.action,
        kind: change.kind,
        name: change.name,
        before,
        after,
      });
      return stored;
    });
  }

  /** Records an audit entry outside a configuration change (a backfill). */
  async record(entry: Omit<PipelineAuditEntry, 'id' | 'at'>): Promise<void> {
    await this.audit(this.pool, entry);
  }

  private async latestIn(c: PoolClient): Promise<PipelineVersion | undefined> {
    const { rows } = await c.query<VersionRow>(`${SELECT_VERSION} ORDER BY version DESC LIMIT 1`);
    return rows[0] ? toVersion(rows[0]) : undefined;
  }

  private async insert(
    c: PoolClient,
    version: number,
    document: PipelineDocument,
    actor: string,
    source: 'environment' | 'api',
  ): Promise<PipelineVersion> {
    const { rows } = await c.query<VersionRow>(
      `INSERT INTO pipeline_config (version, document, actor, source) VALUES ($1, $2, $3, $4)
       RETURNING version::int8 AS version, document, created_at, actor, source`,
      [version, JSON.stringify(document), actor, source],
    );
    return toVersion(rows[0]!);
  }

  private async audit(
    c: Pool | PoolClient,
    e: Omit<PipelineAuditEntry, 'id' | 'at'>,
  ): Promise<void> {
    await c.query(
      'INSERT INTO pipeline_config_audit (version, actor, action, kind, name, before, after) VALUES ($1, $2, $3, $4, $5, $6, $7)',
      [
        e.version,
        e.actor,
        e.action,
        e.kind,
        e.name,
        e.before === undefined ? null : JSON.stringify(e.before),
        e.after === undefined ? null : JSON.stringify(e.after),
      ],
    );
  }
}

export interface LivePipelineOptions {
  store: PipelineConfigStore;
  /** The snapshot to serve until the store has been read (the environment's). */
  initial: PipelineSnapshot;
  /**
   * Runs before a new snapshot is served (creates the tables of new resolutions). A failure keeps
   * the old snapshot; the next poll tries again.
   */
  prepare: (next: PipelineSnapshot) => Promise<void>;
  log: Logger;
  /** Called after a new snapshot is served (metrics). */
  onApplied?: (snapshot: PipelineSnapshot) => void;
}

/** The snapshot this replica serves, refreshed from the store. */
export class LivePipeline {
  private snapshot: PipelineSnapshot;
  private refreshing: Promise<boolean> | undefined;
  private failedVersion = 0;

  constructor(private readonly opts: LivePipelineOptions) {
    this.snapshot = opts.initial;
  }

  get current(): PipelineSnapshot {
    return this.snapshot;
  }

  /** Resolutions of the current snapshot, finest first. */
  get resolutions(): readonly Resolution[] {
    return this.snapshot.resolutions;
  }

  /** Serves `snapshot` (already prepared) unless a newer one is served. */
  serve(snapshot: PipelineSnapshot): void {
    if (snapshot.version < this.snapshot.version) return;
    this.snapshot = snapshot;
    this.opts.onApplied?.(snapshot);
  }

  /** Completes a refresh in progress. */
  async idle(): Promise<void> {
    await this.refreshing;
  }

  /** Serves the newest stored version if it is newer; resolves whether it changed. Never throws. */
  refresh(): Promise<boolean> {
    this.refreshing ??= this.load().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async load(): Promise<boolean> {
    try {
      const newest = await this.opts.store.latestVersion();
      if (newest <= this.snapshot.version || newest === this.failedVersion) return false;
      const stored = await this.opts.store.get(newest);
      if (!stored) return false;
      let next: PipelineSnapshot;
      try {
        next = compilePipeline(stored.version, stored.document);
      } catch (err) {
        // Validated when written: only a downgrade to code with stricter rules gets here.
        this.failedVersion = stored.version;
        this.opts.log.error(
          { err, version: stored.version },
          'stored pipeline configuration does not compile; keeping the one in use',
        );
        return false;
      }
      await this.opts.prepare(next);
      const before = this.snapshot;
      this.snapshot = next;
      this.opts.onApplied?.(next);
      this.opts.log.info(
        {
          version: next.version,
          previous: before.version,
          resolutions: next.resolutions.map((r) => r.name),
          derived: next.derived.map((d) => d.name),
        },
        'pipeline configuration applied',
      );
      return true;
    } catch (err) {
      this.opts.log.warn({ err }, 'reading the pipeline configuration failed; will retry');
      return false;
    }
  }
}
