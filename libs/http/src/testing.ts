// Spec-only helper (`@sluice/http/testing`): validates real responses against a served OpenAPI
// document with openapi-backend (a dev dependency; never import this from service code).
import { spawnSync } from 'node:child_process';
import OpenAPIBackend from 'openapi-backend';
import type { OpenAPIV3_1 } from 'openapi-types';

// The string formats zod emits (openapi-backend's Ajv knows only the OpenAPI number formats).
const FORMATS: Record<string, RegExp> = {
  'date-time': /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/,
  uuid: /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/,
};

/** One real response as a spec saw it. */
export interface SeenResponse {
  method: string;
  /** Path with query, e.g. `/v1/series?device=a`. */
  url: string;
  status: number;
  /** The `content-type` header, `null` when absent. */
  contentType: string | null;
  /** The raw body text. */
  text: string;
}

export interface OpenApiChecker {
  /** Throws, naming every mismatch, unless the response is documented and its body validates. */
  check(res: SeenResponse): void;
  /** `METHOD /path-template STATUS` of every response checked so far. */
  readonly seen: ReadonlySet<string>;
  /** `METHOD /path-template` of every documented operation. */
  readonly operations: readonly string[];
}

type Doc = {
  openapi: string;
  paths: Record<
    string,
    Record<
      string,
      { operationId?: string; responses?: Record<string, { content?: Record<string, unknown> }> }
    >
  >;
};

// @seriousme/openapi-schema-validator is ES-module-only and reads its schemas via import.meta, which
// jest's CommonJS loader cannot run: it is run by plain node in a child process.
const VALIDATE_SCRIPT = `
import { Validator } from '@seriousme/openapi-schema-validator';
let text = '';
for await (const chunk of process.stdin) text += chunk;
const result = await new Validator().validate(JSON.parse(text));
process.stdout.write(JSON.stringify(result));
`;

/**
 * Throws unless `document` is valid against the official OpenAPI 3.1 JSON schema (checked by
 * @seriousme/openapi-schema-validator, which knows 3.1; openapi-backend checks only 3.0 documents).
 */
export function assertValidOpenApiDocument(document: unknown): void {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', VALIDATE_SCRIPT], {
    input: JSON.stringify(document),
    encoding: 'utf8',
    timeout: 30_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  if (r.status !== 0)
    throw new Error(`OpenAPI validator did not run: ${r.error?.message ?? r.stderr}`);
  const result = JSON.parse(r.stdout) as { valid: boolean; errors?: unknown };
  if (!result.valid)
    throw new Error(
      `the OpenAPI document is invalid: ${JSON.stringify(result.errors, null, 2).slice(0, 4000)}`,
    );
}

/**
 * Builds a checker for `document`. openapi-backend validates only `application/json` bodies, so
 * its copy of the document lists every JSON-suffixed media type (`application/problem+json`) as
 * `application/json`; the served content type is checked against the original document.
 */
export async function openApiChecker(document: unknown): Promise<OpenApiChecker> {
  const original = document as Doc;
  if (!original.openapi?.startsWith('3.1'))
    throw new Error(`expected an OpenAPI 3.1 document, got ${original.openapi}`);
  assertValidOpenApiDocument(document);
  const copy = JSON.parse(JSON.stringify(document)) as Doc;
  const operations: string[] = [];
  for (const [path, item] of Object.entries(copy.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!op.operationId) throw new Error(`${method.toUpperCase()} ${path} has no operationId`);
      operations.push(`${method.toUpperCase()} ${path}`);
      for (const res of Object.values(op.responses ?? {})) {
        if (!res.content) continue;
        const media = Object.keys(res.content);
        if (media.length !== 1)
          throw new Error(`${method} ${path}: one media type per response expected`);
        if (/^application\/([a-z.+-]+\+)?json$/.test(media[0]!))
          res.content = { 'application/json': res.content[media[0]!] };
      }
    }
  }
  // `quick` skips openapi-backend's check of the document itself, which knows only the OpenAPI 3.0
  // schema (it refuses 3.1's `type: [..., "null"]`); response bodies are still validated with Ajv.
  const backend = new OpenAPIBackend({
    definition: copy as unknown as OpenAPIV3_1.Document,
    validate: true,
    quick: true,
    customizeAjv: (ajv) => {
      for (const [name, re] of Object.entries(FORMATS)) ajv.addFormat(name, re);
      return ajv;
    },
  });
  await backend.init();
  const seen = new Set<string>();
  return {
    seen,
    operations,
    check(res) {
      const u = new URL(res.url, 'http://api');
      const query: Record<string, string> = {};
      u.searchParams.forEach((v, k) => (query[k] = v));
      const op = backend.router.matchOperation({
        method: res.method,
        path: u.pathname,
        headers: {},
        query,
      });
      if (!op) throw new Error(`${res.method} ${u.pathname} is not a documented operation`);
      const where = `${res.method} ${op.path} ${res.status}`;
      const documented = original.paths[op.path]![op.method]!.responses?.[String(res.status)];
      if (!documented) throw new Error(`${where}: status ${res.status} is not documented`);
      const media = Object.keys(documented.content ?? {});
      if (media.length === 0) {
        if (res.text !== '')
          throw new Error(`${where}: documented without a body, got ${res.text.slice(0, 200)}`);
      } else {
        const type = (res.contentType ?? '').split(';')[0]!.trim();
        if (!media.includes(type))
          throw new Error(
            `${where}: content type ${type || '(none)'} is not documented (${media.join(', ')})`,
          );
        let body: unknown;
        try {
          body = JSON.parse(res.text);
        } catch {
          throw new Error(`${where}: body is not JSON: ${res.text.slice(0, 200)}`);
        }
        const validators = backend.validator.getStatusBasedResponseValidatorForOperation(
          op.operationId!,
        );
        if (!validators?.[String(res.status)])
          throw new Error(`${where}: the validator has no schema for this response`);
        const result = backend.validator.validateResponse(body, op, res.status);
        if (!result.valid)
          throw new Error(
            `${where}: body does not match the document: ${JSON.stringify(result.errors)}\n${res.text.slice(0, 500)}`,
          );
      }
      seen.add(where);
    },
  };
}

/** `fetch` that also checks the response with `checker` and returns its status, headers and parsed body. */
export async function fetchChecked(
  checker: OpenApiChecker,
  base: string,
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(`${base}${url}`, init);
  const text = await res.text();
  checker.check({
    method: init.method ?? 'GET',
    url,
    status: res.status,
    contentType: res.headers.get('content-type'),
    text,
  });
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}
