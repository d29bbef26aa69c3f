// Test fixture: the meters-to-store pipeline as real OS processes on loopback — a Mosquitto of the test's own
// (tapped by a raw '#' subscriber), a CascaDB server over an embedded KVS, N `securegrid ingest` instances,
// `securegrid aggregator`s and `securegrid meters` — plus the ground-truth checks the pipeline tests share.
// Needs the built CLI (`npm run build`); children run the same build as this file (SECUREGRID_DIST).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import { decodeProof, leafHash, verifyBatch, verifyInclusion } from '../../src/crypto/index.js';
import { PgSqlClient, reportFromRow, type IngestStats } from '../../src/ingest/index.js';
import { createFleet, dayOfIso, DAY_MS, generateReports, INTERVAL_MS, LOCAL_OFFSET_MS, type Fleet, type LabelLog } from '../../src/meter/index.js';
import { canonicalReading, decodeAck, decodeUplinkBatch, REJECT_REASONS, roundReport, type PhasorReport, type RejectReason } from '../../src/protocol/index.js';
import { freePort } from './node-procs.js';

/** The checkout's root: the nearest parent of this file holding bin/securegrid.js and package.json. */
function findRepo(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(d, 'bin', 'securegrid.js')) && existsSync(join(d, 'package.json'))) return d;
    const up = dirname(d);
    if (up === d) throw new Error('bin/securegrid.js not found above the test build');
    d = up;
  }
}

export const REPO = findRepo();
export const BIN = join(REPO, 'bin', 'securegrid.js');
/** The build this file belongs to (dist/, or a parallel build): the children run the same one. */
export const BUILD = fileURLToPath(new URL('../../', import.meta.url));
const MOSQUITTO = '/usr/sbin/mosquitto';
export const haveMosquitto = existsSync(MOSQUITTO);

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `cond` every `everyMs` until it is truthy; throws with `what` after `ms`. */
export async function until<T>(cond: () => T | Promise<T>, ms: number, what: string, everyMs = 100): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

// ------------------------------------------------------------------ processes

/** Every child this module started and has not seen exit: SIGKILLed on process exit, whatever happened. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One `securegrid …` (or other) child process with its whole stdout and stderr kept. */
export class Proc {
  out = '';
  err = '';
  readonly exited: Promise<Exit>;
  exit: Exit | undefined;
  private readonly proc: ChildProcess;

  constructor(readonly name: string, command: string, args: string[], env: Record<string, string> = {}) {
    const base = { ...process.env };
    delete base.NODE_TEST_CONTEXT; // the children are services, not test files
    this.proc = spawn(command, args, { env: { ...base, SECUREGRID_DIST: BUILD, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(this.proc);
    this.proc.stdout!.on('data', (d: Buffer) => (this.out += d.toString('utf8')));
    this.proc.stderr!.on('data', (d: Buffer) => (this.err += d.toString('utf8')));
    this.exited = new Promise<Exit>((resolve) => {
      const done = (e: Exit) => {
        live.delete(this.proc);
        this.exit ??= e;
        resolve(this.exit);
      };
      this.proc.once('exit', (code, signal) => done({ code, signal }));
      this.proc.once('error', (err) => {
        this.err += `\nspawn error: ${err.message}`;
        done({ code: -1, signal: null });
      });
    });
  }

  /** `securegrid <args>` with SECUREGRID_LOG_LEVEL = logLevel. */
  static sg(name: string, args: string[], logLevel = 'warn', env: Record<string, string> = {}): Proc {
    return new Proc(name, process.execPath, [BIN, ...args], { SECUREGRID_LOG_LEVEL: logLevel, ...env });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** The tail of the output, for failure messages. */
  tail(n = 3000): string {
    return `[${this.name} stdout] ${this.out.slice(-n)}\n[${this.name} stderr] ${this.err.slice(-n)}`;
  }

  /** Resolves with the first match of `re` in stdout; rejects if the process exits first or after `ms`. */
  async waitFor(re: RegExp, ms = 30_000): Promise<RegExpExecArray> {
    const end = Date.now() + ms;
    for (;;) {
      const m = re.exec(this.out);
      if (m) return m;
      if (!this.running) throw new Error(`${this.name} exited (${JSON.stringify(this.exit)}) before printing ${re}\n${this.tail()}`);
      if (Date.now() > end) throw new Error(`${this.name} printed no ${re} within ${ms} ms\n${this.tail()}`);
      await sleep(20);
    }
  }

  /** Waits for the process to end by itself; SIGKILLs it and throws after `ms`. */
  async wait(ms: number): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)));
    const r = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (r === 'timeout') {
      await this.stop('SIGKILL');
      throw new Error(`${this.name} did not finish within ${ms} ms\n${this.tail()}`);
    }
    return r;
  }

