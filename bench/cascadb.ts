// `npm run bench:cascadb`: CascaDB over the PostgreSQL wire protocol, beside PostgreSQL on the same machine in
// the same run.
//
// What runs (all on 127.0.0.1; CascaDB's data in a temp dir removed at the end):
//   - CascaDB: `securegrid cascadb --embedded` (gateway + 9 local LMDB storage nodes, replicate:3, every row an
//     encrypted KVS object) in a CHILD PROCESS, as an operator runs it. The load generator is this process.
//     Why a child: on 2 cores an in-process client shares CascaDB's one JavaScript thread (node-postgres
//     encoding 2,500 parameters per INSERT, parsing every DataRow), so the server gets only what the client
//     leaves, while PostgreSQL's backends never share a thread with the client — the comparison would be
//     skewed against CascaDB. In a child the OS schedules the two event loops on the 2 cores, as it does
//     for PostgreSQL's backends, and the server's CPU (all threads, /proc/<pid>/stat) is measured on its own.
//     `--cascadb inproc` runs startCascadb() in this process instead, for comparison (no server CPU figure).
//     Measured back to back on the 2-core box (default flags, load average ~5 from other work), CascaDB
//     child vs in-process: INSERT 7.6–10.4k vs 10.1k rows/s, point 7.0–8.0k vs 8.2k SELECT/s, range 30–45k
//     vs 37k rows/s, SELECT * 37–48k vs 24k rows/s. The server's own event loop is the bottleneck either way
//     (~0.95 cores of CPU in the child); only the row-heavy SELECT * loses much to an in-process client
//     (node-postgres parsing 205,000 rows on the server's thread). The child is the default.
//   - Reference: the real PostgreSQL server at --pg-url (default postgres://postgres@127.0.0.1:5432/test), in
//     a fresh schema dropped at the end; its CPU is the sum over every process named `postgres` (backends,
//     WAL writer, checkpointer) — other users of that server during the run count too. When no server
//     answers (or with --reference pglite), PGlite runs in this process: no wire, in memory, no fsync —
//     labelled "PGlite (in-process, no wire)"; its ratios flatter it (no protocol, no durability) and its
//     CPU is this process's.
//   - Clients: node-postgres (`pg`), one Client per concurrent worker, plain TCP (TLS off on loopback for
//     both: CascaDB allows it without --require-tls), rowMode 'array', named prepared statements (Parse
//     once per connection, then Bind/Execute), so the comparison is protocol-for-protocol. Both servers are
//     durable: PostgreSQL with fsync and synchronous_commit as configured (reported), CascaDB's LMDB nodes
//     with synchronous commits.
//
// Workloads, the same schema and the same statements on both systems, one system after the other:
//   CREATE TABLE reading (meter_id text, ts bigint, kwh double precision, v double precision,
//                         i double precision, PRIMARY KEY (meter_id, ts))
//   1. batched INSERT: `INSERT INTO reading (…) VALUES ($1,…,$5),…` with 500 rows (2,500 parameters) per
//      statement, from --insert-clients (4) concurrent clients, until --rows (200,000) rows are in; rows/s.
//      Batch b holds readings [500·⌊b/M⌋, +500) of meter b mod M (a meter uploads a day's readings), every
//      15 minutes. --warmup-batches batches of other meters go in first, untimed. A run that reaches
//      --insert-max-seconds stops there: the reads then only touch rows that both systems hold.
//   2. point SELECT: `… WHERE meter_id = $1 AND ts = $2` on random existing keys, --point-clients (32)
//      clients; SELECT/s, p50/p99.
//   3. range scan: `… WHERE meter_id = $1 AND ts BETWEEN $2 AND $3`, 1,000 rows each, --range-clients (4)
//      clients; rows/s. Then the whole table, one client: `SELECT count(*)` (rows counted/s) and `SELECT *`
//      (rows streamed/s).
// Each figure has its ratio CascaDB ÷ reference. Targets (the issue): ≥ 1.0× for point SELECTs and batched
// INSERTs. The default run takes about 2–3 minutes on 2 cores; --rows, --seconds and the client counts scale it.
//
// Profiling (--profile): the CascaDB child runs under `node --cpu-prof`; after the run the profile is cut into
// the workloads' time windows (the monotonic clock is shared by the processes) and summarised: self time per
// function, and each sample's time attributed to the deepest frame in our code or in a dependency (so that
// native crypto or socket writes count towards the code that called them), grouped by file and by
// component. Profiling slows CascaDB down (~10–20 %): use its figures for where the time goes, not for ratios.
//
// The last line of stdout is one JSON object with every figure and ratio. This is a measurement, not a test: it
// never fails on a figure (exit 1 only when statements fail).
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import {
  closedLoop,
  coresUsed,
  cpuBetween,
  cpuSnapshot,
  num,
  pidsByComm,
  printJsonLast,
  procCpuSeconds,
  ratio,
  readCpuProfile,
  round,
  sliceCpuProfile,
  table,
  type LoadStats,
  type ProfileFrame,
  type ProfileSlice,
} from './lib.js';

const USAGE = `usage: node dist/bench/cascadb.js [options]
  --rows N                 rows loaded by the batched INSERT run (default 200000; a multiple of 500)
  --per-meter N            readings per meter (default 2000; a multiple of 500, ≥ 1000)
  --insert-clients N       concurrent INSERT clients (default 4)
  --warmup-batches N       untimed 500-row batches before the INSERT run (default 10)
  --insert-max-seconds S   stop the INSERT run after S seconds (default 120)
  --seconds S              measured seconds of the point and range runs (default 8)
  --warmup S               untimed seconds before each of them (default 1)
  --point-clients N        concurrent point-SELECT clients (default 32)
  --range-clients N        concurrent range-scan clients (default 4)
  --scan-seconds S         measured seconds of each full-table run (default 4; at least one query)
  --workloads LIST         insert,point,range,count,scan (default all; reads need the INSERT run)
  --reference KIND         auto | postgres | pglite | none (default auto: postgres when it answers)
  --pg-url URL             the reference server (default postgres://postgres@127.0.0.1:5432/test)
  --cascadb MODE           process | inproc (default process: a child \`securegrid cascadb --embedded\`)
  --profile                run the CascaDB child under node --cpu-prof and summarise where its time goes
  --profile-out FILE       also keep the .cpuprofile there (open it in Chrome DevTools)
  --keep                   keep CascaDB's data directory
  --direct                 instead of all the above: the ingest service's transaction in process (Engine over
                           EmbeddedKvStore, replicate:3, 9 nodes): BEGIN; INSERT … ON CONFLICT DO NOTHING of
                           --tx-rows reading rows × 23 columns in 1,024-row statements; INSERT of the batch row;
                           COMMIT — as src/ingest/batch.ts sends it. Prints rows/s and CPU µs per row
  --transactions N         measured transactions of --direct (default 20, after 2 untimed)
  --tx-rows N              reading rows per transaction of --direct (default 4096)
  --redeliver              --direct: every transaction is sent twice (the second stores nothing: all conflicts)`;

