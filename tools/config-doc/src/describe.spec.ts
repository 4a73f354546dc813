import { bool, csv, defineConfig, durationMs, port, positiveInt, z } from '@sluice/config';
import { describe as rowsOf, readSourceKeys, table } from './describe';

// The source is parsed, never run: the schema below is built from the same text by hand.
const SOURCE = `
import { bool, csv, defineConfig, durationMs, port, positiveInt, z } from '@sluice/config';
export const config = defineConfig({
  /** How long to wait. Default \`5s\`. */
  X_WAIT: durationMs('5s'),
  /**
   * Worker count,
   * over two lines.
   */
  X_WORKERS: positiveInt(3).refine((n) => n < 10, 'too many'),
  // a plain comment is not documentation
  X_PORT: port(8080),
  /** Hosts, a|b. */
  X_HOSTS: csv(''),
  /** Switch. */
  X_ON: bool(false),
  /** Mode. */
  X_MODE: z.enum(['fast', 'safe']).default('safe'),
  /** Where. */
  X_URL: z.url().optional(),
  /** Must be given. */
  X_SECRET: z.string().min(8),
});
`;

const schema = defineConfig({
  X_WAIT: durationMs('5s'),
  X_WORKERS: positiveInt(3).refine((n) => n < 10, 'too many'),
  X_PORT: port(8080),
  X_HOSTS: csv(''),
  X_ON: bool(false),
  X_MODE: z.enum(['fast', 'safe']).default('safe'),
  X_URL: z.url().optional(),
  X_SECRET: z.string().min(8),
});

describe('config-doc', () => {
  const source = readSourceKeys('config.ts', SOURCE);
  const keys = Object.keys(schema.shape).filter((k) => k.startsWith('X_'));

  it('pairs each key with its JSDoc and the helper it is built with', () => {
    expect(source.get('X_WAIT')).toEqual({
      doc: 'How long to wait. Default `5s`.',
      helper: 'durationMs',
    });
    expect(source.get('X_WORKERS')).toEqual({
      doc: 'Worker count, over two lines.',
      helper: 'positiveInt',
    });
    expect(source.get('X_PORT')).toEqual({ doc: '', helper: 'port' });
    expect(source.get('X_MODE')?.helper).toBe('z.enum');
    expect(source.get('X_URL')?.helper).toBe('z.url');
  });

  it('describes type and default from the schema', () => {
    const rows = rowsOf(schema.shape as unknown as Record<string, z.ZodType>, keys, source);
    expect(rows.map((r) => [r.name, r.type, r.default])).toEqual([
      ['X_WAIT', 'duration', '`5s`'],
      ['X_WORKERS', 'integer > 0', '`3`'],
      ['X_PORT', 'port', '`8080`'],
      ['X_HOSTS', 'comma-separated list', '(empty)'],
      ['X_ON', 'boolean', '`false`'],
      ['X_MODE', 'one of `fast`, `safe`', '`safe`'],
      ['X_URL', 'URL', 'unset'],
      ['X_SECRET', 'string', '**required**'],
    ]);
  });

  it('renders a table whose cells cannot break it', () => {
    const md = table(
      rowsOf(schema.shape as unknown as Record<string, z.ZodType>, ['X_HOSTS'], source),
    );
    expect(md.split('\n')).toEqual([
      '| Variable | Type | Default | Description |',
      '| --- | --- | --- | --- |',
      '| `X_HOSTS` | comma-separated list | (empty) | Hosts, a\\|b. |',
    ]);
  });

  it('names the file when it has no defineConfig call', () => {
    expect(() => readSourceKeys('other.ts', 'export const x = 1;')).toThrow(
      /other\.ts: no defineConfig/,
    );
  });
});
