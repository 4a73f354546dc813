// `${VAR}` and `${VAR:-default}` in the string values of the destinations file, so secrets and hosts
// come from the environment (a Kubernetes Secret, a .env file) and any value can be overridden
// without editing the file. Keys are never interpolated; `$$` is a literal `$`.
import type { FileIssue } from './errors';

export type Path = ReadonlyArray<string | number>;

/** `destinations[2].options.topic`: dots between keys, brackets around array indexes. */
export function formatPath(path: Path): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? p : `.${p}`;
  }
  return out === '' ? '(file)' : out;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * One string with its references replaced. `${VAR}` needs VAR set and not empty; `${VAR:-default}`
 * takes the default when VAR is unset or empty. Throws a message naming the problem.
 */
export function interpolateString(
  value: string,
  env: Readonly<Record<string, string | undefined>>,
): string {
  if (!value.includes('$')) return value;
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c !== '$') {
      out += c;
      continue;
    }
    const next = value[i + 1];
    if (next === '$') {
      out += '$';
      i++;
      continue;
    }
    if (next !== '{') {
      out += c;
      continue;
    }
    const end = value.indexOf('}', i + 2);
    if (end < 0) throw new Error(`"\${" at character ${i + 1} is not closed by "}"`);
    const body = value.slice(i + 2, end);
    const sep = body.indexOf(':-');
    const name = sep < 0 ? body : body.slice(0, sep);
    if (!NAME.test(name))
      throw new Error(
        `"\${${body}}": "${name}" is not an environment variable name (letters, digits, _; write $$ for a literal $)`,
      );
    const set = env[name];
    if (set !== undefined && set !== '') out += set;
    else if (sep >= 0) out += body.slice(sep + 2);
    else
      throw new Error(
        `environment variable ${name} is not set (write \${${name}:-default} to give a default)`,
      );
    i = end;
  }
  return out;
}

/**
 * A copy of `value` (parsed YAML or JSON) with every string interpolated; each problem is reported with
 * the path of its value. Depth is bounded so a hostile file cannot exhaust the stack.
 */
export function interpolate(
  value: unknown,
  env: Readonly<Record<string, string | undefined>>,
  issues: FileIssue[],
  path: Path = [],
): unknown {
  if (path.length > 64) {
    issues.push({ path: formatPath(path), reason: 'is nested more than 64 levels deep' });
    return value;
  }
  if (typeof value === 'string') {
    try {
      return interpolateString(value, env);
    } catch (err) {
      issues.push({ path: formatPath(path), reason: (err as Error).message });
      return value;
    }
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, issues, [...path, i]));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolate(v, env, issues, [...path, k]);
    return out;
  }
  return value;
}
