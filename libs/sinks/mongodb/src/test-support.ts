// Test helpers shared by the MongoDB sink's and mongo-capture's integration specs (real server).
import { MongoClient, type Db } from 'mongodb';
import { testUrls, uniqueId } from '@sluice/testing';

/** A fresh database on the test server for one test; `drop()` removes it and closes the client. */
export interface MongoTestDatabase {
  name: string;
  client: MongoClient;
  db: Db;
  /** Every `_id` in every data collection, one entry per stored document. */
  allIds(): Promise<string[]>;
  drop(): Promise<void>;
}

/** `MONGO_URL` with `directConnection` and a short server selection, optionally through another port. */
export function mongoTestUrl(port?: number): string {
  const url = new URL(testUrls.mongo);
  if (port !== undefined) {
    url.hostname = '127.0.0.1';
    url.port = String(port);
  }
  url.searchParams.set('directConnection', 'true');
  return url.toString();
}

export async function createMongoTestDatabase(prefix = 'sink'): Promise<MongoTestDatabase> {
  const name = uniqueId(prefix).replace(/-/g, '_');
  const client = new MongoClient(mongoTestUrl(), { serverSelectionTimeoutMS: 5_000 });
  await client.connect();
  const db = client.db(name);
  return {
    name,
    client,
    db,
    async allIds() {
      const colls = await db.listCollections({}, { nameOnly: true }).toArray();
      const ids: string[] = [];
      for (const c of colls) {
        if (c.name.startsWith('system.') || c.name.startsWith('sluice_probe_')) continue;
        const docs = await db
          .collection(c.name)
          .find({}, { projection: { _id: 1 } })
          .toArray();
        for (const d of docs) ids.push(String(d._id));
      }
      return ids;
    },
    async drop() {
      await db.dropDatabase().catch(() => undefined);
      await client.close().catch(() => undefined);
    },
  };
}