const ROWS_PER_BATCH = 500;
const RANGE_ROWS = 1000;
const T0 = 1_704_067_200_000; // 2024-01-01T00:00:00Z, ms
const STEP = 900_000; // 15 minutes
const USER = 'bench';
const COLS = 'meter_id, ts, kwh, v, i';
const CREATE = 'CREATE TABLE reading (meter_id text, ts bigint, kwh double precision, v double precision, i double precision, PRIMARY KEY (meter_id, ts))';
const INSERT_SQL = `INSERT INTO reading (${COLS}) VALUES ${Array.from({ length: ROWS_PER_BATCH }, (_, r) => `(${[1, 2, 3, 4, 5].map((c) => `$${r * 5 + c}`).join(', ')})`).join(', ')}`;
const POINT_SQL = `SELECT ${COLS} FROM reading WHERE meter_id = $1 AND ts = $2`;
const RANGE_SQL = `SELECT ${COLS} FROM reading WHERE meter_id = $1 AND ts BETWEEN $2 AND $3`;
const COUNT_SQL = 'SELECT count(*) FROM reading';
const SCAN_SQL = `SELECT ${COLS} FROM reading`;

type SystemKey = 'cascadb' | 'postgres' | 'pglite';
type Workload = 'insert' | 'point' | 'range' | 'count' | 'scan';
const WORKLOADS: Workload[] = ['insert', 'point', 'range', 'count', 'scan'];
const UNIT: Record<Workload, string> = { insert: 'rows/s', point: 'SELECT/s', range: 'rows/s', count: 'rows/s', scan: 'rows/s' };
const TITLE: Record<Workload, string> = {
  insert: `batched INSERT (${ROWS_PER_BATCH} rows/stmt)`,
  point: 'PK point SELECT',
  range: `range scan (${RANGE_ROWS} rows/stmt)`,
  count: 'full table count(*)',
  scan: 'full table SELECT *',
};

interface QueryResult {
  rows: unknown[][];
  rowCount: number | null;
}

/** One system under test: a connection per worker, and its server's CPU. */
interface System {
  key: SystemKey;
  label: string;
  version: string;
  wire: boolean;
  /** Runs a statement on worker w's connection; `name` makes it a named prepared statement. */
  query(w: number, text: string, values?: unknown[], name?: string): Promise<QueryResult>;
  /** Starts a window on the server's CPU; the function gives the CPU seconds used since. NaN when unknown. */
  cpuWindow(): () => number;
  /** Where the server's CPU comes from, for the report. */
  cpuNote: string;
  close(): Promise<void>;
}

// ------------------------------------------------------------------ systems

async function connectAll(n: number, cfg: pg.ClientConfig): Promise<pg.Client[]> {
  const clients: pg.Client[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const c = new pg.Client(cfg);
      // A server that goes away mid-run is reported by the failing query, not as an unhandled 'error'.
      c.on('error', () => undefined);
      await c.connect();
      clients.push(c);
    }
  } catch (err) {
    await Promise.allSettled(clients.map((c) => c.end()));
    throw err;
  }
  return clients;
}

function wireQuery(clients: pg.Client[]) {
  return async (w: number, text: string, values?: unknown[], name?: string): Promise<QueryResult> => {
    const r = await clients[w]!.query({ text, values, rowMode: 'array', ...(name ? { name } : {}) });
    return { rows: r.rows as unknown[][], rowCount: r.rowCount };
  };
}

/** `securegrid cascadb --embedded` in a child process; resolves once it prints its port. */
async function startCascadbChild(dataDir: string, password: string, profileDir?: string): Promise<{ child: ChildProcess; port: number; stop(): Promise<void> }> {
  const bin = fileURLToPath(new URL('../../bin/securegrid.js', import.meta.url));
  const nodeArgs = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  const args = [...nodeArgs, bin, 'cascadb', '--embedded', '--data', dataDir, '--user', USER, '--password', password, '--host', '127.0.0.1', '--pg-port', '0', '--http-port', '0'];
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SECUREGRID_LOG_LEVEL: process.env.SECUREGRID_LOG_LEVEL ?? 'warn' },
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 20_000) stderr = stderr.slice(-10_000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`cascadb did not start within 60 s\n${stderr}`)), 60_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on postgresql:\/\/[^@]*@[^:]+:(\d+)\//.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`cascadb exited (${code}) before listening\n${stderr}`));
    });
  });
  return {
    child,
    port,
    async stop() {
      if (child.exitCode !== null) return;
      // SIGTERM: `securegrid cascadb` closes and exits normally, which is when --cpu-prof writes its profile.
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(t);
    },
  };
}

async function cascadbSystem(mode: string, root: string, connections: number, profileDir: string | undefined, cleanups: Array<() => Promise<unknown>>): Promise<System> {
  const password = `bench-${process.pid}-${Date.now()}`;
  const dataDir = join(root, 'cascadb');
  let port: number;
  let pid: number | undefined;
  let label: string;
  if (mode === 'process') {
    const c = await startCascadbChild(dataDir, password, profileDir);
    cleanups.push(() => c.stop());
    port = c.port;
    pid = c.child.pid;
    label = 'CascaDB (child process)';
  } else {
    const { startCascadb } = await import('../src/cascadb/index.js');
    const db = await startCascadb({ embedded: { dataDir }, host: '127.0.0.1', pgPort: 0, httpPort: -1, user: USER, password });
    cleanups.push(() => db.close());
    port = db.pgPort;
    label = 'CascaDB (in-process)';
  }
  const clients = await connectAll(connections, { host: '127.0.0.1', port, user: USER, password, database: 'securegrid', ssl: false });
  const version = String((await clients[0]!.query('SHOW server_version')).rows[0]?.server_version ?? '?');
  return {
    key: 'cascadb',
    label,
    version,
    wire: true,
    query: wireQuery(clients),
    cpuWindow() {
      if (pid === undefined) return () => NaN;
      const a = procCpuSeconds(pid);
      return () => {
        const b = procCpuSeconds(pid!);
        return a === undefined || b === undefined ? NaN : b - a;
      };
    },
    cpuNote: pid !== undefined ? `the cascadb child process (pid ${pid}, all threads)` : 'not measured (in-process: shared with the client)',
    async close() {
      await Promise.allSettled(clients.map((c) => c.end()));
    },
  };
}