  /** Sends `signal` and waits for the exit; a process still there after `graceMs` is SIGKILLed. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<Exit> {
    if (!this.running) return this.exit!;
    this.proc.kill(signal);
    if (signal === 'SIGKILL') return this.exited;
    const t = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(t);
    }
  }
}

/** Runs `securegrid <args>` to completion; throws on a non-zero exit. */
export async function runSg(name: string, args: string[], ms = 60_000, logLevel = 'warn'): Promise<Proc> {
  const p = Proc.sg(name, args, logLevel);
  const e = await p.wait(ms);
  if (e.code !== 0) throw new Error(`securegrid ${args.slice(0, 3).join(' ')} exited ${JSON.stringify(e)}\n${p.tail()}`);
  return p;
}

function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** A Mosquitto of the test's own on a free loopback port (no persistence, anonymous). */
export class Mosquitto {
  private constructor(readonly port: number, readonly proc: Proc, private readonly dir: string) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<Mosquitto> {
    for (let attempt = 0; ; attempt++) {
      const port = await freePort();
      const dir = mkdtempSync(join(tmpdir(), 'sg-mosq-'));
      const conf = join(dir, 'mosquitto.conf');
      writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 1000000\n`);
      const proc = new Proc(`mosquitto:${port}`, MOSQUITTO, ['-c', conf]);
      try {
        await until(async () => !proc.running || (await reachable(port)), 10_000, `mosquitto on ${port}`, 50);
        if (!proc.running) throw new Error(`mosquitto exited: ${proc.tail()}`);
        return new Mosquitto(port, proc, dir);
      } catch (err) {
        await proc.stop('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
        if (attempt >= 2) throw err; // the free port was taken meanwhile: try another
      }
    }
  }

  async close(): Promise<void> {
    await this.proc.stop('SIGTERM', 3000);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ the broker tap

export interface TappedMessage {
  topic: string;
  payload: Buffer;
  at: number;
}

/**
 * A raw subscriber to '#': every application message the broker routes, kept byte for byte. It also follows the
 * uplink protocol (which batch seqs each aggregator published, how often, and which ingest acked) to tell when
 * the pipeline has drained and whether any batch went out twice.
 */
export class BrokerTap {
  readonly messages: TappedMessage[] = [];
  /** agg → seq → { publishes, envelopes } */
  readonly published = new Map<string, Map<number, { publishes: number; envelopes: number; first: number }>>();
  readonly acked = new Map<string, Set<number>>();

  private constructor(private readonly client: MqttClient) {
    client.on('message', (topic, payload) => this.onMessage(topic, Buffer.from(payload)));
  }

  static async connect(url: string): Promise<BrokerTap> {
    const client = mqtt.connect(url, { protocolVersion: 5, clientId: `sg-tap-${randomBytes(4).toString('hex')}`, clean: true, reconnectPeriod: 200 });
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    await client.subscribeAsync({ '#': { qos: 1 } });
    return new BrokerTap(client);
  }

  private onMessage(topic: string, payload: Buffer): void {
    const at = Date.now();
    this.messages.push({ topic, payload, at });
    const m = /^sg\/([^/]+)\/(up|resp|ack)$/.exec(topic);
    if (!m) return;
    try {
      if (m[2] === 'ack') {
        const a = decodeAck(payload);
        let s = this.acked.get(a.aggregatorId);
        if (!s) this.acked.set(a.aggregatorId, (s = new Set()));
        for (const q of a.seqs) s.add(q);
      } else {
        const b = decodeUplinkBatch(payload);
        let seqs = this.published.get(b.aggregatorId);
        if (!seqs) this.published.set(b.aggregatorId, (seqs = new Map()));
        const p = seqs.get(b.seq);
        if (p) p.publishes++;
        else seqs.set(b.seq, { publishes: 1, envelopes: b.envelopes.length, first: at });
      }
    } catch {
      // not ours to judge: the ingest counts malformed messages
    }
  }

  /** Uplink batches (up and resp) published and not acked yet. */
  unacked(): number {
    let n = 0;
    for (const [agg, seqs] of this.published) {
      const a = this.acked.get(agg);
      for (const seq of seqs.keys()) if (!a?.has(seq)) n++;
    }
    return n;
  }

  /** Batches first published at or after `since` (ms) that went out more than once, and their extra envelopes. */
  republished(since = 0): { batches: number; envelopes: number } {
    let batches = 0;
    let envelopes = 0;
    for (const seqs of this.published.values()) {
      for (const p of seqs.values()) {
        if (p.first < since || p.publishes < 2) continue;
        batches++;
        envelopes += (p.publishes - 1) * p.envelopes;
      }
    }
    return { batches, envelopes };
  }

  async close(): Promise<void> {
    await this.client.endAsync(true).catch(() => undefined);
  }
}

// ------------------------------------------------------------------ the fleet as the CLI builds it

/** The fleet flags a test passes to `securegrid meters` / `meters directory` (the rest at their defaults). */
export interface CliFleet {
  count: number;
  seed: string;
  /** yyyy-mm-dd, the first local day. */
  start: string;
  days: number;
  aggregatorIds: string[];
}

export function fleetArgs(f: CliFleet): string[] {
  return ['--count', String(f.count), '--seed', f.seed, '--start', f.start, '--days', String(f.days), '--aggregator-ids', f.aggregatorIds.join(',')];
}

/** The same Fleet `securegrid meters` builds from fleetArgs(f) (src/cli/meters.ts fleetOptions, defaults included). */
export function fleetOf(f: CliFleet): Fleet {
  return createFleet({
    count: f.count,
    seed: f.seed,
    suiteMix: { 'x25519-ed25519-aes256gcm': 1 },
    aggregators: [...f.aggregatorIds],
    largeCustomerFraction: 0.02,
    commercialFraction: 0.1,
    start: dayOfIso(f.start) * DAY_MS - LOCAL_OFFSET_MS,
    days: f.days,
  });
}

// ------------------------------------------------------------------ the pipeline

export const API_TOKEN = `tok-${randomBytes(12).toString('hex')}`;
const DB_USER = 'sg';
const DB_PASSWORD = `pw-${randomBytes(9).toString('hex')}`;

export interface PipelineOptions {
  ingests: number;
  aggregatorIds: string[];
  /** The fleet whose directory is provisioned. */
  fleet: CliFleet;
  aggregatorLogLevel?: string;
  ingestLogLevel?: string;
  retransmitMs?: number;
}

export interface IngestProc {
  proc: Proc;
  id: string;
  apiUrl: string;
}

export interface AggregatorProc {
  proc: Proc;
  id: string;
  fieldUrl: string;
}

export class Pipeline {
  readonly dir: string;
  readonly keysDir: string;
  readonly dbDir: string;
  readonly directoryFile: string;
  mosquitto!: Mosquitto;
  tap!: BrokerTap;
  db!: Proc;
  pgPort = 0;
  /** The CascaDB server's HTTPS JSON door (POST /v1/sql, HTTP Basic with dbUser / dbPassword). */
  httpUrl = '';
  readonly dbUser = DB_USER;
  readonly dbPassword = DB_PASSWORD;
  caFile = '';
  sql!: PgSqlClient;
  readonly ingests: IngestProc[] = [];
  readonly aggregators: AggregatorProc[] = [];
  readonly meterRuns: Proc[] = [];
  metrologyPublicKey!: Buffer;
  metrologyKeyId = '';
  /** Seconds each start-up step took, for the test's log line. */
  readonly timings: Record<string, number> = {};

  private constructor(readonly o: PipelineOptions) {
    this.dir = mkdtempSync(join(tmpdir(), 'sg-pipeline-'));
    this.keysDir = join(this.dir, 'ingest-keys');
    this.dbDir = join(this.dir, 'cascadb');
    this.directoryFile = join(this.dir, 'directory.jsonl');
  }

  get pgUrl(): string {
    return `postgres://${DB_USER}:${DB_PASSWORD}@127.0.0.1:${this.pgPort}/securegrid`;
  }

  /** Directories of the CascaDB server's storage nodes (embedded KVS). */
  get storageNodeDirs(): string[] {
    const base = join(this.dbDir, 'kvs', 'nodes');
    return readdirSync(base).map((n) => join(base, n));
  }

  static async start(o: PipelineOptions): Promise<Pipeline> {
    const p = new Pipeline(o);
    try {
      await p.boot();
    } catch (err) {
      await p.close();
      throw err;
    }
    return p;
  }

  private async boot(): Promise<void> {
    const o = this.o;
    let t = Date.now();
    const step = (name: string) => {
      this.timings[name] = (Date.now() - t) / 1000;
      t = Date.now();
    };
    this.mosquitto = await Mosquitto.start();
    this.tap = await BrokerTap.connect(this.mosquitto.url);
    // Keys, the CascaDB server and the registration directory are independent: start them together.
    this.db = Proc.sg('cascadb', ['cascadb', '--embedded', '--data', this.dbDir, '--user', DB_USER, '--password', DB_PASSWORD, '--pg-port', '0', '--http-port', '0'], 'warn');
    await Promise.all([
      runSg('ingest keys init', ['ingest', 'keys', 'init', '--data', this.keysDir, '--suites', 'x25519-ed25519-aes256gcm']),
      runSg('meters directory', ['meters', 'directory', ...fleetArgs(o.fleet), '--out', this.directoryFile]),
    ]);
    // The metrology public key as an auditor gets it: `ingest keys public` reads no private key.
    const pub = JSON.parse((await runSg('ingest keys public', ['ingest', 'keys', 'public', '--data', this.keysDir])).out) as { metrology: { publicKey: string; keyId: string } };
    this.metrologyPublicKey = Buffer.from(pub.metrology.publicKey, 'base64');
    this.metrologyKeyId = pub.metrology.keyId;
    const m = await this.db.waitFor(/listening on postgresql:\/\/\S+@127\.0\.0\.1:(\d+)\/securegrid .* and (https:\/\/\S+)\/v1\/sql/, 60_000);
    this.pgPort = Number(m[1]);
    this.httpUrl = m[2]!;
    step('keys, directory, cascadb');
    this.caFile = join(this.dbDir, 'tls', 'cert.pem');
    this.sql = new PgSqlClient({ url: this.pgUrl, ca: readFileSync(this.caFile, 'utf8'), max: 2 });
    await runSg('ingest provision', ['ingest', 'provision', '--directory', this.directoryFile, '--cascadb', this.pgUrl, '--cascadb-ca', this.caFile]);
    step('provision');
    await Promise.all([
      ...Array.from({ length: o.ingests }, (_, i) => this.startIngest(`${o.aggregatorIds[0]}-ing${i + 1}`)),
      ...o.aggregatorIds.map((id) => this.startAggregator(id)),
    ]);
    step('ingest and aggregators');
  }

  async startIngest(id: string): Promise<IngestProc> {
    const proc = Proc.sg(`ingest ${id}`, [
      'ingest', '--broker', this.mosquitto.url, '--cascadb', this.pgUrl, '--cascadb-ca', this.caFile, '--keys', this.keysDir,
      '--instance', id, '--http-port', '0', '--api-token', API_TOKEN, '--insecure-http',
    ], this.o.ingestLogLevel ?? 'warn');
    const m = await proc.waitFor(/operator API on (http:\/\/127\.0\.0\.1:\d+)/, 60_000);
    const ing = { proc, id, apiUrl: m[1]! };
    this.ingests.push(ing);
    return ing;
  }

  async startAggregator(id: string): Promise<AggregatorProc> {
    const proc = Proc.sg(`aggregator ${id}`, ['aggregator', '--id', id, '--broker', this.mosquitto.url, '--field-port', '0', '--retransmit-ms', String(this.o.retransmitMs ?? 5000)], this.o.aggregatorLogLevel ?? 'warn');
    const m = await proc.waitFor(/listening for meters on (tcp:\/\/127\.0\.0\.1:\d+)/, 60_000);
    const a = { proc, id, fieldUrl: m[1]! };
    this.aggregators.push(a);
    return a;
  }

  /** Starts `securegrid meters` for `fleet` against every aggregator, in the fleet's aggregator order. */
  meters(fleet: CliFleet, extra: string[] = []): Proc {
    const urls = fleet.aggregatorIds.map((id) => {
      const a = this.aggregators.find((x) => x.id === id);
      if (!a) throw new Error(`no aggregator ${id}`);
      return a.fieldUrl;
    });
    const p = Proc.sg('meters', ['meters', ...fleetArgs(fleet), '--aggregator', urls.join(','), '--keys', this.keysDir, ...extra], 'warn');
    this.meterRuns.push(p);
    return p;
  }

  /** An ingest instance's GET /v1/stats. */
  async stats(ing: IngestProc): Promise<IngestStats> {
    const r = await fetch(`${ing.apiUrl}/v1/stats`, { headers: { authorization: `Bearer ${API_TOKEN}` }, signal: AbortSignal.timeout(5000) });
    if (!r.ok) throw new Error(`${ing.id} /v1/stats: HTTP ${r.status}`);
    return (await r.json()) as IngestStats;
  }

  running(): IngestProc[] {
    return this.ingests.filter((i) => i.proc.running);
  }

  async storedCount(): Promise<number> {
    return Number((await this.sql.query('SELECT count(*) AS n FROM reading')).rows[0]!.n);
  }

  /**
   * Waits until the pipeline is quiet: every uplink batch the tap saw published is acked, every running ingest
   * instance has an empty backlog, and the stored count is the same on two reads `settleMs` apart.
   */
  async drain(ms = 60_000, settleMs = 1500): Promise<number> {
    const end = Date.now() + ms;
    let last = -1;
    for (;;) {
      const unacked = this.tap.unacked();
      const backlog = unacked === 0 ? (await Promise.all(this.running().map((i) => this.stats(i)))).reduce((a, s) => a + s.backlog, 0) : -1;
      const n = unacked === 0 && backlog === 0 ? await this.storedCount() : -2;
      if (n >= 0 && n === last) return n;
      last = n;
      if (Date.now() > end) throw new Error(`the pipeline did not drain within ${ms} ms: ${unacked} batches unacked, backlog ${backlog}, stored ${n}`);
      await sleep(n >= 0 ? settleMs : 200);
    }
  }

  /** Stops every process (meters, aggregators, ingest, then CascaDB and the broker); the files stay. */
  async stop(): Promise<void> {
    await this.sql?.close().catch(() => undefined);
    await Promise.all([...this.meterRuns, ...this.aggregators.map((a) => a.proc), ...this.ingests.map((i) => i.proc)].map((p) => p.stop('SIGTERM', 5000)));
    await this.db?.stop('SIGTERM', 8000);
    await this.tap?.close();
    await this.mosquitto?.close();
  }

  /** stop(), then the temp directory is removed. */
  async close(): Promise<void> {
    try {
      await this.stop();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

// ------------------------------------------------------------------ ground truth and stored data

export const key = (serial: number, ts: number) => `${serial}:${ts}`;

/** The readings a correct pipeline stores for `fleet`: every generated report but those the labels say are lost. */
export function expectedReadings(fleet: Fleet, labels?: LabelLog): Map<string, PhasorReport> {
  const lost = new Set((labels?.tamper ?? []).filter((l) => !l.stored).map((l) => key(l.serial, l.ts)));
  const out = new Map<string, PhasorReport>();
  for (const r of generateReports(fleet)) {
    const k = key(r.serial, r.ts);
    if (!lost.has(k)) out.set(k, roundReport(r));
  }
  return out;
}

export interface StoredRow {
  row: Record<string, unknown>;
  report: PhasorReport;
}

/** Every stored reading of the fleet's window (report ts in (start, end]), as rows and reports. */
export async function storedReadings(sql: PgSqlClient, fleet: Fleet): Promise<StoredRow[]> {
  const r = await sql.query('SELECT * FROM reading WHERE ts > $1 AND ts <= $2', [new Date(fleet.start), new Date(fleet.end)]);
  return r.rows.map((row) => ({ row, report: reportFromRow(row) }));
}

export interface Comparison {
  stored: number;
  expected: number;
  duplicates: string[];
  missing: string[];
  unexpected: string[];
  different: Array<{ key: string; stored: PhasorReport; expected: PhasorReport }>;
}

/** Stored readings against the ground truth, every field of every reading. */
export function compareReadings(stored: StoredRow[], expected: Map<string, PhasorReport>): Comparison {
  const seen = new Set<string>();
  const c: Comparison = { stored: stored.length, expected: expected.size, duplicates: [], missing: [], unexpected: [], different: [] };
  for (const s of stored) {
    const k = key(s.report.serial, s.report.ts);
    if (seen.has(k)) c.duplicates.push(k);
    seen.add(k);
    const e = expected.get(k);
    if (!e) c.unexpected.push(k);
    else if (JSON.stringify(e) !== JSON.stringify(s.report)) c.different.push({ key: k, stored: s.report, expected: e });
  }
  for (const k of expected.keys()) if (!seen.has(k)) c.missing.push(k);
  return c;
}

export interface ProofCheck {
  batches: number;
  readings: number;
  badSignatures: string[];
  badProofs: string[];
  wrongKeyId: string[];
  orphans: string[];
}

/** Every reading's inclusion proof against its batch's root, and every such batch's metrology signature. */
export async function verifyProofs(sql: PgSqlClient, stored: StoredRow[], metrologyPublicKey: Buffer, keyId: string): Promise<ProofCheck> {
  const rows = (await sql.query('SELECT batch_id, count, key_id, merkle_root, signature, source FROM batch')).rows;
  const batches = new Map(rows.map((b) => [String(b.batch_id), b]));
  const c: ProofCheck = { batches: 0, readings: 0, badSignatures: [], badProofs: [], wrongKeyId: [], orphans: [] };
  const checked = new Set<string>();
  for (const s of stored) {
    const id = String(s.row.batch_id);
    const b = batches.get(id);
    if (!b) {
      c.orphans.push(key(s.report.serial, s.report.ts));
      continue;
    }
    if (!checked.has(id)) {
      checked.add(id);
      if (b.key_id !== keyId) c.wrongKeyId.push(id);
      if (!verifyBatch(metrologyPublicKey, { batchId: id, count: Number(b.count), root: b.merkle_root as Buffer }, b.signature as Buffer)) c.badSignatures.push(id);
    }
    const ok = verifyInclusion(leafHash(canonicalReading(s.report)), Number(s.row.leaf), Number(b.count), decodeProof(s.row.proof as Buffer), b.merkle_root as Buffer);
    if (!ok) c.badProofs.push(key(s.report.serial, s.report.ts));
    c.readings++;
  }
  c.batches = checked.size;
  return c;
}

// ------------------------------------------------------------------ rejection counts

export type Reasons = Record<RejectReason, number>;

export function zeroReasons(): Reasons {
  return Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Reasons;
}

export function sumReasons(stats: Array<Pick<IngestStats, 'rejected'>>): Reasons {
  const out = zeroReasons();
  for (const s of stats) for (const r of REJECT_REASONS) out[r] += s.rejected[r] ?? 0;
  return out;
}

export function diffReasons(after: Reasons, before: Reasons): Reasons {
  const out = zeroReasons();
  for (const r of REJECT_REASONS) out[r] = after[r] - before[r];
  return out;
}

/** The interval index (1 = the first report of the window) of a report ts. */
export function intervalIndex(fleet: Fleet, ts: number): number {
  return (ts - fleet.start) / INTERVAL_MS;
}

// ------------------------------------------------------------------ scanning for plaintext

/** Every regular file under `dir`. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}
