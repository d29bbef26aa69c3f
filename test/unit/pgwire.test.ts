import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import selfsigned from 'selfsigned';
import { PgError, type FieldDesc, type Prepared, type Result, type Session, type SqlBackend, type UserStore } from '../../src/cascadb/server/backend.js';
import { startPgServer, scramVerifier, type PgServer, type PgServerOptions } from '../../src/cascadb/server/pgwire.js';
import { ScramExchange, makeVerifier } from '../../src/cascadb/server/scram.js';
import { Metrics } from '../../src/observe/index.js';

// ---- a small SQL "engine" that knows a handful of statements ----

const col = (name: string, typeOid = 25): FieldDesc => ({
  name,
  typeOid,
  typeSize: typeOid === 23 ? 4 : -1,
  typeMod: -1,
  tableOid: 0,
  columnAttr: 0,
});

const CAST_OIDS: Record<string, number> = { int2: 21, int4: 23, int8: 20, float4: 700, float8: 701, bool: 16, text: 25, bytea: 17, numeric: 1700 };

class FakeBackend implements SqlBackend {
  opened: Session[] = [];
  closed: Session[] = [];
  simple: string[] = [];
  prepared: string[] = [];
  executed: Array<{ sql: string; params: Array<string | null> }> = [];
  /** Rows pulled from the endless source, and whether its cleanup ran. */
  pulled = 0;
  endlessClosed = 0;

  async open(s: Session): Promise<void> {
    if (s.database === 'nodb') throw new PgError('3D000', 'database "nodb" does not exist', { severity: 'FATAL' });
    this.opened.push(s);
  }

  async *simpleQuery(s: Session, sql: string): AsyncIterable<Result> {
    this.simple.push(sql);
    for (const stmt of sql.split(';').map((x) => x.trim())) {
      if (stmt) yield this.run(s, stmt, []);
    }
  }

  async prepare(s: Session, sql: string, paramOids: number[]): Promise<Prepared> {
    this.prepared.push(sql);
    if (/^FAIL/i.test(sql)) throw new PgError('42601', `syntax error at or near "FAIL"`, { position: 1 });
    const oids: number[] = [];
    for (const m of sql.matchAll(/\$(\d+)(?:::(\w+))?/g)) {
      const i = Number(m[1]) - 1;
      oids[i] = paramOids[i] || (m[2] ? (CAST_OIDS[m[2]] ?? 0) : 0);
    }
    for (let i = 0; i < oids.length; i++) oids[i] ??= 0;
    return { paramOids: oids, fields: this.describe(sql, oids.length) };
  }

  async execute(s: Session, sql: string, _p: Prepared, params: Array<string | null>): Promise<Result> {
    this.executed.push({ sql, params });
    return this.run(s, sql, params);
  }

  async close(s: Session): Promise<void> {
    this.closed.push(s);
  }

  private describe(sql: string, nParams: number): FieldDesc[] | null {
    if (/^SELECT 1$/i.test(sql)) return [col('?column?', 23)];
    if (/generate_series/i.test(sql)) return [col('generate_series', 23)];
    if (/FROM wide/i.test(sql)) return Array.from({ length: 10 }, (_, i) => col(`c${i}`));
    if (/FROM endless/i.test(sql)) return [col('n', 23)];
    if (/^SELECT \$/i.test(sql)) return Array.from({ length: nParams }, (_, i) => col(`p${i + 1}`));
    if (/^SELECT/i.test(sql)) return [col('x')];
    return null;
  }

