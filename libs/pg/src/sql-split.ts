/**
 * Splits a SQL script into its statements at top-level semicolons, skipping those inside quoted
 * strings (`'…'`, `E'…'`), quoted identifiers, dollar-quoted bodies (`$$…$$`, `$fn$…$fn$`), line
 * comments and nested block comments. Statements are trimmed; empty ones (and comment-only ones) are
 * dropped. One pass over the text.
 *
 * Needed for migrations that run outside a transaction: PostgreSQL runs a multi-statement query
 * string as one implicit transaction, in which `CREATE INDEX CONCURRENTLY` and the like are refused.
 */
export function splitSqlStatements(sql: string): string[] {
  const out: string[] = [];
  let start = 0;
  let meaningful = false;
  let i = 0;
  const n = sql.length;
  const push = (end: number) => {
    const stmt = sql.slice(start, end).trim();
    if (meaningful && stmt) out.push(stmt);
    meaningful = false;
  };
  while (i < n) {
    const ch = sql[i]!;
    const next = sql[i + 1];
    if (ch === '-' && next === '-') {
      const eol = sql.indexOf('\n', i);
      i = eol === -1 ? n : eol + 1;
    } else if (ch === '/' && next === '*') {
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql[i] === '/' && sql[i + 1] === '*') {
          depth++;
          i += 2;
        } else if (sql[i] === '*' && sql[i + 1] === '/') {
          depth--;
          i += 2;
        } else i++;
      }
    } else if (ch === "'") {
      const escapes = i > 0 && /[eE]/.test(sql[i - 1]!) && (i < 2 || !/[\w$]/.test(sql[i - 2]!));
      meaningful = true;
      i++;
      while (i < n) {
        if (escapes && sql[i] === '\\') i += 2;
        else if (sql[i] === "'" && sql[i + 1] === "'") i += 2;
        else if (sql[i] === "'") {
          i++;
          break;
        } else i++;
      }
    } else if (ch === '"') {
      meaningful = true;
      i++;
      while (i < n) {
        if (sql[i] === '"' && sql[i + 1] === '"') i += 2;
        else if (sql[i] === '"') {
          i++;
          break;
        } else i++;
      }
    } else if (ch === '$' && (i === 0 || !/[\w$]/.test(sql[i - 1]!))) {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 66));
      meaningful = true;
      if (tag) {
        const close = sql.indexOf(tag[0], i + tag[0].length);
        i = close === -1 ? n : close + tag[0].length;
      } else i++; // a positional parameter like $1
    } else if (ch === ';') {
      push(i);
      start = ++i;
    } else {
      if (!/\s/.test(ch)) meaningful = true;
      i++;
    }
  }
  push(n);
  return out;
}
