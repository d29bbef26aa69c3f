// `npm run bench:ingest`: end-to-end reports/s from simulated meters to durable, encrypted storage (the paper's
// Fig. 1 pipeline: meters → aggregators → MQTT → ingest → CascaDB over the Secure KVS), beside the crypto
// bound measured in the same run. Target (the issue): ≥ 50,000 reports/s on the 2-core machine, i.e. one
// 15-minute interval of 1,000,000 meters in under 20 s.
//
// What runs (all on 127.0.0.1; data in a temp dir removed at the end):
//   - THIS process: the simulator (a fleet of x25519-ed25519-aes256gcm meters: load model, phasors, frames,
//     AES-GCM sealing) and the aggregators (one in-process field link each, uplink batching, retransmit
//     buffers, MQTT publish). Meters and aggregators are the field side; they share a process as a field
//     concentrator would run many meters, and leave the other core to the collector side.
//   - The broker: the real Mosquitto at --broker mqtt://127.0.0.1:1883 (default when it answers: a C broker,
//     usually faster), or `--broker embedded`: aedes in a CHILD process (so it does not share a thread with the
//     simulator). Its CPU comes from /proc (mosquitto: every process named `mosquitto` — other users count too).
//   - The collector side, in CHILD processes (so the OS spreads the event loops over the 2 cores, and each one's
//     CPU is measured on its own):
//       --store embedded (default with --ingest 1): ONE child running the ingest service and CascaDB with an
//         embedded KVS (gateway + 9 local LMDB nodes, replicate:3, every row an encrypted KVS object) in the same
//         process, EngineSqlClient (no wire between them);
//       --store server (default with --ingest ≥ 2): a CascaDB child (PostgreSQL wire, embedded KVS) and N ingest
//         children, each a PgSqlClient to it — the deployment with parallel authentication services;
//       --store null: the ingest child with an in-memory stand-in for CascaDB (NOT durable, NOT encrypted at
//         rest): what the rest of the pipeline can do without the store. Labelled as such; never the headline.
//   Ingest keys are a fresh key directory (initIngestKeys); the registration directory (customers, meters,
//   public keys) is written by the fleet and provisioned into CascaDB before the run.
//
// Phases:
//   1. the crypto bound, single core, in this process before the pipeline runs: per report the real openRecord
//      (AES-256-GCM open of a sealed 258-byte PERIODIC_REPORT frame, the record layer's own code) + the real
//      leafHash(canonicalReading(report)) — the cryptographic work ingest cannot avoid per reading.
//   2. handshakes: every meter runs the SIGMA handshake (4 messages through the aggregators and the broker; the
//      collector signs, checks the meter's signature, derives keys and stores the session in `meter_session`
//      before Established goes out); handshakes/s from the first ClientHello to the last Established.
//   3. --warmup intervals, untimed: every meter reports, everything acked (JIT, caches, LMDB maps).
//   4. --intervals measured intervals: every meter reports once per interval; the window runs from the first
//      seal to the moment every aggregator holds no unacked envelope — ingest acks a batch only after its
//      readings are committed in CascaDB — so reports/s counts readings in durable, encrypted storage. The
//      ingest's stored-reading count is checked against meters × intervals. "steady" is the ack rate between
//      10 % and 90 % of the window's reports acked (no pipeline fill or drain).
//   Then: CPU per process over the window, ratios to the crypto bound and to the target, and (--profile) where
//   the time goes: every child under node --cpu-prof and this process under the inspector's profiler, each
//   profile cut to the measured window and each sample charged to a component by its stack (mqtt, codecs,
//   AES-GCM, Merkle + signature, ingest logic, SQL engine, KVS, GC, …). Profiling slows everything by
//   ~10–20 %: use the profile run for where the time goes, an unprofiled run for the figure.
//
// The last line of stdout is one JSON object with every figure and ratio. This is a measurement, not a test:
// it never fails on a figure (exit 1 only when readings go missing or a phase cannot finish).
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
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
  type CpuProfile,
  type ProfileFrame,
} from './lib.js';

const USAGE = `usage: node dist/bench/ingest.js [options]
  --meters N            meters in the fleet (default 20000)
  --intervals N         measured 15-minute intervals (default 4): meters × intervals reports
  --warmup N            untimed intervals before them (default 1)
  --aggregators N       aggregators, each with its own field link and MQTT client (default 4)
  --agg-batch N         envelopes per uplink batch (default 500)
  --ingest N            ingest processes (default 1)
  --store KIND          embedded | server | null (default: embedded with --ingest 1, server with more)
  --broker B            embedded | mqtt://host:port (default mqtt://127.0.0.1:1883 when it answers, else embedded)
  --suite S             meter cipher suite (default x25519-ed25519-aes256gcm)
  --batch-max N         readings per metrology batch (default 4096)
  --crypto-seconds S    length of each crypto-bound run (default 1.5; best of 3)
  --profile             profile every process (node --cpu-prof / inspector) and summarise the measured window
  --profile-out DIR     also keep the .cpuprofile files there
  --keep                keep the data directory`;

const SEED = 'securegrid-bench-ingest';
/** 2026-11-02 00:00 local (UTC−3), a Monday. */
const START = Date.UTC(2026, 10, 2, 3);
const INTERVAL = 900_000;
const DB_USER = 'bench';

type Role = 'store' | 'ingest' | 'broker';
type StoreKind = 'embedded' | 'server' | 'null';

