// What psql's \d and drivers' catalog queries lean on: correlated subqueries, UNION, functions in FROM, ANY over
// arrays, regular expressions (checked against PostgreSQL 18 in PGlite), and the pg_catalog relations and
// functions computed from the data dictionary.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { PGlite } from '@electric-sql/pglite';
import { startTestDb, type TestDb } from '../helpers/cascadb.js';

let pg: PGlite;
let db: TestDb;

const SETUP = [
  'CREATE TABLE meter (id integer PRIMARY KEY, serial varchar(20) NOT NULL UNIQUE, site text, cap integer)',
  'CREATE TABLE reading (meter_id integer NOT NULL, seq integer NOT NULL, kwh integer NOT NULL, PRIMARY KEY (meter_id, seq))',
  "INSERT INTO meter VALUES (1, 'SN-1', 'Lisbon', 5), (2, 'SN-2', 'Porto', 50), (3, 'SN-3', NULL, 0), (4, 'SN-4', 'Lisbon', NULL)",
  'INSERT INTO reading VALUES (1, 1, 4), (1, 2, 6), (2, 1, 30), (2, 2, 70), (2, 3, 10), (4, 1, 1)',
];

before(async () => {
  [pg, db] = await Promise.all([PGlite.create(), startTestDb(1)]);
  for (const s of SETUP) {
    await pg.query(s);
    await db.q(s);
  }
});

after(async () => {
  await db?.close();
  await pg?.close();
});

const text = (v: unknown): string | null => (v === null || v === undefined ? null : typeof v === 'boolean' ? (v ? 't' : 'f') : String(v));

/** The same rows, as text, in the same order, on both engines. */
async function same(sql: string): Promise<void> {
  const want = (await pg.query<unknown[]>(sql, [], { rowMode: 'array' })).rows.map((r) => r.map(text));
  const got = (await db.q(sql)).rows.map((r) => r.map(text));
  assert.deepEqual(got, want, sql);
}

test('correlated subqueries in the select list and WHERE, nested, as EXISTS and IN', async () => {
  await same('SELECT m.id, (SELECT count(*) FROM reading r WHERE r.meter_id = m.id) AS n FROM meter m ORDER BY m.id');
  await same('SELECT m.id, (SELECT max(r.kwh) FROM reading r WHERE r.meter_id = m.id AND r.kwh > m.cap) FROM meter m ORDER BY 1');
  await same('SELECT m.id FROM meter m WHERE EXISTS (SELECT 1 FROM reading r WHERE r.meter_id = m.id AND r.kwh >= 10) ORDER BY 1');
  await same('SELECT m.id FROM meter m WHERE NOT EXISTS (SELECT 1 FROM reading r WHERE r.meter_id = m.id) ORDER BY 1');
  await same('SELECT m.id FROM meter m WHERE m.cap < (SELECT sum(r.kwh) FROM reading r WHERE r.meter_id = m.id) ORDER BY 1');
  await same('SELECT m.id, m.id IN (SELECT r.meter_id FROM reading r WHERE r.kwh > m.cap) FROM meter m ORDER BY 1');
  await same(
    'SELECT m.id, (SELECT count(*) FROM reading r WHERE r.meter_id = m.id AND EXISTS (SELECT 1 FROM meter m2 WHERE m2.id = r.meter_id AND m2.site = m.site)) FROM meter m ORDER BY 1',
  );
  await same('SELECT m.id, (SELECT m.cap + 1) FROM meter m ORDER BY 1');
  await same('SELECT m.site, (SELECT count(*) FROM meter x WHERE x.site = m.site) FROM meter m WHERE m.site IS NOT NULL ORDER BY 1, 2');
});

test('UNION and UNION ALL, with ORDER BY and LIMIT', async () => {
  await same('SELECT id FROM meter UNION SELECT meter_id FROM reading ORDER BY 1');
  await same('SELECT id FROM meter UNION ALL SELECT meter_id FROM reading ORDER BY 1 DESC');
  await same("SELECT site AS s FROM meter UNION SELECT 'Faro' UNION SELECT NULL ORDER BY s NULLS FIRST");
  await same('SELECT 1 AS a, NULL AS b UNION ALL SELECT 2, 3 ORDER BY a LIMIT 1');
  await same('SELECT kwh FROM reading WHERE kwh > 5 UNION SELECT cap FROM meter ORDER BY 1 LIMIT 3 OFFSET 1');
  await same('SELECT id FROM meter WHERE id IN (SELECT meter_id FROM reading UNION ALL VALUES (3)) ORDER BY 1');
});

