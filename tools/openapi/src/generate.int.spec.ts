// The documents are rendered from the services' own route definitions (an API on loopback, no
// store): valid OpenAPI 3.1, every operation the clients wrap, and the same bytes on every run.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AnyHttpRoute } from '@sluice/http';
import { assertValidOpenApiDocument } from '@sluice/http/testing';
import { CLIENTS, OpenApiToolError, renderDocument, ROOT } from './documents';

const FILES = [
  'libs/clients/query/openapi.json',
  'libs/clients/query/src/gen/schema.ts',
  'libs/clients/admin/openapi.json',
  'libs/clients/admin/src/gen/schema.ts',
];

/** `npm run clients -- <args>`, as its own process (openapi-typescript is ES-module-only inside). */
function runTool(args: string[]): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'tools/openapi/src/main.ts', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const operations = (doc: Record<string, unknown>) =>
  Object.values(doc['paths'] as Record<string, Record<string, { operationId: string }>>)
    .flatMap((item) => Object.values(item).map((op) => op.operationId))
    .sort();

describe('tools/openapi', () => {
  it('renders valid OpenAPI 3.1 documents with every operation of the query and admin APIs', async () => {
    const [query, admin] = await Promise.all(CLIENTS.map((c) => renderDocument(c)));
    for (const doc of [query!, admin!]) {
      expect(doc['openapi']).toBe('3.1.0');
      assertValidOpenApiDocument(doc);
    }
    expect(operations(query!)).toEqual([
      'deleteDerived',
      'deleteResolution',
      'getBackfill',
      'getLatest',
      'getPipeline',
      'getPipelineVersion',
      'getSeries',
      'listBackfills',
      'listDevices',
      'listPipelineAudit',
      'listPipelineVersions',
      'listRegions',
      'putDerived',
      'putResolution',
      'startBackfill',
      'streamRollups',
      'validatePipeline',
    ]);
    expect(operations(admin!)).toEqual([
      'createSubscription',
      'deleteSubscription',
      'getSubscription',
      'listAttempts',
      'listDeadLetters',
      'listSubscriptions',
      'redriveDeadLetter',
      'redriveDeadLetters',
      'rotateSecret',
      'sendTestEvent',
      'updateSubscription',
    ]);
    expect(query!['security']).toEqual([{ bearer: [] }]);
  });

  it('writes with --out exactly the committed files, and --check agrees', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-clients-test-'));
    try {
      expect(runTool(['--out', dir]).status).toBe(0);
      for (const f of FILES)
        expect(readFileSync(join(dir, f), 'utf8')).toBe(readFileSync(join(ROOT, f), 'utf8'));
      const schema = readFileSync(join(dir, FILES[1]!), 'utf8');
      expect(schema).toContain("get: operations['getSeries'];");
      // Resolutions change live (the pipeline admin routes), so the parameter is a string.
      expect(schema).toContain("put: operations['putDerived'];");
      expect(schema).toMatch(/resolution\?: string;/);
      const check = runTool(['--check']);
      expect(check.out).toContain('generated clients match the APIs');
      expect(check.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);

  it('refuses to let a route handler reach a dependency while rendering', async () => {
    for (const source of CLIENTS) {
      const route = source
        .definition(ROOT)
        .routes.find(
          (r): r is AnyHttpRoute =>
            r.kind === undefined && ['listDevices', 'listSubscriptions'].includes(r.operationId),
        )!;
      const attempt = route.handler({
        params: { id: '00000000-0000-4000-8000-000000000000', device: 'd' },
        query: { limit: 1 },
        body: undefined,
        principal: undefined,
        signal: new AbortController().signal,
        headers: {},
      });
      await expect(attempt).rejects.toBeInstanceOf(OpenApiToolError);
    }
  });
});
