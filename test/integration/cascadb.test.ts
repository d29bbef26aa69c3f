// CascaDB as clients use it, each test against real `securegrid` processes on 127.0.0.1:
//  1. Debian's psql runs a script (DDL, DML, joins, aggregates, \d, \d table, \di …) unchanged;
//  2. node-postgres: parameters, named prepared statements, transactions, errors with their SQLSTATE, a
//     20,000-row result streamed;
//  3. two CascaDB processes over one KVS (`securegrid kvs start`) see each other's tables and rows;
//  4. POST /v1/sql over HTTPS with Basic auth.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);
const BIN = join(process.cwd(), 'bin', 'securegrid.js');
const PSQL = '/usr/bin/psql';
const SCRIPT = join(process.cwd(), 'test', 'fixtures', 'cascadb-psql.sql');
const USER = 'meterops';
const PASSWORD = 'correct horse battery staple';
const ENV = { ...process.env, SECUREGRID_LOG_LEVEL: 'silent' };

interface Proc {
  proc: ChildProcess;
  out: () => string;
}

/** Starts a securegrid command and waits for the line `pattern` matches on stdout. */
function startProc(args: string[], pattern: RegExp, what: string): Promise<Proc & { match: RegExpExecArray }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [BIN, ...args], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${what} printed nothing usable in 30 s: ${out} ${err}`));
    }, 30_000);
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = pattern.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, match: m, out: () => out + err });
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}: ${out} ${err}`));
    });
  });
}

async function stop(p: Proc | undefined): Promise<void> {
  if (!p || p.proc.exitCode !== null || p.proc.signalCode !== null) return;
  const exited = new Promise((r) => p.proc.once('exit', r));
  p.proc.kill('SIGTERM');
  const t = setTimeout(() => p.proc.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(t);
}

interface CascadbProc extends Proc {
  pgPort: number;
  httpUrl: string;
}

async function startCascadb(dataDir: string, kvs?: string[]): Promise<CascadbProc> {
  const args = ['cascadb', ...(kvs ?? ['--embedded']), '--data', dataDir, '--user', USER, '--password', PASSWORD, '--pg-port', '0', '--http-port', '0'];
  const p = await startProc(args, /postgresql:\/\/\S+:(\d+)\/\S+ .* and (https:\/\/\S+)\/v1\/sql/, 'securegrid cascadb');
  return { ...p, pgPort: Number(p.match[1]), httpUrl: p.match[2]! };
}

function client(port: number, ssl = true): pg.Client {
  return new pg.Client({ host: '127.0.0.1', port, user: USER, password: PASSWORD, database: 'securegrid', ssl: ssl ? { rejectUnauthorized: false } : false, connectionTimeoutMillis: 10_000 });
}

/** The SQLSTATE of a failing query. */
async function sqlstate(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as { code?: string }).code ?? `no code: ${(err as Error).message}`;
  }
  return 'no error';
}

