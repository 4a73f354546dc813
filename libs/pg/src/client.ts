import type { Pool, PoolClient } from 'pg';

/**
 * Runs `fn` on a pooled client. A checked-out client has no pool error listener, so a connection
 * that drops between two queries would raise an unhandled 'error' and crash the process; this one is
 * caught, and the client is destroyed instead of returned to the pool. So is a client whose `fn`
 * threw: it may sit in an aborted transaction or hold session state, and a fresh connection is
 * cheaper than finding out.
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
    // true (or an Error) destroys the connection instead of returning it.
    c.release(broken !== undefined);
  }
}

/** {@link withClient} inside `BEGIN … COMMIT`, rolled back on any error (and the client destroyed). */
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