  private run(s: Session, sql: string, params: Array<string | null>): Result {
    const upper = sql.toUpperCase();
    if (s.txStatus === 'E' && !/^(ROLLBACK|COMMIT)/.test(upper)) {
      throw new PgError('25P02', 'current transaction is aborted, commands ignored until end of transaction block');
    }
    const fail = (e: PgError): never => {
      if (s.txStatus === 'T') s.txStatus = 'E';
      throw e;
    };
    if (upper.startsWith('FAIL')) fail(new PgError('42601', 'syntax error at or near "FAIL"', { position: 1, hint: 'try SELECT' }));
    if (upper === 'BEGIN') {
      s.txStatus = 'T';
      return { fields: null, rows: [], tag: () => 'BEGIN' };
    }
    if (upper === 'COMMIT' || upper === 'ROLLBACK') {
      const tag = s.txStatus === 'E' ? 'ROLLBACK' : upper;
      s.txStatus = 'I';
      return { fields: null, rows: [], tag: () => tag };
    }
    if (upper.startsWith('INSERT')) return { fields: null, rows: [], tag: () => 'INSERT 0 1' };
    if (upper === 'SELECT 1') return { fields: [col('?column?', 23)], rows: [['1']], tag: (n) => `SELECT ${n}` };
    const series = /generate_series\(1,\s*(\d+)\)/i.exec(sql);
    if (series) {
      const n = Number(series[1]);
      return {
        fields: [col('generate_series', 23)],
        rows: (function* () {
          for (let i = 1; i <= n; i++) yield [String(i)];
        })(),
        tag: (sent) => `SELECT ${sent}`,
      };
    }
    const wide = /FROM wide\((\d+)\)/i.exec(sql);
    if (wide) {
      const n = Number(wide[1]);
      const fields = Array.from({ length: 10 }, (_, i) => col(`c${i}`));
      return {
        fields,
        rows: (async function* () {
          const row = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliett'];
          for (let i = 0; i < n; i++) {
            row[0] = String(i);
            yield row;
          }
        })(),
        tag: (sent) => `SELECT ${sent}`,
      };
    }
    if (/FROM endless/i.test(sql)) {
      const endless = async function* (this: FakeBackend): AsyncGenerator<string[]> {
        try {
          for (let i = 1; ; i++) {
            this.pulled = i;
            yield [String(i)];
          }
        } finally {
          this.endlessClosed++;
        }
      };
      return {
        fields: [col('n', 23)],
        rows: endless.call(this),
        tag: (sent) => `SELECT ${sent}`,
      };
    }
    if (/^FAIL LATER|^SELECT fail_later/i.test(sql)) {
      return {
        fields: [col('x')],
        rows: (async function* () {
          yield ['a'];
          yield ['b'];
          throw new PgError('22012', 'division by zero');
        })(),
        tag: (n) => `SELECT ${n}`,
      };
    }
    if (/^SELECT \$/i.test(sql)) {
      return { fields: params.map((_, i) => col(`p${i + 1}`)), rows: [params], tag: () => 'SELECT 1' };
    }
    if (upper.startsWith('SELECT')) return { fields: [col('x')], rows: [[sql]], tag: () => 'SELECT 1' };
    if (upper.startsWith('SET')) return { fields: null, rows: [], tag: () => 'SET' };
    throw new PgError('42601', `syntax error at or near "${sql.split(' ')[0]}"`);
  }
}

// ---- servers and clients ----

const PASSWORD = 'correct horse battery staple';
const verifier = scramVerifier(PASSWORD);
const users: UserStore = {
  async verifier(user) {
    return user === 'alice' || user === 'psql_user' ? verifier : undefined;
  },
};

const pems = selfsigned.generate([{ name: 'commonName', value: 'localhost' }], { keySize: 2048, days: 1, algorithm: 'sha256' });
const tlsOptions = { key: pems.private, cert: pems.cert };

async function serve(extra: Partial<PgServerOptions> = {}): Promise<{ server: PgServer; backend: FakeBackend }> {
  const backend = new FakeBackend();
  const server = await startPgServer({ backend, users, port: 0, ...extra });
  return { server, backend };
}

function client(server: PgServer, extra: pg.ClientConfig = {}): pg.Client {
  return new pg.Client({ host: server.host, port: server.port, user: 'alice', password: PASSWORD, database: 'db', ...extra });
}

async function connected(server: PgServer, extra: pg.ClientConfig = {}): Promise<pg.Client> {
  const c = client(server, extra);
  await c.connect();
  return c;
}

async function rejects(p: Promise<unknown>): Promise<Error & { code?: string; severity?: string; position?: string; hint?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: string };
  }
  assert.fail('expected a rejection');
}

/** A raw protocol client over pg's Connection (pg-protocol codec), for message-level assertions. */
interface RawConnection {
  stream: net.Socket;
  on(event: 'message', f: (m: { name: string } & Record<string, unknown>) => void): void;
  on(event: string, f: (...a: unknown[]) => void): void;
  once(event: string, f: (...a: unknown[]) => void): void;
  connect(port: number, host: string): void;
  requestSsl(): void;
  startup(params: Record<string, string>): void;
  password(p: string): void;
  sendSASLInitialResponseMessage(mechanism: string, initial: string): void;
  sendSCRAMClientFinalMessage(data: string): void;
  query(sql: string): void;
  parse(q: { name?: string; text: string; types?: number[] }): void;
  bind(b: { portal?: string; statement?: string; values?: unknown[]; binary?: boolean }): void;
  describe(d: { type: 'S' | 'P'; name?: string }): void;
  execute(e: { portal?: string; rows?: number }): void;
  close(c: { type: 'S' | 'P'; name?: string }): void;
  flush(): void;
  sync(): void;
  end(): void;
}

