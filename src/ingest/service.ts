// The authentication (ingest) service (docs/meter-pipeline.md, "Ingest"): MQTT in, handshakes, sessions and
// replay floors, decrypt, validate, dedupe, signed Merkle batches, one CascaDB transaction per batch, and only
// then the acks. Any number of instances share `$share/ingest/sg/+/up`; any of them can take any meter's records
// because sessions live in `meter_session`.
//
// Replays across instances — what is caught:
//  - on one instance: every replayed record (the session's window lives in its cache);
//  - on another instance: a record at or below the window persisted in `meter_session`. A session's window is
//    written once floorEvery (64) of its records have been committed since its last write, and at flush()/close()
//    (snapshots are taken when a batch is cut, written after it commits — within about sessionFlushMs — never
//    ahead of what is durable, so a retransmission of an unacked batch is never refused). Writing it after every
//    commit would cost one more row read and write in CascaDB per reading, as much as storing the reading;
//  - always: a second copy of a reading ((meter_id, ts) is the primary key) is a `duplicate` no-op.
// What is not caught as `replay`: a record replayed to a second instance above that session's persisted window
// (its last < floorEvery committed records, or those of the last sessionFlushMs), or within the window of a session
// two instances both hold (each persists its own view; the last write wins), is opened again. Its reading is then
// counted `duplicate` and stored once; a replayed command *response* can reach an operator request only if it
// carries that request's id, which is fresh per request.
import type { MqttClient } from 'mqtt';
import { freshRandom, parseSuite, seal, sha256, unseal, type SuiteName } from '../crypto/index.js';
import { logger, Metrics } from '../observe/index.js';
import {
  Collector,
  decodeClientHello,
  decodeFrame,
  decodeSession,
  decodeUplinkBatch,
  encodeAck,
  encodeAlert,
  encodeCommand,
  encodeDownlink,
  encodeSession,
  EnvelopeType,
  newCollectorSystemTitle,
  openUplink,
  parseTopic,
  REJECT_REASONS,
  RESP_ALL,
  SHARED_UP,
  topics,
  type MeterCommand,
  type MeterEnvelope,
  type MeterRecord,
  type MeterResponse,
  type RejectReason,
  type SessionState,
} from '../protocol/index.js';
import { signBatch, storeBatch, type BatchReading } from './batch.js';
import { IngestError } from './errors.js';
import type { IngestKeys } from './keys.js';
import { connectIngestMqtt } from './mqtt.js';
import { rangeViolation } from './reading.js';
import { ensureSchema, insertRows } from './schema.js';
import { SqlError, type SqlClient } from './sql.js';
import { startOperatorApi, type OperatorApi, type OperatorApiOptions } from './api.js';

export interface IngestOptions {
  /** mqtt://host:port (or mqtts://). */
  broker: string;
  brokerUsername?: string;
  brokerPassword?: string;
  sql: SqlClient;
  keys: IngestKeys;
  /** Names this instance in logs, metrics and batch rows (default: ingest-<random>). */
  instanceId?: string;
  /** Readings per metrology batch (default 4096). */
  batchMax?: number;
  /** Longest a reading waits in an open batch (default 250 ms). */
  batchMs?: number;
  /** How often updated replay floors are written to `meter_session` (default 2000 ms). */
  sessionFlushMs?: number;
  /**
   * A session's replay window is written to `meter_session` once this many of its records have been committed
   * since its last write (default 64), and at flush()/close(); 1 = after every commit.
   */
  floorEvery?: number;
  /** Readings waiting for commit beyond which the service stops taking MQTT messages (default 8 × batchMax). */
  maxBacklog?: number;
  /** Operator API; omitted → no HTTP listener. */
  api?: Omit<OperatorApiOptions, 'service'>;
  /** How long an operator command waits for the meter (default 10 s). */
  commandTimeoutMs?: number;
  /** Create the tables at start (default true). */
  ensureSchema?: boolean;
}

export interface IngestStats {
  instanceId: string;
  rejected: Record<RejectReason, number>;
  uplinkBatches: number;
  records: number;
  readingsStored: number;
  batches: number;
  acks: number;
  handshakes: number;
  sessionsCached: number;
  backlog: number;
  storeErrors: number;
}