async function postgresSystem(url: string, connections: number): Promise<System & { settings: Record<string, string> }> {
  const schema = `sgbench_${process.pid}_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: url, ssl: false, connectionTimeoutMillis: 3000 });
  admin.on('error', () => undefined);
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  let clients: pg.Client[];
  try {
    clients = await connectAll(connections, { connectionString: url, ssl: false, options: `-c search_path=${schema}` });
  } catch (err) {
    await admin.query(`DROP SCHEMA ${schema} CASCADE`).catch(() => undefined);
    await admin.end();
    throw err;
  }
  const settings: Record<string, string> = {};
  for (const s of ['server_version', 'fsync', 'synchronous_commit', 'shared_buffers', 'wal_level']) {
    settings[s] = String((await admin.query(`SHOW ${s}`)).rows[0]?.[s] ?? '?');
  }
  const u = new URL(url);
  return {
    key: 'postgres',
    label: `PostgreSQL ${settings.server_version!.split(' ')[0]} (server)`,
    version: settings.server_version!,
    wire: true,
    settings,
    query: wireQuery(clients),
    cpuWindow() {
      const a = cpuSnapshot(pidsByComm('postgres'));
      return () => (a.size === 0 ? NaN : cpuBetween(a, cpuSnapshot(pidsByComm('postgres'))));
    },
    cpuNote: `every process named postgres on this machine (${u.host})`,
    async close() {
      await Promise.allSettled(clients.map((c) => c.end()));
      await admin.query(`DROP SCHEMA ${schema} CASCADE`).catch((e: Error) => process.stderr.write(`could not drop schema ${schema}: ${e.message}\n`));
      await admin.end();
    },
  };
}

async function pgliteSystem(): Promise<System> {
  const { PGlite } = await import('@electric-sql/pglite');
  const db = new PGlite();
  await db.waitReady;
  const version = String(((await db.query<{ v: string }>('SELECT version() AS v')).rows[0]?.v ?? '?').split(' ').slice(0, 2).join(' '));
  return {
    key: 'pglite',
    label: 'PGlite (in-process, no wire)',
    version,
    wire: false,
    async query(_w, text, values) {
      const r = await db.query(text, values ?? [], { rowMode: 'array' });
      return { rows: r.rows as unknown[][], rowCount: r.affectedRows ?? r.rows.length };
    },
    cpuWindow() {
      const a = process.cpuUsage();
      return () => {
        const b = process.cpuUsage();
        return (b.user - a.user + b.system - a.system) / 1e6;
      };
    },
    cpuNote: 'this process (PGlite runs in it, beside the client)',
    async close() {
      await db.close();
    },
  };
}

// ------------------------------------------------------------------ data

/** A small seeded PRNG (mulberry32): the same rows and keys on every system. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const meterName = (prefix: string, m: number) => `${prefix}${String(m).padStart(6, '0')}`;

/** The 2,500 parameters of batch b: readings [500·⌊b/M⌋, +500) of meter b mod M. */
function batchValues(prefix: string, b: number, meters: number): unknown[] {
  const meter = meterName(prefix, b % meters);
  const first = Math.floor(b / meters) * ROWS_PER_BATCH;
  const r = rng(b * 7919 + prefix.charCodeAt(0));
  const out: unknown[] = new Array(ROWS_PER_BATCH * 5);
  for (let k = 0; k < ROWS_PER_BATCH; k++) {
    out[k * 5] = meter;
    out[k * 5 + 1] = T0 + (first + k) * STEP;
    out[k * 5 + 2] = Math.round(r() * 2_500_000) / 1e6; // kWh per 15 min
    out[k * 5 + 3] = 220 + Math.round(r() * 20_000) / 1000; // V
    out[k * 5 + 4] = Math.round(r() * 40_000) / 1000; // A
  }
  return out;
}

// ------------------------------------------------------------------ measurement

interface Measured {
  workload: Workload;
  system: SystemKey;
  label: string;
  stats: LoadStats;
  /** Units per second: rows/s, or SELECT/s for point. */
  rate: number;
  /** Rows per operation (500 per INSERT, 1 per point SELECT, …). */
  unitsPerOp: number;
  serverCpuSeconds: number;
  clientCores: number;
  wallSeconds: number;
  /** The run's window on the monotonic clock, µs (the clock of --cpu-prof's samples). */
  windowUs: [number, number];
  ratio?: number;
}

const monoUs = () => Number(process.hrtime.bigint() / 1000n);

async function measure(sys: System, workload: Workload, unitsPerOp: (stats: LoadStats) => number, run: () => Promise<LoadStats & { seqs: number[] }>): Promise<Measured> {
  const cpu = sys.cpuWindow();
  const c0 = process.cpuUsage();
  const w0 = performance.now();
  const m0 = monoUs();
  const full = await run();
  const m1 = monoUs();
  const wall = (performance.now() - w0) / 1000;
  const { seqs: _seqs, ...stats } = full;
  const units = unitsPerOp(stats);
  const serverCpu = cpu();
  const r: Measured = {
    workload,
    system: sys.key,
    label: sys.label,
    stats,
    rate: (stats.ops * units) / Math.max(stats.seconds, 1e-9),
    unitsPerOp: units,
    serverCpuSeconds: serverCpu,
    clientCores: coresUsed(c0, process.cpuUsage(), wall),
    wallSeconds: wall,
    windowUs: [m0, m1],
  };
  if (stats.errors) process.stderr.write(`${sys.key} ${workload}: ${stats.errors} errors, first: ${stats.firstError}\n`);
  process.stderr.write(`  ${sys.key.padEnd(9)} ${workload.padEnd(7)} ${num(r.rate).padStart(10)} ${UNIT[workload].padEnd(9)} p50 ${stats.p50Ms.toFixed(2)} ms  p99 ${stats.p99Ms.toFixed(2)} ms  srv ${Number.isFinite(serverCpu) ? (serverCpu / wall).toFixed(2) : '-'} cores\n`);
  return r;
}

// ------------------------------------------------------------------ profile attribution

/** A component of CascaDB for a file of ours or a dependency. */
function component(file: string): string {
  if (file.startsWith('libpg-query') || file.startsWith('wasm')) return 'SQL parse (libpg-query)';
  if (file.includes('src/cascadb/server/')) return 'pg wire protocol (server/)';
  if (file.includes('src/cascadb/sql/engine')) return 'SQL engine (sql/engine)';
  if (file.includes('src/cascadb/sql/')) return 'planner/executor/types (sql/)';
  if (file.includes('src/cascadb/codec/')) return 'row/key codec (codec/)';
  if (file.includes('src/cascadb/')) return 'CascaDB other';
  if (file.includes('src/kvs/embedded') || file.includes('src/kvs/client/')) return 'EmbeddedKvStore (kvs/embedded)';
  if (file.includes('src/kvs/gateway/meta-store')) return 'KVS meta store (gateway/meta-store)';
  if (file.includes('src/kvs/gateway/')) return 'KVS object layer (gateway/)';
  if (file.includes('src/kvs/node/')) return 'KVS storage nodes (node/)';
  if (file.includes('src/kvs/erasure/')) return 'KVS replication/erasure (erasure/)';
  if (file.includes('src/crypto/')) return 'encryption (src/crypto)';
  if (file.startsWith('node:crypto')) return 'node crypto (native)';
  if (file.startsWith('lmdb') || file.startsWith('msgpackr')) return 'LMDB + msgpackr';
  if (file.startsWith('prom-client')) return 'metrics (prom-client)';
  if (file.startsWith('pino')) return 'logging (pino)';
  if (file === '(garbage collector)') return 'GC';
  if (file === '(idle)') return 'idle';
  if (file.startsWith('node:') || file === '(program)' || file === '(native)') return 'node/V8 runtime (sockets, timers, promises)';
  return 'other';
}

/**
 * One sample's stack (leaf first) → the file it is charged to: the deepest frame in our code (dist/src) or a
 * dependency (node_modules, libpg-query's wasm), so that native and node-internal time goes to its caller.
 * Native crypto called from our code is split out as `node:crypto ← caller`, since "encryption" is a question
 * of its own.
 */
function attribute(stack: ProfileFrame[]): string {
  const leaf = stack[0]!;
  if (leaf.functionName === '(garbage collector)' || leaf.functionName === '(idle)' || leaf.functionName === '(program)') return leaf.functionName;
  let viaCrypto = false;
  for (const f of stack) {
    const u = f.url;
    if (u.includes('node:internal/crypto') || u === 'node:crypto') viaCrypto = true;
    if (u.startsWith('wasm://')) return 'wasm (libpg-query)';
    const nm = u.lastIndexOf('node_modules/');
    if (nm >= 0) {
      const pkg = u.slice(nm + 13).split('/');
      return pkg[0]!.startsWith('@') ? `${pkg[0]}/${pkg[1]}` : pkg[0]!;
    }
    const d = buildSrc(u);
    if (d >= 0) {
      const file = u.slice(d).replace(/\.js$/, '.ts');
      return viaCrypto && !file.startsWith('src/crypto/') ? `node:crypto ← ${file}` : file;
    }
  }
  // Nothing of ours on the stack: the event loop, socket reads, promise jobs.
  const inner = stack.find((f) => f.url.startsWith('node:'));
  return inner ? inner.url.replace(/^node:(internal\/)?/, 'node:').split('/').slice(0, 2).join('/') : '(native)';
}

/** Where `src/` starts in a compiled file's url (dist/ or a .build/<dir>/ of one's own), or -1. */
function buildSrc(u: string): number {
  const m = /\/(?:dist|\.build\/[^/]+)\/src\//.exec(u);
  return m ? m.index + m[0].length - 4 : -1;
}

function componentOf(label: string): string {
  if (label.startsWith('node:crypto ←')) return 'node crypto (native)';
  if (label.startsWith('wasm')) return 'SQL parse (libpg-query)';
  return component(label);
}

interface ProfileReport {
  workload: Workload;
  busyMs: number;
  wallMs: number;
  /** CPU of the whole child (all threads) in the window, ms: the rest beyond busyMs ran off the main thread. */
  processCpuMs: number;
  components: Array<{ component: string; ms: number; pct: number }>;
  files: Array<{ file: string; ms: number; pct: number }>;
  functions: Array<{ name: string; file: string; ms: number; pct: number }>;
}

function summariseProfile(slice: ProfileSlice, m: Measured): ProfileReport {
  const busy = slice.totalMs - slice.idleMs;
  const pct = (ms: number) => round((100 * ms) / Math.max(busy, 1e-9), 1);
  const comps = new Map<string, number>();
  for (const a of slice.attributed) {
    if (a.label === '(idle)') continue;
    const c = componentOf(a.label);
    comps.set(c, (comps.get(c) ?? 0) + a.ms);
  }
  return {
    workload: m.workload,
    busyMs: round(busy, 0),
    wallMs: round(slice.totalMs, 0),
    processCpuMs: round(m.serverCpuSeconds * 1000, 0),
    components: [...comps].sort((a, b) => b[1] - a[1]).map(([component, ms]) => ({ component, ms: round(ms, 0), pct: pct(ms) })),
    files: slice.attributed.filter((a) => a.label !== '(idle)').slice(0, 20).map((a) => ({ file: a.label, ms: round(a.ms, 0), pct: pct(a.ms) })),
    functions: slice.functions
      .filter((f) => f.name !== '(idle)')
      .slice(0, 25)
      .map((f) => ({ name: f.name, file: `${f.file}:${f.line}`, ms: round(f.ms, 0), pct: pct(f.ms) })),
  };
}

// ------------------------------------------------------------------ --direct: the ingest transaction in process

/** One reading row as src/ingest/reading.ts readingRow makes it (23 values; proof: a 12-level Merkle path). */
function directRow(meter: number, ts: number, batchId: string, leaf: number, r: () => number): unknown[] {
  const f = () => Math.fround(r() * 400);
  const proof = Buffer.allocUnsafe(12 * 32);
  for (let i = 0; i < proof.length; i += 4) proof.writeUInt32LE((r() * 2 ** 32) >>> 0, i);
  return [meter, new Date(ts), f(), f(), f(), f(), f(), f(), f() - 200, f() - 200, f() - 200, f(), f(), Math.fround(r()), f(), 50, f(), Math.floor(r() * 1e9), 0, leaf + 1, batchId, leaf, proof];
}

async function runDirect(o: { transactions: number; txRows: number; redeliver: boolean; profile: boolean; profileOut?: string; keep: boolean }): Promise<number> {
  const { startCascadb } = await import('../src/cascadb/index.js');
  const { EngineSqlClient, ensureSchema, insertRows, READING_COLUMNS } = await import('../src/ingest/index.js');
  const log = (s: string) => process.stdout.write(`${s}\n`);
  const root = mkdtempSync(join(tmpdir(), 'securegrid-bench-direct-'));
  const db = await startCascadb({ embedded: { dataDir: root }, pgPort: 0, httpPort: -1, user: USER, password: 'direct-bench' });
  const sql = new EngineSqlClient(db.engine);
  const batchCols = ['batch_id', 'created_at', 'source', 'instance', 'key_id', 'count', 'merkle_root', 'signature'];
  const meters = Math.max(1, Math.ceil(o.txRows / 96)); // a day of 15-minute readings per meter
  const r = rng(7);
  let seq = 0;
  // Rows are made before the clock starts: the figure is CascaDB's, not the generator's.
  const made = Array.from({ length: o.transactions + 2 }, (_, n) => Array.from({ length: o.txRows }, (_, j) => directRow(n * meters + (j % meters), T0 + Math.floor(j / meters) * STEP, `direct-${n}`, j, r)));
  const txn = async (): Promise<{ rows: number; inserted: number }> => {
    const n = seq++;
    const batchId = `direct-${n}`;
    const rows = made[n]!;
    made[n] = [];
    const send = () =>
      sql.transaction(async (tx) => {
        const inserted = await insertRows(tx, 'reading', READING_COLUMNS, rows as never, true);
        await insertRows(tx, 'batch', batchCols, [[`${batchId}-${inserted}`, new Date(), 'ingest', 'bench', 'k1', o.txRows, Buffer.alloc(32, 1), Buffer.alloc(64, 2)]], false);
        return inserted;
      });
    let inserted = await send();
    if (o.redeliver) inserted += await send();
    return { rows: o.txRows * (o.redeliver ? 2 : 1), inserted };
  };
  let code = 0;
  try {
    await ensureSchema(sql);
    for (let i = 0; i < 2; i++) await txn(); // untimed: JIT, statement caches
    let session: import('node:inspector/promises').Session | undefined;
    if (o.profile) {
      const { Session } = await import('node:inspector/promises');
      session = new Session();
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 500 });
      await session.post('Profiler.start');
    }
    const cpu0 = process.cpuUsage();
    const elu0 = performance.eventLoopUtilization();
    const t0 = performance.now();
    let rowsSent = 0;
    let inserted = 0;
    const lat: number[] = [];
    for (let i = 0; i < o.transactions; i++) {
      const s = performance.now();
      const got = await txn();
      lat.push(performance.now() - s);
      rowsSent += got.rows;
      inserted += got.inserted;
    }
    const wall = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const elu = performance.eventLoopUtilization(elu0);
    const cpuUs = cpu.user + cpu.system;
    const expected = o.transactions * o.txRows;
    if (inserted !== expected) {
      process.stderr.write(`expected ${expected} new rows, the transactions reported ${inserted}\n`);
      code = 1;
    }
    lat.sort((a, b) => a - b);
    const res = {
      bench: 'cascadb-direct',
      node: process.version,
      cores: cpus().length,
      loadAverage: round(loadavg()[0]!, 2),
      transactions: o.transactions,
      rowsPerTransaction: o.txRows,
      redeliver: o.redeliver,
      rowsPerSecond: round(rowsSent / wall, 0),
      cpuUsPerRow: round(cpuUs / rowsSent, 2),
      mainThreadUsPerRow: round((elu.active * 1000) / rowsSent, 2),
      msPerTransaction: { p50: round(lat[Math.floor(lat.length / 2)]!, 1), max: round(lat.at(-1)!, 1) },
      cores_used: round(cpuUs / 1e6 / wall, 2),
    };
    log(`CascaDB --direct: ${o.transactions} transactions × ${o.txRows} reading rows (23 columns, ON CONFLICT DO NOTHING${o.redeliver ? ', each sent twice' : ''}); Engine over EmbeddedKvStore, replicate:3, 9 nodes; load average ${res.loadAverage}`);
    log(`  ${num(res.rowsPerSecond)} rows/s   ${res.cpuUsPerRow} µs CPU/row (process, all threads)   ${res.mainThreadUsPerRow} µs main thread/row   ${res.msPerTransaction.p50} ms/transaction (p50)`);
    if (session) {
      const { profile } = (await session.post('Profiler.stop')) as { profile: import('./lib.js').CpuProfile };
      session.disconnect();
      if (o.profileOut) (await import('node:fs')).writeFileSync(o.profileOut, JSON.stringify(profile));
      const slice = sliceCpuProfile(profile, { attribute });
      const busy = slice.totalMs - slice.idleMs;
      const pct = (ms: number) => ((100 * ms) / Math.max(busy, 1e-9)).toFixed(1);
      const comps = new Map<string, number>();
      for (const a of slice.attributed) if (a.label !== '(idle)') comps.set(componentOf(a.label), (comps.get(componentOf(a.label)) ?? 0) + a.ms);
      log(`profile (main thread busy ${num(busy)} ms of ${num(slice.totalMs)} ms; ${num(busy / o.transactions, 1)} ms per transaction):`);
      log(table(['component', 'ms', '%'], [...comps].sort((a, b) => b[1] - a[1]).slice(0, 14).map(([c, ms]) => [c, num(ms), pct(ms)])));
      log(table(['file', 'ms', '%'], slice.attributed.filter((a) => a.label !== '(idle)').slice(0, 16).map((a) => [a.label, num(a.ms), pct(a.ms)])));
      log(table(['top self-time functions', 'file:line', 'ms', '%'], slice.functions.filter((x) => x.name !== '(idle)').slice(0, 30).map((x) => [x.name, `${x.file}:${x.line}`, num(x.ms), pct(x.ms)]), { leftColumns: 2 }));
    }
    printJsonLast(res);
  } finally {
    await db.close();
    if (!o.keep) rmSync(root, { recursive: true, force: true });
  }
  return code;
}

// ------------------------------------------------------------------ main

async function main(): Promise<number> {
  const { values: f } = parseArgs({
    options: {
      rows: { type: 'string', default: '200000' },
      'per-meter': { type: 'string', default: '2000' },
      'insert-clients': { type: 'string', default: '4' },
      'warmup-batches': { type: 'string', default: '10' },
      'insert-max-seconds': { type: 'string', default: '120' },
      seconds: { type: 'string', default: '8' },
      warmup: { type: 'string', default: '1' },
      'point-clients': { type: 'string', default: '32' },
      'range-clients': { type: 'string', default: '4' },
      'scan-seconds': { type: 'string', default: '4' },
      workloads: { type: 'string', default: WORKLOADS.join(',') },
      reference: { type: 'string', default: 'auto' },
      'pg-url': { type: 'string', default: process.env.SG_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test' },
      cascadb: { type: 'string', default: 'process' },
      profile: { type: 'boolean', default: false },
      'profile-out': { type: 'string' },
      keep: { type: 'boolean', default: false },
      direct: { type: 'boolean', default: false },
      transactions: { type: 'string', default: '20' },
      'tx-rows': { type: 'string', default: '4096' },
      redeliver: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (f.help) {
    console.log(USAGE);
    return 0;
  }
  const int = (name: keyof typeof f, min: number) => {
    const v = Number(f[name]);
    if (!Number.isInteger(v) || v < min) throw new Error(`--${name} must be an integer ≥ ${min}\n${USAGE}`);
    return v;
  };
  const pos = (name: keyof typeof f) => {
    const v = Number(f[name]);
    if (!(v >= 0)) throw new Error(`--${name} must be a number ≥ 0\n${USAGE}`);
    return v;
  };
  if (f.direct) return runDirect({ transactions: int('transactions', 1), txRows: int('tx-rows', 1), redeliver: f.redeliver, profile: f.profile || f['profile-out'] !== undefined, profileOut: f['profile-out'], keep: f.keep });
  const rows = int('rows', ROWS_PER_BATCH);
  const perMeter = int('per-meter', RANGE_ROWS);
  if (rows % ROWS_PER_BATCH || perMeter % ROWS_PER_BATCH) throw new Error(`--rows and --per-meter must be multiples of ${ROWS_PER_BATCH}`);
  const meters = Math.max(1, Math.floor(rows / perMeter));
  const batches = rows / ROWS_PER_BATCH;
  const insertClients = int('insert-clients', 1);
  const warmupBatches = int('warmup-batches', 0);
  const insertMaxSeconds = pos('insert-max-seconds');
  const seconds = pos('seconds');
  const warmup = pos('warmup');
  const pointClients = int('point-clients', 1);
  const rangeClients = int('range-clients', 1);
  const scanSeconds = pos('scan-seconds');
  const workloads = f.workloads.split(',').map((w) => w.trim()) as Workload[];
  if (workloads.some((w) => !WORKLOADS.includes(w))) throw new Error(`--workloads takes ${WORKLOADS.join(',')}`);
  if (!workloads.includes('insert') && workloads.length) throw new Error('the read workloads need the insert workload (they read what it wrote)');
  if (!['auto', 'postgres', 'pglite', 'none'].includes(f.reference)) throw new Error(`--reference must be auto, postgres, pglite or none\n${USAGE}`);
  if (f.cascadb !== 'process' && f.cascadb !== 'inproc') throw new Error(`--cascadb must be process or inproc\n${USAGE}`);
  const profile = f.profile || f['profile-out'] !== undefined;
  if (profile && f.cascadb !== 'process') throw new Error('--profile needs --cascadb process');
  const connections = Math.max(insertClients, pointClients, rangeClients, 1);

  const root = mkdtempSync(join(tmpdir(), 'securegrid-bench-cascadb-'));
  const profileDir = profile ? join(root, 'profile') : undefined;
  if (profileDir) mkdirSync(profileDir);
  const cleanups: Array<() => Promise<unknown>> = [];
  const cleanup = async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
    if (!f.keep) rmSync(root, { recursive: true, force: true });
  };
  const onSignal = () => void cleanup().finally(() => process.exit(130));
  process.stdout.on('error', () => undefined);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const log = (s: string) => process.stdout.write(`${s}\n`);
  const t0 = Date.now();
  let failed = 0;

  try {
    // The reference first: when it is the real server, its connections exist before CascaDB starts.
    let ref: System | undefined;
    let refSettings: Record<string, string> | undefined;
    let refNote = '';
    if (f.reference === 'auto' || f.reference === 'postgres') {
      try {
        const p = await postgresSystem(f['pg-url'], connections);
        ref = p;
        refSettings = p.settings;
      } catch (err) {
        if (f.reference === 'postgres') throw err;
        refNote = `no PostgreSQL server at ${f['pg-url'].replace(/\/\/[^@]*@/, '//')} (${(err as Error).message}): PGlite instead`;
        process.stderr.write(`${refNote}\n`);
      }
    }
    if (!ref && f.reference !== 'none') ref = await pgliteSystem();
    if (ref) cleanups.push(() => ref.close());
    const cdb = await cascadbSystem(f.cascadb, root, connections, profileDir, cleanups);
    cleanups.push(() => cdb.close());
    const systems: System[] = ref ? [ref, cdb] : [cdb];

    const load0 = loadavg()[0]!;
    log(`CascaDB benchmark — node ${process.version}, ${cpus().length} cores (load average ${load0.toFixed(2)} before the run), load generator: this process (node-postgres, plain TCP, prepared statements, rowMode array)`);
    log(`CascaDB: ${cdb.label}, embedded KVS (9 local LMDB nodes, replicate:3), server ${cdb.version}`);
    if (ref) {
      log(`reference: ${ref.label}, ${ref.version}${refSettings ? ` — fsync ${refSettings.fsync}, synchronous_commit ${refSettings.synchronous_commit}, shared_buffers ${refSettings.shared_buffers}` : ''}`);
      if (refNote) log(`  (${refNote})`);
    }
    log(`data: ${rows.toLocaleString('en-US')} rows = ${meters} meters × ${perMeter} readings (+ ${warmupBatches} warm-up batches); INSERT ${insertClients} clients; point ${pointClients} clients; range ${rangeClients} clients; ${warmup} s warm-up + ${seconds} s per read run${profile ? '; CascaDB PROFILED (slower)' : ''}`);
    if (f.keep) log(`CascaDB data: ${root} (kept)`);
    log('');

    const results: Measured[] = [];
    const loaded = new Map<SystemKey, Set<number>>();
    for (const s of systems) await s.query(0, CREATE);

    // 1. batched INSERT
    if (workloads.includes('insert')) {
      for (const s of systems) {
        // Untimed warm-up: other meters, the same statement (JIT, prepared statements on every connection).
        let wb = 0;
        await Promise.all(
          Array.from({ length: insertClients }, async (_, w) => {
            while (wb < warmupBatches) await s.query(w, INSERT_SQL, batchValues('w', wb++, Math.max(1, Math.ceil(warmupBatches / 2))), 'ins');
          }),
        );
        const done = new Set<number>();
        let next = 0;
        const m = await measure(s, 'insert', () => ROWS_PER_BATCH, () =>
          closedLoop({
            concurrency: insertClients,
            seconds: insertMaxSeconds,
            warmupSeconds: 0,
            maxOps: batches,
            op: async (w) => {
              const b = next++;
              const r = await s.query(w, INSERT_SQL, batchValues('m', b, meters), 'ins');
              if (r.rowCount !== ROWS_PER_BATCH) throw new Error(`INSERT of ${ROWS_PER_BATCH} rows reported ${r.rowCount}`);
              done.add(b);
              return 0;
            },
          }),
        );
        loaded.set(s.key, done);
        results.push(m);
      }
    }

    // What every system holds: per meter, how many consecutive 500-reading chunks from the first.
    const allDone = (b: number) => systems.every((s) => loaded.get(s.key)?.has(b));
    const chunks = Array.from({ length: meters }, (_, m) => {
      let c = 0;
      while (allDone(c * meters + m)) c++;
      return c;
    });
    const pointBatches = Array.from({ length: batches }, (_, b) => b).filter(allDone);
    const rangeMeters = chunks.map((c, m) => ({ c, m })).filter((x) => x.c * ROWS_PER_BATCH >= RANGE_ROWS);

    // 2. point SELECT
    if (workloads.includes('point') && pointBatches.length) {
      for (const s of systems) {
        const rand = Array.from({ length: pointClients }, (_, w) => rng(1000 + w));
        results.push(
          await measure(s, 'point', () => 1, () =>
            closedLoop({
              concurrency: pointClients,
              seconds,
              warmupSeconds: warmup,
              op: async (w) => {
                const r = rand[w]!;
                const b = pointBatches[Math.floor(r() * pointBatches.length)]!;
                const k = Math.floor(r() * ROWS_PER_BATCH);
                const ts = T0 + (Math.floor(b / meters) * ROWS_PER_BATCH + k) * STEP;
                const got = await s.query(w, POINT_SQL, [meterName('m', b % meters), ts], 'pt');
                if (got.rows.length !== 1) throw new Error(`point SELECT returned ${got.rows.length} rows`);
                return 0;
              },
            }),
          ),
        );
      }
    } else if (workloads.includes('point')) process.stderr.write('point SELECT skipped: no batch is loaded on every system\n');

    // 3. range scans
    if (workloads.includes('range') && rangeMeters.length) {
      for (const s of systems) {
        const rand = Array.from({ length: rangeClients }, (_, w) => rng(2000 + w));
        results.push(
          await measure(s, 'range', () => RANGE_ROWS, () =>
            closedLoop({
              concurrency: rangeClients,
              seconds,
              warmupSeconds: warmup,
              op: async (w) => {
                const r = rand[w]!;
                const { c, m } = rangeMeters[Math.floor(r() * rangeMeters.length)]!;
                const first = Math.floor(r() * (c * ROWS_PER_BATCH - RANGE_ROWS + 1));
                const lo = T0 + first * STEP;
                const got = await s.query(w, RANGE_SQL, [meterName('m', m), lo, lo + (RANGE_ROWS - 1) * STEP], 'rg');
                if (got.rows.length !== RANGE_ROWS) throw new Error(`range scan returned ${got.rows.length} rows, expected ${RANGE_ROWS}`);
                return 0;
              },
            }),
          ),
        );
      }
    } else if (workloads.includes('range')) process.stderr.write('range scan skipped: no meter has 1,000 readings on every system\n');

    // 4. whole table: count(*) and SELECT *, one client, simple protocol.
    let tableRows: Record<string, number> = {};
    for (const wl of ['count', 'scan'] as const) {
      if (!workloads.includes(wl)) continue;
      for (const s of systems) {
        let n = Number((await s.query(0, COUNT_SQL)).rows[0]![0]);
        tableRows = { ...tableRows, [s.key]: n };
        if (wl === 'scan') n = (await s.query(0, SCAN_SQL)).rows.length; // untimed first run (warm-up)
        const expected = n;
        results.push(
          await measure(s, wl, () => expected, () =>
            closedLoop({
              concurrency: 1,
              seconds: scanSeconds,
              warmupSeconds: 0,
              op: async () => {
                const got = wl === 'count' ? Number((await s.query(0, COUNT_SQL)).rows[0]![0]) : (await s.query(0, SCAN_SQL)).rows.length;
                if (got !== expected) throw new Error(`${wl} saw ${got} rows, expected ${expected}`);
                return 0;
              },
            }),
          ),
        );
      }
    }
    failed = results.reduce((n, r) => n + r.stats.errors, 0);

    // Ratios: CascaDB ÷ reference, per workload.
    const refKey = ref?.key;
    for (const r of results) {
      if (r.system !== 'cascadb' || !refKey) continue;
      const base = results.find((x) => x.workload === r.workload && x.system === refKey);
      if (base) r.ratio = r.rate / base.rate;
    }

    // ---------------------------------------------------------------- report
    const rowsOut: string[][] = [];
    for (const wl of WORKLOADS) {
      for (const r of results.filter((x) => x.workload === wl)) {
        const srvCores = r.serverCpuSeconds / r.wallSeconds;
        const perUnit = (r.serverCpuSeconds * 1e6) / (r.stats.ops * r.unitsPerOp);
        rowsOut.push([
          TITLE[wl],
          r.label,
          num(r.rate),
          UNIT[wl],
          r.stats.p50Ms.toFixed(2),
          r.stats.p99Ms.toFixed(2),
          Number.isFinite(srvCores) ? srvCores.toFixed(2) : '-',
          Number.isFinite(perUnit) ? num(perUnit, perUnit < 10 ? 2 : 0) : '-',
          r.clientCores.toFixed(2),
          r.ratio !== undefined ? ratio(r.ratio) : r.system === refKey ? '1.00× (ref)' : '-',
          r.stats.errors ? String(r.stats.errors) : '',
        ]);
      }
    }
    log(table(['workload', 'system', 'throughput', 'unit', 'p50 ms', 'p99 ms', 'srv cores', 'srv µs/unit', 'client cores', 'CascaDB/ref', 'errors'], rowsOut, { leftColumns: 2 }));
    log('p50/p99: per statement. srv cores: server CPU (all threads) ÷ wall time; srv µs/unit: that CPU per row (per SELECT for');
    log(`point) — less sensitive to other load on the machine than throughput. Server CPU: CascaDB = ${cdb.cpuNote}; reference = ${ref?.cpuNote ?? '-'}.`);
    log('client cores: this process (node-postgres encoding parameters and parsing rows), which shares the machine with both servers.');
    const ins = results.find((r) => r.workload === 'insert' && r.system === 'cascadb');
    if (ins && ins.stats.ops < batches) log(`note: the CascaDB INSERT run stopped at --insert-max-seconds after ${ins.stats.ops * ROWS_PER_BATCH} rows; reads use the rows both systems hold.`);

    const targets: Array<{ name: string; value: number; target: number; met: boolean }> = [];
    for (const wl of ['insert', 'point'] as const) {
      const r = results.find((x) => x.workload === wl && x.system === 'cascadb');
      if (r?.ratio !== undefined) targets.push({ name: `${TITLE[wl]} vs ${ref!.label}`, value: round(r.ratio), target: 1, met: r.ratio >= 1 });
    }
    if (targets.length) {
      log('');
      log('targets (the issue: ≥ 1.0× PostgreSQL)');
      log(table(['target', 'measured', 'wanted', 'met'], targets.map((t) => [t.name, ratio(t.value), `≥ ${ratio(t.target, 1)}`, t.met ? 'yes' : 'NO'])));
    }

    // Stop CascaDB (the profile is written on exit), then summarise the profile per workload.
    let profiles: ProfileReport[] = [];
    if (profileDir) {
      while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
      const file = readdirSync(profileDir).find((x) => x.endsWith('.cpuprofile'));
      if (!file) log('\nprofile: the CascaDB child wrote no .cpuprofile (did it exit cleanly?)');
      else {
        if (f['profile-out']) copyFileSync(join(profileDir, file), f['profile-out']);
        const p = readCpuProfile(join(profileDir, file));
        profiles = results
          .filter((r) => r.system === 'cascadb')
          .map((r) => summariseProfile(sliceCpuProfile(p, { fromUs: r.windowUs[0], toUs: r.windowUs[1], attribute }), r));
        for (const pr of profiles) {
          log('');
          log(`profile: ${TITLE[pr.workload]} — main thread busy ${num(pr.busyMs)} ms of ${num(pr.wallMs)} ms; whole process CPU ${num(pr.processCpuMs)} ms (the rest: LMDB, GC and libuv threads)`);
          log(table(['component (time charged to the deepest frame of ours or of a dependency)', 'ms', '%'], pr.components.slice(0, 12).map((c) => [c.component, num(c.ms), c.pct.toFixed(1)])));
          log(table(['file', 'ms', '%'], pr.files.slice(0, 14).map((c) => [c.file, num(c.ms), c.pct.toFixed(1)])));
          log(table(['top self-time functions', 'file:line', 'ms', '%'], pr.functions.slice(0, 18).map((c) => [c.name, c.file, num(c.ms), c.pct.toFixed(1)]), { leftColumns: 2 }));
        }
      }
    }
    log('');
    const load1 = loadavg()[0]!;
    log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s; 1-minute load average ${load0.toFixed(2)} before, ${load1.toFixed(2)} after (this benchmark alone keeps about 2 busy; more means other work shared the cores)`);

    const ratios: Record<string, number | null> = {};
    for (const wl of WORKLOADS) {
      const r = results.find((x) => x.workload === wl && x.system === 'cascadb');
      if (r) ratios[wl] = r.ratio !== undefined ? round(r.ratio) : null;
    }
    printJsonLast({
      bench: 'cascadb',
      node: process.version,
      cores: cpus().length,
      loadAverage: { before: round(load0, 2), after: round(load1, 2) },
      cascadb: { mode: f.cascadb, label: cdb.label, version: cdb.version, profiled: profile },
      reference: ref ? { kind: ref.key, label: ref.label, version: ref.version, wire: ref.wire, ...(refSettings ? { settings: refSettings } : {}), ...(refNote ? { note: refNote } : {}) } : null,
      config: { rows, perMeter, meters, rowsPerInsert: ROWS_PER_BATCH, rangeRows: RANGE_ROWS, insertClients, warmupBatches, insertMaxSeconds, seconds, warmup, pointClients, rangeClients, scanSeconds, workloads },
      tableRows,
      results: results.map((r) => ({
        workload: r.workload,
        system: r.system,
        label: r.label,
        unit: UNIT[r.workload],
        rate: round(r.rate, 1),
        ops: r.stats.ops,
        rowsPerOp: r.unitsPerOp,
        errors: r.stats.errors,
        seconds: round(r.stats.seconds),
        p50Ms: round(r.stats.p50Ms),
        p99Ms: round(r.stats.p99Ms),
        maxMs: round(r.stats.maxMs),
        serverCpuSeconds: Number.isFinite(r.serverCpuSeconds) ? round(r.serverCpuSeconds, 2) : null,
        serverCores: Number.isFinite(r.serverCpuSeconds) ? round(r.serverCpuSeconds / r.wallSeconds, 2) : null,
        serverCpuUsPerUnit: Number.isFinite(r.serverCpuSeconds) ? round((r.serverCpuSeconds * 1e6) / (r.stats.ops * r.unitsPerOp), 2) : null,
        clientCores: round(r.clientCores, 2),
        ratio: r.ratio !== undefined ? round(r.ratio) : null,
        ...(r.stats.firstError ? { firstError: r.stats.firstError } : {}),
      })),
      ratios,
      targets,
      ...(profiles.length ? { profile: profiles.map((p) => ({ ...p, files: p.files.slice(0, 12), functions: p.functions.slice(0, 12) })) } : {}),
      failedStatements: failed,
      wallSeconds: round((Date.now() - t0) / 1000, 1),
    });
  } finally {
    await cleanup();
  }
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`bench:cascadb failed: ${err.stack ?? err.message}\n`);
    process.exit(2);
  },
);
