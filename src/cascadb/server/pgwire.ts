// The PostgreSQL wire protocol (v3) server side: TLS (SSLRequest), SCRAM-SHA-256 (cleartext password only
// inside TLS, when enabled), the simple and the extended query protocol (Parse/Bind/Describe/Execute/Sync/
// Close/Flush, pipelined), portals with row limits (PortalSuspended), ErrorResponse with SQLSTATE, and
// skipping to Sync after an error in the extended protocol. The message codec lives in pg-protocol.ts.
import net from 'node:net';
import tls, { type SecureContextOptions } from 'node:tls';
import { randomInt } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Counter, Gauge } from 'prom-client';
import { Metrics, logger } from '../../observe/index.js';
import { PgError, type Prepared, type Result, type Session, type SqlBackend, type TextRow, type UserStore, type ScramVerifier } from './backend.js';
import {
  BackendWriter,
  FrontendParser,
  decodePassword,
  decodeSaslInitialResponse,
  type FrontendMessage,
  type NoticeFields,
} from './pg-protocol.js';
import { ScramExchange, SCRAM_SHA_256, authFailed, makeVerifier, mockVerifier, verifyPassword } from './scram.js';

export interface PgServerOptions {
  backend: SqlBackend;
  users: UserStore;
  host?: string; // default 127.0.0.1
  port: number; // 0 = any free port
  /** When set, SSLRequest is answered 'S' and the connection upgraded; with requireTls, plain connections are refused (28000). */
  tls?: SecureContextOptions;
  requireTls?: boolean;
  /** Also accept AuthenticationCleartextPassword — only ever offered on TLS connections. Default false (SCRAM only). */
  allowCleartextOverTls?: boolean;
  serverVersion?: string; // reported in ParameterStatus server_version, default '16.0 (securegrid cascadb)'
  /** Where connection and query counters go; default a registry of its own (`new Metrics('cascadb')`). */
  metrics?: Metrics;
}

export interface PgServer {
  port: number;
  host: string;
  readonly metrics: Metrics;
  close(): Promise<void>;
}

/** Makes a SCRAM-SHA-256 verifier from a password (random 16-byte salt, 4096 iterations by default). */
export function scramVerifier(password: string, iterations = 4096): ScramVerifier {
  return makeVerifier(password, iterations);
}

/** Output is batched and written when it reaches this size (and at ReadyForQuery, Flush, or before waiting for input). */
const FLUSH_AT = 64 * 1024;
/** Give other connections a turn after this many batches of one long result. */
const YIELD_EVERY = 16;
/** Pause reading a connection that pipelines faster than it is served. */
const QUEUE_HIGH = 1024;
const QUEUE_LOW = 128;
const STARTUP_TIMEOUT_MS = 60_000;
const SHUTDOWN_GRACE_MS = 1000;
const CLIENT_ENCODINGS = new Set(['UTF8', 'UTF-8', 'UNICODE', 'SQL_ASCII', 'AUTO']);

interface PgMetrics {
  connections: Counter<string>;
  open: Gauge<string>;
  authFailures: Counter<string>;
  queries: Counter<string>;
  errors: Counter<string>;
  rows: Counter<string>;
}

function pgMetrics(m: Metrics): PgMetrics {
  // The same Metrics may serve several servers (tests, demo): reuse what is registered.
  const get = <T>(name: string, make: () => T): T => (m.registry.getSingleMetric(name) as T | undefined) ?? make();
  return {
    connections: get('cascadb_pg_connections_total', () => m.counter('cascadb_pg_connections_total', 'PostgreSQL connections accepted')),
    open: get('cascadb_pg_connections_open', () => m.gauge('cascadb_pg_connections_open', 'PostgreSQL connections open')),
    authFailures: get('cascadb_pg_auth_failures_total', () => m.counter('cascadb_pg_auth_failures_total', 'Failed authentications')),
    queries: get('cascadb_pg_queries_total', () =>
      m.counter('cascadb_pg_queries_total', 'Simple Query messages and extended-protocol Executes', ['protocol']),
    ),
    errors: get('cascadb_pg_errors_total', () => m.counter('cascadb_pg_errors_total', 'ErrorResponses sent, by SQLSTATE', ['code'])),
    rows: get('cascadb_pg_rows_sent_total', () => m.counter('cascadb_pg_rows_sent_total', 'DataRows sent')),
  };
}

