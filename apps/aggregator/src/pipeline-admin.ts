// The pipeline admin routes of the aggregator's API: roll-up resolutions, retention per resolution
// and derived series, created, listed, validated and removed live; versions, audit log and derived
// backfills. They need an operator token (AGGREGATOR_ADMIN_TOKENS), which reads no region's data;
// the query tokens cannot reach them. Every change is a new version in PostgreSQL that every replica
// applies within AGGREGATOR_CONFIG_POLL.
import { ConfigError } from '@sluice/errors';
import {
  defineRoute,
  forbidden,
  generateToken,
  HttpProblem,
  notFound,
  parseInlineTokens,
  type HashedToken,
  type HttpRoute,
  type Principal,
  type TokenScope,
} from '@sluice/http';
import type { Logger } from '@sluice/observability';
import { z } from 'zod';
import {
  DerivedNotFoundError,
  type BackfillStatus,
  type DerivedBackfills,
} from './derived-backfill';
import { BadParameterError, isTransientStoreError } from './errors';
import {
  compilePipeline,
  PipelineConfigError,
  PipelineVersionConflictError,
  type LivePipeline,
  type PipelineChange,
  type PipelineConfigStore,
  type PipelineDocument,
  type PipelineVersion,
} from './pipeline-config';
import { parseTime } from './time';

export interface PipelineAdminOptions {
  store: PipelineConfigStore;
  pipeline: LivePipeline;
  backfills: DerivedBackfills;
  /** Longest range of one backfill. Default 400 days. */
  maxBackfillMs?: number;
}

/** Principal names of operator tokens start with this; the rest is the operator in the audit log. */
export const OPERATOR_PREFIX = 'operator:';

const TOKEN_SOURCE = { variable: 'AGGREGATOR_ADMIN_TOKENS', field: 'operator' };

/**
 * Operator tokens, `<sha256-hex>=<operator>;…` (the operator names the audit entries). They may use
 * the pipeline admin routes and read no region. With none: in production nobody may (`[]`);
 * elsewhere one development token (operator `development`) is generated and logged once.
 */
export function adminTokens(
  config: { AGGREGATOR_ADMIN_TOKENS: string; SLUICE_ENV: string },
  log: Logger,
): HashedToken[] {
  const none: TokenScope = new Set<string>();
  const tokens = parseInlineTokens(config.AGGREGATOR_ADMIN_TOKENS, TOKEN_SOURCE).map((t, i) => {
    const names = t.claims === '*' ? [] : [...t.claims];
    if (names.length !== 1)
      throw new ConfigError(
        'AGGREGATOR_ADMIN_TOKENS',
        `entry ${i + 1}: expected <sha256-hex>=<operator name> (one name, not * or a list)`,
      );
    return { name: `${OPERATOR_PREFIX}${names[0]!}`, sha256: t.sha256, claims: none };
  });
  if (tokens.length > 0 || config.SLUICE_ENV === 'production') return tokens;
  const dev = generateToken();
  log.warn(
    { token: dev.token },
    'AGGREGATOR_ADMIN_TOKENS is not set: the pipeline admin API accepts this generated development token',
  );
  return [{ name: `${OPERATOR_PREFIX}development`, sha256: dev.sha256, claims: none }];
}

