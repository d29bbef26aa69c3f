// The ingest service's one seam to CascaDB: a tiny SQL client with two implementations — the in-process
// Engine (embedded deployments, tests) and the PostgreSQL wire protocol to a CascaDB server (N instances).
// Values are normalised the same way on both: BIGINT → number, TIMESTAMP → epoch ms (UTC), BYTEA → Buffer,
// REAL → the float32 value as a number.
import pg from 'pg';
import { Engine, PgError } from '../cascadb/index.js';
import type { Session } from '../cascadb/server/backend.js';

/** A parameter: Date and epoch-ms timestamps must be given as Date (both doors then agree on UTC). */
export type SqlParam = string | number | boolean | null | Buffer | Date;

export interface SqlResult {
  /** Rows as objects keyed by column name. */
  rows: Array<Record<string, unknown>>;
  /** Rows returned, or rows affected (INSERT/UPDATE/DELETE). */
  rowCount: number;
}

export interface SqlQueryable {
  query(sql: string, params?: SqlParam[]): Promise<SqlResult>;
}

export interface SqlClient extends SqlQueryable {
  /** Runs fn inside BEGIN … COMMIT; any throw rolls back. Resolves only after COMMIT returned. */
  transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** A SQL failure with the server's SQLSTATE (e.g. 23505, 42P07, 08006 for a lost connection). */
export class SqlError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'SqlError';
  }
}

let sessionIds = 2_000_000;

function newSession(): Session {
  return { id: sessionIds++, user: 'ingest', database: 'securegrid', params: {}, txStatus: 'I', state: {} };
}

function asSqlError(err: unknown): SqlError {
  if (err instanceof SqlError) return err;
  if (err instanceof PgError) return new SqlError(err.code, err.message);
  const e = err as { code?: unknown; message?: unknown };
  return new SqlError(typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : '08006', String(e.message ?? err));
}

/** Over an in-process CascaDB Engine: statements run straight on the engine, parameters keep their types. */
export class EngineSqlClient implements SqlClient {
  constructor(private readonly engine: Engine) {}

  private async run(session: Session, sql: string, params: SqlParam[]): Promise<SqlResult & { command: string }> {
    const stmts = this.engine.parse(sql);
    let last = { rows: [] as Array<Record<string, unknown>>, rowCount: 0, command: '' };
    const values = params.map((p) => (p instanceof Date ? p.getTime() * 1000 : p)); // engine timestamps are µs
    for (const stmt of stmts) {
      const r = await this.engine.runStatement(session, stmt, sql, values);
      const cols = r.columns ?? [];
      const rows: Array<Record<string, unknown>> = [];
      for await (const row of this.engine.guard(session, r.rows)) {
        const o: Record<string, unknown> = {};
        cols.forEach((c, i) => {
          const v = row[i];
          o[c.name] = c.type === 'timestamp' && typeof v === 'number' ? Math.round(v / 1000) : v;
        });
        rows.push(o);
      }
      const tag = r.tag(rows.length);
      last = { rows, rowCount: Number(/(\d+)$/.exec(tag)?.[1] ?? rows.length), command: tag.split(' ')[0] ?? '' };
    }
    return last;
  }

  async query(sql: string, params: SqlParam[] = []): Promise<SqlResult> {
    const session = newSession();
    try {
      return await this.run(session, sql, params);
    } catch (err) {
      throw asSqlError(err);
    } finally {
      await this.engine.closeSession(session);
    }
  }

  async transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T> {
    const session = newSession();
    try {
      await this.run(session, 'BEGIN', []);
      const out = await fn({ query: (sql, params = []) => this.run(session, sql, params).catch((e) => Promise.reject(asSqlError(e))) });
      const done = await this.run(session, 'COMMIT', []);
      // COMMIT of a transaction that saw an error answers ROLLBACK, as PostgreSQL does.
      if (done.command !== 'COMMIT') throw new SqlError('40000', 'the transaction was rolled back after an error inside it');
      return out;
    } catch (err) {
      throw asSqlError(err);
    } finally {
      await this.engine.closeSession(session);
    }
  }

  async close(): Promise<void> {}
}

export interface PgSqlOptions {
  /** postgres://user:password@host:port/database */
  url: string;
  /** PEM of the CascaDB server certificate to trust; given → TLS is required. */
  ca?: string;
  /** Connections in the pool (default 8). */
  max?: number;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** TIMESTAMP text in UTC with no offset (PostgreSQL ignores an offset on timestamp-without-time-zone input). */
function utcText(d: Date): string {
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}`;
}

function parseUtc(text: string): number {
  const m = /^(\d{4,})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d+))?/.exec(text);
  if (!m) return Number.NaN;
  const ms = m[7] ? Number(`0.${m[7]}`) * 1000 : 0;
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])) + Math.round(ms);
}

const TYPES = {
  getTypeParser(oid: number, format?: string): (v: string) => unknown {
    if (oid === 20) return (v: string) => Number(v); // BIGINT: meter ids and counters stay below 2^53
    if (oid === 1114) return parseUtc;
    if (oid === 700) return (v: string) => Math.fround(Number(v)); // REAL: the float32 itself, as the engine gives it
    return pg.types.getTypeParser(oid, (format ?? 'text') as 'text');
  },
};

const names = new Map<string, string>();
function statementName(sql: string): string {
  let n = names.get(sql);
  if (!n) names.set(sql, (n = `sg_ingest_${names.size + 1}`));
  return n;
}

/** Over the PostgreSQL wire protocol to a CascaDB server (node-postgres pool). */
export class PgSqlClient implements SqlClient {
  private readonly pool: pg.Pool;

  constructor(o: PgSqlOptions) {
    this.pool = new pg.Pool({
      connectionString: o.url,
      max: o.max ?? 8,
      ssl: o.ca ? { ca: o.ca, rejectUnauthorized: true } : undefined,
      types: TYPES as unknown as pg.CustomTypesConfig,
    });
    // An idle connection that drops must not crash the service; the next query opens a new one.
    this.pool.on('error', () => undefined);
  }

  private static values(params: SqlParam[]): unknown[] {
    return params.map((p) => (p instanceof Date ? utcText(p) : p));
  }

  private static async run(c: pg.Pool | pg.PoolClient, sql: string, params: SqlParam[]): Promise<SqlResult> {
    try {
      // Long multi-row INSERTs run as named statements: the server parses each text once per connection.
      const name = sql.length > 1024 ? statementName(sql) : undefined;
      const r = await c.query({ text: sql, values: PgSqlClient.values(params), ...(name ? { name } : {}) });
      return { rows: r.rows as Array<Record<string, unknown>>, rowCount: r.rowCount ?? r.rows.length };
    } catch (err) {
      throw asSqlError(err);
    }
  }

  query(sql: string, params: SqlParam[] = []): Promise<SqlResult> {
    return PgSqlClient.run(this.pool, sql, params);
  }

  async transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T> {
    let c: pg.PoolClient;
    try {
      c = await this.pool.connect();
    } catch (err) {
      throw asSqlError(err);
    }
    let broken = false;
    try {
      await PgSqlClient.run(c, 'BEGIN', []);
      const out = await fn({ query: (sql, params = []) => PgSqlClient.run(c, sql, params) });
      await PgSqlClient.run(c, 'COMMIT', []);
      return out;
    } catch (err) {
      try {
        await c.query('ROLLBACK');
      } catch {
        broken = true;
      }
      throw asSqlError(err);
    } finally {
      c.release(broken);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
