import { assertValidOpenApiDocument } from './testing';

describe('assertValidOpenApiDocument (the OpenAPI 3.1 JSON schema)', () => {
  const doc = {
    openapi: '3.1.0',
    info: { title: 't', version: '1' },
    paths: { '/x': { get: { operationId: 'x', responses: { '200': { description: 'ok' } } } } },
  };

  it('accepts a valid document', () => {
    expect(() => assertValidOpenApiDocument(doc)).not.toThrow();
  });

  it('refuses one that breaks the schema', () => {
    expect(() => assertValidOpenApiDocument({ ...doc, info: { title: 't' } })).toThrow(/invalid/);
    expect(() =>
      assertValidOpenApiDocument({
        ...doc,
        paths: { '/x': { get: { responses: { '200': { content: {} } } } } },
      }),
    ).toThrow(/invalid/);
  });
});