interface ServerContext {
  o: PgServerOptions;
  secureContext: tls.SecureContext | undefined;
  serverVersion: string;
  metrics: PgMetrics;
  /** Authenticated connections by process id (BackendKeyData), for CancelRequest. */
  connections: Map<number, Connection>;
  /** Every connection, authenticated or not, for shutdown. */
  live: Set<Connection>;
  nextId: number;
}

const log = logger('cascadb-pg');

export async function startPgServer(o: PgServerOptions): Promise<PgServer> {
  if (o.requireTls && !o.tls) throw new Error('requireTls needs tls options');
  const metrics = o.metrics ?? new Metrics('cascadb');
  const ctx: ServerContext = {
    o,
    secureContext: o.tls ? tls.createSecureContext(o.tls) : undefined,
    serverVersion: o.serverVersion ?? '16.0 (securegrid cascadb)',
    metrics: pgMetrics(metrics),
    connections: new Map(),
    live: new Set(),
    nextId: 1,
  };
  const running = new Set<Promise<void>>();
  const server = net.createServer((socket) => {
    const conn = new Connection(ctx, socket);
    const p = conn.run().finally(() => running.delete(p));
    running.add(p);
  });
  server.on('error', (e) => log.warn({ err: e }, 'pg server error'));
  const host = o.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;
  log.info({ host, port, tls: !!o.tls }, 'cascadb pg server listening');
  return {
    port,
    host,
    metrics,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const c of ctx.live) c.shutdown();
      await Promise.allSettled([...running]);
      await closed;
    },
  };
}

/** The client went away; unwinds whatever was in progress. */
class Closed extends Error {}

interface Statement {
  sql: string;
  prepared: Prepared;
  empty: boolean;
}

type RowSource = { sync: true; it: Iterator<TextRow> } | { sync: false; it: AsyncIterator<TextRow> };

interface Portal {
  stmt: Statement;
  params: Array<string | null>;
  result?: Result;
  rows?: RowSource;
  sent: number;
  done: boolean;
}

function rowSource(rows: AsyncIterable<TextRow> | Iterable<TextRow>): RowSource {
  const a = (rows as AsyncIterable<TextRow>)[Symbol.asyncIterator];
  if (typeof a === 'function') return { sync: false, it: a.call(rows) };
  return { sync: true, it: (rows as Iterable<TextRow>)[Symbol.iterator]() };
}

async function closeSource(src: RowSource | undefined): Promise<void> {
  try {
    await src?.it.return?.();
  } catch {
    // the engine's cleanup failing must not take the connection down
  }
}

function noticeOf(e: unknown): NoticeFields {
  if (e instanceof PgError) {
    const f: NoticeFields = { severity: e.extra.severity ?? 'ERROR', code: e.code, message: e.message };
    if (e.extra.detail !== undefined) f.detail = e.extra.detail;
    if (e.extra.hint !== undefined) f.hint = e.extra.hint;
    if (e.extra.position !== undefined) f.position = e.extra.position;
    return f;
  }
  log.warn({ err: e }, 'internal error in a query');
  return { severity: 'ERROR', code: 'XX000', message: `internal error: ${e instanceof Error ? e.message : String(e)}` };
}

/** A binary-format parameter as PostgreSQL text; the types node-postgres and psql may send in binary. */
function binaryParam(v: Buffer, oid: number, n: number): string {
  const bad = (): PgError => new PgError('22P03', `incorrect binary data format in bind parameter ${n}`);
  switch (oid) {
    case 21: // int2
      if (v.length !== 2) throw bad();
      return String(v.readInt16BE(0));
    case 23: // int4
      if (v.length !== 4) throw bad();
      return String(v.readInt32BE(0));
    case 20: // int8
      if (v.length !== 8) throw bad();
      return v.readBigInt64BE(0).toString();
    case 700: // float4
      if (v.length !== 4) throw bad();
      return floatText(v.readFloatBE(0), true);
    case 701: // float8
      if (v.length !== 8) throw bad();
      return floatText(v.readDoubleBE(0), false);
    case 16: // bool
      if (v.length !== 1) throw bad();
      return v[0] ? 't' : 'f';
    case 25: // text
    case 1043: // varchar
    case 1042: // bpchar
    case 19: // name
      if (!isUtf8(v)) throw new PgError('22021', 'invalid byte sequence for encoding "UTF8"');
      return v.toString('utf8');
    case 17: // bytea
      return `\\x${v.toString('hex')}`;
    default:
      throw new PgError('0A000', `binary format for parameter $${n} (type oid ${oid}) is not supported`);
  }
}

