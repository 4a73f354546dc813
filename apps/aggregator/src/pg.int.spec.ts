import { testUrls } from '@sluice/testing';
import { Client } from 'pg';
import { numberArray, textArray } from './pg';

describe('array literals on real PostgreSQL', () => {
  let client: Client;
  beforeAll(async () => {
    client = new Client({ connectionString: testUrls.postgres });
    await client.connect();
  });
  afterAll(async () => {
    await client.end();
  });

  it('round-trips hostile strings through text[] unchanged', async () => {
    const values = [
      'plain',
      'with space',
      'comma,brace{}',
      'quote"inside',
      'back\\slash',
      '\\"',
      'NULL',
      '',
      ' lead',
      'ünïcødé ⛵',
      "it's",
    ];
    const { rows } = await client.query<{ v: string }>('SELECT unnest($1::text[]) AS v', [
      textArray(values),
    ]);
    expect(rows.map((r) => r.v)).toEqual(values);
  });

  it('round-trips numbers through float8[] and int8[] exactly', async () => {
    const floats = [0, -0.5, 1e-300, 123456.789, Number.MAX_VALUE, -Number.MIN_VALUE, 0.1 + 0.2];
    const f = await client.query<{ v: number }>('SELECT unnest($1::float8[]) AS v', [
      numberArray(floats),
    ]);
    expect(f.rows.map((r) => r.v)).toEqual(floats.map((x) => (Object.is(x, -0) ? 0 : x)));
    const ints = [1, 1_700_000_000_123, -42];
    const i = await client.query<{ v: string }>('SELECT unnest($1::int8[]) AS v', [
      numberArray(ints),
    ]);
    expect(i.rows.map((r) => Number(r.v))).toEqual(ints);
  });

  it('passes empty arrays', async () => {
    const { rows } = await client.query('SELECT unnest($1::text[]) AS v', [textArray([])]);
    expect(rows).toHaveLength(0);
    expect(
      (await client.query('SELECT cardinality($1::float8[]) AS n', [numberArray([])])).rows[0].n,
    ).toBe(0);
  });
});
