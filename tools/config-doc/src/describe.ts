// The rows of docs/CONFIG.md: each variable of a `defineConfig({...})` schema with its type, default
// and description. Defaults and enum values come from the zod schema (what the service really does);
// the description is the JSDoc above the key in the source, found with the TypeScript compiler API
// (JSDoc does not exist at run time); the type comes from the @sluice/config helper the key is
// built with (`durationMs`, `port`, ...), which the zod schema alone cannot tell apart.
import ts from 'typescript';
import type { z } from 'zod';

/** One environment variable. */
export interface VariableRow {
  name: string;
  /** Human-readable type or format, Markdown. */
  type: string;
  /** The default as written in the schema, Markdown; `required` or `unset` when there is none. */
  default: string;
  /** The JSDoc above the key, on one line; empty when there is none. */
  description: string;
}

/** What the source says about one key of the `defineConfig({...})` object. */
export interface SourceKey {
  /** JSDoc text without the comment markers, lines joined. */
  doc: string;
  /** `durationMs`, `positiveInt`, `z.enum`, ...: the helper the value is built with. */
  helper: string | undefined;
}

/** Thrown when a config source cannot be documented (no `defineConfig({...})` call, say). */
export class ConfigDocError extends Error {
  override readonly name = 'ConfigDocError';
}

function jsDocText(node: ts.Node, text: string): string {
  const ranges = ts.getLeadingCommentRanges(text, node.getFullStart()) ?? [];
  const docs = ranges.filter((r) => text.startsWith('/**', r.pos));
  const last = docs[docs.length - 1];
  if (!last) return '';
  return text
    .slice(last.pos + 3, last.end - 2)
    .split('\n')
    .map((l) => l.replace(/^\s*\*? ?/, '').trim())
    .filter((l) => l.length > 0)
    .join(' ');
}

/** The helper at the root of a chain like `z.string().default('x').refine(...)` or `durationMs('1s')`. */
function rootHelper(expr: ts.Expression): string | undefined {
  const names: string[] = [];
  let e: ts.Expression = expr;
  for (let depth = 0; depth < 64; depth++) {
    if (ts.isCallExpression(e)) e = e.expression;
    else if (ts.isPropertyAccessExpression(e)) {
      names.unshift(e.name.text);
      e = e.expression;
    } else if (ts.isParenthesizedExpression(e) || ts.isAsExpression(e)) e = e.expression;
    else break;
  }
  if (!ts.isIdentifier(e)) return undefined;
  if (e.text !== 'z') return e.text;
  // z.string(), z.enum([...]), z.coerce.number(), z.url()
  return names[0] === 'coerce' ? `z.coerce.${names[1] ?? ''}` : `z.${names[0] ?? ''}`;
}