/** Shortest text that reads back as the same float (float4: the same single-precision value). */
function floatText(x: number, single: boolean): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (Object.is(x, -0)) return '-0';
  if (!single) return String(x);
  for (let p = 1; p < 10; p++) {
    const s = x.toPrecision(p);
    if (Math.fround(Number(s)) === x) return String(Number(s));
  }
  return String(x);
}

class Connection {
  private sock: net.Socket;
  private parser = new FrontendParser();
  private queue: FrontendMessage[] = [];
  private head = 0;
  private wake: (() => void) | undefined;
  private eof = false;
  private paused = false;
  private readonly out = new BackendWriter();
  private session: Session | undefined;
  private secretKey = 0;
  private readonly statements = new Map<string, Statement>();
  private readonly portals = new Map<string, Portal>();
  private busy = false;
  private cancelRequested = false;
  private closing = false;
  private flushes = 0;

  constructor(
    private readonly ctx: ServerContext,
    raw: net.Socket,
  ) {
    this.sock = raw;
    raw.setNoDelay(true);
    this.attach(raw); // raw keeps its 'error' listener after a TLS upgrade
  }

  private readonly onData = (chunk: Buffer): void => {
    const msgs = this.parser.feed(chunk);
    for (const m of msgs) this.queue.push(m);
    if (!this.paused && this.queue.length - this.head > QUEUE_HIGH) {
      this.paused = true;
      this.sock.pause();
    }
    this.wakeUp();
  };
  private readonly onEnd = (): void => {
    this.eof = true;
    this.wakeUp();
  };
  private readonly onError = (e: Error): void => {
    log.debug({ err: e }, 'pg connection error');
    this.eof = true;
    this.wakeUp();
  };

  private attach(s: net.Socket): void {
    s.on('data', this.onData);
    s.on('end', this.onEnd);
    s.on('close', this.onEnd);
    s.on('error', this.onError);
  }

