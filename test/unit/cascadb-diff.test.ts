// Differential tests: the same schemas, data and queries on CascaDB and on PostgreSQL 18 (PGlite, in process)
// give the same answers: rows as multisets, or in sequence where ORDER BY fixes the order; the sequence of sort
// keys where it fixes only that; the same SQLSTATE where PostgreSQL raises an error.
//   SG_DIFF_SEED=<n>     another seed (the default is fixed, so `npm test` is reproducible)
//   SG_DIFF_RUNS=<n>     how many generated schemas (default 40), each with SG_DIFF_QUERIES (default 30) items
//   SG_DIFF_SHRINK=1     let fast-check shrink a failing case (slow: every attempt reloads the tables)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PGlite } from '@electric-sql/pglite';
import { startTestDb, type TestDb } from '../helpers/cascadb.js';
import {
  byteaParam,
  compareOutcomes,
  describeOutcome,
  formatParams,
  genItems,
  genSchema,
  paramsFor,
  randFromGen,
  runCdb,
  runPg,
  setupSql,
  textParam,
  type Item,
  type Stmt,
  type Val,
} from '../helpers/sql-gen.js';

const SEED = Number(process.env.SG_DIFF_SEED ?? 1729);
const RUNS = Number(process.env.SG_DIFF_RUNS ?? 40);
const QUERIES = Number(process.env.SG_DIFF_QUERIES ?? 30);
const SHRINK = process.env.SG_DIFF_SHRINK === '1';

let pg: PGlite;
let db: TestDb;

before(async () => {
  [pg, db] = await Promise.all([PGlite.create(), startTestDb(1)]);
});

after(async () => {
  await db?.close();
  await pg?.close();
});

/** Runs one statement on both engines; returns the difference, if any, described with both answers. */
async function both(st: Stmt): Promise<{ diff?: string; skipped?: boolean; ok: boolean; pgErr?: string }> {
  const p = paramsFor(st);
  const a = await runPg(pg, st.sql, p.pg);
  const b = await runCdb(db, st.sql, p.cdb);
  const v = compareOutcomes(st, a, b);
  if (v.diff) return { diff: `${v.diff}\n  PostgreSQL: ${describeOutcome(a)}\n  CascaDB:    ${describeOutcome(b)}`, ok: false };
  return { skipped: v.skipped, ok: a.ok, pgErr: a.ok ? undefined : a.code };
}

const plain = (sql: string): Stmt => ({ sql, params: [], orderKeys: null });

/** Both engines in the same state: no open transaction, none of the tables. */
async function reset(tables: string[]): Promise<void> {
  for (const sql of ['ROLLBACK', ...tables.map((t) => `DROP TABLE IF EXISTS ${t}`)]) {
    await runPg(pg, sql, []);
    await runCdb(db, sql, []);
  }
}

// ------------------------------------------------------------------ hand-written queries over a fixed dataset