/** The keys of the object passed to `defineConfig` (or, in libs/config, of `export const <object>`). */
export function readSourceKeys(
  fileName: string,
  text: string,
  objectName?: string,
): Map<string, SourceKey> {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  let literal: ts.ObjectLiteralExpression | undefined;
  const visit = (node: ts.Node): void => {
    if (literal) return;
    if (
      objectName === undefined &&
      ts.isCallExpression(node) &&
      ts.isIdentifier(node.expression) &&
      node.expression.text === 'defineConfig'
    ) {
      const arg = node.arguments[0];
      if (arg && ts.isObjectLiteralExpression(arg)) literal = arg;
    } else if (
      objectName !== undefined &&
      ts.isVariableDeclaration(node) &&
      ts.isIdentifier(node.name) &&
      node.name.text === objectName
    ) {
      if (node.initializer && ts.isObjectLiteralExpression(node.initializer))
        literal = node.initializer;
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  if (!literal)
    throw new ConfigDocError(
      `${fileName}: no ${objectName === undefined ? 'defineConfig({...}) call' : `object literal named ${objectName}`} found`,
    );
  const keys = new Map<string, SourceKey>();
  for (const prop of literal.properties) {
    if (!ts.isPropertyAssignment(prop)) continue;
    const name =
      ts.isIdentifier(prop.name) || ts.isStringLiteral(prop.name) ? prop.name.text : undefined;
    if (name === undefined) continue;
    keys.set(name, { doc: jsDocText(prop, text), helper: rootHelper(prop.initializer) });
  }
  return keys;
}

interface ZodDef {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  defaultValue?: unknown;
  entries?: Record<string, string | number>;
  format?: string;
  options?: z.ZodType[];
}
const defOf = (s: z.ZodType): ZodDef => (s as unknown as { _zod: { def: ZodDef } })._zod.def;

/** The schema under defaults, optionals and transforms, with the default and optionality found on the way. */
function unwrap(schema: z.ZodType): {
  core: ZodDef;
  hasDefault: boolean;
  defaultValue: unknown;
  optional: boolean;
} {
  let s = schema;
  let hasDefault = false;
  let defaultValue: unknown;
  let optional = false;
  for (let depth = 0; depth < 32; depth++) {
    const def = defOf(s);
    if ((def.type === 'default' || def.type === 'prefault') && def.innerType) {
      if (!hasDefault) {
        hasDefault = true;
        defaultValue = def.defaultValue;
      }
      s = def.innerType;
    } else if (
      (def.type === 'optional' ||
        def.type === 'nullable' ||
        def.type === 'readonly' ||
        def.type === 'catch') &&
      def.innerType
    ) {
      if (def.type === 'optional') optional = true;
      s = def.innerType;
    } else if (def.type === 'pipe' && def.in) s = def.in;
    else return { core: def, hasDefault, defaultValue, optional };
  }
  throw new ConfigDocError('schema nested too deeply');
}

const code = (v: unknown) => `\`${String(v)}\``;

const HELPER_TYPES: Record<string, string> = {
  durationMs: 'duration',
  positiveInt: 'integer > 0',
  port: 'port',
  csv: 'comma-separated list',
  bool: 'boolean',
  'z.string': 'string',
  'z.url': 'URL',
  'z.coerce.number': 'number',
};

function typeOf(helper: string | undefined, core: ZodDef): string {
  if (core.type === 'enum' && core.entries)
    return `one of ${Object.values(core.entries).map(code).join(', ')}`;
  if (helper !== undefined && HELPER_TYPES[helper]) return HELPER_TYPES[helper];
  if (core.type === 'string' && core.format === 'url') return 'URL';
  return core.type;
}

function defaultOf(u: ReturnType<typeof unwrap>): string {
  if (u.hasDefault) {
    const v = u.defaultValue;
    return v === '' ? '(empty)' : code(typeof v === 'string' ? v : JSON.stringify(v));
  }
  return u.optional ? 'unset' : '**required**';
}

/** Escapes a table cell: pipes and line breaks would end it. */
export const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');

/** The rows for `keys` of `shape`, in the schema's order, described from `source`. */
export function describe(
  shape: Record<string, z.ZodType>,
  keys: readonly string[],
  source: Map<string, SourceKey>,
): VariableRow[] {
  return keys.map((name) => {
    const schema = shape[name];
    if (!schema) throw new ConfigDocError(`${name} is not in the schema`);
    const src = source.get(name);
    const u = unwrap(schema);
    return {
      name,
      type: typeOf(src?.helper, u.core),
      default: defaultOf(u),
      description: src?.doc ?? '',
    };
  });
}

/** What the type names of {@link table} mean, for the top of the document. */
export const TYPE_LEGEND = [
  '- **duration**: `500ms`, `5s`, `1.5m`, `2h`, `7d`; a bare number is milliseconds.',
  '- **boolean**: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`.',
  '- **port**: 0-65535; 0 picks a free one.',
  '- **comma-separated list**: items separated by `,`, blanks around them ignored, empty items dropped.',
].join('\n');

/** A Markdown table of `rows`. */
export function table(rows: readonly VariableRow[]): string {
  const lines = ['| Variable | Type | Default | Description |', '| --- | --- | --- | --- |'];
  for (const r of rows)
    lines.push(`| \`${r.name}\` | ${cell(r.type)} | ${cell(r.default)} | ${cell(r.description)} |`);
  return lines.join('\n');
}