  private wakeUp(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /**
   * The next frontend message; undefined once the client is gone. Pending output is flushed before waiting,
   * except (flushBeforeWait false) between extended-protocol messages, whose answers wait for Sync or Flush as
   * PostgreSQL's do: a client that writes Bind, Execute and Sync separately gets one write, not three.
   */
  private async next(flushBeforeWait = true): Promise<FrontendMessage | undefined> {
    while (this.head >= this.queue.length) {
      if (this.eof || this.closing) return undefined;
      if (flushBeforeWait) await this.flush();
      if (this.head < this.queue.length || this.eof || this.closing) continue;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    const m = this.queue[this.head++]!;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 4096) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    if (this.paused && this.queue.length - this.head < QUEUE_LOW) {
      this.paused = false;
      this.sock.resume();
    }
    return m;
  }

  /** Writes the batch; waits for 'drain' when the socket says so, which is what bounds memory for big results. */
  private async flush(): Promise<void> {
    if (this.out.length === 0) return;
    const s = this.sock;
    if (s.destroyed || !s.writable) {
      this.out.take();
      throw new Closed();
    }
    if (s.write(this.out.take())) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        s.off('drain', done);
        s.off('close', done);
        resolve();
      };
      s.on('drain', done);
      s.on('close', done);
    });
    if (s.destroyed) throw new Closed();
  }

  /** Server shutdown: FATAL 57P01 to a connected client, then close; a client that does not read is cut off. */
  shutdown(): void {
    if (this.closing) return;
    this.closing = true;
    if (this.session && !this.sock.destroyed) {
      this.out.errorResponse({ severity: 'FATAL', code: '57P01', message: 'terminating connection due to administrator command' });
      this.sock.end(this.out.take());
      setTimeout(() => this.sock.destroy(), SHUTDOWN_GRACE_MS).unref();
    } else {
      this.sock.destroy();
    }
    this.wakeUp();
  }

  /** A CancelRequest for this connection: effective only while a query runs, checked between row batches. */
  cancel(secretKey: number): void {
    if (secretKey === this.secretKey && this.busy) this.cancelRequested = true;
  }

  async run(): Promise<void> {
    const m = this.ctx.metrics;
    this.ctx.live.add(this);
    m.connections.inc();
    m.open.inc();
    const timer = setTimeout(() => this.fatalAndClose({ severity: 'FATAL', code: '08P01', message: 'timeout during startup' }), STARTUP_TIMEOUT_MS);
    timer.unref();
    try {
      const ok = await this.startup();
      clearTimeout(timer);
      if (ok) await this.serve();
    } catch (e) {
      if (!(e instanceof Closed)) {
        if (e instanceof PgError) this.fatalAndClose(noticeOf(e));
        else {
          log.warn({ err: e }, 'pg connection failed');
          this.fatalAndClose({ severity: 'FATAL', code: 'XX000', message: 'internal error' });
        }
      }
    } finally {
      clearTimeout(timer);
      this.ctx.live.delete(this);
      m.open.dec();
      for (const p of this.portals.values()) await closeSource(p.rows);
      this.portals.clear();
      const s = this.session;
      if (s) {
        this.ctx.connections.delete(s.id);
        try {
          await this.ctx.o.backend.close(s);
        } catch (e) {
          log.warn({ err: e }, 'backend close failed');
        }
      }
      if (!this.sock.destroyed) this.sock.end();
      // A client that never reads must not keep the socket open.
      setTimeout(() => this.sock.destroy(), 5000).unref();
    }
  }

  private fatalAndClose(f: NoticeFields): void {
    if (f.severity !== 'FATAL') f = { ...f, severity: 'FATAL' };
    this.ctx.metrics.errors.inc({ code: f.code });
    this.closing = true;
    if (!this.sock.destroyed) {
      this.out.errorResponse(f);
      this.sock.end(this.out.take());
    }
    this.wakeUp();
  }

  private get isTls(): boolean {
    return this.sock instanceof tls.TLSSocket;
  }

  // ---- startup and authentication ----

  /** True when the client is authenticated and the session open; false when the connection is done. */
  private async startup(): Promise<boolean> {
    for (;;) {
      const m = await this.next();
      if (!m) return false;
      switch (m.type) {
        case 'sslRequest':
          if (this.isTls) throw new PgError('08P01', 'SSLRequest on an encrypted connection', { severity: 'FATAL' });
          if (!this.ctx.secureContext) {
            this.sock.write('N');
            continue;
          }
          // Bytes sent after SSLRequest but before the handshake would be plaintext we must not trust (CVE-2021-23214).
          if (this.parser.buffered > 0 || this.head < this.queue.length) {
            throw new PgError('08P01', 'received unencrypted data after SSL request', { severity: 'FATAL' });
          }
          this.sock.write('S');
          this.upgrade();
          continue;
        case 'gssEncRequest':
          this.sock.write('N');
          continue;
        case 'cancelRequest':
          this.ctx.connections.get(m.processId)?.cancel(m.secretKey);
          this.sock.destroy();
          return false;
        case 'protocolError':
          throw new PgError(m.code, m.message, { severity: 'FATAL' });
        case 'startup':
          return this.authenticate(m.protocol, m.params);
        default:
          throw new PgError('08P01', 'expected a startup packet', { severity: 'FATAL' });
      }
    }
  }

  private upgrade(): void {
    const raw = this.sock;
    raw.off('data', this.onData);
    raw.off('end', this.onEnd);
    raw.off('close', this.onEnd);
    const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: this.ctx.secureContext! });
    this.sock = secure;
    this.parser = new FrontendParser();
    this.attach(secure);
  }

  private async authenticate(protocol: number, params: Record<string, string>): Promise<boolean> {
    const o = this.ctx.o;
    const user = params.user;
    if (o.requireTls && !this.isTls) {
      throw new PgError('28000', `no encryption: TLS is required for user "${user ?? ''}"`, { severity: 'FATAL', hint: 'Connect with sslmode=require.' });
    }
    if (!user) throw new PgError('28000', 'no PostgreSQL user name specified in startup packet', { severity: 'FATAL' });
    const encoding = params.client_encoding;
    if (encoding !== undefined && !CLIENT_ENCODINGS.has(encoding.toUpperCase())) {
      throw new PgError('22023', `invalid value for parameter "client_encoding": "${encoding}"`, {
        severity: 'FATAL',
        hint: 'This server speaks UTF8 only.',
      });
    }
    // Protocol 3.x with x > 0, or _pq_ options: answer which minor version and options we take (none).
    const unknownOptions = Object.keys(params).filter((k) => k.startsWith('_pq_.'));
    if ((protocol & 0xffff) !== 0 || unknownOptions.length > 0) this.out.negotiateProtocolVersion(0, unknownOptions);

    const database = params.database || user;
    const verifier = await o.users.verifier(user);
    if (o.allowCleartextOverTls && this.isTls) await this.cleartext(user, verifier);
    else await this.scram(user, verifier);

    const sessionParams: Record<string, string> = {};
    for (const [k, v] of Object.entries(params)) if (k !== 'user' && k !== 'database') sessionParams[k] = v;
    const session: Session = { id: this.ctx.nextId++, user, database, params: sessionParams, txStatus: 'I', state: {} };
    await o.backend.open(session);
    this.session = session;
    this.secretKey = randomInt(-0x80000000, 0x7fffffff);
    this.ctx.connections.set(session.id, this);

    const w = this.out;
    w.authenticationOk();
    const status: Array<[string, string]> = [
      ['application_name', params.application_name ?? ''],
      ['client_encoding', 'UTF8'],
      ['DateStyle', 'ISO, MDY'],
      ['default_transaction_read_only', 'off'],
      ['in_hot_standby', 'off'],
      ['integer_datetimes', 'on'],
      ['IntervalStyle', 'postgres'],
      ['is_superuser', 'off'],
      ['server_encoding', 'UTF8'],
      ['server_version', this.ctx.serverVersion],
      ['session_authorization', user],
      ['standard_conforming_strings', 'on'],
      ['TimeZone', 'UTC'],
    ];
    for (const [k, v] of status) w.parameterStatus(k, v);
    w.backendKeyData(session.id, this.secretKey);
    w.readyForQuery(session.txStatus);
    await this.flush();
    return true;
  }

  /** The next message, which must be a 'p' (password / SASL) message. */
  private async authMessage(): Promise<Buffer | undefined> {
    const m = await this.next();
    if (!m || m.type === 'terminate') return undefined;
    if (m.type === 'protocolError') throw new PgError(m.code, m.message, { severity: 'FATAL' });
    if (m.type !== 'password') throw new PgError('08P01', `expected password response, got ${m.type}`, { severity: 'FATAL' });
    return m.data;
  }

  private async cleartext(user: string, verifier: ScramVerifier | undefined): Promise<void> {
    this.out.authenticationCleartextPassword();
    const data = await this.authMessage();
    if (!data) throw new Closed();
    const password = decodePassword(data);
    if (password === undefined) throw new PgError('08P01', 'invalid password packet', { severity: 'FATAL' });
    const ok = await verifyPassword(verifier ?? mockVerifier(user), password);
    if (!ok || !verifier) this.authFailure(user);
  }

  private async scram(user: string, verifier: ScramVerifier | undefined): Promise<void> {
    this.out.authenticationSASL([SCRAM_SHA_256]);
    const initial = await this.authMessage();
    if (!initial) throw new Closed();
    const first = decodeSaslInitialResponse(initial);
    if (!first) throw new PgError('08P01', 'malformed SASLInitialResponse', { severity: 'FATAL' });
    if (first.mechanism !== SCRAM_SHA_256) {
      throw new PgError('08P01', 'client selected an invalid SASL authentication mechanism', { severity: 'FATAL' });
    }
    const exchange = new ScramExchange(user, verifier);
    this.out.authenticationSASLContinue(exchange.first(first.response.toString('utf8')));
    const response = await this.authMessage();
    if (!response) throw new Closed();
    let serverFinal: string;
    try {
      serverFinal = exchange.final(response.toString('utf8'));
    } catch (e) {
      if (e instanceof PgError && e.code === '28P01') this.authFailure(user);
      throw e;
    }
    this.out.authenticationSASLFinal(serverFinal);
  }

  private authFailure(user: string): never {
    this.ctx.metrics.authFailures.inc();
    throw authFailed(user);
  }

  // ---- queries ----

  private async serve(): Promise<void> {
    let skipping = false; // after an error in an extended-protocol message, until Sync
    for (;;) {
      const m = await this.next(false);
      if (!m || m.type === 'terminate') return;
      if (m.type === 'protocolError') throw new PgError(m.code, m.message, { severity: 'FATAL' });
      if (skipping && m.type !== 'sync') continue;
      try {
        switch (m.type) {
          case 'query':
            await this.simpleQuery(m.sql);
            break;
          case 'parse':
            await this.parse(m.name, m.sql, m.paramOids);
            break;
          case 'bind':
            await this.bind(m);
            break;
          case 'describe':
            this.describe(m.kind, m.name);
            break;
          case 'execute':
            await this.execute(m.portal, m.maxRows);
            break;
          case 'close':
            if (m.kind === 'S') this.statements.delete(m.name);
            else await this.dropPortal(m.name);
            this.out.closeComplete();
            break;
          case 'sync':
            skipping = false;
            await this.readyForQuery();
            break;
          case 'flush':
            await this.flush();
            break;
          case 'functionCall':
            this.sendError(new PgError('0A000', 'the function call protocol is not supported'));
            await this.readyForQuery();
            break;
          default:
            throw new PgError('08P01', `unexpected message ${m.type}`, { severity: 'FATAL' });
        }
      } catch (e) {
        if (e instanceof Closed) throw e;
        if (e instanceof PgError && e.extra.severity === 'FATAL') throw e;
        this.sendError(e);
        skipping = true; // only extended-protocol messages get here: a simple Query answers its own errors
      }
    }
  }

  private sendError(e: unknown): void {
    const f = noticeOf(e);
    this.ctx.metrics.errors.inc({ code: f.code });
    this.out.errorResponse(f);
  }

  private async readyForQuery(): Promise<void> {
    const s = this.session!;
    this.busy = false;
    this.cancelRequested = false;
    // Outside a transaction block, portals end with the implicit transaction.
    if (s.txStatus === 'I' && this.portals.size > 0) {
      for (const name of [...this.portals.keys()]) await this.dropPortal(name);
    }
    this.out.readyForQuery(s.txStatus);
    await this.flush();
  }

  private async simpleQuery(sql: string): Promise<void> {
    const s = this.session!;
    this.busy = true;
    this.ctx.metrics.queries.inc({ protocol: 'simple' });
    this.statements.delete('');
    await this.dropPortal('');
    try {
      let results = 0;
      for await (const r of this.ctx.o.backend.simpleQuery(s, sql)) {
        results++;
        if (r.fields) this.out.rowDescription(r.fields);
        const src = rowSource(r.rows);
        const state = { sent: 0 };
        try {
          await this.stream(src, 0, state, r.fields !== null);
        } catch (e) {
          await closeSource(src);
          throw e;
        }
        this.out.commandComplete(r.tag(state.sent));
      }
      if (results === 0) this.out.emptyQueryResponse();
    } catch (e) {
      if (e instanceof Closed) throw e;
      if (e instanceof PgError && e.extra.severity === 'FATAL') throw e;
      this.sendError(e);
    }
    await this.readyForQuery();
  }

  /**
   * Pulls up to `limit` rows (0 = all) into DataRows, flushing in batches. Returns true when the rows are
   * exhausted. `emit` false drains a row source without sending (a statement that declared no columns).
   */
  private async stream(src: RowSource, limit: number, state: { sent: number }, emit: boolean): Promise<boolean> {
    const out = this.out;
    let n = 0;
    let done = false;
    try {
      for (;;) {
        if (limit > 0 && n >= limit) break;
        const r = src.sync ? src.it.next() : await src.it.next();
        if (r.done) {
          done = true;
          break;
        }
        if (!emit) continue;
        out.dataRow(r.value);
        n++;
        if (out.length >= FLUSH_AT) {
          await this.flush();
          if (this.cancelRequested) throw new PgError('57014', 'canceling statement due to user request');
          if (++this.flushes % YIELD_EVERY === 0) await yieldToLoop();
        }
      }
    } finally {
      state.sent += n;
      this.ctx.metrics.rows.inc(n);
    }
    return done;
  }

  private async parse(name: string, sql: string, paramOids: number[]): Promise<void> {
    if (name !== '' && this.statements.has(name)) throw new PgError('42P05', `prepared statement "${name}" already exists`);
    this.busy = true;
    const empty = sql.trim() === '';
    const prepared = empty ? { paramOids: [], fields: null } : await this.ctx.o.backend.prepare(this.session!, sql, paramOids);
    this.statements.set(name, { sql, prepared, empty });
    this.out.parseComplete();
  }

  private async bind(m: Extract<FrontendMessage, { type: 'bind' }>): Promise<void> {
    this.busy = true;
    const stmt = this.statements.get(m.statement);
    if (!stmt) {
      throw new PgError('26000', m.statement === '' ? 'unnamed prepared statement does not exist' : `prepared statement "${m.statement}" does not exist`);
    }
    if (m.portal !== '' && this.portals.has(m.portal)) throw new PgError('42P03', `portal "${m.portal}" already exists`);
    const oids = stmt.prepared.paramOids;
    const n = m.params.length;
    if (n !== oids.length) {
      throw new PgError('08P01', `bind message supplies ${n} parameters, but prepared statement "${m.statement}" requires ${oids.length}`);
    }
    const nf = m.paramFormats.length;
    if (nf > 1 && nf !== n) throw new PgError('08P01', `bind message has ${nf} parameter formats but ${n} parameters`);
    const params = new Array<string | null>(n);
    for (let i = 0; i < n; i++) {
      const v = m.params[i]!;
      const format = nf === 0 ? 0 : nf === 1 ? m.paramFormats[0]! : m.paramFormats[i]!;
      if (format !== 0 && format !== 1) throw new PgError('22023', `unsupported format code: ${format}`);
      if (v === null) params[i] = null;
      else if (format === 1) params[i] = binaryParam(v, oids[i]!, i + 1);
      else if (!isUtf8(v)) throw new PgError('22021', 'invalid byte sequence for encoding "UTF8"');
      else params[i] = v.toString('utf8');
    }
    for (const f of m.resultFormats) if (f !== 0 && f !== 1) throw new PgError('22023', `unsupported format code: ${f}`);
    const fields = stmt.prepared.fields;
    if (fields) {
      const nr = m.resultFormats.length;
      if (nr > 1 && nr !== fields.length) throw new PgError('08P01', `bind message has ${nr} result formats but query has ${fields.length} columns`);
      if (m.resultFormats.includes(1) && fields.length > 0) throw new PgError('0A000', 'binary result format is not supported');
    }
    await this.dropPortal(m.portal);
    this.portals.set(m.portal, { stmt, params, sent: 0, done: false });
    this.out.bindComplete();
  }

  private describe(kind: 'S' | 'P', name: string): void {
    this.busy = true;
    if (kind === 'S') {
      const stmt = this.statements.get(name);
      if (!stmt) throw new PgError('26000', name === '' ? 'unnamed prepared statement does not exist' : `prepared statement "${name}" does not exist`);
      // Unspecified parameter types go out as text (25).
      this.out.parameterDescription(stmt.prepared.paramOids.map((o) => (o === 0 ? 25 : o)));
      const fields = stmt.prepared.fields;
      if (fields) this.out.rowDescription(fields);
      else this.out.noData();
      return;
    }
    const portal = this.portals.get(name);
    if (!portal) throw new PgError('34000', `portal "${name}" does not exist`);
    const fields = portal.result ? portal.result.fields : portal.stmt.prepared.fields;
    if (fields) this.out.rowDescription(fields);
    else this.out.noData();
  }

  private async execute(name: string, maxRows: number): Promise<void> {
    const portal = this.portals.get(name);
    if (!portal) throw new PgError('34000', `portal "${name}" does not exist`);
    this.busy = true;
    this.ctx.metrics.queries.inc({ protocol: 'extended' });
    if (portal.stmt.empty) {
      this.out.emptyQueryResponse();
      return;
    }
    if (portal.done) {
      // Run to completion already: nothing more to fetch.
      if (!portal.result!.fields) throw new PgError('55000', `portal "${name}" cannot be run`);
      this.out.commandComplete(portal.result!.tag(0));
      return;
    }
    try {
      if (!portal.result) {
        portal.result = await this.ctx.o.backend.execute(this.session!, portal.stmt.sql, portal.stmt.prepared, portal.params);
        portal.rows = rowSource(portal.result.rows);
      }
      const done = await this.stream(portal.rows!, maxRows > 0 ? maxRows : 0, portal, portal.result.fields !== null);
      if (done) {
        portal.done = true;
        portal.rows = undefined;
        this.out.commandComplete(portal.result.tag(portal.sent));
      } else {
        this.out.portalSuspended();
      }
    } catch (e) {
      // A failed portal is gone (PostgreSQL drops it with the aborted transaction).
      await this.dropPortal(name);
      throw e;
    }
  }

  private async dropPortal(name: string): Promise<void> {
    const p = this.portals.get(name);
    if (!p) return;
    this.portals.delete(name);
    await closeSource(p.rows);
  }
}
