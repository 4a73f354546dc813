import { Client } from 'pg';
import { testUrls } from './env';
import { uniqueId } from './names';

/** A fresh PostgreSQL database for one test file; `drop()` removes it (terminating leftovers). */
export interface PgDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(prefix = 'sluice'): Promise<PgDatabase> {
  const name = uniqueId(prefix).replace(/-/g, '_');
  const admin = new Client({ connectionString: testUrls.postgres });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(testUrls.postgres);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    async drop() {
      const c = new Client({ connectionString: testUrls.postgres });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
