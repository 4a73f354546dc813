import type { Pool, PoolClient } from 'pg';

/**
 * Runs `fn` on a pooled client. A checked-out client has no pool error listener, so a connection
 * that drops between two queries would raise an unhandled 'error'; this one is caught and the client
 * is destroyed instead of returned to the pool.
 */
export async function withClient<T>(pool: Pool, fn: (c: PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  let broken: unknown;
  const onError = (err: unknown) => {
    broken ??= err;
  };
  c.on('error', onError);
  try {
    return await fn(c);
  } catch (err) {
    broken ??= err;
    throw err;
  } finally {
    c.off('error', onError);
    c.release(broken !== undefined);
  }
}

/** {@link withClient} inside `BEGIN … COMMIT`, rolled back on any error. */
export function inTransaction<T>(pool: Pool, fn: (c: PoolClient) => Promise<T>): Promise<T> {
  return withClient(pool, async (c) => {
    await c.query('BEGIN');
    try {
      const out = await fn(c);
      await c.query('COMMIT');
      return out;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  });
}

// Array parameters as ready-made literals: pg's generic per-element encoding (prepareValue,
// escapeElement) cost more node CPU per flush than building the literal in one pass.

/** A PostgreSQL array literal of finite numbers, for a `$n::float8[]`/`int8[]`/`int2[]` parameter. */
export function numberArray(values: readonly number[]): string {
  return `{${values.join(',')}}`;
}

const ARRAY_SPECIAL = /["\\]/;
const ARRAY_SPECIAL_ALL = /["\\]/g;

/** A PostgreSQL array literal of strings (every element quoted), for a `$n::text[]` parameter. */
export function textArray(values: readonly string[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    out += `${i === 0 ? '' : ','}"${ARRAY_SPECIAL.test(v) ? v.replace(ARRAY_SPECIAL_ALL, '\\$&') : v}"`;
  }
  return `${out}}`;
}
