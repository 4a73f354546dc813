/** OpenAPI 3.1 description of the query API, served at `/openapi.json`. */
export function openApiDocument(
  resolutions: readonly string[],
  limits: { defaultPoints: number; maxRangePoints: number; maxPage: number },
) {
  const error = { $ref: '#/components/responses/BadParameter' };
  const time = (name: string, description: string) => ({
    name,
    in: 'query',
    required: true,
    description: `${description} ISO 8601 (\`2026-01-01T00:00:00Z\`) or epoch milliseconds.`,
    schema: { type: 'string' },
  });
  const cursor = {
    name: 'cursor',
    in: 'query',
    required: false,
    description: 'Opaque `next_cursor` of the previous page, with otherwise identical parameters.',
    schema: { type: 'string' },
  };
  const limit = (dflt: number) => ({
    name: 'limit',
    in: 'query',
    required: false,
    description: `Items per page, 1..${limits.maxPage}.`,
    schema: { type: 'integer', minimum: 1, maximum: limits.maxPage, default: dflt },
  });
  return {
    openapi: '3.1.0',
    info: {
      title: 'Sluice aggregator query API',
      version: '1.0.0',
      description:
        'Event-time roll-ups (count, sum, min, max, avg, first, last) per device or region and sensor.',
    },
    paths: {
      '/v1/series': {
        get: {
          operationId: 'getSeries',
          summary: 'Roll-up points of one device or region sensor over a time range',
          description:
            'Exactly one of `device` or `region`. Windows whose start lies in [from, to). `resolution=auto` picks the coarsest resolution giving at least `points` windows over the range (the finest when none does). The range divided by the resolution may not exceed the configured maximum.',
          parameters: [
            {
              name: 'device',
              in: 'query',
              required: false,
              schema: { type: 'string', maxLength: 128 },
            },
            {
              name: 'region',
              in: 'query',
              required: false,
              schema: { type: 'string', maxLength: 64 },
            },
            {
              name: 'sensor',
              in: 'query',
              required: true,
              schema: { type: 'string', maxLength: 128 },
            },
            time('from', 'Range start (inclusive).'),
            time('to', 'Range end (exclusive).'),
            {
              name: 'resolution',
              in: 'query',
              required: false,
              schema: { type: 'string', enum: ['auto', ...resolutions], default: 'auto' },
            },
            {
              name: 'points',
              in: 'query',
              required: false,
              description: 'Target number of points for `resolution=auto`.',
              schema: {
                type: 'integer',
                minimum: 1,
                maximum: limits.maxRangePoints,
                default: limits.defaultPoints,
              },
            },
            limit(Math.min(1000, limits.maxPage)),
            cursor,
          ],
          responses: {
            '200': {
              description: 'One page of points',
              content: {
                'application/json': { schema: { $ref: '#/components/schemas/SeriesPage' } },
              },
            },
            '400': error,
            '503': { $ref: '#/components/responses/Unavailable' },
          },
        },
      },
      '/v1/devices': {
        get: {
          operationId: 'listDevices',
          summary: 'Devices with their sensors, ordered by device id',
          parameters: [limit(100), cursor],
          responses: {
            '200': {
              description: 'One page of devices',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/KeyPage' } } },
            },
            '400': error,
            '503': { $ref: '#/components/responses/Unavailable' },
          },
        },
      },
      '/v1/regions': {
        get: {
          operationId: 'listRegions',
          summary: 'Regions with their sensors',
          parameters: [limit(100), cursor],
          responses: {
            '200': {
              description: 'One page of regions',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/KeyPage' } } },
            },
            '400': error,
          },
        },
      },
      '/v1/devices/{device}/latest': {
        get: {
          operationId: 'getLatest',
          summary: 'Latest value of every sensor of a device',
          parameters: [{ name: 'device', in: 'path', required: true, schema: { type: 'string' } }],
          responses: {
            '200': {
              description: 'Latest values',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Latest' } } },
            },
            '404': {
              description: 'Unknown device',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
            },
          },
        },
      },
    },
    components: {
      responses: {
        BadParameter: {
          description: 'A parameter is missing or invalid; `error.parameter` names it',
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
        },
        Unavailable: {
          description: 'The roll-up store is unreachable; retry later',
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
        },
      },
      schemas: {
        Error: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message'],
              properties: {
                code: { type: 'string' },
                parameter: { type: 'string' },
                message: { type: 'string' },
              },
            },
          },
        },
        Point: {
          type: 'object',
          properties: {
            time: { type: 'string', format: 'date-time', description: 'Window start' },
            count: { type: 'integer' },
            sum: { type: 'number' },
            min: { type: 'number' },
            max: { type: 'number' },
            avg: { type: 'number' },
            first: { type: 'number' },
            last: { type: 'number' },
            first_time: { type: 'string', format: 'date-time' },
            last_time: { type: 'string', format: 'date-time' },
            revision: {
              type: 'integer',
              description:
                '0 while the window is open; 1 once closed; +1 per late update published',
            },
            late_count: { type: 'integer' },
          },
        },
        SeriesPage: {
          type: 'object',
          properties: {
            scope: { type: 'string', enum: ['device', 'region'] },
            device: { type: 'string' },
            region: { type: 'string' },
            sensor: { type: 'string' },
            resolution: { type: 'string' },
            from: { type: 'string', format: 'date-time' },
            to: { type: 'string', format: 'date-time' },
            points: { type: 'array', items: { $ref: '#/components/schemas/Point' } },
            next_cursor: { type: ['string', 'null'] },
          },
        },
        KeyPage: {
          type: 'object',
          properties: {
            items: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  id: { type: 'string' },
                  region: { type: 'string' },
                  sensors: { type: 'array', items: { type: 'string' } },
                },
              },
            },
            next_cursor: { type: ['string', 'null'] },
          },
        },
        Latest: {
          type: 'object',
          properties: {
            device: { type: 'string' },
            sensors: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  sensor: { type: 'string' },
                  region: { type: 'string' },
                  value: { type: 'number' },
                  time: { type: 'string', format: 'date-time' },
                  derived: { type: 'boolean' },
                },
              },
            },
          },
        },
      },
    },
  };
}