interface StoreConfig {
  kind: StoreKind;
  dataDir: string;
  directoryFile: string;
  keysDir: string;
  broker: string;
  password: string;
  batchMax: number;
  sessionFlushMs?: number;
  /** Run an ingest instance in this process (embedded, null). */
  ingest: boolean;
  instanceId: string;
}

interface IngestConfig {
  pgUrl: string;
  broker: string;
  keysDir: string;
  batchMax: number;
  sessionFlushMs?: number;
  instanceId: string;
}

type ChildMsg =
  | { type: 'ready'; pgPort?: number; url?: string }
  | { type: 'stats'; stats: Record<string, unknown> | null }
  | { type: 'error'; message: string };

// ------------------------------------------------------------------ child roles

async function childMain(role: Role): Promise<void> {
  const { setLogLevel } = await import('../src/observe/index.js');
  setLogLevel(process.env.SECUREGRID_LOG_LEVEL ?? 'warn');
  const cfg = JSON.parse(process.env.SG_BENCH_CONFIG ?? '{}') as unknown;
  const send = (m: ChildMsg) => process.send!(m);
  let stats: () => Record<string, unknown> | null = () => null;
  let close: () => Promise<void> = async () => undefined;
  try {
    if (role === 'broker') {
      const { startBroker } = await import('../src/broker/index.js');
      const b = await startBroker({ port: 0 });
      stats = () => ({ ...b.stats() });
      close = () => b.close();
      send({ type: 'ready', url: b.url });
    } else if (role === 'store') {
      const c = cfg as StoreConfig;
      const ing = await import('../src/ingest/index.js');
      let sql: import('../src/ingest/index.js').SqlClient;
      let db: import('../src/cascadb/index.js').Cascadb | undefined;
      const entries = ing.parseDirectory(readFileSync(c.directoryFile, 'utf8'), c.directoryFile);
      if (c.kind === 'null') sql = new NullSql(entries);
      else {
        const { startCascadb } = await import('../src/cascadb/index.js');
        db = await startCascadb({ embedded: { dataDir: c.dataDir }, host: '127.0.0.1', pgPort: 0, httpPort: -1, user: DB_USER, password: c.password });
        sql = new ing.EngineSqlClient(db.engine);
        await ing.ensureSchema(sql);
        await ing.provisionDirectory(sql, entries);
      }
      let ingest: import('../src/ingest/index.js').Ingest | undefined;
      if (c.ingest) {
        ingest = await ing.startIngest({ broker: c.broker, sql, keys: new ing.FileIngestKeys(c.keysDir), batchMax: c.batchMax, sessionFlushMs: c.sessionFlushMs, instanceId: c.instanceId, ensureSchema: c.kind !== 'null' });
      }
      stats = () => (ingest ? { ...ingest.stats() } : null);
      close = async () => {
        await ingest?.close();
        await db?.close();
      };
      send({ type: 'ready', pgPort: db?.pgPort });
    } else {
      const c = cfg as IngestConfig;
      const ing = await import('../src/ingest/index.js');
      const sql = new ing.PgSqlClient({ url: c.pgUrl, max: 4 });
      const ingest = await ing.startIngest({ broker: c.broker, sql, keys: new ing.FileIngestKeys(c.keysDir), batchMax: c.batchMax, sessionFlushMs: c.sessionFlushMs, instanceId: c.instanceId, ensureSchema: false });
      stats = () => ({ ...ingest.stats() });
      close = async () => {
        await ingest.close();
        await sql.close();
      };
      send({ type: 'ready' });
    }
  } catch (err) {
    send({ type: 'error', message: (err as Error).stack ?? String(err) });
    process.exit(1);
  }
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd === 'stats') send({ type: 'stats', stats: stats() });
    else if (m.cmd === 'stop') {
      // A normal exit, which is when --cpu-prof writes its profile.
      void close()
        .catch(() => undefined)
        .finally(() => process.exit(0));
    }
  });
}

/**
 * --store null: answers exactly the statements the ingest service sends, from memory. Not durable, not
 * encrypted: it shows what the pipeline does without CascaDB, nothing more.
 */
class NullSql {
  private readonly meters = new Map<number, { suite: string; public_key: Buffer; aggregator_id: string }>();
  private readonly sessions = new Map<string, Buffer>();
  private readonly readings = new Set<string>();

  constructor(entries: Array<{ meter_id: number; suite: string; public_key: string | Buffer; aggregator_id?: string }>) {
    for (const e of entries) this.meters.set(e.meter_id, { suite: e.suite, public_key: Buffer.isBuffer(e.public_key) ? e.public_key : Buffer.from(e.public_key, 'base64'), aggregator_id: e.aggregator_id ?? '' });
  }

  async query(sql: string, params: unknown[] = []): Promise<{ rows: Array<Record<string, unknown>>; rowCount: number }> {
    if (sql.startsWith('SELECT suite, public_key')) {
      const m = this.meters.get(Number(params[0]));
      return { rows: m ? [m] : [], rowCount: m ? 1 : 0 };
    }
    if (sql.startsWith('SELECT sealed FROM meter_session')) {
      const s = this.sessions.get((params[0] as Buffer).toString('hex'));
      return { rows: s ? [{ sealed: s }] : [], rowCount: s ? 1 : 0 };
    }
    if (sql.startsWith('INSERT INTO meter_session')) {
      let n = 0;
      for (let i = 0; i < params.length; i += 4) {
        const k = (params[i] as Buffer).toString('hex');
        if (!this.sessions.has(k)) {
          this.sessions.set(k, params[i + 2] as Buffer);
          n++;
        }
      }
      return { rows: [], rowCount: n };
    }
    if (sql.startsWith('INSERT INTO reading')) {
      let n = 0;
      for (let i = 0; i < params.length; i += 23) {
        const k = `${params[i]}:${(params[i + 1] as Date).getTime()}`;
        if (!this.readings.has(k)) {
          this.readings.add(k);
          n++;
        }
      }
      return { rows: [], rowCount: n };
    }
    if (sql.startsWith('UPDATE meter_session')) {
      this.sessions.set((params[1] as Buffer).toString('hex'), params[0] as Buffer);
      return { rows: [], rowCount: 1 };
    }
    return { rows: [], rowCount: 1 }; // INSERT INTO batch, DDL
  }