test('generate_series and unnest in FROM, ANY over arrays, regular expressions', async () => {
  await same('SELECT g FROM generate_series(1, 10, 3) g');
  await same('SELECT * FROM generate_series(5, 1, -2) WITH ORDINALITY AS s(v, n)');
  await same('SELECT count(*), sum(x) FROM generate_series(1, 1000) x');
  await same('SELECT x FROM unnest(ARRAY(SELECT serial FROM meter ORDER BY id DESC)) x');
  await same("SELECT id FROM meter WHERE site = ANY(ARRAY['Porto', 'Faro']) ORDER BY 1");
  await same('SELECT id FROM meter WHERE id <> ALL(ARRAY[1, 2]) ORDER BY 1');
  await same("SELECT id FROM meter WHERE id = ANY('{2,4}') ORDER BY 1");
  await same('SELECT 3 = ANY(ARRAY[1, NULL]), 1 = ANY(ARRAY[1, NULL]), 1 < ALL(ARRAY[2, 3])');
  await same("SELECT serial FROM meter WHERE serial ~ '^SN-[12]$' ORDER BY 1");
  await same("SELECT serial, site ~* '^lis', site !~ 'o' FROM meter ORDER BY 1");
  await same("SELECT id FROM meter WHERE site COLLATE \"C\" OPERATOR(pg_catalog.~) '^(Lisbon)$' ORDER BY 1");
  await same('SELECT array_to_string(ARRAY(SELECT id FROM meter ORDER BY id), \',\')');
});

test('pg_catalog: relations, functions and regclass from the data dictionary', async () => {
  const one = async (sql: string) => (await db.q(sql)).rows;
  const [[oid]] = (await one("SELECT 'meter'::regclass")) as [[number]];
  assert.equal((await one("SELECT relname, relkind FROM pg_catalog.pg_class WHERE oid = 'meter'::pg_catalog.regclass"))[0]?.join(), 'meter,r');
  assert.deepEqual(
    await one(`SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_catalog.pg_attribute a WHERE a.attrelid = '${oid}' AND a.attnum > 0 ORDER BY a.attnum`),
    [
      ['id', 'integer', true],
      ['serial', 'character varying(20)', true],
      ['site', 'text', false],
      ['cap', 'integer', false],
    ],
  );
  assert.deepEqual(
    await one(
      `SELECT c2.relname, i.indisprimary, i.indisunique, pg_catalog.pg_get_indexdef(i.indexrelid, 0, true), pg_catalog.pg_get_constraintdef(con.oid, true), contype
         FROM pg_catalog.pg_class c, pg_catalog.pg_class c2, pg_catalog.pg_index i
         LEFT JOIN pg_catalog.pg_constraint con ON (conrelid = i.indrelid AND conindid = i.indexrelid AND contype IN ('p','u','x'))
        WHERE c.oid = '${oid}' AND c.oid = i.indrelid AND i.indexrelid = c2.oid
        ORDER BY i.indisprimary DESC, c2.relname`,
    ),
    [
      ['meter_pkey', true, true, 'CREATE UNIQUE INDEX meter_pkey ON public.meter USING btree (id)', 'PRIMARY KEY (id)', 'p'],
      ['meter_serial_key', false, true, 'CREATE UNIQUE INDEX meter_serial_key ON public.meter USING btree (serial)', 'UNIQUE (serial)', 'u'],
    ],
  );
  // Stubs: no rows, whatever they are asked.
  assert.deepEqual(await one(`SELECT pol.polname, pg_catalog.array_to_string(array(select rolname from pg_catalog.pg_roles where oid = any (pol.polroles) order by 1),',') FROM pg_catalog.pg_policy pol WHERE pol.polrelid = '${oid}'`), []);
  assert.deepEqual(await one(`SELECT c.oid::pg_catalog.regclass FROM pg_catalog.pg_class c, pg_catalog.pg_inherits i WHERE c.oid = i.inhparent AND i.inhrelid = '${oid}' ORDER BY inhseqno`), []);
  assert.deepEqual(await one(`SELECT c.relname, t.tgname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_trigger t ON t.tgrelid = c.oid WHERE c.oid = '${oid}'`), [['meter', null]]);
  assert.deepEqual(await one("SELECT table_name, column_name, data_type, character_maximum_length FROM information_schema.columns WHERE table_name = 'meter' AND is_nullable = 'NO' ORDER BY ordinal_position"), [
    ['meter', 'id', 'integer', null],
    ['meter', 'serial', 'character varying', 20],
  ]);
  assert.deepEqual(await one("SELECT current_setting('server_version_num'), pg_catalog.pg_get_userbyid(10), current_user, quote_ident('Meter'), quote_ident('order')"), [['160000', 'test', 'test', '"Meter"', '"order"']]);
  await assert.rejects(db.q("SELECT 'nowhere'::regclass"), { code: '42P01' });
});