const resolutionSchema = z.object({
  name: z.string().describe('Window length, `<n>s|m|h|d` dividing a day'),
  retention: z.string().describe('How long its roll-ups are kept, e.g. `7d`, `730d`'),
});
const derivedSchema = z.object({
  name: z.string().describe('Sensor name the derived series is stored under'),
  expression: z
    .string()
    .describe('Over sensors of the same device: numbers, names, + - * / and parentheses'),
});
const documentSchema = z.object({
  resolutions: z.array(resolutionSchema).max(32),
  derived: z.array(derivedSchema).max(256),
});
const versionSchema = z.object({
  version: z.number().int(),
  created_at: z.iso.datetime(),
  actor: z.string(),
  source: z.enum(['environment', 'api']),
  document: documentSchema,
});
const currentSchema = versionSchema.extend({
  served_version: z
    .number()
    .int()
    .describe(
      'The version this replica serves now; replicas apply a new one within the poll interval',
    ),
});
const auditSchema = z.object({
  id: z.number().int(),
  at: z.iso.datetime(),
  version: z.number().int(),
  actor: z.string(),
  action: z.enum(['seed', 'create', 'update', 'delete', 'backfill']),
  kind: z.enum(['pipeline', 'resolution', 'derived']),
  name: z.string(),
  before: z.unknown(),
  after: z.unknown(),
});
const backfillSchema = z.object({
  id: z.string(),
  name: z.string(),
  version: z.number().int(),
  from: z.iso.datetime(),
  to: z.iso.datetime(),
  state: z.enum(['running', 'done', 'failed']),
  windows: z.number().int().describe('Device windows computed so far, every resolution'),
  rows: z.number().int().describe('Derived rows written so far'),
  actor: z.string(),
  error: z.string().nullable(),
  created_at: z.iso.datetime(),
  updated_at: z.iso.datetime(),
});
const validationSchema = z.object({
  valid: z.boolean(),
  errors: z.array(z.object({ path: z.string(), message: z.string() })),
});
const expectedVersion = z
  .number()
  .int()
  .positive()
  .optional()
  .describe('Refuse (409) unless this is still the newest version');
const nameParam = z.object({ name: z.string().min(1).max(64) });
const limitQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  before: z.coerce.number().int().positive().optional().describe('Entries older than this id'),
});

const versionView = (v: PipelineVersion) => ({
  version: v.version,
  created_at: v.createdAt,
  actor: v.actor,
  source: v.source,
  document: { resolutions: [...v.document.resolutions], derived: [...v.document.derived] },
});
const backfillView = (b: BackfillStatus) => ({
  id: b.id,
  name: b.name,
  version: b.version,
  from: b.from,
  to: b.to,
  state: b.state,
  windows: b.windows,
  rows: b.rows,
  actor: b.actor,
  error: b.error,
  created_at: b.createdAt,
  updated_at: b.updatedAt,
});

/** Sets (creates or replaces) one named entry of a list of the document. */
function put<K extends 'resolutions' | 'derived'>(
  kind: K,
  entry: PipelineDocument[K][number],
): PipelineChange {
  return {
    action: 'update',
    kind: kind === 'resolutions' ? 'resolution' : 'derived',
    name: entry.name,
    apply(current) {
      const list = current[kind] as ReadonlyArray<{ name: string }>;
      const i = list.findIndex((x) => x.name === entry.name);
      const next = i < 0 ? [...list, entry] : list.map((x, j) => (j === i ? entry : x));
      return {
        action: i < 0 ? 'create' : 'update',
        document: { ...current, [kind]: next },
        before: i < 0 ? null : list[i],
        after: entry,
      };
    },
  };
}

function remove(kind: 'resolutions' | 'derived', name: string): PipelineChange {
  return {
    action: 'delete',
    kind: kind === 'resolutions' ? 'resolution' : 'derived',
    name,
    apply(current) {
      const list = current[kind] as ReadonlyArray<{ name: string }>;
      const found = list.find((x) => x.name === name);
      if (!found)
        throw notFound(
          `${kind === 'resolutions' ? 'resolution' : 'derived series'} ${name} is not configured`,
        );
      return {
        document: { ...current, [kind]: list.filter((x) => x !== found) },
        before: found,
        after: null,
      };
    },
  };
}

/** 403 unless the caller holds an operator token; returns the operator's name. */
function operator(p: Principal | undefined): string {
  if (!p || !p.name.startsWith(OPERATOR_PREFIX))
    throw forbidden('the pipeline admin routes need an operator token (AGGREGATOR_ADMIN_TOKENS)');
  return p.name.slice(OPERATOR_PREFIX.length);
}