  async transaction<T>(fn: (tx: { query: NullSql['query'] }) => Promise<T>): Promise<T> {
    return fn({ query: (s, p) => this.query(s, p) });
  }

  async close(): Promise<void> {}
}

// ------------------------------------------------------------------ child processes (parent side)

interface Child {
  name: string;
  proc: ChildProcess;
  ready: ChildMsg & { type: 'ready' };
  stats(): Promise<Record<string, unknown> | null>;
  stop(): Promise<void>;
}

async function startChild(name: string, role: Role, config: unknown, profileDir: string | undefined): Promise<Child> {
  const self = fileURLToPath(import.meta.url);
  const proc = fork(self, ['--role', role], {
    execArgv: profileDir ? ['--cpu-prof', '--cpu-prof-dir', join(profileDir, name), '--cpu-prof-interval', '1000'] : [],
    env: { ...process.env, SG_BENCH_CONFIG: JSON.stringify(config), SECUREGRID_LOG_LEVEL: process.env.SECUREGRID_LOG_LEVEL ?? 'warn' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const ready = await new Promise<ChildMsg & { type: 'ready' }>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${name} did not start within 180 s`)), 180_000);
    proc.on('message', (m: ChildMsg) => {
      if (m.type === 'ready') {
        clearTimeout(t);
        resolve(m);
      } else if (m.type === 'error') {
        clearTimeout(t);
        reject(new Error(`${name}: ${m.message}`));
      }
    });
    void exited.then((code) => (clearTimeout(t), reject(new Error(`${name} exited (${code}) before it was ready`))));
  });
  let waiting: Array<(s: Record<string, unknown> | null) => void> = [];
  proc.on('message', (m: ChildMsg) => {
    if (m.type === 'stats') {
      const w = waiting;
      waiting = [];
      for (const f of w) f(m.stats);
    }
  });
  return {
    name,
    proc,
    ready,
    stats: () =>
      new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve(null);
        waiting.push(resolve);
        proc.send({ cmd: 'stats' });
      }),
    async stop() {
      if (proc.exitCode !== null) return;
      proc.send({ cmd: 'stop' });
      const t = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(t);
    },
  };
}

function reachable(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = netConnect({ host: u.hostname, port: Number(u.port || 1883) });
    const done = (ok: boolean) => (s.destroy(), resolve(ok));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(1000, () => done(false));
  });
}

// ------------------------------------------------------------------ crypto bound

interface CryptoBound {
  reportsPerSec: number;
  /** The same, plus frame decode and range check (the rest of ingest's per-record CPU before batching). */
  withDecodePerSec: number;
  runs: number[];
}

async function cryptoBound(seconds: number): Promise<CryptoBound> {
  const { randomBytes } = await import('node:crypto');
  const { openRecord, sealRecord, encodeReport, decodeFrame, canonicalReading, meterSystemTitle } = await import('../src/protocol/index.js');
  const { leafHash } = await import('../src/crypto/index.js');
  const { createFleet, ReportModel } = await import('../src/meter/index.js');
  const { rangeViolation } = await import('../src/ingest/index.js');
  const fleet = createFleet({ count: 1024, seed: SEED, aggregators: 1, start: START, days: 1 });
  const model = new ReportModel(fleet);
  const keys = { ek: randomBytes(32), ak: randomBytes(16) };
  const N = 1024;
  const titles: Buffer[] = [];
  const records: Buffer[] = [];
  const reports: import('../src/protocol/index.js').PhasorReport[] = [];
  for (let i = 0; i < N; i++) {
    const r = model.next(i, START + INTERVAL);
    const title = meterSystemTitle(fleet.meter(i).serial);
    titles.push(title);
    records.push(sealRecord(keys, title, i + 1, encodeReport(r)));
    const fr = decodeFrame(encodeReport(r));
    reports.push(fr.type === 'report' ? fr.report : r);
  }
  const run = (withDecode: boolean): number => {
    let n = 0;
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    let now = t0;
    while (now < end) {
      for (let k = 0; k < 256; k++, n++) {
        const i = n & (N - 1);
        const { plaintext } = openRecord(keys, titles[i]!, records[i]!);
        if (withDecode) {
          const f = decodeFrame(plaintext);
          if (f.type !== 'report' || rangeViolation(f.report) !== undefined) throw new Error('bad frame');
          leafHash(canonicalReading(f.report));
        } else leafHash(canonicalReading(reports[i]!));
      }
      now = performance.now();
    }
    return n / ((now - t0) / 1000);
  };
  run(false); // warm-up (JIT)
  const runs = [run(false), run(false), run(false)];
  const withDecode = Math.max(run(true), run(true));
  return { reportsPerSec: Math.max(...runs), withDecodePerSec: withDecode, runs };
}

// ------------------------------------------------------------------ profile attribution

const COMPONENTS = {
  mqtt: 'MQTT client (mqtt.js, mqtt-packet)',
  broker: 'MQTT broker (aedes)',
  codec: 'envelope + frame codecs (protocol/)',
  aes: 'AES-GCM records + replay window',
  handshake: 'handshake (collector, meter session)',
  merkle: 'Merkle tree + batch signature',
  ingest: 'ingest logic (sessions, batching, rows, acks)',
  ingestCrypto: 'ingest crypto (payload digest, session seal)',
  sql: 'SQL engine (CascaDB: parse, plan, rows, txn)',
  pgwire: 'PostgreSQL wire (server + node-postgres)',
  kvs: 'KVS (gateway, encryption, replication, LMDB)',
  meter: 'meter model (load, phasors, theft)',
  sim: 'simulator runtime',
  aggregator: 'aggregator + field link',
  metrics: 'metrics + logging (prom-client, pino)',
  gc: 'GC',
  program: 'V8/native (program)',
  runtime: 'node runtime (sockets, timers, promises)',
  bench: 'bench harness',
  idle: 'idle',
  other: 'other',
} as const;

function fileComponent(url: string, viaCrypto: boolean): string | undefined {
  if (url.startsWith('wasm://')) return COMPONENTS.sql;
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const parts = url.slice(nm + 13).split('/');
    const pkg = parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
    if (pkg === 'mqtt' || pkg === 'mqtt-packet' || pkg === 'bl' || pkg === 'commist' || pkg === 'help-me' || pkg === 'number-allocator' || pkg === 'rfdc') return COMPONENTS.mqtt;
    if (pkg.startsWith('aedes') || pkg === 'mqemitter' || pkg === 'fastfall' || pkg === 'fastparallel' || pkg === 'fastseries' || pkg === 'reusify' || pkg === 'hyperid' || pkg === 'retimer' || pkg === 'uuid' || pkg === 'qlobber') return COMPONENTS.broker;
    if (pkg === 'libpg-query') return COMPONENTS.sql;
    if (pkg.startsWith('pg')) return COMPONENTS.pgwire;
    if (pkg === 'lmdb' || pkg === 'msgpackr' || pkg === 'ordered-binary' || pkg === 'weak-lru-cache' || pkg === '@ronomon/reed-solomon') return COMPONENTS.kvs;
    if (pkg === 'prom-client' || pkg === 'pino' || pkg === 'sonic-boom' || pkg === 'tdigest' || pkg === 'bintrees') return COMPONENTS.metrics;
    if (pkg === 'readable-stream' || pkg === 'process-nextick-args' || pkg === 'inherits' || pkg === 'safe-buffer' || pkg === 'string_decoder' || pkg === 'debug' || pkg === 'ms') return undefined; // shared plumbing: charge the caller
    return `${COMPONENTS.other} (${pkg})`;
  }
  // the last /src/ or /bench/ of the path: builds live under dist/ or e.g. .build/bench/
  const d = Math.max(url.lastIndexOf('/src/'), url.lastIndexOf('/bench/'));
  if (d < 0 || !url.startsWith('file://')) return undefined;
  const file = url.slice(d + 1);
  if (file.startsWith('src/protocol/envelope') || file.startsWith('src/protocol/frame/')) return COMPONENTS.codec;
  if (/^src\/protocol\/secure\/(record|session|replay-window)\./.test(file)) return COMPONENTS.aes;
  if (file.startsWith('src/protocol/secure/')) return COMPONENTS.handshake;
  if (file.startsWith('src/crypto/merkle') || file.startsWith('src/ingest/batch')) return COMPONENTS.merkle;
  if (file.startsWith('src/crypto/')) return undefined; // charged to the caller (KVS encryption, batch signature, sessions)
  if (file.startsWith('src/ingest/')) return viaCrypto ? COMPONENTS.ingestCrypto : COMPONENTS.ingest;
  if (file.startsWith('src/cascadb/server/')) return COMPONENTS.pgwire;
  if (file.startsWith('src/cascadb/')) return COMPONENTS.sql;
  if (file.startsWith('src/kvs/')) return COMPONENTS.kvs;
  if (file.startsWith('src/meter/simulator')) return COMPONENTS.sim;
  if (file.startsWith('src/meter/')) return COMPONENTS.meter;
  if (file.startsWith('src/aggregator/')) return COMPONENTS.aggregator;
  if (file.startsWith('src/broker/')) return COMPONENTS.broker;
  if (file.startsWith('src/observe/')) return COMPONENTS.metrics;
  if (file.startsWith('bench/')) return COMPONENTS.bench;
  return COMPONENTS.other;
}

/** A sample's stack (leaf first) → the component of the deepest frame that names one. */
function attribute(stack: ProfileFrame[]): string {
  const leaf = stack[0]!;
  if (leaf.functionName === '(garbage collector)') return COMPONENTS.gc;
  if (leaf.functionName === '(idle)') return COMPONENTS.idle;
  if (leaf.functionName === '(program)') return COMPONENTS.program;
  let viaCrypto = false;
  for (const f of stack) {
    if (f.url.includes('node:internal/crypto') || f.url === 'node:crypto' || f.url.includes('/src/crypto/')) viaCrypto = true;
    const c = fileComponent(f.url, viaCrypto);
    if (c) return c;
  }
  return COMPONENTS.runtime;
}

interface ProfileSummary {
  process: string;
  /** Sampled ms in the window, idle included. */
  wallMs: number;
  busyMs: number;
  components: Array<{ component: string; ms: number; pct: number }>;
  functions: Array<{ name: string; file: string; line: number; ms: number }>;
}

function summarise(name: string, p: CpuProfile, fromUs: number, toUs: number): ProfileSummary {
  const s = sliceCpuProfile(p, { fromUs, toUs, attribute });
  const busy = s.totalMs - s.idleMs;
  const pct = (ms: number) => round((100 * ms) / Math.max(busy, 1e-9), 1);
  return {
    process: name,
    wallMs: round(s.totalMs, 0),
    busyMs: round(busy, 0),
    components: s.attributed.filter((a) => a.label !== COMPONENTS.idle).map((a) => ({ component: a.label, ms: round(a.ms, 0), pct: pct(a.ms) })),
    functions: s.functions.filter((f) => f.name !== '(idle)').slice(0, 12).map((f) => ({ ...f, ms: round(f.ms, 0) })),
  };
}

function latestProfile(dir: string): CpuProfile | undefined {
  let files: string[];
  try {
    files = readdirSync(dir).filter((x) => x.endsWith('.cpuprofile'));
  } catch {
    return undefined;
  }
  return files.length ? readCpuProfile(join(dir, files.sort().at(-1)!)) : undefined;
}

// ------------------------------------------------------------------ the run

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const log = (s: string) => process.stderr.write(`${s}\n`);

async function main(): Promise<number> {
  const { values: f } = parseArgs({
    options: {
      role: { type: 'string' },
      meters: { type: 'string', default: '20000' },
      intervals: { type: 'string', default: '4' },
      warmup: { type: 'string', default: '1' },
      aggregators: { type: 'string', default: '4' },
      'agg-batch': { type: 'string', default: '500' },
      ingest: { type: 'string', default: '1' },
      store: { type: 'string' },
      broker: { type: 'string' },
      suite: { type: 'string', default: 'x25519-ed25519-aes256gcm' },
      'batch-max': { type: 'string', default: '4096' },
      'crypto-seconds': { type: 'string', default: '1.5' },
      'session-flush-ms': { type: 'string' },
      profile: { type: 'boolean', default: false },
      'profile-out': { type: 'string' },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (f.role) {
    await childMain(f.role as Role);
    return -1; // stays alive for the parent's commands
  }
  if (f.help) {
    console.log(USAGE);
    return 0;
  }
  const int = (v: string | undefined, name: string, min: number, max = 10_000_000): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer ${min}..${max}, got '${v}'`);
    return n;
  };
  const meters = int(f.meters, 'meters', 1, 1_000_000);
  const intervals = int(f.intervals, 'intervals', 1, 960);
  const warmup = int(f.warmup, 'warmup', 0, 96);
  const nAgg = int(f.aggregators, 'aggregators', 1, 256);
  const aggBatch = int(f['agg-batch'], 'agg-batch', 1, 65_535);
  const nIngest = int(f.ingest, 'ingest', 1, 16);
  const batchMax = int(f['batch-max'], 'batch-max', 1, 65_535);
  const store = (f.store ?? (nIngest > 1 ? 'server' : 'embedded')) as StoreKind;
  if (!['embedded', 'server', 'null'].includes(store)) throw new Error(`--store must be embedded, server or null`);
  if (store !== 'server' && nIngest > 1) throw new Error(`--ingest ${nIngest} needs --store server (one embedded KVS per process)`);
  const cryptoSeconds = Number(f['crypto-seconds']);
  const sessionFlushMs = f['session-flush-ms'] !== undefined ? int(f['session-flush-ms'], 'session-flush-ms', 1, 2 ** 31 - 1) : undefined;
  const profile = f.profile || f['profile-out'] !== undefined;

  const { setLogLevel } = await import('../src/observe/index.js');
  setLogLevel(process.env.SECUREGRID_LOG_LEVEL ?? 'warn');
  const { createFleet, Simulator, writeDirectory } = await import('../src/meter/index.js');
  const { startAggregator, inProcessFieldLink } = await import('../src/aggregator/index.js');
  const { initIngestKeys } = await import('../src/ingest/index.js');
  const { parseSuite } = await import('../src/crypto/index.js');
  const suite = parseSuite(f.suite!);

  let brokerUrl: string;
  let brokerLabel: string;
  const wantBroker = f.broker ?? ((await reachable('mqtt://127.0.0.1:1883')) ? 'mqtt://127.0.0.1:1883' : 'embedded');
  const root = mkdtempSync(join(tmpdir(), 'sg-bench-ingest-'));
  const profileDir = profile ? join(root, 'profile') : undefined;
  if (profileDir) mkdirSync(profileDir);
  const children: Child[] = [];
  const cleanups: Array<() => Promise<unknown>> = [];
  let exit = 0;
  try {
    const setup0 = performance.now();
    log(`bench:ingest — ${meters.toLocaleString('en-US')} meters (${suite}), ${warmup} warm-up + ${intervals} measured intervals, ${nAgg} aggregators, ${nIngest} ingest (${store} store)${profile ? ', PROFILED (slower)' : ''}`);
    log(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);

    // Crypto bound first, on a machine the pipeline is not loading yet.
    const bound = await cryptoBound(cryptoSeconds);
    log(`crypto bound: ${num(bound.reportsPerSec)} reports/s (openRecord + leafHash(canonicalReading)), ${num(bound.withDecodePerSec)} with frame decode + range check`);

    const keysDir = join(root, 'keys');
    const pub = await initIngestKeys(keysDir, [suite]);
    const days = Math.ceil((warmup + intervals + 1) / 96);
    const fleet = createFleet({ count: meters, seed: SEED, aggregators: nAgg, start: START, days, suiteMix: { [suite]: 1 } });
    const directoryFile = join(root, 'directory.jsonl');
    writeDirectory(fleet, directoryFile);
    const password = `bench-${process.pid}-${Date.now()}`;

    if (wantBroker === 'embedded') {
      const b = await startChild('broker', 'broker', {}, profileDir);
      children.push(b);
      brokerUrl = b.ready.url!;
      brokerLabel = 'aedes (embedded, child process)';
    } else {
      brokerUrl = wantBroker;
      if (!(await reachable(brokerUrl))) throw new Error(`no MQTT broker answers at ${brokerUrl}`);
      brokerLabel = `Mosquitto at ${brokerUrl}`;
    }
    const ingestIds: string[] = [];
    const storeChild = await startChild('store', 'store', {
      kind: store,
      dataDir: join(root, 'cascadb'),
      directoryFile,
      keysDir,
      broker: brokerUrl,
      password,
      batchMax,
      sessionFlushMs,
      ingest: store !== 'server',
      instanceId: 'bench-ingest-1',
    } satisfies StoreConfig, profileDir);
    children.push(storeChild);
    const ingests: Child[] = [];
    if (store === 'server') {
      for (let i = 1; i <= nIngest; i++) {
        const id = `bench-ingest-${i}`;
        ingestIds.push(id);
        ingests.push(await startChild(id, 'ingest', { pgUrl: `postgres://${DB_USER}:${password}@127.0.0.1:${storeChild.ready.pgPort}/securegrid`, broker: brokerUrl, keysDir, batchMax, sessionFlushMs, instanceId: id } satisfies IngestConfig, profileDir));
      }
      children.push(...ingests);
    } else ingests.push(storeChild);
    const storeLabel =
      store === 'embedded'
        ? 'ingest + CascaDB (embedded KVS: 9 LMDB nodes, replicate:3) in one child process'
        : store === 'server'
          ? `${nIngest} ingest child process(es) → CascaDB server child (PostgreSQL wire, embedded KVS: 9 LMDB nodes, replicate:3)`
          : 'ingest child with an IN-MEMORY stand-in for CascaDB (not durable, not encrypted at rest)';

    const links = fleet.aggregatorIds.map(() => inProcessFieldLink({ highWaterMark: 20_000 }));
    const aggs = await Promise.all(
      fleet.aggregatorIds.map((id, i) => startAggregator({ id, broker: brokerUrl, field: links[i]!.aggregatorSide, batchMax: aggBatch, batchMs: 20, maxUnacked: 100_000, closeWaitMs: 5000 })),
    );
    cleanups.push(() => Promise.all(aggs.map((a) => a.close())));
    await Promise.all(aggs.map((a) => a.whenConnected()));
    const sim = new Simulator({
      fleet,
      links: links.map((l) => l.meterSide),
      collectorKeys: { [suite]: Buffer.from(pub.collector[suite]!, 'base64') },
      handshakeConcurrency: 2000,
      handshakeTimeoutMs: 60_000,
    });
    cleanups.push(async () => sim.close());
    const setupSeconds = (performance.now() - setup0) / 1000;
    log(`setup ${setupSeconds.toFixed(1)} s: broker ${brokerLabel}; ${storeLabel}; directory of ${meters.toLocaleString('en-US')} meters provisioned`);

    const ackedEnvelopes = () => aggs.reduce((s, a) => {
      const st = a.stats();
      return s + st.envelopesIn - st.unackedEnvelopes;
    }, 0);
    // Everything the simulator put on a link has reached its aggregator (in-process links deliver on
    // setImmediate) and no aggregator holds an unacked envelope.
    const allAcked = async (what: string, timeoutMs = 300_000): Promise<void> => {
      const end = Date.now() + timeoutMs;
      const pending = () => {
        let inAggs = 0;
        for (const a of aggs) {
          const st = a.stats();
          if (st.unackedEnvelopes > 0) return true;
          inAggs += st.envelopesIn;
        }
        return inAggs < sim.stats.envelopesSent;
      };
      while (pending()) {
        if (Date.now() > end) throw new Error(`${what}: not everything acked within ${timeoutMs / 1000} s`);
        await sleep(2);
      }
    };

    // Inspector profile of this process (simulator + aggregators), same clock as --cpu-prof.
    let inspector: import('node:inspector/promises').Session | undefined;
    if (profile) {
      const { Session } = await import('node:inspector/promises');
      inspector = new Session();
      inspector.connect();
      await inspector.post('Profiler.enable');
      await inspector.post('Profiler.setSamplingInterval', { interval: 1000 });
      await inspector.post('Profiler.start');
    }

    // 2. handshakes
    const hs0 = performance.now();
    const hs0us = nowUs();
    await sim.start();
    const hs1us = nowUs();
    const hsSeconds = (performance.now() - hs0) / 1000;
    await allAcked('handshakes');
    const hs = { meters, seconds: round(hsSeconds, 2), perSec: round(sim.stats.handshakes / hsSeconds, 0), retries: sim.stats.handshakeRetries, failures: sim.stats.handshakeFailures };
    log(`handshakes: ${sim.stats.handshakes.toLocaleString('en-US')} in ${hsSeconds.toFixed(2)} s = ${num(hs.perSec)}/s (retries ${hs.retries}, failures ${hs.failures})`);

    // 3. warm-up intervals
    let k = 1;
    for (; k <= warmup; k++) {
      const w0 = performance.now();
      await sim.step(START + k * INTERVAL);
      await sim.drain();
      await allAcked('warm-up');
      log(`warm-up interval ${k}: ${meters.toLocaleString('en-US')} reports in ${((performance.now() - w0) / 1000).toFixed(2)} s`);
    }
    const storedBefore = (await Promise.all(ingests.map((c) => c.stats()))).reduce((s, x) => s + Number(x?.readingsStored ?? 0), 0);

    // 4. measured intervals
    const mosquittoPids = wantBroker === 'embedded' ? [] : pidsByComm('mosquitto');
    const childCpu0 = children.map((c) => procCpuSeconds(c.proc.pid!) ?? NaN);
    const mq0 = cpuSnapshot(mosquittoPids);
    const self0 = process.cpuUsage();
    const acked0 = ackedEnvelopes();
    const total = meters * intervals;
    const samples: Array<[number, number]> = [];
    const t0us = nowUs();
    const t0 = performance.now();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        samples.push([performance.now(), ackedEnvelopes() - acked0]);
        await sleep(20);
      }
    })();
    const sendDone: number[] = [];
    for (let j = 0; j < intervals; j++, k++) {
      await sim.step(START + k * INTERVAL);
      sendDone.push(performance.now() - t0);
    }
    await sim.drain();
    await allAcked('measured intervals');
    const t1 = performance.now();
    const t1us = nowUs();
    sampling = false;
    await sampler;
    samples.push([t1, ackedEnvelopes() - acked0]);
    const seconds = (t1 - t0) / 1000;
    const selfCpu = coresUsed(self0, process.cpuUsage(), seconds);
    const childCpu = children.map((c, i) => ((procCpuSeconds(c.proc.pid!) ?? NaN) - childCpu0[i]!) / seconds);
    const mqCpu = mosquittoPids.length ? cpuBetween(mq0, cpuSnapshot(mosquittoPids)) / seconds : NaN;
    const ingestStats = await Promise.all(ingests.map((c) => c.stats()));
    const stored = ingestStats.reduce((s, x) => s + Number(x?.readingsStored ?? 0), 0) - storedBefore;
    const rejected: Record<string, number> = {};
    for (const st of ingestStats) for (const [r, n] of Object.entries((st?.rejected ?? {}) as Record<string, number>)) rejected[r] = (rejected[r] ?? 0) + n;
    const rate = stored / seconds;
    // steady: the ack rate between 10 % and 90 % of the window's reports acked
    const at = (frac: number) => samples.find((s) => s[1] >= frac * total) ?? samples.at(-1)!;
    const [s10, s90] = [at(0.1), at(0.9)];
    const steady = s90[0] > s10[0] ? (s90[1] - s10[1]) / ((s90[0] - s10[0]) / 1000) : NaN;
    const simRate = total / (sendDone.at(-1)! / 1000);
    log(`measured: ${stored.toLocaleString('en-US')} readings stored of ${total.toLocaleString('en-US')} sent in ${seconds.toFixed(2)} s = ${num(rate)} reports/s (steady ${num(steady)}/s); simulator done sending after ${(sendDone.at(-1)! / 1000).toFixed(2)} s`);
    if (stored !== total) {
      log(`WARNING: ${total - stored} readings missing (rejected: ${JSON.stringify(rejected)})`);
      exit = 1;
    }

    // Profiles: stop everything (children write theirs on exit), cut each to the window.
    let mainProfile: CpuProfile | undefined;
    if (inspector) {
      mainProfile = ((await inspector.post('Profiler.stop')) as { profile: CpuProfile }).profile;
      inspector.disconnect();
    }
    await Promise.all(aggs.map((a) => a.close()));
    cleanups.length = 0;
    sim.close();
    for (const c of [...children].reverse()) await c.stop();
    const profiles: ProfileSummary[] = [];
    const hsProfiles: ProfileSummary[] = [];
    if (profileDir) {
      const label = (c: Child) => (c.name === 'store' ? (store === 'server' ? 'CascaDB server' : store === 'null' ? 'ingest (null store)' : 'ingest + CascaDB') : c.name);
      if (mainProfile) profiles.push(summarise('main (simulator + aggregators)', mainProfile, t0us, t1us));
      const childProfiles = children.map((c) => ({ c, p: latestProfile(join(profileDir, c.name)) }));
      for (const { c, p } of childProfiles) {
        if (p) profiles.push(summarise(label(c), p, t0us, t1us));
        else log(`profile: ${c.name} wrote no .cpuprofile`);
      }
      if (mainProfile) hsProfiles.push(summarise('main (simulator + aggregators)', mainProfile, hs0us, hs1us));
      for (const { c, p } of childProfiles) if (p) hsProfiles.push(summarise(label(c), p, hs0us, hs1us));
      if (f['profile-out']) {
        mkdirSync(f['profile-out'], { recursive: true });
        if (mainProfile) writeFileSync(join(f['profile-out'], 'main.cpuprofile'), JSON.stringify(mainProfile));
        for (const c of children) {
          const p = latestProfile(join(profileDir, c.name));
          if (p) writeFileSync(join(f['profile-out'], `${c.name}.cpuprofile`), JSON.stringify(p));
        }
      }
    }

    // ---- report
    const target = 50_000;
    const procRows: string[][] = [['main: simulator + aggregators', selfCpu.toFixed(2)]];
    children.forEach((c, i) => procRows.push([c.name === 'store' ? (store === 'server' ? 'CascaDB server' : store === 'null' ? 'ingest (null store)' : 'ingest + CascaDB') : c.name === 'broker' ? 'broker (aedes)' : c.name, childCpu[i]!.toFixed(2)]));
    if (mosquittoPids.length) procRows.push(['mosquitto (all processes so named)', mqCpu.toFixed(2)]);
    const totalCpu = selfCpu + childCpu.reduce((s, x) => s + (Number.isFinite(x) ? x : 0), 0) + (Number.isFinite(mqCpu) ? mqCpu : 0);
    procRows.push(['total', totalCpu.toFixed(2)]);
    for (const r of procRows) r.push(num((Number(r[1]) * seconds * 1e6) / Math.max(stored, 1), 1));

    console.log(`\nbench:ingest — meters → aggregators → MQTT → ingest → CascaDB/KVS (durable, encrypted), ${cpus().length} cores`);
    console.log(`config: ${meters.toLocaleString('en-US')} meters (${suite}), ${intervals} measured intervals (+${warmup} warm-up), ${nAgg} aggregators × ${aggBatch} envelopes/batch, metrology batches of ${batchMax}`);
    console.log(`broker: ${brokerLabel}`);
    console.log(`store:  ${storeLabel}`);
    console.log(`load average at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
    console.log(
      table(
        ['figure', 'value', 'unit', 'ratio'],
        [
          ['end to end: seal → durable + acked', num(rate), 'reports/s', ''],
          ['  steady (10 % → 90 % of the window acked)', num(steady), 'reports/s', ''],
          ['crypto bound (openRecord + leafHash, 1 core)', num(bound.reportsPerSec), 'reports/s', ''],
          ['  + frame decode + range check', num(bound.withDecodePerSec), 'reports/s', ''],
          ['end to end / crypto bound', '', '', ratio(rate / bound.reportsPerSec, 3)],
          ['end to end / target 50,000', '', '', ratio(rate / target, 3)],
          ['1,000,000 meters, one interval (target < 20 s)', num(1e6 / rate, 1), 's', ''],
          ['simulator send rate (backpressured by the pipeline)', num(simRate), 'reports/s', ''],
          ['handshakes (ClientHello → Established, stored)', num(hs.perSec), 'handshakes/s', ''],
          ['readings stored in the window', num(stored), 'rows', ''],
          ['window', num(seconds, 2), 's', ''],
        ],
      ),
    );
    console.log(`\nCPU in the measured window (cores; 1.00 = one core busy; µs of CPU per stored report — robust to a loaded machine)`);
    console.log(table(['process', 'cores', 'CPU µs/report'], procRows));
    for (const p of hsProfiles) {
      console.log(`\nprofile (handshake phase): ${p.process} — busy ${num(p.busyMs)} ms of ${num(p.wallMs)} ms sampled`);
      console.log(table(['component', 'ms', '% of busy'], p.components.slice(0, 8).map((c) => [c.component, num(c.ms), c.pct.toFixed(1)])));
    }
    for (const p of profiles) {
      console.log(`\nprofile: ${p.process} — busy ${num(p.busyMs)} ms of ${num(p.wallMs)} ms sampled in the window (main thread)`);
      console.log(table(['component (sample charged to the deepest frame naming one)', 'ms', '% of busy'], p.components.slice(0, 14).map((c) => [c.component, num(c.ms), c.pct.toFixed(1)])));
      console.log(table(['top self-time functions', 'file:line', 'ms'], p.functions.slice(0, 8).map((fn) => [fn.name, `${fn.file}:${fn.line}`, num(fn.ms)])));
    }
    printJsonLast({
      bench: 'ingest',
      cores: cpus().length,
      loadavg: loadavg().map((x) => round(x, 2)),
      config: { meters, suite, intervals, warmup, aggregators: nAgg, aggBatch, ingest: nIngest, store, batchMax, broker: wantBroker === 'embedded' ? 'aedes' : 'mosquitto', brokerUrl: wantBroker === 'embedded' ? undefined : brokerUrl, profiled: profile },
      reportsPerSec: round(rate, 0),
      steadyReportsPerSec: round(steady, 0),
      seconds: round(seconds, 3),
      stored,
      expected: total,
      rejected,
      cryptoBound: { reportsPerSec: round(bound.reportsPerSec, 0), withDecodePerSec: round(bound.withDecodePerSec, 0), runs: bound.runs.map((x) => round(x, 0)) },
      ratioToCryptoBound: round(rate / bound.reportsPerSec, 4),
      ratioToTarget: round(rate / target, 4),
      target,
      secondsFor1MMeters: round(1e6 / rate, 1),
      simulatorSendPerSec: round(simRate, 0),
      handshakes: hs,
      cpuCores: {
        main: round(selfCpu, 3),
        ...Object.fromEntries(children.map((c, i) => [c.name, round(childCpu[i]!, 3)])),
        ...(mosquittoPids.length ? { mosquitto: round(mqCpu, 3) } : {}),
        total: round(totalCpu, 3),
      },
      cpuUsPerReport: Object.fromEntries(procRows.map((r) => [r[0], Number(r[2]!.replace(/,/g, ''))])),
      setupSeconds: round(setupSeconds, 1),
      ...(profiles.length ? { profile: profiles.map((p) => ({ ...p, components: p.components.slice(0, 16), functions: p.functions.slice(0, 10) })) } : {}),
      ...(hsProfiles.length ? { handshakeProfile: hsProfiles.map((p) => ({ process: p.process, busyMs: p.busyMs, wallMs: p.wallMs, components: p.components.slice(0, 8) })) } : {}),
    });
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    for (const c of [...children].reverse()) await c.stop().catch(() => undefined);
    if (!f.keep) rmSync(root, { recursive: true, force: true });
    else log(`kept ${root}`);
  }
  return exit;
}

main().then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err) => {
    process.stderr.write(`bench:ingest: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