const FIXED_SETUP = [
  `CREATE TABLE fx_emp (id integer PRIMARY KEY, name text NOT NULL, dept varchar(12), salary numeric(10,2), bonus double precision,
     active boolean, hired timestamp, badge bytea UNIQUE, big bigint)`,
  'CREATE INDEX fx_emp_dept ON fx_emp (dept)',
  'CREATE TABLE fx_dept (code varchar(12) PRIMARY KEY, title text, budget bigint, floor integer)',
  'CREATE TABLE fx_pair (a integer, b text, v double precision, PRIMARY KEY (a, b))',
  'CREATE TABLE fx_log (emp integer, note text)',
  'CREATE TABLE fx_real (k integer PRIMARY KEY, f real)',
  `INSERT INTO fx_emp VALUES
     (1, 'ann', 'eng', 1200.50, 0.1, true, '2019-03-01 09:00:00', '\\x01', 10),
     (2, 'bob', 'eng', 999.99, NULL, false, '1999-12-31 23:59:59.5', '\\x0102', -5),
     (3, 'abe', 'ops', NULL, 2.5, NULL, '2021-06-15 12:30:00', NULL, 2147483648),
     (4, 'é', NULL, 100, 'NaN', true, NULL, '\\x', 0),
     (5, '', 'sales', 2500, -1.5, false, '1970-01-01 00:00:00', '\\xff', NULL),
     (6, 'ab', 'ops', 100.10, 1e10, true, '1969-12-31 23:59:59.25', '\\x00', 7),
     (7, 'a b', 'gone', -3.25, 0.25, NULL, '2038-01-19 03:14:08', '\\x0001', -1099511627776),
     (8, 'zed', 'eng', 1200.50, 'Infinity', true, '2019-03-01 09:00:00', NULL, 3),
     (-2147483648, 'min', NULL, 0, 0, false, '1900-06-15 08:30:00', '\\x61', 1),
     (2147483647, 'max', 'sales', 0.01, -0.5, true, '2020-02-29 12:00:00', '\\x62', 2)`,
  `INSERT INTO fx_dept VALUES ('eng', 'Engineering', 1000000, 3), ('ops', 'Operations', 5000, 1), ('sales', 'Sales', NULL, 2),
     ('empty', 'Nobody', 0, NULL), ('', 'blank', -1, 0)`,
  `INSERT INTO fx_pair VALUES (1, 'a', 1.5), (1, 'ab', 2.5), (1, 'b', NULL), (1, '', 0), (2, 'a', -1), (2, 'abc', 3),
     (2, 'é', 0.1), (3, 'x', 1e-5), (8, 'a', 8), (-2147483648, 'a', 1), (0, 'a', 'NaN'), (0, 'b', '-Infinity')`,
  "INSERT INTO fx_log VALUES (1, 'hi'), (1, 'hi'), (2, NULL), (NULL, 'orphan'), (99, 'gone')",
  "INSERT INTO fx_real VALUES (1, 1.1), (2, 0.1), (3, 3.4028235e38), (4, 1e-7), (5, 'NaN'), (6, -2.5), (7, 16777217), (8, 1234567)",
];
const FIXED_TABLES = ['fx_emp', 'fx_dept', 'fx_pair', 'fx_log', 'fx_real'];

interface Fixed {
  sql: string;
  /** ORDER BY covers a unique key: compare in sequence. */
  exact?: boolean;
  /** Output positions of the ORDER BY keys (ties not determined). */
  keys?: number[];
  params?: Val[];
  limited?: boolean;
}

const F = (sql: string, o: Omit<Fixed, 'sql'> = {}): Fixed => ({ sql, ...o });
const E = (sql: string, o: Omit<Fixed, 'sql'> = {}): Fixed => ({ sql, exact: true, ...o });

