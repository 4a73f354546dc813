import { splitSqlStatements } from './sql-split';

describe('splitSqlStatements', () => {
  it('splits at top-level semicolons and drops empty and comment-only statements', () => {
    expect(
      splitSqlStatements(
        'CREATE TABLE a (x int);\n\n;  -- a comment; not a split\nSELECT 1; /* trailing */ -- comment\n',
      ),
    ).toEqual(['CREATE TABLE a (x int)', '-- a comment; not a split\nSELECT 1']);
  });

  it('keeps semicolons inside strings, identifiers, comments and dollar quotes', () => {
    const fn = `CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN PERFORM 1; RETURN 2; END $body$`;
    const sql = [
      `INSERT INTO t VALUES ('a;b', 'it''s; fine')`,
      `SELECT "odd;name" FROM "t""x;"`,
      `/* block; /* nested; */ still; */ SELECT 2`,
      `SELECT E'esc\\'; still'`,
      fn,
      `DO $$ BEGIN RAISE NOTICE 'x;y'; END $$`,
      `SELECT $1::int`,
    ].join(';\n');
    expect(splitSqlStatements(sql)).toEqual([
      `INSERT INTO t VALUES ('a;b', 'it''s; fine')`,
      `SELECT "odd;name" FROM "t""x;"`,
      `/* block; /* nested; */ still; */ SELECT 2`,
      `SELECT E'esc\\'; still'`,
      fn,
      `DO $$ BEGIN RAISE NOTICE 'x;y'; END $$`,
      `SELECT $1::int`,
    ]);
  });

  it('keeps a leading comment with its statement, and reads a plain quote after an e-ending word as plain', () => {
    expect(
      splitSqlStatements(
        `-- why\nCREATE INDEX CONCURRENTLY i ON t (x);\nSELECT date'x\\'; SELECT 1`,
      ),
    ).toEqual(['-- why\nCREATE INDEX CONCURRENTLY i ON t (x)', "SELECT date'x\\'", 'SELECT 1']);
  });
});