export interface Ingest {
  readonly instanceId: string;
  /** The operator API's base URL, when it listens. */
  readonly apiUrl?: string;
  readonly metrics: Metrics;
  stats(): IngestStats;
  /** Sends a command to a meter under its session and waits for its authenticated answer. */
  command(serial: number, kind: MeterCommand['kind'], timeoutMs?: number): Promise<MeterResponse>;
  /** Cuts the open batch and resolves when everything taken so far is committed and acked. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

interface CachedSession {
  state: SessionState;
  /** A commit failed while this state had counters of its readings: never persist it (it may be ahead of the store). */
  poisoned: boolean;
  /** state.records at the last snapshot taken for `meter_session` (the stored row's, for a loaded session). */
  persisted: number;
}

interface Tracker {
  aggregatorId: string;
  seq: number;
  digest: Buffer;
  /** Metrology batches holding some of this uplink batch's readings and not yet committed. */
  batches: Set<OpenBatch>;
  processing: boolean;
  failed: boolean;
  done: boolean;
  records: number;
}

interface OpenBatch {
  readings: BatchReading[];
  keys: Set<number>;
  trackers: Set<Tracker>;
  sessions: Set<CachedSession>;
  timer?: NodeJS.Timeout;
  snapshots?: Array<{ cached: CachedSession; bytes: Buffer }>;
}

interface FinishedHandshake {
  session: SessionState;
  established: Buffer;
  sealed: Buffer;
}

interface MeterInfo extends MeterRecord {
  aggregatorId: string | null;
}

interface Pending {
  serial: number;
  resolve: (r: MeterResponse) => void;
}

const SESSION_AAD = 'securegrid-session/1';
const NEGATIVE_TTL_MS = 30_000;
const ALERT_EVERY_MS = 10_000;
const RECENT_LIMIT = 20_000;
const COMMIT_ATTEMPTS = 3;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function rejectReasonOf(err: unknown): RejectReason {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (REJECT_REASONS as readonly string[]).includes(code)) return code as RejectReason;
  return 'malformed';
}

class IngestService implements Ingest {
  readonly instanceId: string;
  readonly metrics: Metrics;
  apiUrl?: string;
  private readonly log = logger('ingest');
  private readonly batchMax: number;
  private readonly batchMs: number;
  private readonly maxBacklog: number;
  private readonly floorEvery: number;
  private client!: MqttClient;
  private collector!: Collector;
  private sessionKey!: Buffer;
  private metrologyKey!: Awaited<ReturnType<IngestKeys['metrologyKey']>>;
  private api?: OperatorApi;
  private readonly sessions = new Map<string, CachedSession>();
  private readonly loading = new Map<string, Promise<CachedSession | undefined>>();
  private readonly latestSession = new Map<number, string>();
  private readonly meters = new Map<number, { info: MeterInfo | null; at: number }>();
  private readonly recent = new Map<string, Tracker>();
  private readonly pending = new Map<number, Pending>();
  private readonly lastAlert = new Map<number, number>();
  private readonly dirty = new Map<string, { sessionId: Buffer; serial: number; bytes: Buffer }>();
  private open: OpenBatch | undefined;
  private commitChain: Promise<void> = Promise.resolve();
  private intake: Promise<void> = Promise.resolve();
  private queued = 0;
  private committing = 0;
  private batchSeq = 0;
  private readonly startId = Date.now().toString(36);
  private flushTimer?: NodeJS.Timeout;
  private sessionFlushing: Promise<void> = Promise.resolve();
  private closing = false;
  private readonly waiters: Array<() => void> = [];
  private readonly s = { uplinkBatches: 0, records: 0, readingsStored: 0, batches: 0, acks: 0, handshakes: 0, storeErrors: 0 };
  private readonly rejected = Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>;
  private readonly m: ReturnType<IngestService['makeMetrics']>;