/** Items: a list is run in sequence (state changes persist). */
const FIXED: Array<Fixed | Fixed[]> = [
  // scans and access paths
  E('SELECT * FROM fx_emp ORDER BY id'),
  F('SELECT * FROM fx_emp WHERE id = 3'),
  F('SELECT * FROM fx_emp WHERE id = 99'),
  E('SELECT id, name FROM fx_emp WHERE id > 5 ORDER BY id'),
  E('SELECT id FROM fx_emp WHERE id BETWEEN 2 AND 6 ORDER BY id DESC'),
  F('SELECT id FROM fx_emp WHERE id BETWEEN 6 AND 2'),
  F('SELECT id FROM fx_emp WHERE id BETWEEN SYMMETRIC 6 AND 2'),
  E('SELECT id FROM fx_emp WHERE id IN (1, 3, 5, NULL) ORDER BY 1'),
  F('SELECT id FROM fx_emp WHERE id NOT IN (1, 3, NULL)'),
  F('SELECT id FROM fx_emp WHERE id NOT IN (1, 3)'),
  E('SELECT name, id FROM fx_emp WHERE name LIKE \'a%\' ORDER BY name'),
  E('SELECT name FROM fx_emp WHERE name NOT LIKE \'%e%\' ORDER BY 1'),
  E('SELECT name FROM fx_emp WHERE name ILIKE \'A_\' ORDER BY 1'),
  E('SELECT id FROM fx_emp WHERE dept = \'eng\' ORDER BY id'),
  E('SELECT id, dept FROM fx_emp WHERE dept > \'f\' ORDER BY id'),
  F('SELECT id FROM fx_emp WHERE dept IS NULL'),
  E('SELECT id, salary FROM fx_emp WHERE salary >= 1000.5 ORDER BY salary DESC, id'),
  E('SELECT id FROM fx_emp WHERE bonus > 0.1 AND NOT active ORDER BY id'),
  E('SELECT id FROM fx_emp WHERE active IS NOT TRUE ORDER BY id'),
  E('SELECT id, hired FROM fx_emp WHERE hired < \'2000-01-01\' ORDER BY hired NULLS FIRST, id'),
  E('SELECT id FROM fx_emp WHERE big + 1 > 3 OR id * 2 = 4 ORDER BY id'),
  E('SELECT id FROM fx_emp WHERE bonus = \'NaN\' OR bonus > 1e9 ORDER BY id'),
  E('SELECT id, bonus FROM fx_emp ORDER BY bonus, id'),
  E('SELECT id, bonus FROM fx_emp ORDER BY bonus DESC NULLS LAST, id'),
  E('SELECT id, badge FROM fx_emp WHERE badge < \'\\x02\' ORDER BY badge'),
  // expressions
  E('SELECT id, big * 2, salary * 2, salary / 3, bonus / 4, -salary, id % 3 FROM fx_emp WHERE id BETWEEN 1 AND 8 ORDER BY id'),
  E("SELECT name || '-' || dept, upper(name), lower(name), length(name), coalesce(dept, 'none'), id FROM fx_emp ORDER BY id"),
  E("SELECT id, CASE WHEN salary > 1000 THEN 'high' WHEN salary IS NULL THEN 'none' ELSE 'low' END FROM fx_emp ORDER BY id"),
  E('SELECT id, active::text, id::text, salary::text, bonus::text, hired::text, big::text, badge::text FROM fx_emp ORDER BY 1'),
  F('SELECT id, id::text FROM fx_emp ORDER BY id'),
  E('SELECT id, id FROM fx_emp ORDER BY id'),
  F("SELECT 1 + 2, 7 / 2, -7 / 2, 7 % 3, -7 % 3, 2.5 * 2, 1.0 / 3, 10 / 4.0, 'a' || 'b'"),
  F('SELECT id FROM fx_emp WHERE id = 2147483647 - 2147483640'),
  F('SELECT id FROM fx_emp WHERE salary IS DISTINCT FROM 100 AND salary IS NOT DISTINCT FROM 100.10'),
  // DISTINCT and aggregates
  E('SELECT DISTINCT dept FROM fx_emp ORDER BY dept NULLS FIRST'),
  F('SELECT DISTINCT active, dept FROM fx_emp'),
  F('SELECT count(*), count(dept), count(DISTINCT dept), sum(salary), avg(salary), min(name), max(hired), sum(id), avg(id), avg(big), sum(big) FROM fx_emp'),
  F('SELECT sum(bonus), avg(bonus), min(bonus), max(bonus) FROM fx_emp WHERE bonus < 1e9'),
  E('SELECT dept, count(*), sum(salary), avg(salary), avg(bonus), max(name) FROM fx_emp GROUP BY dept ORDER BY dept'),
  E('SELECT dept, count(*) FROM fx_emp GROUP BY dept HAVING count(*) > 1 ORDER BY 1'),
  E('SELECT active, min(id), max(id), count(badge) FROM fx_emp GROUP BY 1 ORDER BY 1'),
  F('SELECT count(*) FROM fx_emp WHERE false'),
  F('SELECT sum(id), avg(salary), min(name), count(dept) FROM fx_emp WHERE id < -2147483648'),
  E('SELECT a, count(*), sum(v), min(b), max(b) FROM fx_pair GROUP BY a ORDER BY a'),
  // joins
  E('SELECT e.id, e.name, d.title FROM fx_emp e JOIN fx_dept d ON e.dept = d.code ORDER BY e.id'),
  E('SELECT e.id, d.code FROM fx_emp e LEFT JOIN fx_dept d ON d.code = e.dept ORDER BY e.id'),
  E('SELECT d.code, count(e.id), sum(e.salary) FROM fx_dept d LEFT JOIN fx_emp e ON e.dept = d.code GROUP BY d.code ORDER BY 1'),
  E('SELECT e.id FROM fx_emp e LEFT JOIN fx_dept d ON e.dept = d.code WHERE d.code IS NULL ORDER BY 1'),
  E('SELECT p.a, p.b, e.name FROM fx_pair p JOIN fx_emp e ON p.a = e.id ORDER BY p.a, p.b'),
  E('SELECT e.id, p.b FROM fx_emp e LEFT JOIN fx_pair p ON e.id = p.a AND p.v > 1 ORDER BY e.id, p.b'),
  E('SELECT e.id, d.code FROM fx_emp e, fx_dept d WHERE e.dept = d.code AND d.floor > 1 ORDER BY 1'),
  E('SELECT e.id, d.code FROM fx_emp e JOIN fx_dept d ON e.dept < d.code WHERE e.id BETWEEN 1 AND 3 ORDER BY 1, 2'),
  E('SELECT x.id, y.id FROM fx_emp x JOIN fx_emp y ON x.salary = y.salary AND x.id < y.id ORDER BY 1, 2'),
  E('SELECT e.id, d.code, p.b FROM fx_emp e JOIN fx_dept d ON e.dept = d.code LEFT JOIN fx_pair p ON p.a = e.id ORDER BY 1, 3'),
  // subqueries
  E('SELECT id FROM fx_emp WHERE dept IN (SELECT code FROM fx_dept WHERE floor >= 2) ORDER BY id'),
  F('SELECT id FROM fx_emp WHERE dept NOT IN (SELECT code FROM fx_dept)'),
  F('SELECT id FROM fx_emp WHERE dept NOT IN (SELECT code FROM fx_dept WHERE floor IS NOT NULL)'),
  E('SELECT id FROM fx_emp WHERE salary > (SELECT avg(salary) FROM fx_emp) ORDER BY id'),
  E('SELECT code FROM fx_dept WHERE EXISTS (SELECT 1 FROM fx_emp WHERE big > 100) ORDER BY 1'),
  E('SELECT x FROM (SELECT id AS x, name FROM fx_emp) s WHERE x > 3 ORDER BY 1'),
  // composite primary key: prefix, range and LIKE within a prefix
  E('SELECT * FROM fx_pair WHERE a = 1 ORDER BY b'),
  E('SELECT * FROM fx_pair WHERE a = 1 AND b >= \'ab\' ORDER BY a, b'),
  E('SELECT * FROM fx_pair WHERE a = 2 AND b LIKE \'a%\' ORDER BY 1, 2'),
  E('SELECT * FROM fx_pair WHERE a >= 1 AND a < 3 ORDER BY 1, 2'),
  E('SELECT * FROM fx_pair ORDER BY b, a'),
  // parameters
  F('SELECT * FROM fx_pair WHERE a = $1 AND b = $2', { params: [intParam(1), textParam('ab')] }),
  F('SELECT id FROM fx_emp WHERE name = $1', { params: [textParam('é')] }),
  E('SELECT id FROM fx_emp WHERE hired > $1 ORDER BY id', { params: [textParam('2000-01-01 00:00:00')] }),
  F('SELECT id FROM fx_emp WHERE badge = $1', { params: [byteaParam('0102')] }),
  E('SELECT id FROM fx_emp WHERE salary < $1 AND dept LIKE $2 ORDER BY id', { params: [textParam('1000'), textParam('e%')] }),
  E('SELECT id, id + $1 FROM fx_emp WHERE active = $2 ORDER BY id', { params: [intParam(5), boolParam(true)] }),
  // LIMIT / OFFSET
  E('SELECT * FROM fx_emp ORDER BY salary DESC NULLS LAST, id LIMIT 3 OFFSET 2'),
  E('SELECT id FROM fx_emp ORDER BY id LIMIT 0'),
  E('SELECT id FROM fx_emp ORDER BY id OFFSET 8'),
  F('SELECT dept FROM fx_emp ORDER BY dept LIMIT 4', { keys: [0], limited: true }),
  // cross-type comparisons on keys (an int8 or numeric bound of an int4 key)
  E('SELECT id FROM fx_emp WHERE id < 3000000000 ORDER BY id'),
  F('SELECT id FROM fx_emp WHERE id = 3000000000'),
  E('SELECT id FROM fx_emp WHERE id BETWEEN -3000000000 AND 2 ORDER BY id'),
  E('SELECT id FROM fx_emp WHERE id > 2.5 AND id <= 6.0 ORDER BY id'),
  E('SELECT id FROM fx_emp WHERE big = 2147483648 OR big < -2147483648.5 ORDER BY id'),
  E('SELECT id, -2147483648, coalesce(big, -2147483648), coalesce(id, 2.5), coalesce(salary, 1), greatest(id, 2.5), least(bonus, 1) FROM fx_emp ORDER BY id'),
  // a table without a primary key (duplicate rows), USING, FILTER
  F('SELECT * FROM fx_log'),
  F('SELECT emp, count(*) FROM fx_log GROUP BY emp'),
  E('SELECT * FROM fx_emp e JOIN fx_log l ON l.emp = e.id ORDER BY 1, 10'),
  F('SELECT * FROM fx_pair JOIN fx_pair p2 USING (a, b)'),
  E('SELECT * FROM fx_pair p1 LEFT JOIN fx_pair p2 USING (b) WHERE p1.a = 1 ORDER BY p1.a, b, p2.a'),
  E('SELECT b, p1.a, p2.a FROM fx_pair p1 JOIN fx_pair p2 USING (b) ORDER BY 1, 2, 3'),
  F('SELECT count(*) FILTER (WHERE active), sum(salary) FILTER (WHERE dept = \'eng\'), count(*) FROM fx_emp'),
  E('SELECT dept, count(id) FILTER (WHERE id > 2) FROM fx_emp GROUP BY dept ORDER BY 1'),
  F('SELECT id FROM fx_emp WHERE dept IN (SELECT code FROM fx_dept WHERE false) OR NULL::text NOT IN (SELECT code FROM fx_dept WHERE false)'),
  F('SELECT 1 FROM fx_emp WHERE id = 1', { params: [intParam(1)] }),
  // real, float text output, result column names
  E('SELECT * FROM fx_real ORDER BY k'),
  E('SELECT k, f::text, f::float8, f * 2, f + f FROM fx_real ORDER BY k'),
  F('SELECT sum(f), avg(f), max(f), min(f) FROM fx_real WHERE k < 3'),
  F('SELECT 1.1::real, 0.1::real + 0.2::real, 1.1::real = 1.1, 1.1::real = 1.1::real'),
  F('SELECT 1e15::float8::text, 123456789012345::float8::text, 12345678901234567::float8::text, 1.5e6::real::text, 123456::real::text, 0.00001::float8::text'),
  F('SELECT id::text, id::int::text, (id + 1)::text, CASE WHEN id > 0 THEN 1 ELSE id END, CASE WHEN id > 0 THEN 1 END, (CASE WHEN true THEN 1 END)::text, nullif(id, 2), (SELECT 1)::text FROM fx_emp WHERE id = 1'),
  // errors
  F('SELECT abs(id) FROM fx_emp WHERE id < 0'),
  F('SELECT 2147483647 + 1'),
  F('SELECT id + 2147483647 FROM fx_emp WHERE id = 2147483647'),
  F('SELECT 1 / 0'),
  F('SELECT * FROM fx_nope'),
  F('SELECT nope FROM fx_emp'),
  F('SELECT name + 1 FROM fx_emp'),
  F('SELECT id FROM fx_emp WHERE name = 1'),
  F('SELECT min(active) FROM fx_emp'),
  F('SELECT sum(name) FROM fx_emp'),
  F('SELECT id, count(*) FROM fx_emp'),
  F('SELECT id FROM fx_emp WHERE salary = (SELECT salary FROM fx_emp)'),
  F("SELECT 'abc'::integer"),
  F("SELECT '2020-13-01'::timestamp"),
  F("INSERT INTO fx_emp (id, name) VALUES (1, 'dup')"),
  F('INSERT INTO fx_emp (id) VALUES (100)'),
  F("INSERT INTO fx_dept VALUES ('waytoolongcode', 'x', 1, 1)"),
  F("INSERT INTO fx_emp (id, name, salary) VALUES (101, 'x', 123456789.5)"),
  F("INSERT INTO fx_pair VALUES (1, 'a', 0), (NULL, 'q', 1)"),
  F("INSERT INTO fx_emp (id, name, dept) VALUES (103, NULL, 'waytoolongdept')"),
  F("INSERT INTO fx_emp (id, name, salary) VALUES (104, NULL, 123456789.5)"),
  F("INSERT INTO fx_emp (id, name, badge) VALUES (102, 'x', '\\x01')"),
  F("INSERT INTO fx_emp (id, name) VALUES (2147483648, 'x')"),
  F('UPDATE fx_emp SET id = 3 WHERE id = 4'),
  F('UPDATE fx_emp SET name = NULL WHERE id = 4'),
  // DML, then the table
  [F("UPDATE fx_emp SET salary = salary * 2, bonus = bonus + 1 WHERE dept = 'eng'"), E('SELECT * FROM fx_emp ORDER BY id')],
  [F("INSERT INTO fx_emp (id, name, dept) VALUES (20, 'new', 'eng'), (21, 'newer', NULL)"), E('SELECT id, name, dept FROM fx_emp WHERE dept = \'eng\' OR dept IS NULL ORDER BY id')],
  [F('DELETE FROM fx_pair WHERE a = 1 AND b > \'a\''), E('SELECT * FROM fx_pair ORDER BY a, b')],
  [F("UPDATE fx_emp SET dept = 'ops' WHERE dept IS NULL"), E('SELECT id, dept FROM fx_emp WHERE dept = \'ops\' ORDER BY id')],
  [F('DELETE FROM fx_emp WHERE id > 20'), E('SELECT id FROM fx_emp ORDER BY id')],
  [F("UPDATE fx_log SET note = 'again' WHERE emp = 1"), F('DELETE FROM fx_log WHERE note IS NULL'), F('INSERT INTO fx_log SELECT * FROM fx_log WHERE emp = 1'), F('SELECT * FROM fx_log')],
  [F("INSERT INTO fx_pair VALUES (1, 'a', 0), (1, 'zz', 0), (1, 'zz', 1) ON CONFLICT DO NOTHING"), E('SELECT * FROM fx_pair WHERE a = 1 ORDER BY b')],
  [F('BEGIN'), F("INSERT INTO fx_pair VALUES (1, 'c', 3), (9, 'z', NULL)"), E('SELECT * FROM fx_pair WHERE a >= 1 ORDER BY a, b'), F('DELETE FROM fx_pair WHERE a = 2'), E('SELECT * FROM fx_pair ORDER BY a, b'), F('ROLLBACK'), E('SELECT * FROM fx_pair ORDER BY a, b')],
  [F('BEGIN'), F("UPDATE fx_dept SET floor = floor + 10 WHERE code >= 'o'"), F('SELECT 1 / 0'), F('SELECT 1'), F('COMMIT'), E('SELECT * FROM fx_dept ORDER BY code')],
  [F('BEGIN'), F("UPDATE fx_dept SET floor = floor + 10 WHERE code >= 'o'"), F('COMMIT'), E('SELECT * FROM fx_dept ORDER BY code')],
];