class Raw {
  readonly messages: Array<{ name: string } & Record<string, unknown>> = [];
  private waiters: Array<() => void> = [];
  closed = false;
  constructor(readonly con: RawConnection) {
    con.on('message', (m) => {
      this.messages.push(m);
      for (const w of this.waiters.splice(0)) w();
    });
    con.on('end', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
    con.on('error', () => {});
  }
  /** Waits until a message named `name` arrived (after `from`), returns the messages since `from`. */
  async until(name: string, from = 0): Promise<Array<{ name: string } & Record<string, unknown>>> {
    for (;;) {
      const i = this.messages.findIndex((m, j) => j >= from && m.name === name);
      if (i >= 0) return this.messages.slice(from, i + 1);
      if (this.closed) assert.fail(`connection closed before ${name}: ${this.names(from).join(',')}`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }
  names(from = 0): string[] {
    return this.messages.slice(from).map((m) => m.name);
  }
  async closedNow(): Promise<void> {
    while (!this.closed) await new Promise<void>((r) => this.waiters.push(r));
  }
}

/** Connects a raw client; SCRAM on plain TCP (a test-side SCRAM client), cleartext password over TLS. */
async function raw(server: PgServer, o: { tls?: boolean; user?: string; password?: string; params?: Record<string, string> } = {}): Promise<Raw> {
  const con = new pg.Connection(o.tls ? { ssl: { rejectUnauthorized: false } } : {}) as unknown as RawConnection;
  const r = new Raw(con);
  const user = o.user ?? 'alice';
  const password = o.password ?? PASSWORD;
  const startup = (): void => con.startup({ user, database: 'db', ...o.params });
  con.once('connect', () => (o.tls ? con.requestSsl() : startup()));
  con.once('sslconnect', startup);
  let nonce = '';
  con.on('authenticationCleartextPassword', () => con.password(password));
  con.on('authenticationSASL', () => {
    nonce = randomBytes(18).toString('base64');
    con.sendSASLInitialResponseMessage('SCRAM-SHA-256', `n,,n=,r=${nonce}`);
  });
  con.on('authenticationSASLContinue', (m) => {
    con.sendSCRAMClientFinalMessage(scramClientFinal(password, `n=,r=${nonce}`, (m as { data: string }).data, 'biws'));
  });
  con.connect(server.port, server.host);
  await r.until('readyForQuery');
  return r;
}

/** RFC 5802 client side, written out here independently of the server's code. */
function scramClientFinal(password: string, clientFirstBare: string, serverFirst: string, channel: string): string {
  const attrs = Object.fromEntries(serverFirst.split(',').map((a) => [a[0], a.slice(2)]));
  const salted = pbkdf2Sync(password, Buffer.from(attrs.s!, 'base64'), Number(attrs.i), 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const withoutProof = `c=${channel},r=${attrs.r}`;
  const sig = createHmac('sha256', storedKey).update(`${clientFirstBare},${serverFirst},${withoutProof}`).digest();
  const proof = Buffer.from(clientKey.map((b, i) => b ^ sig[i]!));
  return `${withoutProof},p=${proof.toString('base64')}`;
}

async function eventually(check: () => boolean, what: string, ms = 5000, every = 10): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(every);
  }
}

/** A plain socket that speaks raw bytes (for garbage and startup-level tests). */
async function socket(server: PgServer): Promise<{ s: net.Socket; data: () => Buffer; ended: Promise<void> }> {
  const s = net.connect(server.port, server.host);
  await new Promise<void>((r) => s.once('connect', () => r()));
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  s.on('error', () => {});
  const ended = new Promise<void>((r) => s.once('close', () => r()));
  return { s, data: () => Buffer.concat(chunks), ended };
}

function startupPacket(params: Record<string, string>, protocol = 196608): Buffer {
  const parts = [Buffer.alloc(4), Buffer.alloc(4)];
  parts[1]!.writeInt32BE(protocol);
  for (const [k, v] of Object.entries(params)) parts.push(Buffer.from(`${k}\0${v}\0`));
  parts.push(Buffer.from([0]));
  const b = Buffer.concat(parts);
  b.writeInt32BE(b.length);
  return b;
}

/** ErrorResponse fields from raw bytes (first 'E' message). */
function errorFields(buf: Buffer): Record<string, string> {
  let p = 0;
  while (p < buf.length && buf[p] !== 0x45) p += 1 + buf.readInt32BE(p + 1);
  assert.ok(p < buf.length, `no ErrorResponse in ${buf.toString('hex')}`);
  const len = buf.readInt32BE(p + 1);
  const body = buf.subarray(p + 5, p + 1 + len);
  const f: Record<string, string> = {};
  let q = 0;
  while (body[q] !== 0) {
    const code = String.fromCharCode(body[q]!);
    const end = body.indexOf(0, q + 1);
    f[code] = body.toString('utf8', q + 1, end);
    q = end + 1;
  }
  return f;
}

// ---- tests ----

describe('scram', () => {
  test('RFC 7677 test vector', () => {
    const v = makeVerifier('pencil', 4096, Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'));
    const x = new ScramExchange('user', v);
    const first = x.first('n,,n=user,r=rOprNGfwEbeRWgbNEkqO', '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0');
    assert.equal(first, 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096');
    const final = x.final('c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=');
    assert.equal(final, 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
  });

  test("gs2 'y,,' is accepted, 'p=' and authzid are refused, nonce and channel attributes are checked", () => {
    const v = makeVerifier('pw', 4096);
    const y = new ScramExchange('u', v);
    const sf = y.first('y,,n=u,r=abc');
    assert.match(y.final(scramClientFinal('pw', 'n=u,r=abc', sf, 'eSws')), /^v=/);

    const code = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (e) {
        return (e as PgError).code;
      }
      return undefined;
    };
    assert.equal(code(() => new ScramExchange('u', v).first('p=tls-server-end-point,,n=u,r=abc')), '08P01');
    assert.equal(code(() => new ScramExchange('u', v).first('n,a=admin,n=u,r=abc')), '0A000');
    assert.equal(code(() => new ScramExchange('u', v).first('n,,m=ext,n=u,r=abc')), '0A000');
    assert.equal(code(() => new ScramExchange('u', v).first('n,,n=u')), '08P01');
    assert.equal(code(() => new ScramExchange('u', v).first('x')), '08P01');

    const n = new ScramExchange('u', v);
    const sf2 = n.first('n,,n=u,r=abc');
    const good = scramClientFinal('pw', 'n=u,r=abc', sf2, 'biws');
    assert.equal(code(() => n.final(good.replace('r=abc', 'r=abd'))), '08P01', 'nonce mismatch');
    assert.equal(code(() => n.final(good.replace('c=biws', 'c=eSws'))), '08P01', 'channel flag changed');
    assert.equal(code(() => n.final(good.replace(/p=.*/, 'p=AAAA'))), '08P01', 'short proof');
    assert.equal(code(() => n.final(scramClientFinal('wrong', 'n=u,r=abc', sf2, 'biws'))), '28P01');

    // Unknown user: a full exchange, stable salt per name, failing at the end like a wrong password.
    const u1 = new ScramExchange('ghost', undefined).first('n,,n=,r=abc');
    const u2 = new ScramExchange('ghost', undefined).first('n,,n=,r=abc');
    assert.equal(u1.split(',')[1], u2.split(',')[1]);
    const ghost = new ScramExchange('ghost', undefined);
    const sf3 = ghost.first('n,,n=,r=abc');
    assert.throws(() => ghost.final(scramClientFinal('pw', 'n=,r=abc', sf3, 'biws')), { code: '28P01', message: 'password authentication failed for user "ghost"' });
  });
});

describe('pgwire with node-postgres', () => {
  let server: PgServer;
  let backend: FakeBackend;
  let c: pg.Client;
  before(async () => {
    ({ server, backend } = await serve({ metrics: new Metrics('cascadb-test') }));
    c = await connected(server, { application_name: 'wire-test' });
  });
  after(async () => {
    await c.end();
    await server.close();
  });

  test('SCRAM login, ParameterStatus, SELECT 1 over the simple protocol', async () => {
    const r = await c.query('SELECT 1');
    assert.deepEqual(r.rows, [{ '?column?': 1 }]);
    assert.equal(r.command, 'SELECT');
    assert.equal(r.rowCount, 1);
    const session = backend.opened.at(-1)!;
    assert.equal(session.user, 'alice');
    assert.equal(session.database, 'db');
    assert.equal(session.params.application_name, 'wire-test');
    const status = (c as unknown as { connectionParameters: unknown; processID: number }).processID;
    assert.equal(status, session.id);
  });

  test('parameterized queries pipeline Parse/Bind/Describe/Execute/Sync; text and binary parameters', async () => {
    const r = await c.query('SELECT $1::text, $2::int4, $3, $4::bytea', ['héllo wörld', 42, null, Buffer.from([0xde, 0xad, 0xbe, 0xef])]);
    assert.deepEqual(r.rows, [{ p1: 'héllo wörld', p2: '42', p3: null, p4: '\\xdeadbeef' }]);
    assert.deepEqual(backend.executed.at(-1)!.params, ['héllo wörld', '42', null, '\\xdeadbeef']);
  });

  test('named prepared statements are parsed once and reused', async () => {
    const before = backend.prepared.length;
    for (const v of ['a', 'b', 'c']) {
      const r = await c.query({ name: 'echo1', text: 'SELECT $1::text AS v', values: [v] });
      assert.deepEqual(r.rows, [{ p1: v }]);
    }
    assert.equal(backend.prepared.length - before, 1);
  });

  test('errors carry SQLSTATE, position and hint; the connection stays usable', async () => {
    const e1 = await rejects(c.query('FAIL now'));
    assert.equal(e1.code, '42601');
    assert.equal(e1.position, '1');
    assert.equal(e1.hint, 'try SELECT');
    assert.equal(e1.severity, 'ERROR');
    assert.deepEqual((await c.query('SELECT 1')).rows, [{ '?column?': 1 }]);

    const e2 = await rejects(c.query('FAIL $1', ['x'])); // fails at Parse: Bind/Describe/Execute skipped until Sync
    assert.equal(e2.code, '42601');
    assert.deepEqual((await c.query('SELECT $1::text', ['ok'])).rows, [{ p1: 'ok' }]);

    const e3 = await rejects(c.query('SELECT fail_later'));
    assert.equal(e3.code, '22012');
    assert.deepEqual((await c.query('SELECT 1')).rows, [{ '?column?': 1 }]);
  });

  test('transaction status: BEGIN, a failure, 25P02, ROLLBACK', async () => {
    await c.query('BEGIN');
    await rejects(c.query('FAIL'));
    const e = await rejects(c.query('SELECT 1'));
    assert.equal(e.code, '25P02');
    await c.query('ROLLBACK');
    assert.deepEqual((await c.query('SELECT 1')).rows, [{ '?column?': 1 }]);
  });

  test('multi-statement simple query, INSERT tag, empty query', async () => {
    const rs = (await c.query('SELECT 1; INSERT INTO t VALUES (1); SELECT 1')) as unknown as pg.QueryResult[];
    assert.equal(rs.length, 3);
    assert.equal(rs[1]!.command, 'INSERT');
    assert.equal(rs[1]!.rowCount, 1);
    const empty = await c.query('');
    assert.equal(empty.command, null);
  });

  test('100,000 rows, simple and extended', async () => {
    const r = await c.query('SELECT * FROM generate_series(1, 100000)');
    assert.equal(r.rows.length, 100000);
    assert.equal(r.rows[99999].generate_series, 100000);
    assert.equal(r.rowCount, 100000);
    const x = await c.query({ text: 'SELECT * FROM generate_series(1, 100000) WHERE $1', values: ['t'], rowMode: 'array' });
    assert.equal(x.rows.length, 100000);
    assert.deepEqual(x.rows[500], [501]);
  });

  test('portal paging: pg with `rows` sends Execute(maxRows)+Flush and continues on PortalSuspended', async () => {
    let suspended = 0;
    const con = (c as unknown as { connection: { on(e: string, f: () => void): void; off(e: string, f: () => void): void } }).connection;
    const count = (): void => void suspended++;
    con.on('portalSuspended', count);
    try {
      const r = await c.query({ text: 'SELECT * FROM generate_series(1, 25)', rows: 10 } as pg.QueryConfig);
      assert.equal(r.rows.length, 25);
      assert.equal(r.rows[24].generate_series, 25);
      assert.equal(suspended, 2);
    } finally {
      con.off('portalSuspended', count);
    }
  });

  test('DataRow throughput: 10 text columns through pg', async (t) => {
    const n = 200_000;
    const t0 = performance.now();
    const r = await c.query({ text: `SELECT * FROM wide(${n})`, rowMode: 'array' });
    const ms = performance.now() - t0;
    assert.equal(r.rows.length, n);
    assert.deepEqual(r.rows[n - 1], [String(n - 1), 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliett']);
    t.diagnostic(`${Math.round((n / ms) * 1000)} rows/s (10 text columns, node-postgres client, same process)`);
  });

  test('cancel request stops a running query with 57014', async () => {
    const other = await connected(server);
    const q = other.query('SELECT * FROM endless');
    const settled = q.then(
      () => undefined,
      (e: { code?: string }) => e,
    );
    await sleep(50);
    const { processID, secretKey } = other as unknown as { processID: number; secretKey: number };
    const s = net.connect(server.port, server.host);
    const b = Buffer.alloc(16);
    b.writeInt32BE(16);
    b.writeInt32BE(80877102, 4);
    b.writeInt32BE(processID, 8);
    b.writeInt32BE(secretKey, 12);
    s.end(b);
    s.on('error', () => {});
    const e = await settled;
    assert.equal(e?.code, '57014');
    assert.deepEqual((await other.query('SELECT 1')).rows, [{ '?column?': 1 }]);
    await other.end();
  });

  test('wrong password and unknown user both fail with 28P01 and the same message shape', async () => {
    const e1 = await rejects(connected(server, { password: 'nope' }));
    assert.equal(e1.code, '28P01');
    assert.equal(e1.message, 'password authentication failed for user "alice"');
    const e2 = await rejects(connected(server, { user: 'mallory' }));
    assert.equal(e2.code, '28P01');
    assert.equal(e2.message, 'password authentication failed for user "mallory"');
    const e3 = await rejects(connected(server, { database: 'nodb' }));
    assert.equal(e3.code, '3D000');
  });

  test('metrics count connections and queries', async () => {
    const text = (await server.metrics.text()).body;
    assert.match(text, /cascadb_pg_connections_total\{service="cascadb-test"\} \d+/);
    assert.match(text, /cascadb_pg_queries_total\{protocol="simple",service="cascadb-test"\} \d+/);
    assert.match(text, /cascadb_pg_errors_total\{code="42601",service="cascadb-test"\} \d+/);
  });
});

describe('pgwire at the message level', () => {
  let server: PgServer;
  let backend: FakeBackend;
  before(async () => {
    ({ server, backend } = await serve({ tls: tlsOptions, allowCleartextOverTls: true }));
  });
  after(() => server.close());

  test('startup sequence: AuthenticationOk, ParameterStatus…, BackendKeyData, ReadyForQuery', async () => {
    const r = await raw(server);
    const names = r.names();
    assert.deepEqual(names.slice(0, 3), ['authenticationSASL', 'authenticationSASLContinue', 'authenticationSASLFinal']);
    assert.equal(names[3], 'authenticationOk');
    assert.deepEqual(names.slice(-2), ['backendKeyData', 'readyForQuery']);
    const params = Object.fromEntries(
      r.messages.filter((m) => m.name === 'parameterStatus').map((m) => [m.parameterName as string, m.parameterValue as string]),
    );
    assert.equal(params.server_version, '16.0 (securegrid cascadb)');
    assert.equal(params.server_encoding, 'UTF8');
    assert.equal(params.client_encoding, 'UTF8');
    assert.equal(params.DateStyle, 'ISO, MDY');
    assert.equal(params.TimeZone, 'UTC');
    assert.equal(params.integer_datetimes, 'on');
    assert.equal(params.standard_conforming_strings, 'on');
    assert.equal(params.IntervalStyle, 'postgres');
    assert.equal(params.is_superuser, 'off');
    assert.equal(params.session_authorization, 'alice');
    r.con.end();
    await r.closedNow();
  });

  test('cleartext password over TLS; named portals with maxRows, interleaved; Describe S/P; Close', async () => {
    const r = await raw(server, { tls: true });
    assert.ok(r.names().includes('authenticationCleartextPassword'));
    const { con } = r;
    let from = r.messages.length;
    con.query('BEGIN'); // portals outlive Sync inside a transaction block
    await r.until('readyForQuery', from);
    assert.equal(r.messages.at(-1)!.status, 'T');

    from = r.messages.length;
    con.parse({ name: 'series', text: 'SELECT * FROM generate_series(1, 5) WHERE $1::int4 > 0' });
    con.describe({ type: 'S', name: 'series' });
    con.bind({ portal: 'a', statement: 'series', values: ['1'] });
    con.bind({ portal: 'b', statement: 'series', values: ['2'] });
    con.describe({ type: 'P', name: 'a' });
    con.execute({ portal: 'a', rows: 2 });
    con.execute({ portal: 'b', rows: 3 });
    con.execute({ portal: 'a', rows: 2 });
    con.execute({ portal: 'b', rows: 0 });
    con.execute({ portal: 'a', rows: 2 });
    con.execute({ portal: 'a', rows: 2 });
    con.close({ type: 'P', name: 'a' });
    con.sync();
    const got = await r.until('readyForQuery', from);
    const rows = (m: Record<string, unknown>): unknown => m.fields;
    assert.deepEqual(
      got.map((m) => (m.name === 'dataRow' ? `row ${String(rows(m))}` : m.name)),
      [
        'parseComplete',
        'parameterDescription',
        'rowDescription',
        'bindComplete',
        'bindComplete',
        'rowDescription',
        'row 1',
        'row 2',
        'portalSuspended',
        'row 1',
        'row 2',
        'row 3',
        'portalSuspended',
        'row 3',
        'row 4',
        'portalSuspended',
        'row 4',
        'row 5',
        'commandComplete',
        'row 5',
        'commandComplete',
        'commandComplete', // a finished portal: nothing more, SELECT 0
        'closeComplete',
        'readyForQuery',
      ],
    );
    assert.deepEqual(got[1]!.dataTypeIDs, [23]);
    assert.equal(got[18]!.text, 'SELECT 5');
    assert.equal(got[21]!.text, 'SELECT 0');

    // portal b survived Sync inside the transaction; a is closed
    from = r.messages.length;
    con.execute({ portal: 'b' });
    con.execute({ portal: 'a' });
    con.execute({ portal: 'b' });
    con.sync();
    const after = await r.until('readyForQuery', from);
    assert.deepEqual(
      after.map((m) => m.name),
      ['commandComplete', 'error', 'readyForQuery'], // the error skips the last Execute
    );
    assert.equal(after[1]!.code, '34000');
    con.query('COMMIT');
    from = r.messages.length;
    await r.until('readyForQuery', from);

    // Describe of a statement with no result; Close S; unnamed statement and portal; empty query
    from = r.messages.length;
    con.parse({ name: 'ins', text: 'INSERT INTO t VALUES ($1)' });
    con.describe({ type: 'S', name: 'ins' });
    con.close({ type: 'S', name: 'ins' });
    con.describe({ type: 'S', name: 'ins' });
    con.sync();
    const d = await r.until('readyForQuery', from);
    assert.deepEqual(
      d.map((m) => m.name),
      ['parseComplete', 'parameterDescription', 'noData', 'closeComplete', 'error', 'readyForQuery'],
    );
    assert.deepEqual(d[1]!.dataTypeIDs, [25], 'unspecified parameter types are described as text');
    assert.equal(d[4]!.code, '26000');

    from = r.messages.length;
    con.parse({ text: '' });
    con.bind({});
    con.describe({ type: 'P' });
    con.execute({});
    con.sync();
    assert.deepEqual(
      (await r.until('readyForQuery', from)).map((m) => m.name),
      ['parseComplete', 'bindComplete', 'noData', 'emptyQuery', 'readyForQuery'],
    );

    from = r.messages.length;
    con.query('');
    assert.deepEqual((await r.until('readyForQuery', from)).map((m) => m.name), ['emptyQuery', 'readyForQuery']);
    r.con.end();
    await r.closedNow();
    assert.equal(backend.closed.length >= 1, true);
  });

  test('binary result formats are refused with 0A000; binary parameters of unsupported types too', async () => {
    const r = await raw(server);
    const { con } = r;
    let from = r.messages.length;
    con.parse({ text: 'SELECT 1' });
    con.bind({ binary: true });
    con.execute({});
    con.sync();
    let got = await r.until('readyForQuery', from);
    assert.deepEqual(got.map((m) => m.name), ['parseComplete', 'error', 'readyForQuery']);
    assert.equal(got[1]!.code, '0A000');
    assert.equal(got[1]!.message, 'binary result format is not supported');

    from = r.messages.length;
    con.parse({ text: 'SELECT $1::numeric' });
    con.bind({ values: [Buffer.from([0, 1])] });
    con.execute({});
    con.sync();
    got = await r.until('readyForQuery', from);
    assert.equal(got[1]!.name, 'error');
    assert.equal(got[1]!.code, '0A000');

    from = r.messages.length;
    con.parse({ text: 'SELECT $1::int4, $2::int8, $3::float8, $4::bool, $5::int2, $6::float4, $7::text' });
    const i4 = Buffer.alloc(4);
    i4.writeInt32BE(-7);
    const i8 = Buffer.alloc(8);
    i8.writeBigInt64BE(-(2n ** 62n));
    const f8 = Buffer.alloc(8);
    f8.writeDoubleBE(0.1);
    const i2 = Buffer.alloc(2);
    i2.writeInt16BE(300);
    const f4 = Buffer.alloc(4);
    f4.writeFloatBE(0.1);
    con.bind({ values: [i4, i8, f8, Buffer.from([1]), i2, f4, Buffer.from('ünï')] });
    con.execute({});
    con.sync();
    got = await r.until('readyForQuery', from);
    assert.deepEqual(got.map((m) => m.name), ['parseComplete', 'bindComplete', 'dataRow', 'commandComplete', 'readyForQuery']);
    assert.deepEqual(got[2]!.fields, ['-7', '-4611686018427387904', '0.1', 't', '300', '0.1', 'ünï']);

    from = r.messages.length;
    con.parse({ text: 'SELECT $1::int4' });
    con.bind({ values: [Buffer.from([1, 2])] });
    con.sync();
    got = await r.until('readyForQuery', from);
    assert.equal(got[1]!.code, '22P03');
    r.con.end();
  });

  test('a pipeline of many statements in one write is answered in order', async () => {
    const r = await raw(server);
    const { con } = r;
    const from = r.messages.length;
    const sock = con.stream;
    sock.cork();
    for (let i = 0; i < 200; i++) {
      con.parse({ text: 'SELECT $1::text' });
      con.bind({ values: [`v${i}`] });
      con.execute({});
    }
    con.sync();
    sock.uncork();
    const got = await r.until('readyForQuery', from);
    const values = got.filter((m) => m.name === 'dataRow').map((m) => (m.fields as string[])[0]);
    assert.equal(values.length, 200);
    assert.equal(values[0], 'v0');
    assert.equal(values[199], 'v199');
    r.con.end();
  });

  test('a pipeline dribbled over the socket in random small pieces is answered like one write', async () => {
    const r = await raw(server);
    // pg's own serializer writes the bytes; we cut them up and send them piece by piece.
    const stream = new PassThrough();
    const enc = new pg.Connection({ stream: stream as never }) as unknown as RawConnection;
    enc.parse({ name: 'dribble', text: 'SELECT $1::text, $2::int4' });
    for (let i = 0; i < 20; i++) {
      enc.bind({ statement: 'dribble', values: [`ü${i}`, String(i)] });
      enc.describe({ type: 'P' });
      enc.execute({});
    }
    enc.sync();
    const bytes = stream.read() as Buffer;
    const from = r.messages.length;
    for (let p = 0; p < bytes.length; ) {
      const n = 1 + Math.floor(Math.random() * 17);
      r.con.stream.write(bytes.subarray(p, p + n));
      p += n;
      if (Math.random() < 0.2) await sleep(1);
    }
    const got = await r.until('readyForQuery', from);
    const rows = got.filter((m) => m.name === 'dataRow').map((m) => m.fields);
    assert.deepEqual(rows, Array.from({ length: 20 }, (_, i) => [`ü${i}`, String(i)]));
    assert.equal(got.filter((m) => m.name === 'rowDescription').length, 20);
    r.con.end();
  });

  test('a 10-million-row result streams with bounded memory: the server stops pulling when the client stops reading', async (t) => {
    const r = await raw(server);
    const sock = r.con.stream;
    r.con.query('SELECT * FROM endless');
    await r.until('dataRow');
    sock.pause();
    try {
      // Wait for the socket buffers to fill, then the count must stand still.
      let last = -1;
      await eventually(() => {
        const now = backend.pulled;
        const still = now === last;
        last = now;
        return still;
      }, 'the server to stop pulling rows', 10_000, 200);
      const b = backend.pulled;
      await sleep(300);
      assert.equal(backend.pulled, b, 'no rows pulled while the client is not reading');
      assert.ok(b < 10_000_000, `pulled ${b}`);
      sock.resume();
      await eventually(() => backend.pulled > b, 'resumes when the client reads');
      t.diagnostic(`rows pulled while the client was paused: ${b}`);
    } finally {
      sock.destroy();
    }
    for (let i = 0; i < 100 && backend.endlessClosed === 0; i++) await sleep(20);
    assert.equal(backend.endlessClosed, 1, 'the row source is closed when the client goes');
  });

  test('garbage after login: FATAL 08P01 and only that connection closes', async () => {
    const other = await raw(server);
    const { s, data, ended } = await socket(server);
    // a valid startup, then garbage mid-auth
    s.write(startupPacket({ user: 'alice', database: 'db' }));
    await eventually(() => data().length > 0, 'AuthenticationSASL');
    s.write(Buffer.from([0x70, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
    await ended;
    assert.equal(errorFields(data()).C, '08P01');
    assert.equal(errorFields(data()).S, 'FATAL');

    const from = other.messages.length;
    (other.con.stream as net.Socket).write(Buffer.from('Z\0\0\0\x04'));
    await other.closedNow();
    assert.equal(other.messages[from]?.name, 'error');
    assert.equal(other.messages[from]!.code, '08P01');

    const still = await raw(server);
    still.con.query('SELECT 1');
    await still.until('commandComplete');
    still.con.end();
  });

  test('HTTP or random bytes on the port: FATAL 08P01, then close', async () => {
    const { s, data, ended } = await socket(server);
    s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await ended;
    assert.equal(errorFields(data()).C, '08P01');
    const g = await socket(server);
    g.s.write(randomBytes(4096));
    await g.ended;
  });

  test('GSSENCRequest is answered N; protocol 3.2 gets NegotiateProtocolVersion', async () => {
    const { s, data } = await socket(server);
    const gss = Buffer.alloc(8);
    gss.writeInt32BE(8);
    gss.writeInt32BE(80877104, 4);
    s.write(gss);
    await eventually(() => data().length > 0, 'an answer to GSSENCRequest');
    assert.equal(data().toString(), 'N');
    s.write(startupPacket({ user: 'alice', database: 'db', '_pq_.unknown': 'x' }, 196610));
    await eventually(() => data().length > 1, 'NegotiateProtocolVersion');
    const rest = data().subarray(1);
    assert.equal(String.fromCharCode(rest[0]!), 'v');
    assert.equal(rest.readInt32BE(5), 0); // newest minor version we speak
    assert.equal(rest.readInt32BE(9), 1);
    assert.equal(rest.toString('utf8', 13, 13 + '_pq_.unknown'.length), '_pq_.unknown');
    s.destroy();
  });

  test('plaintext after SSLRequest is refused (no buffered-data injection)', async () => {
    const { s, data, ended } = await socket(server);
    const ssl = Buffer.alloc(8);
    ssl.writeInt32BE(8);
    ssl.writeInt32BE(80877103, 4);
    s.write(Buffer.concat([ssl, startupPacket({ user: 'alice' })]));
    await ended;
    assert.equal(errorFields(data()).C, '08P01');
  });
});

describe('pgwire with TLS required', () => {
  let server: PgServer;
  let backend: FakeBackend;
  before(async () => {
    ({ server, backend } = await serve({ tls: tlsOptions, requireTls: true }));
  });
  after(() => server.close());

  test('pg over TLS with SCRAM (gs2 y,,) works; plain connections get 28000', async () => {
    const c = await connected(server, { ssl: { rejectUnauthorized: false } });
    assert.deepEqual((await c.query('SELECT $1::text', ['tls'])).rows, [{ p1: 'tls' }]);
    const sock = (c as unknown as { connection: { stream: tls.TLSSocket } }).connection.stream;
    assert.ok(sock instanceof tls.TLSSocket && sock.encrypted);
    await c.end();
    const e = await rejects(connected(server));
    assert.equal(e.code, '28000');
  });

  test('psql with sslmode=require', { skip: !existsSync('/usr/bin/psql') && 'psql not installed' }, async (t) => {
    const run = (args: string[]): Promise<{ out: string; err: string; code: number }> =>
      new Promise((resolve) => {
        execFile(
          '/usr/bin/psql',
          [`host=${server.host} port=${server.port} user=psql_user dbname=d sslmode=require`, ...args],
          { env: { ...process.env, PGPASSWORD: PASSWORD, PGCONNECT_TIMEOUT: '5' }, timeout: 10_000 },
          (err, out, errOut) => resolve({ out, err: errOut, code: err ? ((err as { code?: number }).code ?? 1) : 0 }),
        );
      });
    const before = backend.simple.length;
    const r = await run(['-c', 'SELECT 1']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /\?column\?\s*\n-+\n\s*1\n\(1 row\)/);
    const session = backend.opened.at(-1)!;
    t.diagnostic(`psql startup params: ${JSON.stringify(session.params)}; simple queries: ${JSON.stringify(backend.simple.slice(before))}`);
    const rows = await run(['-At', '-c', 'SELECT * FROM generate_series(1, 3)']);
    assert.equal(rows.out, '1\n2\n3\n');
    const bad = await run(['-c', 'FAIL']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.err, /ERROR:\s+syntax error at or near "FAIL"/);
  });
});

describe('pgwire shutdown', () => {
  test('close() ends client connections with 57P01 and resolves', async () => {
    const { server, backend } = await serve();
    const c = await connected(server);
    const errored = new Promise<{ code?: string }>((r) => c.on('error', (e) => r(e as { code?: string })));
    await server.close();
    assert.equal((await errored).code, '57P01');
    assert.equal(backend.closed.length, 1);
  });
});