/** The pipeline admin routes, their schemas and error mapping, for the aggregator's API. */
export function pipelineAdmin(opts: PipelineAdminOptions): {
  routes: HttpRoute[];
  schemas: Record<string, z.ZodType>;
  mapError: (err: unknown) => HttpProblem | undefined;
} {
  const { store, pipeline, backfills } = opts;
  const maxBackfillMs = opts.maxBackfillMs ?? 400 * 86_400_000;
  const actor = operator;
  const TAGS = ['pipeline'];

  const change = async (who: string, c: PipelineChange, expected: number | undefined) => {
    const stored = await store.change(who, c, expected);
    // This replica serves it before answering; the others within their poll interval.
    await pipeline.refresh();
    return versionView(stored);
  };

  const current = defineRoute({
    method: 'GET',
    path: '/v1/pipeline',
    tags: TAGS,
    operationId: 'getPipeline',
    summary: 'The newest pipeline configuration',
    response: currentSchema,
    problems: [403, 404],
    handler: async ({ principal }) => {
      operator(principal);
      const v = await store.get();
      if (!v) throw notFound('no pipeline configuration is stored yet');
      return { ...versionView(v), served_version: pipeline.current.version };
    },
  });
  const versions = defineRoute({
    method: 'GET',
    path: '/v1/pipeline/versions',
    tags: TAGS,
    operationId: 'listPipelineVersions',
    summary: 'Stored versions, newest first',
    query: limitQuery,
    response: z.object({ items: z.array(versionSchema) }),
    problems: [403],
    handler: async ({ query: q, principal }) => {
      operator(principal);
      return { items: (await store.versions(q.limit, q.before)).map(versionView) };
    },
  });
  const version = defineRoute({
    method: 'GET',
    path: '/v1/pipeline/versions/{version}',
    tags: TAGS,
    operationId: 'getPipelineVersion',
    summary: 'One stored version',
    params: z.object({ version: z.coerce.number().int().positive() }),
    response: versionSchema,
    problems: [403, 404],
    handler: async ({ params, principal }) => {
      operator(principal);
      const v = await store.get(params.version);
      if (!v) throw notFound(`version ${params.version} does not exist`);
      return versionView(v);
    },
  });
  const audit = defineRoute({
    method: 'GET',
    path: '/v1/pipeline/audit',
    tags: TAGS,
    operationId: 'listPipelineAudit',
    summary: 'Who changed what, newest first',
    query: limitQuery,
    response: z.object({ items: z.array(auditSchema) }),
    problems: [403],
    handler: async ({ query: q, principal }) => {
      operator(principal);
      return { items: await store.auditLog(q.limit, q.before) };
    },
  });
  const validate = defineRoute({
    method: 'POST',
    path: '/v1/pipeline/validate',
    tags: TAGS,
    operationId: 'validatePipeline',
    summary: 'Checks a whole configuration without storing it',
    description:
      'Every problem is listed with its path, e.g. `derived[0].expression` with the expression language error and its position.',
    body: documentSchema,
    response: validationSchema,
    problems: [403],
    handler: async ({ body, principal }) => {
      operator(principal);
      try {
        compilePipeline(0, body);
        return { valid: true, errors: [] };
      } catch (err) {
        if (err instanceof PipelineConfigError) return { valid: false, errors: [...err.issues] };
        throw err;
      }
    },
  });
  const putResolution = defineRoute({
    method: 'PUT',
    path: '/v1/pipeline/resolutions/{name}',
    tags: TAGS,
    operationId: 'putResolution',
    summary: 'Adds a roll-up resolution or changes its retention',
    description:
      'A new resolution is computed from the clean messages applied after every replica has served the new version; its first window is partial. Retention applies at the next partition upkeep.',
    params: nameParam,
    body: z.object({ retention: z.string().min(1).max(16), expected_version: expectedVersion }),
    response: versionSchema,
    problems: [403, 409, 422],
    handler: async ({ params, body, principal }) =>
      change(
        actor(principal),
        put('resolutions', { name: params.name, retention: body.retention }),
        body.expected_version,
      ),
  });
  const deleteResolution = defineRoute({
    method: 'DELETE',
    path: '/v1/pipeline/resolutions/{name}',
    tags: TAGS,
    operationId: 'deleteResolution',
    summary: 'Stops computing and serving a resolution (its stored rows are kept)',
    params: nameParam,
    query: z.object({ expected_version: z.coerce.number().int().positive().optional() }),
    response: versionSchema,
    problems: [403, 404, 409, 422],
    handler: async ({ params, query, principal }) =>
      change(actor(principal), remove('resolutions', params.name), query.expected_version),
  });
  const putDerived = defineRoute({
    method: 'PUT',
    path: '/v1/pipeline/derived/{name}',
    tags: TAGS,
    operationId: 'putDerived',
    summary: 'Adds or changes a derived series',
    description:
      'Computed from the window averages of its inputs as they are written from then on; `POST …/backfills` computes it over past windows.',
    params: nameParam,
    body: z.object({ expression: z.string().min(1).max(1000), expected_version: expectedVersion }),
    response: versionSchema,
    problems: [403, 409, 422],
    handler: async ({ params, body, principal }) =>
      change(
        actor(principal),
        put('derived', { name: params.name, expression: body.expression }),
        body.expected_version,
      ),
  });
  const deleteDerived = defineRoute({
    method: 'DELETE',
    path: '/v1/pipeline/derived/{name}',
    tags: TAGS,
    operationId: 'deleteDerived',
    summary: 'Stops computing a derived series (its stored rows are kept)',
    params: nameParam,
    query: z.object({ expected_version: z.coerce.number().int().positive().optional() }),
    response: versionSchema,
    problems: [403, 404, 409, 422],
    handler: async ({ params, query, principal }) =>
      change(actor(principal), remove('derived', params.name), query.expected_version),
  });
  const startBackfill = defineRoute({
    method: 'POST',
    path: '/v1/pipeline/derived/{name}/backfills',
    tags: TAGS,
    operationId: 'startBackfill',
    summary: 'Computes a derived series over past windows',
    description:
      'Every device window starting in [from, to) whose inputs are stored, at every resolution, in chunks that any replica continues. Poll `GET /v1/pipeline/backfills/{id}`.',
    params: nameParam,
    body: z.object({
      from: z.string().max(40).describe('ISO 8601 with a zone, or epoch milliseconds'),
      to: z.string().max(40).describe('ISO 8601 with a zone, or epoch milliseconds'),
    }),
    status: 202,
    response: backfillSchema,
    responseDescription: 'The backfill, started',
    problems: [403, 404],
    handler: async ({ params, body, principal }) => {
      const from = parseTime('from', body.from);
      const to = parseTime('to', body.to);
      if (to <= from) throw new BadParameterError('to', 'to must be later than from');
      if (to - from > maxBackfillMs)
        throw new BadParameterError(
          'to',
          `a backfill spans at most ${Math.round(maxBackfillMs / 86_400_000)} days`,
        );
      return backfillView(await backfills.start(params.name, from, to, actor(principal)));
    },
  });
  const listBackfills = defineRoute({
    method: 'GET',
    path: '/v1/pipeline/backfills',
    tags: TAGS,
    operationId: 'listBackfills',
    summary: 'Backfills, newest first',
    query: z.object({ limit: z.coerce.number().int().min(1).max(500).default(50) }),
    response: z.object({ items: z.array(backfillSchema) }),
    problems: [403],
    handler: async ({ query, principal }) => {
      operator(principal);
      return { items: (await backfills.list(query.limit)).map(backfillView) };
    },
  });
  const getBackfill = defineRoute({
    method: 'GET',
    path: '/v1/pipeline/backfills/{id}',
    tags: TAGS,
    operationId: 'getBackfill',
    summary: 'One backfill and its progress',
    params: z.object({ id: z.uuid() }),
    response: backfillSchema,
    problems: [403, 404],
    handler: async ({ params, principal }) => {
      operator(principal);
      const b = await backfills.get(params.id);
      if (!b) throw notFound(`backfill ${params.id} does not exist`);
      return backfillView(b);
    },
  });

  return {
    routes: [
      current,
      versions,
      version,
      audit,
      validate,
      putResolution,
      deleteResolution,
      putDerived,
      deleteDerived,
      startBackfill,
      listBackfills,
      getBackfill,
    ] as HttpRoute[],
    schemas: {
      PipelineDocument: documentSchema,
      PipelineVersion: versionSchema,
      PipelineAuditEntry: auditSchema,
      Backfill: backfillSchema,
    },
    mapError: (err) => {
      if (err instanceof PipelineConfigError)
        return new HttpProblem(422, `the configuration is invalid: ${err.message}`, {
          code: 'pipeline_config_invalid',
          errors: [...err.issues],
        });
      if (err instanceof PipelineVersionConflictError)
        return new HttpProblem(409, err.message, { code: 'version_conflict' });
      if (err instanceof DerivedNotFoundError) return notFound(err.message);
      if (isTransientStoreError(err))
        return new HttpProblem(503, 'the configuration store is unreachable; retry later', {
          headers: { 'retry-after': '1' },
        });
      return undefined;
    },
  };
}