function intParam(n: number): Val {
  return { sql: String(n), pg: String(n), cdb: n, key: String(n) };
}

function boolParam(b: boolean): Val {
  return { sql: String(b), pg: String(b), cdb: b, key: String(b) };
}

function toStmt(f: Fixed): Stmt {
  const keys = f.keys ?? (f.exact ? [] : null);
  return { sql: f.sql, params: f.params ?? [], orderKeys: keys, total: !!f.exact, limited: f.limited ?? /\b(LIMIT|OFFSET)\b/.test(f.sql) };
}

describe('CascaDB vs PostgreSQL (PGlite)', () => {
  test('hand-written queries over a fixed dataset', async (t) => {
    await reset(FIXED_TABLES);
    for (const sql of FIXED_SETUP) {
      const r = await both(plain(sql));
      assert.ok(!r.diff, `setup: ${sql}\n${r.diff}`);
      assert.ok(r.ok, `setup failed on PostgreSQL: ${sql} (${r.pgErr})`);
    }
    const diffs: string[] = [];
    let n = 0;
    for (const item of FIXED) {
      for (const f of Array.isArray(item) ? item : [item]) {
        n++;
        const r = await both(toStmt(f));
        if (r.diff) diffs.push(`${f.sql}${formatParams(toStmt(f))}\n  ${r.diff}`);
      }
    }
    await reset(FIXED_TABLES);
    t.diagnostic(`${n} statements, ${diffs.length} differences`);
    assert.equal(diffs.length, 0, `CascaDB and PostgreSQL differ on ${diffs.length} of ${n} statements:\n\n${diffs.join('\n\n')}`);
  });

  test(`generated schemas, data and queries (seed ${SEED}, ${RUNS} schemas × ${QUERIES} items)`, async (t) => {
    const stats = { statements: 0, errorsOnBoth: 0, skipped: 0, rows: 0 };
    const tables = ['t0', 't1', 't2'];
    await reset(tables);
    let failure = '';
    const property = fc.asyncProperty(fc.gen(), async (g) => {
        const r = randFromGen(g);
        const schema = genSchema(r);
        const setup = setupSql(r, schema);
        const items: Item[] = genItems(r, schema, QUERIES);
        await reset(tables);
        const log: string[] = [];
        const fail = (what: string, st: Stmt, diff: string) => {
          failure = `${what}:\n${st.sql};${formatParams(st)}\n-- difference: ${diff}\n\n-- to reproduce, after:\n${log.join('\n')}`;
          throw new Error(failure);
        };
        try {
          for (const sql of setup) {
            const st = plain(sql);
            const res = await both(st);
            if (res.diff) fail('setup statement differs', st, res.diff);
            if (!res.ok) throw new Error(`generator bug: PostgreSQL rejects the setup statement ${sql}: ${res.pgErr}`);
            log.push(`${sql};`);
          }
          for (const item of items) {
            for (const st of item) {
              stats.statements++;
              const res = await both(st);
              if (res.diff) fail('statement differs', st, res.diff);
              if (res.skipped) stats.skipped++;
              if (res.skipped && !/^SELECT/i.test(st.sql)) throw new Error(`generator bug: a data-changing statement may fail on one engine only: ${st.sql}`);
              else if (!res.ok) stats.errorsOnBoth++;
              if (!/^SELECT/i.test(st.sql)) log.push(`${st.sql};${formatParams(st)}${res.ok ? '' : `  -- error ${res.pgErr} on both`}`);
            }
          }
        } finally {
          await reset(tables);
        }
        stats.rows += schema.tables.reduce((a, x) => a + x.rows.length, 0);
      });
    try {
      await fc.assert(property, { seed: SEED, numRuns: RUNS, endOnFailure: !SHRINK });
    } catch (err) {
      // fast-check's report shows the gen() choices; the SQL is what helps.
      const head = String((err as Error).message).split('\n').slice(0, 2).join(' ');
      assert.fail(`${failure || String(err)}\n\n(${head})`);
    }
    t.diagnostic(`${stats.statements} statements compared (${stats.errorsOnBoth} raised the same error on both, ${stats.skipped} skipped: evaluation-order errors); ${stats.rows} rows loaded`);
  });
});