  constructor(private readonly o: IngestOptions) {
    this.batchMax = o.batchMax ?? 4096;
    this.batchMs = o.batchMs ?? 250;
    this.maxBacklog = o.maxBacklog ?? 8 * this.batchMax;
    this.floorEvery = o.floorEvery ?? 64;
    if (!Number.isInteger(this.floorEvery) || this.floorEvery < 1) throw new IngestError('bad-input', 'floorEvery must be a positive integer');
    if (!Number.isInteger(this.batchMax) || this.batchMax < 1 || this.batchMax > 65_535) throw new IngestError('bad-input', 'batchMax must be an integer 1…65535');
    if (!(this.batchMs >= 1)) throw new IngestError('bad-input', 'batchMs must be at least 1');
    const title = newCollectorSystemTitle();
    this.instanceId = o.instanceId ?? `ingest-${title.subarray(3).toString('hex')}`;
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(this.instanceId)) throw new IngestError('bad-input', 'instance id must be 1–64 letters, digits, dots, dashes or underscores');
    this.metrics = new Metrics('ingest');
    this.m = this.makeMetrics();
    this.collectorTitle = title;
  }

  private readonly collectorTitle: Buffer;

  private makeMetrics() {
    const mt = this.metrics;
    return {
      rejected: mt.counter('ingest_rejected_total', 'uplink messages rejected, by reason', ['reason']),
      records: mt.counter('ingest_records_total', 'uplink records received'),
      stored: mt.counter('ingest_readings_stored_total', 'readings committed to CascaDB'),
      batches: mt.counter('ingest_batches_total', 'metrology batches committed'),
      commit: mt.histogram('ingest_batch_commit_seconds', 'time to sign and commit one metrology batch', [], [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5]),
      uplinks: mt.counter('ingest_uplink_batches_total', 'uplink batches taken from MQTT'),
      acks: mt.counter('ingest_acks_total', 'uplink batches acknowledged'),
      handshakes: mt.counter('ingest_handshakes_total', 'handshake messages answered, by step', ['step']),
      storeErrors: mt.counter('ingest_store_errors_total', 'metrology batches whose commit failed (not acked; the aggregator retransmits)'),
      sessions: mt.gauge('ingest_sessions_cached', 'sessions in this instance\'s cache'),
      backlog: mt.gauge('ingest_backlog_readings', 'readings taken and not yet committed'),
      commands: mt.counter('ingest_commands_total', 'operator commands, by kind and outcome', ['kind', 'outcome']),
    };
  }

  async start(): Promise<void> {
    if (this.o.ensureSchema !== false) await ensureSchema(this.o.sql);
    const identities: Partial<Record<SuiteName, Awaited<ReturnType<IngestKeys['collectorIdentity']>>>> = {};
    for (const s of await this.o.keys.suites()) identities[s] = await this.o.keys.collectorIdentity(s);
    if (Object.keys(identities).length === 0) throw new IngestError('no-keys', "the key directory has no collector identity; run 'securegrid ingest keys init'");
    this.collector = new Collector({ identities, cookieKey: await this.o.keys.cookieKey(), systemTitle: this.collectorTitle });
    this.sessionKey = await this.o.keys.sessionKey();
    this.metrologyKey = await this.o.keys.metrologyKey();
    this.client = connectIngestMqtt({
      url: this.o.broker,
      clientId: `${this.instanceId}-${this.startId}`,
      username: this.o.brokerUsername,
      password: this.o.brokerPassword,
      beforeAck: (done) => this.admit(done),
    });
    this.client.on('message', (topic, payload) => this.onMessage(topic, payload));
    this.client.on('error', (err) => this.log.warn({ err: err.message }, 'mqtt error'));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new IngestError('bad-input', `cannot reach the MQTT broker at ${this.o.broker} within 15 s`)), 15_000);
      this.client.once('connect', () => {
        clearTimeout(t);
        resolve();
      });
    }).catch(async (e) => {
      await this.client.endAsync(true);
      throw e;
    });
    await this.client.subscribeAsync({ [SHARED_UP]: { qos: 1 }, [RESP_ALL]: { qos: 1 } });
    this.flushTimer = setInterval(() => void this.flushSessions(), this.o.sessionFlushMs ?? 2000);
    this.flushTimer.unref();
    if (this.o.api) {
      this.api = await startOperatorApi({ ...this.o.api, service: this });
      this.apiUrl = this.api.url;
    }
    this.log.info({ instance: this.instanceId, broker: this.o.broker, api: this.apiUrl }, 'ingest started');
  }

  // ------------------------------------------------------------------ intake

  /** Flow control: PUBACK (and the next message) waits while too many readings await their commit. */
  private admit(done: () => void): void {
    if (this.backlog() < this.maxBacklog || this.closing) return done();
    this.waiters.push(done);
  }

  private backlog(): number {
    return this.committing + (this.open?.readings.length ?? 0) + this.queued;
  }

  private wakeIntake(): void {
    while (this.waiters.length && this.backlog() < this.maxBacklog) this.waiters.shift()!();
    this.m.backlog.set(this.backlog());
  }

  private onMessage(topic: string, payload: Buffer): void {
    if (this.closing) return; // not acked: the aggregator retransmits it to an instance that stays
    let kind: string;
    let aggregatorId: string;
    try {
      ({ kind, aggregatorId } = parseTopic(topic));
    } catch {
      this.reject('malformed');
      return;
    }
    this.queued++;
    // One message at a time, in arrival order: session windows and batches see records in order.
    this.intake = this.intake
      .then(() => (kind === 'resp' ? this.onResponses(aggregatorId, payload) : kind === 'up' ? this.onUplink(aggregatorId, payload) : undefined))
      .catch((err) => this.log.error({ err: (err as Error).message }, 'uplink processing failed'))
      .finally(() => {
        this.queued--;
        this.wakeIntake();
      });
  }

  private reject(reason: RejectReason, n = 1): void {
    this.rejected[reason] += n;
    this.m.rejected.inc({ reason }, n);
  }

  private async onUplink(aggregatorId: string, payload: Buffer): Promise<void> {
    let batch;
    try {
      batch = decodeUplinkBatch(payload);
    } catch {
      this.reject('malformed');
      return;
    }
    if (batch.aggregatorId !== aggregatorId) {
      this.reject('malformed'); // published under another aggregator's topic
      return;
    }
    this.s.uplinkBatches++;
    this.m.uplinks.inc();
    const key = `${aggregatorId}\0${batch.seq}`;
    const digest = sha256(payload);
    const seen = this.recent.get(key);
    if (seen && seen.digest.equals(digest) && !seen.failed) {
      // A retransmission of a batch this instance already took: its records are stored or on their way.
      this.reject('duplicate', seen.records);
      if (seen.done) this.publishAcks(new Map([[aggregatorId, [batch.seq]]]));
      return;
    }
    const t: Tracker = { aggregatorId, seq: batch.seq, digest, batches: new Set(), processing: true, failed: false, done: false, records: 0 };
    this.recent.set(key, t);
    if (this.recent.size > RECENT_LIMIT) this.recent.delete(this.recent.keys().next().value!);
    const down: MeterEnvelope[] = [];
    const finishes: FinishedHandshake[] = [];
    for (const env of batch.envelopes) {
      try {
        switch (env.type) {
          case EnvelopeType.clientHello:
            await this.onClientHello(env, down);
            break;
          case EnvelopeType.finish: {
            const f = await this.onFinish(env);
            if (f) finishes.push(f);
            break;
          }
          case EnvelopeType.record: {
            t.records++;
            // Synchronous unless the session must be loaded: no promise and microtask per record.
            const pending = this.onRecord(env, t, down);
            if (pending) await pending;
            break;
          }
          default:
            this.reject('malformed'); // responses travel on sg/<agg>/resp
        }
      } catch (err) {
        if ((err instanceof IngestError && err.code === 'store') || err instanceof SqlError) throw this.abandon(t, key, err);
        this.reject(rejectReasonOf(err));
      }
    }
    if (t.records) this.m.records.inc(t.records);
    if (finishes.length)
      await this.storeSessions(finishes, down).catch((err: unknown) => {
        throw this.abandon(t, key, err);
      });
    if (down.length) this.publishDownlink(aggregatorId, down);
    t.processing = false;
    this.maybeAck(t);
  }

  /** CascaDB failed mid-batch — not the sender's fault: the batch stays unacked and forgotten, so its retransmission is taken afresh. */
  private abandon(t: Tracker, key: string, err: unknown): unknown {
    t.failed = true;
    this.recent.delete(key);
    return err;
  }

  private async meter(serial: number): Promise<MeterInfo | null> {
    const hit = this.meters.get(serial);
    if (hit && (hit.info || Date.now() - hit.at < NEGATIVE_TTL_MS)) return hit.info;
    const r = (await this.o.sql.query('SELECT suite, public_key, aggregator_id FROM meter WHERE meter_id = $1', [serial])).rows[0];
    let info: MeterInfo | null = null;
    if (r && typeof r.suite === 'string' && Buffer.isBuffer(r.public_key)) {
      try {
        info = { suite: parseSuite(r.suite), publicKey: r.public_key, aggregatorId: typeof r.aggregator_id === 'string' ? r.aggregator_id : null };
      } catch {
        info = null; // a suite this version does not know: the meter cannot hand-shake
      }
    }
    this.meters.set(serial, { info, at: Date.now() });
    return info;
  }

  private async onClientHello(env: MeterEnvelope, down: MeterEnvelope[]): Promise<void> {
    const serial = decodeClientHello(Buffer.from(env.body)).serial;
    if (serial !== env.serial) return this.reject('handshake'); // the envelope and the hello disagree on the meter
    const info = await this.meter(serial);
    if (!info) {
      this.reject('unknown-meter');
      return;
    }
    const body = this.collector.serverHello(Buffer.from(env.body), info);
    this.s.handshakes++;
    this.m.handshakes.inc({ step: 'serverHello' });
    down.push({ type: EnvelopeType.serverHello, serial, sessionId: Buffer.alloc(8), body });
  }

  private async onFinish(env: MeterEnvelope): Promise<FinishedHandshake | undefined> {
    const info = await this.meter(env.serial);
    if (!info) {
      this.reject('unknown-meter');
      return undefined;
    }
    try {
      const { session, established } = this.collector.finish(Buffer.from(env.body), (s) => (s === env.serial ? info : undefined));
      return { session, established, sealed: this.sealSession(session) };
    } catch (err) {
      // The cookie names another meter than the envelope: a handshake failure, not an unknown meter.
      this.reject(rejectReasonOf(err) === 'unknown-meter' ? 'handshake' : rejectReasonOf(err));
      return undefined;
    }
  }

  /**
   * Stores the uplink batch's new sessions in one multi-row INSERT, durable before any Established goes out;
   * insert-if-absent, so a replayed Finish (its session id is deterministic) cannot reset a live session's window.
   */
  private async storeSessions(finishes: FinishedHandshake[], down: MeterEnvelope[]): Promise<void> {
    const fresh = finishes.filter((f) => !this.sessions.has(f.session.sessionId.toString('hex')));
    this.reject('replay', finishes.length - fresh.length);
    if (fresh.length === 0) return;
    const rows = fresh.map((f) => [f.session.sessionId, f.session.serial, f.sealed, new Date(f.session.createdAt)]);
    const inserted = await insertRows(this.o.sql, 'meter_session', ['session_id', 'meter_id', 'sealed', 'created_at'], rows, true);
    for (const f of fresh) {
      if (inserted < fresh.length) {
        // Some existed already: ours are those whose stored sealed bytes are the ones we just wrote (fresh IVs).
        const r = (await this.o.sql.query('SELECT sealed FROM meter_session WHERE session_id = $1', [f.session.sessionId])).rows[0];
        if (!r || !(r.sealed as Buffer).equals(f.sealed)) {
          this.reject('replay');
          continue;
        }
      }
      this.cacheSession(f.session);
      this.s.handshakes++;
      this.m.handshakes.inc({ step: 'established' });
      down.push({ type: EnvelopeType.established, serial: f.session.serial, sessionId: f.session.sessionId, body: f.established });
    }
  }

  private sealSession(s: SessionState): Buffer {
    return this.sealSessionBytes(s.sessionId, encodeSession(s));
  }

  private sealSessionBytes(sessionId: Buffer, bytes: Buffer): Buffer {
    const sealed = seal(this.sessionKey, bytes, Buffer.concat([Buffer.from(SESSION_AAD), sessionId]));
    bytes.fill(0);
    return sealed;
  }

  private cacheSession(state: SessionState): CachedSession {
    const c: CachedSession = { state, poisoned: false, persisted: state.records };
    const id = state.sessionId.toString('hex');
    this.sessions.set(id, c);
    const prev = this.latestSession.get(state.serial);
    const prevState = prev ? this.sessions.get(prev)?.state : undefined;
    if (!prevState || prevState.createdAt <= state.createdAt) this.latestSession.set(state.serial, id);
    this.m.sessions.set(this.sessions.size);
    return c;
  }

  /** The session from the cache, else from `meter_session` (another instance may have made it). */
  private session(sessionId: Buffer): Promise<CachedSession | undefined> | CachedSession | undefined {
    const id = sessionId.toString('hex');
    const hit = this.sessions.get(id);
    if (hit) return hit;
    let p = this.loading.get(id);
    if (!p) {
      p = this.loadSession(sessionId).finally(() => this.loading.delete(id));
      this.loading.set(id, p);
    }
    return p;
  }

  private async loadSession(sessionId: Buffer): Promise<CachedSession | undefined> {
    const r = (await this.o.sql.query('SELECT sealed FROM meter_session WHERE session_id = $1', [Buffer.from(sessionId)])).rows[0];
    if (!r || !Buffer.isBuffer(r.sealed)) return undefined;
    let state: SessionState;
    try {
      const plain = unseal(this.sessionKey, r.sealed, Buffer.concat([Buffer.from(SESSION_AAD), sessionId]));
      state = decodeSession(plain);
      plain.fill(0);
    } catch {
      this.log.warn('a meter_session row does not unseal under this service key (another key directory?)');
      return undefined;
    }
    return this.sessions.get(sessionId.toString('hex')) ?? this.cacheSession(state);
  }

  /** One record; returns a promise only when its session has to be loaded from `meter_session` first. */
  private onRecord(env: MeterEnvelope, t: Tracker, down: MeterEnvelope[]): Promise<void> | undefined {
    this.s.records++;
    const got = this.session(env.sessionId);
    if (got instanceof Promise) return got.then((cached) => this.openRecord(env, cached, t, down));
    this.openRecord(env, got, t, down);
    return undefined;
  }

  private openRecord(env: MeterEnvelope, cached: CachedSession | undefined, t: Tracker, down: MeterEnvelope[]): void {
    if (!cached) {
      this.reject('no-session');
      const now = Date.now();
      if (now - (this.lastAlert.get(env.serial) ?? 0) > ALERT_EVERY_MS) {
        this.lastAlert.set(env.serial, now);
        down.push({ type: EnvelopeType.alert, serial: env.serial, sessionId: Buffer.from(env.sessionId), body: encodeAlert('no-session') });
      }
      return;
    }
    const state = cached.state;
    // Another meter's session: its keys will not open this record either, but say why plainly.
    if (state.serial !== env.serial) return this.reject('auth');
    // env.body is a view of the MQTT payload; openUplink only reads it (the plaintext is a fresh buffer).
    const { ic, plaintext } = openUplink(state, env.body);
    const frame = decodeFrame(plaintext);
    if (frame.serial !== env.serial) return this.reject('auth');
    if (frame.type !== 'report') return this.reject('malformed');
    if (rangeViolation(frame.report) !== undefined) return this.reject('range');
    let ob = this.open;
    if (!ob) {
      ob = this.open = { readings: [], keys: new Set(), trackers: new Set(), sessions: new Set() };
      ob.timer = setTimeout(() => this.cut(), this.batchMs);
    }
    // (interval index, serial) as one number: rangeViolation put ts on the 15-minute grid, so it is exact (< 2^53).
    const key = (frame.report.ts / 900_000) * 100_000_000 + frame.report.serial;
    t.batches.add(ob);
    ob.trackers.add(t);
    if (ob.keys.has(key)) return this.reject('duplicate');
    ob.keys.add(key);
    ob.readings.push({ report: frame.report, counter: ic });
    ob.sessions.add(cached);
    if (ob.readings.length >= this.batchMax) this.cut();
  }

  // ------------------------------------------------------------------ batches, commits, acks

  /** Closes the open batch and queues its commit (commits run one at a time, in order). */
  private cut(): void {
    const ob = this.open;
    if (!ob) return;
    this.open = undefined;
    clearTimeout(ob.timer);
    // Snapshot the windows due for a write now: they cover exactly this batch's records and earlier ones.
    const snapshots: Array<{ cached: CachedSession; bytes: Buffer }> = [];
    for (const c of ob.sessions) {
      if (c.poisoned || c.state.records - c.persisted < this.floorEvery) continue;
      snapshots.push({ cached: c, bytes: encodeSession(c.state) });
      c.persisted = c.state.records;
    }
    ob.snapshots = snapshots;
    this.committing += ob.readings.length;
    this.commitChain = this.commitChain.then(() => this.commit(ob));
  }

  private async commit(ob: OpenBatch): Promise<void> {
    const started = performance.now();
    const batchId = `${this.instanceId}-${this.startId}-${++this.batchSeq}`;
    try {
      const signed = signBatch(ob.readings, { batchId, source: 'ingest', instance: this.instanceId, key: this.metrologyKey });
      let res: { inserted: number; duplicates: number } | undefined;
      for (let attempt = 1; ; attempt++) {
        try {
          res = await storeBatch(this.o.sql, signed);
          break;
        } catch (err) {
          if (attempt >= COMMIT_ATTEMPTS) throw err;
          this.log.warn({ batchId, attempt, err: (err as Error).message }, 'batch commit failed; retrying');
          await sleep(200 * attempt);
        }
      }
      this.s.readingsStored += res.inserted;
      this.s.batches++;
      this.m.stored.inc(res.inserted);
      this.m.batches.inc();
      this.m.commit.observe((performance.now() - started) / 1000);
      if (res.duplicates) this.reject('duplicate', res.duplicates);
      for (const snap of ob.snapshots ?? []) {
        if (snap.cached.poisoned) continue;
        const st = snap.cached.state;
        this.dirty.set(st.sessionId.toString('hex'), { sessionId: st.sessionId, serial: st.serial, bytes: snap.bytes });
      }
      const ready = new Map<string, number[]>();
      for (const t of ob.trackers) {
        t.batches.delete(ob);
        this.maybeAck(t, ready);
      }
      this.publishAcks(ready);
    } catch (err) {
      this.s.storeErrors++;
      this.m.storeErrors.inc();
      this.log.error({ batchId, readings: ob.readings.length, err: (err as Error).message }, 'batch not stored; its uplink batches stay unacked and will be retransmitted');
      // Their windows saw records that are not durable: drop them so a retransmission is opened again.
      for (const c of ob.sessions) {
        c.poisoned = true;
        this.sessions.delete(c.state.sessionId.toString('hex'));
      }
      for (const t of ob.trackers) {
        t.failed = true;
        this.recent.delete(`${t.aggregatorId}\0${t.seq}`);
      }
    } finally {
      this.committing -= ob.readings.length;
      this.wakeIntake();
    }
  }

  /** Acks an uplink batch once it is fully processed and each of its metrology batches committed. */
  private maybeAck(t: Tracker, ready?: Map<string, number[]>): void {
    if (t.processing || t.failed || t.done || t.batches.size > 0) return;
    t.done = true;
    if (!ready) return this.publishAcks(new Map([[t.aggregatorId, [t.seq]]]));
    const list = ready.get(t.aggregatorId);
    if (list) list.push(t.seq);
    else ready.set(t.aggregatorId, [t.seq]);
  }

  private publishAcks(ready: Map<string, number[]>): void {
    for (const [agg, seqs] of ready) {
      for (let i = 0; i < seqs.length; i += 65_535) {
        const part = seqs.slice(i, i + 65_535);
        this.client.publish(topics(agg).ack, encodeAck({ aggregatorId: agg, seqs: part }), { qos: 1 }, (err) => {
          if (err) this.log.warn({ err: err.message }, 'ack publish failed; the aggregator will retransmit and be acked again');
        });
        this.s.acks += part.length;
        this.m.acks.inc(part.length);
      }
    }
    ready.clear();
  }

  private publishDownlink(aggregatorId: string, envelopes: MeterEnvelope[]): void {
    for (let i = 0; i < envelopes.length; i += 4096) {
      this.client.publish(topics(aggregatorId).down, encodeDownlink({ aggregatorId, envelopes: envelopes.slice(i, i + 4096) }), { qos: 1 }, (err) => {
        if (err) this.log.warn({ err: err.message }, 'downlink publish failed');
      });
    }
  }

  /** Writes the replay floors of committed batches to `meter_session` (best effort; retried next time). */
  private flushSessions(): Promise<void> {
    this.sessionFlushing = this.sessionFlushing.then(async () => {
      if (this.dirty.size === 0) return;
      const items = [...this.dirty.values()];
      this.dirty.clear();
      try {
        await this.o.sql.transaction(async (tx) => {
          for (const it of items) await tx.query('UPDATE meter_session SET sealed = $1 WHERE session_id = $2', [this.sealSessionBytes(it.sessionId, Buffer.from(it.bytes)), it.sessionId]);
        });
      } catch (err) {
        for (const it of items) if (!this.dirty.has(it.sessionId.toString('hex'))) this.dirty.set(it.sessionId.toString('hex'), it);
        this.log.warn({ sessions: items.length, err: (err as Error).message }, 'replay floors not persisted; retrying');
      }
    });
    return this.sessionFlushing;
  }

  // ------------------------------------------------------------------ commands

  private async onResponses(aggregatorId: string, payload: Buffer): Promise<void> {
    let batch;
    try {
      batch = decodeUplinkBatch(payload);
    } catch {
      this.reject('malformed');
      return;
    }
    if (batch.aggregatorId !== aggregatorId) return this.reject('malformed');
    for (const env of batch.envelopes) {
      // Every instance sees every response; only the one waiting for this meter opens it.
      const p = this.pending.size ? [...this.pending.values()].find((x) => x.serial === env.serial) : undefined;
      if (!p || env.type !== EnvelopeType.response) continue;
      try {
        const got = this.session(env.sessionId);
        const cached = got instanceof Promise ? await got : got;
        if (!cached) {
          this.reject('no-session');
          continue;
        }
        if (cached.state.serial !== env.serial) {
          this.reject('auth');
          continue;
        }
        const { plaintext } = openUplink(cached.state, Buffer.from(env.body));
        const frame = decodeFrame(plaintext);
        if (frame.serial !== env.serial) {
          this.reject('auth');
          continue;
        }
        if (frame.type !== 'response') {
          this.reject('malformed');
          continue;
        }
        const waiting = this.pending.get(frame.response.requestId);
        if (waiting && waiting.serial === env.serial) waiting.resolve(frame.response);
      } catch (err) {
        this.reject(rejectReasonOf(err));
      }
    }
    // Nothing to store: every instance acks response batches at once (acks are idempotent).
    this.publishAcks(new Map([[aggregatorId, [batch.seq]]]));
  }

  private async latestSessionOf(serial: number): Promise<CachedSession | undefined> {
    const id = this.latestSession.get(serial);
    const hit = id ? this.sessions.get(id) : undefined;
    const rows = (await this.o.sql.query('SELECT session_id, created_at FROM meter_session WHERE meter_id = $1', [serial])).rows;
    let best: { id: Buffer; at: number } | undefined;
    for (const r of rows) if (!best || Number(r.created_at) > best.at) best = { id: r.session_id as Buffer, at: Number(r.created_at) };
    if (!best) return hit;
    if (hit && hit.state.createdAt >= best.at) return hit;
    const got = this.session(best.id);
    return got instanceof Promise ? await got : got;
  }

  async command(serial: number, kind: MeterCommand['kind'], timeoutMs = this.o.commandTimeoutMs ?? 10_000): Promise<MeterResponse> {
    if (this.closing) throw new IngestError('closed', 'the ingest service is stopping');
    if (!Number.isInteger(serial) || serial < 0 || serial > 99_999_999) throw new IngestError('bad-input', `meter serial must be an integer 0…99999999, got ${serial}`);
    const info = await this.meter(serial);
    if (!info) throw new IngestError('unknown-meter', `meter ${serial} is not in the meter directory (or has no registered key)`);
    if (!info.aggregatorId) throw new IngestError('unknown-meter', `meter ${serial} has no aggregator in the directory; cannot reach it`);
    const cached = await this.latestSessionOf(serial);
    if (!cached) throw new IngestError('no-session', `meter ${serial} has no established session; it must hand-shake first`);
    let requestId: number;
    do requestId = freshU32();
    while (requestId === 0 || this.pending.has(requestId));
    const command = { kind, requestId } as MeterCommand;
    const record = this.collector.sealDownlink(cached.state, encodeCommand(serial, command));
    const body = Buffer.concat([this.collector.systemTitle, record]);
    let outcome = 'ok';
    try {
      return await new Promise<MeterResponse>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.pending.delete(requestId);
          reject(new IngestError('timeout', `meter ${serial} did not answer the ${kind} command within ${timeoutMs} ms (offline, or its aggregator is)`));
        }, timeoutMs);
        this.pending.set(requestId, {
          serial,
          resolve: (r) => {
            clearTimeout(timer);
            this.pending.delete(requestId);
            resolve(r);
          },
        });
        this.publishDownlink(info.aggregatorId!, [{ type: EnvelopeType.downlink, serial, sessionId: cached.state.sessionId, body }]);
      });
    } catch (err) {
      outcome = (err as { code?: string }).code ?? 'error';
      throw err;
    } finally {
      this.m.commands.inc({ kind, outcome });
    }
  }

  // ------------------------------------------------------------------ lifecycle

  stats(): IngestStats {
    return {
      instanceId: this.instanceId,
      rejected: { ...this.rejected },
      ...this.s,
      sessionsCached: this.sessions.size,
      backlog: this.backlog(),
    };
  }

  async flush(): Promise<void> {
    await this.intake;
    this.cut();
    await this.commitChain;
    this.snapshotCommitted();
    await this.flushSessions();
  }

  /** Marks every window with committed records not yet written dirty — only when the windows hold nothing else. */
  private snapshotCommitted(): void {
    // An open or committing batch means some window already counts records that are not durable yet.
    if (this.open || this.committing > 0) return;
    for (const c of this.sessions.values()) {
      if (c.poisoned || c.state.records <= c.persisted) continue;
      const st = c.state;
      this.dirty.set(st.sessionId.toString('hex'), { sessionId: st.sessionId, serial: st.serial, bytes: encodeSession(st) });
      c.persisted = st.records;
    }
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const w of this.waiters.splice(0)) w();
    try {
      await this.client.unsubscribeAsync([SHARED_UP, RESP_ALL]);
    } catch {
      // broker gone: nothing more arrives anyway
    }
    await this.flush();
    clearInterval(this.flushTimer);
    if (this.api) await this.api.close();
    await this.client.endAsync();
    this.sessionKey?.fill(0);
    this.log.info(this.stats(), 'ingest stopped');
  }
}

function freshU32(): number {
  return freshRandom(4).readUInt32BE(0);
}

/** Starts an ingest instance: connects, subscribes and (with `api`) serves the operator API. */
export async function startIngest(o: IngestOptions): Promise<Ingest> {
  const s = new IngestService(o);
  await s.start();
  return s;
}