test('psql runs a script with \\d, \\d table, \\di unchanged', { timeout: 90_000 }, async (t) => {
  if (!existsSync(PSQL)) {
    t.skip(`${PSQL} is missing (apt-get install postgresql-client)`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'sg-cascadb-psql-'));
  let db: CascadbProc | undefined;
  try {
    db = await startCascadb(dir);
    const conn = `host=127.0.0.1 port=${db.pgPort} user=${USER} dbname=securegrid sslmode=require connect_timeout=10`;
    const { stdout, stderr } = await run(PSQL, [conn, '-X', '-v', 'ON_ERROR_STOP=1', '-f', SCRIPT], { env: { ...process.env, PGPASSWORD: PASSWORD, PGAPPNAME: 'cascadb-it' }, timeout: 60_000 }).catch(
      (e: { code: number; stdout: string; stderr: string }) => assert.fail(`psql exited with ${e.code}:\n${e.stdout}\n${e.stderr}`),
    );
    assert.equal(stderr.trim(), '', 'psql printed no errors or warnings');
    const lines = stdout.split('\n').map((l) => l.trimEnd());
    const has = (re: RegExp) => assert.ok(lines.some((l) => re.test(l)), `no line matches ${re} in:\n${stdout}`);
    // The script's statements and queries.
    has(/^CREATE INDEX$/);
    has(/^INSERT 0 5$/);
    has(/^ SN-0001 \|\s+2 \|\s+0\.800$/);
    has(/^ SN-0002 \|\s+2 \|\s+2\.000$/);
    has(/^\s+3 \|\s+0\.000 \| unknown$/);
    has(/^ unknown \|\s*$/);
    // \d
    has(/^ public \| meter\s+\| table \| meterops$/);
    has(/^ public \| reading \| table \| meterops$/);
    // \d meter
    has(/^\s+Table "public\.meter"$/);
    has(/^ id\s+\| integer\s+\|\s+\| not null \|\s*$/);
    has(/^ serial\s+\| character varying\(20\)\s+\|\s+\| not null \|\s*$/);
    has(/^ capacity\s+\| numeric\(10,3\)\s+\|\s+\|\s+\| 0$/);
    has(/^ installed \| timestamp without time zone \|\s+\|\s+\|\s*$/);
    has(/^ site\s+\| text\s+\|\s+\|\s+\| 'unknown'::text$/);
    has(/^ {4}"meter_pkey" PRIMARY KEY, btree \(id\)$/);
    has(/^ {4}"meter_serial_key" UNIQUE CONSTRAINT, btree \(serial\)$/);
    // \d reading
    has(/^\s+Table "public\.reading"$/);
    has(/^ kwh\s+\| numeric\(10,3\)\s+\|\s+\| not null \|\s*$/);
    has(/^ quality\s+\| character varying\(8\)\s+\|\s+\|\s+\| 'ok'::character varying$/);
    has(/^ {4}"reading_pkey" PRIMARY KEY, btree \(meter_id, ts\)$/);
    has(/^ {4}"reading_ts_idx" btree \(ts\)$/);
    // \di, \dn, \l
    has(/^ public \| reading_pkey\s+\| index \| meterops \| reading$/);
    has(/^ public \| meter_serial_key \| index \| meterops \| meter$/);
    has(/^ public \| meterops$/);
    has(/^ securegrid \| meterops \| UTF8/);
    // \conninfo and a pattern (\d with a regular expression), in a second session.
    const more = await run(PSQL, [conn, '-X', '-v', 'ON_ERROR_STOP=1', '-c', '\\conninfo', '-c', '\\dt mete*', '-c', '\\d public.reading'], { env: { ...process.env, PGPASSWORD: PASSWORD }, timeout: 30_000 });
    assert.match(more.stdout, /You are connected to database "securegrid" as user "meterops"/);
    assert.match(more.stdout, / public \| meter \| table \| meterops/);
    assert.doesNotMatch(more.stdout, / reading \| table/);
    assert.match(more.stdout, /"reading_pkey" PRIMARY KEY, btree \(meter_id, ts\)/);
  } finally {
    await stop(db);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('node-postgres: parameters, prepared statements, transactions, errors, a streamed result', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-cascadb-pg-'));
  let db: CascadbProc | undefined;
  try {
    db = await startCascadb(dir);
    const tls = client(db.pgPort);
    await tls.connect();
    try {
      const v = await tls.query('SELECT version(), current_database() AS db, current_user AS who');
      assert.match(v.rows[0].version, /PostgreSQL/);
      assert.equal(v.rows[0].db, 'securegrid');
      assert.equal(v.rows[0].who, USER);
      assert.equal((await tls.query('SHOW server_version')).rows[0].server_version, '16.0');
      const types = await tls.query("SELECT oid, typname FROM pg_catalog.pg_type WHERE typname = ANY(ARRAY['int4', 'numeric', 'varchar']) ORDER BY oid");
      assert.deepEqual(types.rows.map((r) => [r.oid, r.typname]), [[23, 'int4'], [1043, 'varchar'], [1700, 'numeric']]);

      await tls.query('CREATE TABLE reading (meter_id integer, ts timestamp, kwh numeric(10,3) NOT NULL, PRIMARY KEY (meter_id, ts))');
      // Parameters.
      const ins = await tls.query('INSERT INTO reading VALUES ($1, $2, $3)', [1, '2026-11-26 00:00:00', '0.420']);
      assert.equal(ins.rowCount, 1);
      await tls.query('INSERT INTO reading (meter_id, ts, kwh) VALUES ($1, $2, $3), ($1, $4, $5)', [1, '2026-11-26 00:15:00', 0.38, '2026-11-26 00:30:00', '0.5']);
      const one = await tls.query('SELECT kwh, ts FROM reading WHERE meter_id = $1 AND ts = $2', [1, '2026-11-26 00:15:00']);
      assert.equal(one.rows.length, 1);
      assert.equal(one.rows[0].kwh, '0.380');
      assert.equal(one.fields[0]!.dataTypeID, 1700);
      // An array parameter (node-postgres sends '{1,2}').
      assert.deepEqual((await tls.query('SELECT DISTINCT meter_id FROM reading WHERE meter_id = ANY($1) ORDER BY 1', [[1, 7]])).rows, [{ meter_id: 1 }]);
      // Named prepared statements, parsed once and run many times.
      for (let i = 0; i < 200; i++) {
        await tls.query({ name: 'put-reading', text: 'INSERT INTO reading VALUES ($1, $2, $3)', values: [100 + (i % 10), `2026-11-27 ${String(Math.floor(i / 10)).padStart(2, '0')}:00:00`, (i / 100).toFixed(3)] });
      }
      for (let m = 100; m < 110; m++) {
        const r = await tls.query({ name: 'count-meter', text: 'SELECT count(*) AS n, sum(kwh) AS total FROM reading WHERE meter_id = $1', values: [m] });
        assert.equal(Number(r.rows[0].n), 20);
      }
      const total = await tls.query({ name: 'count-meter', text: 'SELECT count(*) AS n, sum(kwh) AS total FROM reading WHERE meter_id = $1', values: [100] });
      assert.equal(total.rows[0].total, ((0 + 10 + 20 + 30 + 40 + 50 + 60 + 70 + 80 + 90 + 100 + 110 + 120 + 130 + 140 + 150 + 160 + 170 + 180 + 190) / 100).toFixed(3));
      // Transactions.
      await tls.query('BEGIN');
      await tls.query('INSERT INTO reading VALUES ($1, $2, $3)', [2, '2026-11-26 00:00:00', '1.000']);
      await tls.query('COMMIT');
      await tls.query('BEGIN');
      await tls.query('INSERT INTO reading VALUES ($1, $2, $3)', [3, '2026-11-26 00:00:00', '9.000']);
      assert.equal((await tls.query('SELECT count(*)::int AS n FROM reading WHERE meter_id = 3')).rows[0].n, 1, 'a transaction sees its own writes');
      await tls.query('ROLLBACK');
      assert.deepEqual((await tls.query('SELECT meter_id FROM reading WHERE meter_id IN (2, 3) ORDER BY 1')).rows, [{ meter_id: 2 }]);
      // Errors with their SQLSTATE; the connection stays usable.
      assert.equal(await sqlstate(tls.query('INSERT INTO reading VALUES ($1, $2, $3)', [1, '2026-11-26 00:00:00', '0.1'])), '23505');
      assert.equal(await sqlstate(tls.query('SELECT * FROM no_such_table')), '42P01');
      assert.equal(await sqlstate(tls.query('SELECT no_such_column FROM reading')), '42703');
      assert.equal(await sqlstate(tls.query('SELECT * FROM reading WHERE meter_id = $1', ['not a number'])), '22P02');
      assert.equal(await sqlstate(tls.query({ name: 'count-meter', text: 'SELECT count(*) AS n, sum(kwh) AS total FROM reading WHERE meter_id = $1', values: ['x'] })), '22P02');
      await tls.query('BEGIN');
      assert.equal(await sqlstate(tls.query('INSERT INTO reading VALUES (2, $1, NULL)', ['2026-11-26 01:00:00'])), '23502');
      assert.equal(await sqlstate(tls.query('SELECT 1')), '25P02');
      await tls.query('ROLLBACK');
      assert.equal((await tls.query('SELECT count(*)::int AS n FROM reading')).rows[0].n, 204);
    } finally {
      await tls.end();
    }

    // SCRAM-SHA-256 (the server asks for it on connections without TLS); a 20,000-row result, streamed row by row.
    const scram = client(db.pgPort, false);
    await scram.connect();
    try {
      await scram.query('CREATE TABLE big (id integer PRIMARY KEY, payload text NOT NULL)');
      for (let start = 0; start < 20_000; start += 1000) {
        const values: string[] = [];
        const params: unknown[] = [];
        for (let i = start; i < start + 1000; i++) {
          values.push(`($${params.length + 1}, $${params.length + 2})`);
          params.push(i, `row ${i} ${'x'.repeat(40)}`);
        }
        await scram.query(`INSERT INTO big VALUES ${values.join(', ')}`, params);
      }
      let rows = 0;
      let sum = 0;
      let ordered = true;
      await new Promise<void>((resolve, reject) => {
        const q = scram.query(new pg.Query('SELECT id, payload FROM big ORDER BY id'));
        q.on('row', (r: { id: number; payload: string }) => {
          if (r.id !== rows) ordered = false;
          rows++;
          sum += r.id;
        });
        q.on('error', reject);
        q.on('end', () => resolve());
      });
      assert.equal(rows, 20_000);
      assert.equal(sum, (19_999 * 20_000) / 2);
      assert.ok(ordered, 'rows arrive in primary-key order');
      assert.equal((await scram.query('SELECT count(*) AS n FROM big WHERE id >= $1', [19_000])).rows[0].n, '1000');
    } finally {
      await scram.end();
    }
  } finally {
    await stop(db);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('two CascaDB processes over one KVS see each other’s tables and rows', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-cascadb-two-'));
  let kvs: Proc | undefined;
  let a: CascadbProc | undefined;
  let b: CascadbProc | undefined;
  try {
    const k = await startProc(['kvs', 'start', '--nodes', '9', '--data', join(dir, 'kvs'), '--port', '0'], /listening on (https:\/\/\S+)/, 'securegrid kvs start');
    kvs = k;
    const url = k.match[1]!;
    const { stdout } = await run(process.execPath, [BIN, 'kvs', 'keys', 'create', '--tenant', 'cascadb', '--data', join(dir, 'kvs')], { env: ENV });
    const id = /access key id:\s+(\S+)/.exec(stdout)?.[1];
    const secret = /secret access key:\s+(\S+)/.exec(stdout)?.[1];
    assert.ok(id && secret, stdout);
    const remote = ['--kvs', url, '--kvs-key', id!, '--kvs-secret', secret!, '--kvs-ca', join(dir, 'kvs', 'gateway', 'tls', 'cert.pem')];
    [a, b] = await Promise.all([startCascadb(join(dir, 'a'), remote), startCascadb(join(dir, 'b'), remote)]);
    const ca = client(a.pgPort);
    const cb = client(b.pgPort);
    await Promise.all([ca.connect(), cb.connect()]);
    try {
      // The second process has just read the dictionary: the new table is not in its copy yet.
      assert.equal((await cb.query("SELECT count(*)::int AS n FROM pg_catalog.pg_class WHERE relname = 'site'")).rows[0].n, 0);
      await ca.query('CREATE TABLE site (id integer PRIMARY KEY, name varchar(40) NOT NULL UNIQUE)');
      await ca.query("INSERT INTO site VALUES (1, 'Lisbon'), (2, 'Porto')");
      // The second process learns of the new table from the KVS and reads the first one's rows.
      assert.deepEqual((await cb.query('SELECT id, name FROM site ORDER BY id')).rows, [{ id: 1, name: 'Lisbon' }, { id: 2, name: 'Porto' }]);
      const listed = await cb.query("SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relkind = 'r' AND c.relname = $1", ['site']);
      assert.equal(listed.rows.length, 1);
      await cb.query('INSERT INTO site VALUES ($1, $2)', [3, 'Faro']);
      assert.equal(await sqlstate(cb.query("INSERT INTO site VALUES (4, 'Lisbon')")), '23505', 'unique index entries written by the first process');
      assert.deepEqual((await ca.query('SELECT name FROM site WHERE id >= $1 ORDER BY id', [2])).rows, [{ name: 'Porto' }, { name: 'Faro' }]);
      assert.equal((await ca.query("SELECT id FROM site WHERE name = 'Faro'")).rows[0].id, 3);
    } finally {
      await Promise.all([ca.end(), cb.end()]);
    }
  } finally {
    await Promise.all([stop(a), stop(b)]);
    await stop(kvs);
    rmSync(dir, { recursive: true, force: true });
  }
});

function post(url: string, body: unknown, auth?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = request(
      url,
      {
        method: 'POST',
        rejectUnauthorized: false,
        timeout: 15_000,
        headers: { 'content-type': 'application/json', 'content-length': data.length, ...(auth ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, unknown> }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('POST timed out')));
    req.on('error', reject);
    req.end(data);
  });
}

test('POST /v1/sql over HTTPS with Basic auth', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-cascadb-http-'));
  let db: CascadbProc | undefined;
  try {
    db = await startCascadb(dir);
    const url = `${db.httpUrl}/v1/sql`;
    const auth = `${USER}:${PASSWORD}`;
    assert.equal((await post(url, { sql: 'CREATE TABLE meter (id integer PRIMARY KEY, serial text NOT NULL, capacity numeric(6,2))' }, auth)).status, 200);
    const ins = await post(url, { sql: 'INSERT INTO meter VALUES ($1, $2, $3), ($4, $5, $6)', params: [1, 'SN-1', '12.50', 2, 'SN-2', 7.25] }, auth);
    assert.equal(ins.status, 200);
    assert.equal(ins.json.rowCount, 2);
    const got = await post(url, { sql: 'SELECT id, serial, capacity FROM meter WHERE id >= $1 ORDER BY id', params: [1] }, auth);
    assert.equal(got.status, 200);
    assert.deepEqual(got.json, {
      columns: [
        { name: 'id', type: 'int4' },
        { name: 'serial', type: 'text' },
        { name: 'capacity', type: 'numeric' },
      ],
      rows: [
        [1, 'SN-1', '12.50'],
        [2, 'SN-2', '7.25'],
      ],
      rowCount: 2,
      command: 'SELECT',
    });
    const wrong = await post(url, { sql: 'SELECT 1' }, `${USER}:not the password`);
    assert.equal(wrong.status, 401);
    assert.equal((await post(url, { sql: 'SELECT 1' })).status, 401);
    const bad = await post(url, { sql: 'SELEKT 1' }, auth);
    assert.equal(bad.status, 400);
    assert.equal((bad.json.error as { code: string }).code, '42601');
    const missing = await post(url, { sql: 'SELECT * FROM nowhere' }, auth);
    assert.equal(missing.status, 400);
    assert.equal((missing.json.error as { code: string }).code, '42P01');
  } finally {
    await stop(db);
    rmSync(dir, { recursive: true, force: true });
  }
});
