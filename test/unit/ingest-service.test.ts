// The ingest service end to end on loopback: the embedded broker, CascaDB over an embedded KVS, real meter
// sessions, and a test client in the aggregator's (untrusted) seat that can replay, alter and forge.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { startBroker, type Broker } from '../../src/broker/index.js';
import { decodeProof, generateIdentity, leafHash, verifyBatch, verifyInclusion, type SuiteName } from '../../src/crypto/index.js';
import {
  canonicalReading,
  decodeAck,
  decodeAlert,
  decodeDownlink,
  decodeFrame,
  encodeReport,
  encodeResponse,
  encodeUplinkBatch,
  EnvelopeType,
  MemoryCounterStore,
  MeterSession,
  type MeterEnvelope,
  type PhasorReport,
} from '../../src/protocol/index.js';
import {
  EngineSqlClient,
  ensureSchema,
  FileIngestKeys,
  initIngestKeys,
  provisionDirectory,
  reportFromRow,
  SqlError,
  startIngest,
  type Ingest,
  type IngestOptions,
  type SqlClient,
} from '../../src/ingest/index.js';
import { startTestDb, type TestDb } from '../helpers/cascadb.js';

const SUITE: SuiteName = 'x25519-ed25519-aes256gcm';
const AGG = 'agg1';
const T0 = Date.UTC(2024, 2, 1);
const TOKEN = 'operator-token-0123456789';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => T | undefined | false, ms = 8000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function report(serial: number, k: number, over: Partial<PhasorReport> = {}): PhasorReport {
  const ph = (v: number) => ({ voltageV: 220 + v, currentA: 5 + k / 4, angleDeg: 15 });
  return {
    serial,
    ts: T0 + k * 900_000,
    phases: [ph(0), ph(1), ph(2)],
    activePowerW: 3000 + k,
    reactivePowerVar: 400,
    powerFactor: 0.99,
    thdPercent: 3,
    frequencyHz: 60,
    demandW: 3000 + k,
    energyWh: 100_000 + 750 * k,
    status: 0,
    ...over,
  };
}

/** The aggregator's seat: publishes uplink batches, collects acks and downlinks. */
class Field {
  client!: MqttClient;
  acks: number[] = [];
  downs: MeterEnvelope[] = [];
  seq = 1;
  onDown?: (e: MeterEnvelope) => void;
  async start(url: string): Promise<void> {
    this.client = await mqtt.connectAsync(url, { protocolVersion: 4, clientId: `field-${Math.random()}`, clean: true });
    this.client.on('message', (topic, payload) => {
      if (topic.endsWith('/ack')) this.acks.push(...decodeAck(payload).seqs);
      else
        for (const e of decodeDownlink(payload).envelopes) {
          this.downs.push(e);
          this.onDown?.(e);
        }
    });
    await this.client.subscribeAsync({ [`sg/${AGG}/ack`]: { qos: 1 }, [`sg/${AGG}/down`]: { qos: 1 } });
  }
  async send(envelopes: MeterEnvelope[], kind: 'up' | 'resp' = 'up', seq = this.seq++): Promise<number> {
    await this.client.publishAsync(`sg/${AGG}/${kind}`, encodeUplinkBatch({ aggregatorId: AGG, seq, envelopes }), { qos: 1 });
    return seq;
  }
  async raw(payload: Buffer): Promise<void> {
    await this.client.publishAsync(`sg/${AGG}/up`, payload, { qos: 1 });
  }
  acked(seq: number): Promise<true> {
    return until(`ack ${seq}`, () => this.acks.includes(seq));
  }
  take(type: number, serial: number): Promise<MeterEnvelope> {
    return until(`downlink ${type} for ${serial}`, () => {
      const i = this.downs.findIndex((e) => e.type === type && e.serial === serial);
      return i >= 0 ? this.downs.splice(i, 1)[0] : undefined;
    });
  }
}

interface Meter {
  serial: number;
  session: MeterSession;
}

interface Rig {
  broker: Broker;
  db: TestDb;
  sql: SqlClient;
  keysDir: string;
  meters: Meter[];
  field: Field;
  ingests: Ingest[];
  metrologyPub: Buffer;
  collectorPub: Buffer;
  start(o?: Partial<IngestOptions>): Promise<Ingest>;
  handshake(ms: Meter[]): Promise<void>;
  record(m: Meter, r: PhasorReport): MeterEnvelope;
  close(): Promise<void>;
}

async function rig(serials: number[]): Promise<Rig> {
  const broker = await startBroker({ port: 0 });
  const db = await startTestDb(3);
  const sql = new EngineSqlClient(db.engine);
  const keysDir = mkdtempSync(join(tmpdir(), 'sg-ingest-keys-'));
  const pub = await initIngestKeys(keysDir, [SUITE]);
  const meters: Meter[] = serials.map((serial) => {
    const identity = generateIdentity(SUITE);
    return { serial, identity, session: new MeterSession({ suite: SUITE, serial, identity, collectorPublicKey: Buffer.from(pub.collector[SUITE]!, 'base64'), counters: new MemoryCounterStore() }) };
  }) as Array<Meter & { identity: ReturnType<typeof generateIdentity> }>;
  await ensureSchema(sql);
  await provisionDirectory(
    sql,
    (meters as Array<Meter & { identity: ReturnType<typeof generateIdentity> }>).map((m) => ({
      customer_id: `c${m.serial}`, class: 'residential', tariff: 'B1', supply_kv: 0.22, region: 'north', contracted_kw: 10,
      meter_id: m.serial, suite: SUITE, public_key: m.identity.publicKey.toString('base64'), aggregator_id: AGG,
    })),
  );
  const field = new Field();
  await field.start(broker.url);
  const ingests: Ingest[] = [];
  const r: Rig = {
    broker, db, sql, keysDir, meters, field, ingests,
    metrologyPub: Buffer.from(pub.metrology!.publicKey, 'base64'),
    collectorPub: Buffer.from(pub.collector[SUITE]!, 'base64'),
    async start(o = {}) {
      const i = await startIngest({ broker: broker.url, sql, keys: new FileIngestKeys(keysDir), batchMs: 30, ...o });
      ingests.push(i);
      return i;
    },
    async handshake(ms) {
      await field.send(ms.map((m) => ({ type: EnvelopeType.clientHello, serial: m.serial, sessionId: Buffer.alloc(8), body: m.session.clientHello() })));
      const fins: MeterEnvelope[] = [];
      for (const m of ms) fins.push({ type: EnvelopeType.finish, serial: m.serial, sessionId: Buffer.alloc(8), body: m.session.onServerHello(Buffer.from((await field.take(EnvelopeType.serverHello, m.serial)).body)) });
      await field.send(fins);
      for (const m of ms) m.session.onEstablished(Buffer.from((await field.take(EnvelopeType.established, m.serial)).body));
    },
    record(m, rep) {
      return { type: EnvelopeType.record, serial: m.serial, sessionId: m.session.sessionId!, body: m.session.seal(encodeReport(rep)) };
    },
    async close() {
      for (const i of ingests) await i.close();
      await field.client.endAsync();
      await broker.close();
      await db.close();
      rmSync(keysDir, { recursive: true, force: true });
    },
  };
  return r;
}

async function verifyStored(r: Rig, expected: number): Promise<void> {
  const rows = (await r.sql.query('SELECT * FROM reading ORDER BY meter_id, ts')).rows;
  assert.equal(rows.length, expected);
  for (const row of rows) {
    const b = (await r.sql.query('SELECT * FROM batch WHERE batch_id = $1', [row.batch_id as string])).rows[0]!;
    assert.ok(b, `batch ${row.batch_id as string} exists`);
    const root = b.merkle_root as Buffer;
    assert.ok(verifyBatch(r.metrologyPub, { batchId: String(b.batch_id), count: Number(b.count), root }, b.signature as Buffer), 'batch signature verifies');
    const leaf = leafHash(canonicalReading(reportFromRow(row)));
    assert.ok(verifyInclusion(leaf, Number(row.leaf), Number(b.count), decodeProof(row.proof as Buffer), root), 'inclusion proof verifies');
    assert.equal(b.source, 'ingest');
  }
}

describe('ingest service', () => {
  let r: Rig;
  let ing: Ingest;
  before(async () => {
    r = await rig([1001, 1002, 1003]);
    ing = await r.start({ api: { port: 0, token: TOKEN, insecureHttp: true }, commandTimeoutMs: 3000 });
    await r.handshake(r.meters);
  });
  after(() => r.close());

  test('readings are stored once with valid proofs and signatures, then acked', async () => {
    const envs = r.meters.flatMap((m) => [0, 1, 2, 3].map((k) => r.record(m, report(m.serial, k))));
    const seq = await r.field.send(envs);
    await r.field.acked(seq);
    await verifyStored(r, 12);
    const row = (await r.sql.query('SELECT counter, energy_wh FROM reading WHERE meter_id = $1 AND ts = $2', [1002, new Date(T0 + 2 * 900_000)])).rows[0]!;
    assert.equal(row.energy_wh, 101_500);
    assert.ok(Number(row.counter) >= 1);
    assert.equal(ing.stats().readingsStored, 12);
    assert.equal(Object.values(ing.stats().rejected).reduce((a, b) => a + b, 0), 0);
  });

  test('replayed, altered, forged, cross-meter, unknown-meter, out-of-range and garbage are rejected by reason', async () => {
    const [a, b] = r.meters;
    const before = { ...ing.stats().rejected };
    const good = r.record(a!, report(a!.serial, 10));
    await r.field.acked(await r.field.send([good]));
    // replay: the very same record again, in a new uplink batch
    const replaySeq = await r.field.send([good]);
    // altered: one ciphertext bit flipped
    const alt = r.record(a!, report(a!.serial, 11));
    alt.body = Buffer.from(alt.body);
    alt.body[8] ^= 1;
    // forged: a well-formed record header with random ciphertext and tag
    const forged = { ...r.record(a!, report(a!.serial, 12)) };
    forged.body = Buffer.concat([Buffer.from([0x30, 0, 0, 0x7f, 0x01]), Buffer.alloc(258 + 12, 0x5a)]);
    // cross-meter: a's record presented as b's, under a's session; and under b's session
    const cross1 = { ...r.record(a!, report(a!.serial, 13)), serial: b!.serial };
    const cross2 = { ...r.record(a!, report(a!.serial, 14)), serial: b!.serial, sessionId: b!.session.sessionId! };
    // a frame of meter b's serial inside meter a's session: the frame serial must equal the envelope's
    const inner = { type: EnvelopeType.record, serial: a!.serial, sessionId: a!.session.sessionId!, body: a!.session.seal(encodeReport(report(b!.serial, 15))) };
    // out of range: 60 kV on phase 1 (the bound is 50 kV to neutral)
    const range = r.record(a!, report(a!.serial, 16, { phases: [{ voltageV: 60_000, currentA: 1, angleDeg: 0 }, { voltageV: 220, currentA: 1, angleDeg: 0 }, { voltageV: 220, currentA: 1, angleDeg: 0 }] }));
    // unknown session
    const noSession = { ...r.record(a!, report(a!.serial, 17)), sessionId: Buffer.alloc(8, 9) };
    // unknown meter: a ClientHello from an unprovisioned serial
    const stranger = new MeterSession({ suite: SUITE, serial: 4242, identity: generateIdentity(SUITE), collectorPublicKey: r.collectorPub, counters: new MemoryCounterStore() });
    const hello = { type: EnvelopeType.clientHello, serial: 4242, sessionId: Buffer.alloc(8), body: stranger.clientHello() };
    const last = await r.field.send([alt, forged, cross1, cross2, inner, range, noSession, hello]);
    await r.field.raw(Buffer.from('definitely not an uplink batch'));
    await r.field.acked(replaySeq);
    await r.field.acked(last); // all rejected: acked at once, nothing to store
    await until('garbage counted', () => ing.stats().rejected.malformed > before.malformed);
    const after = ing.stats().rejected;
    const delta = (k: keyof typeof after) => after[k] - before[k];
    assert.equal(delta('replay'), 1);
    assert.equal(delta('auth'), 5); // altered, forged, cross1, cross2, inner
    assert.equal(delta('range'), 1);
    assert.equal(delta('no-session'), 1);
    assert.equal(delta('unknown-meter'), 1);
    assert.equal(delta('malformed'), 1);
    const alert = await r.field.take(EnvelopeType.alert, a!.serial);
    assert.equal(decodeAlert(alert.body), 'no-session');
    const n = (await r.sql.query('SELECT meter_id FROM reading WHERE meter_id = $1', [a!.serial])).rows.length;
    assert.equal(n, 5, 'only the one good new reading was added for meter a');
    const metrics = (await ing.metrics.text()).body;
    assert.match(metrics, /ingest_rejected_total\{reason="auth",service="ingest"\} 5/);
  });

  test('the same uplink batch delivered twice is stored once and counted duplicate', async () => {
    const c = r.meters[2]!;
    const envs = [20, 21, 22].map((k) => r.record(c, report(c.serial, k)));
    const seq = r.field.seq++;
    const dup0 = ing.stats().rejected.duplicate;
    await r.field.send(envs, 'up', seq);
    await r.field.send(envs, 'up', seq); // while the first is still in flight: covered by its ack
    await r.field.acked(seq);
    await r.field.send(envs, 'up', seq); // after the ack (e.g. the aggregator missed it): acked again at once
    await until('second ack', () => r.field.acks.filter((s) => s === seq).length >= 2);
    assert.equal(ing.stats().rejected.duplicate - dup0, 6);
    const rows = (await r.sql.query('SELECT ts FROM reading WHERE meter_id = $1 AND ts >= $2', [c.serial, new Date(T0 + 20 * 900_000)])).rows;
    assert.equal(rows.length, 3);
  });

  test('operator disconnect returns the meter\'s authenticated ack; a silent meter is a 504', async () => {
    const m = r.meters[0]!;
    let answered = 0;
    r.field.onDown = (e) => {
      if (e.type !== EnvelopeType.downlink || e.serial !== m.serial) return;
      const plain = m.session.openDownlink(Buffer.from(e.body.subarray(0, 8)), Buffer.from(e.body.subarray(8)));
      const f = decodeFrame(plain);
      assert.equal(f.type, 'command');
      if (f.type !== 'command') return;
      answered++;
      const resp = encodeResponse(m.serial, { kind: 'ack', requestId: f.command.requestId, command: f.command.kind === 'reconnect' ? 'reconnect' : 'disconnect', ok: true, loadConnected: false });
      void r.field.send([{ type: EnvelopeType.response, serial: m.serial, sessionId: m.session.sessionId!, body: m.session.seal(resp) }], 'resp');
    };
    const res = await fetch(`${ing.apiUrl}/v1/meters/${m.serial}/disconnect`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { serial: number; response: { kind: string; command: string; ok: boolean; loadConnected: boolean } };
    assert.deepEqual({ ...body.response, requestId: 0 }, { kind: 'ack', requestId: 0, command: 'disconnect', ok: true, loadConnected: false });
    assert.equal(answered, 1);
    r.field.onDown = undefined;
    const slow = await fetch(`${ing.apiUrl}/v1/meters/${r.meters[1]!.serial}/read?timeoutMs=300`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(slow.status, 504);
    assert.equal(((await slow.json()) as { error: { code: string } }).error.code, 'timeout');
    const anon = await fetch(`${ing.apiUrl}/v1/meters/${m.serial}/read`, { method: 'POST' });
    assert.equal(anon.status, 401);
    const unknown = await fetch(`${ing.apiUrl}/v1/meters/777/read`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(unknown.status, 404);
    const stats = await fetch(`${ing.apiUrl}/v1/stats`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(((await stats.json()) as { readingsStored: number }).readingsStored, ing.stats().readingsStored);
  });
});

describe('ingest durability', () => {
  test('the ack is published only after the commit returns', async () => {
    const r = await rig([2001]);
    try {
      let open!: () => void;
      const gate = new Promise<void>((res) => (open = res));
      let committed = false;
      const slow: SqlClient = {
        query: (s, p) => r.sql.query(s, p),
        close: () => r.sql.close(),
        transaction: (fn) =>
          r.sql.transaction(async (tx) => {
            let readings = false;
            const out = await fn({ query: (s, p) => ((readings ||= s.startsWith('INSERT INTO reading')), tx.query(s, p)) });
            // A reading batch's transaction holds here: COMMIT runs only once the gate opens.
            if (readings) await gate;
            return out;
          }).then((v) => ((committed = true), v)),
      };
      await r.start({ sql: slow });
      await r.handshake(r.meters);
      const m = r.meters[0]!;
      const seq = await r.field.send([r.record(m, report(m.serial, 0)), r.record(m, report(m.serial, 1))]);
      await sleep(600);
      assert.equal(r.field.acks.includes(seq), false, 'no ack before the commit');
      assert.equal(committed, false);
      assert.equal((await r.sql.query('SELECT ts FROM reading')).rows.length, 0, 'nothing visible before COMMIT');
      open();
      await r.field.acked(seq);
      assert.equal(committed, true);
      assert.equal((await r.sql.query('SELECT ts FROM reading')).rows.length, 2);
    } finally {
      await r.close();
    }
  });

  test('a store error while loading a session leaves the batch unacked; the retransmission is stored once', async () => {
    const r = await rig([2201]);
    try {
      await r.start();
      await r.handshake(r.meters); // instance A holds the session and wrote it to meter_session
      await r.ingests.shift()!.close();
      let failed = false;
      const flaky: SqlClient = {
        query: (s, p) => {
          if (!failed && s.startsWith('SELECT sealed FROM meter_session')) {
            failed = true;
            return Promise.reject(new SqlError('08006', 'injected: connection terminated'));
          }
          return r.sql.query(s, p);
        },
        close: () => r.sql.close(),
        transaction: (fn) => r.sql.transaction(fn),
      };
      await r.start({ sql: flaky }); // instance B must load the session: its first lookup fails
      const m = r.meters[0]!;
      const envs = [r.record(m, report(m.serial, 0))];
      const seq = await r.field.send(envs);
      await until('the lookup failed', () => failed, 10_000);
      await new Promise((done) => setTimeout(done, 300));
      assert.equal(r.field.acks.includes(seq), false, 'not acked after a store error');
      assert.equal(r.ingests[0]!.stats().rejected.malformed, 0, 'a store error is not the sender’s fault');
      await r.field.send(envs, 'up', seq); // the aggregator's retransmission
      await r.field.acked(seq);
      assert.equal((await r.sql.query('SELECT ts FROM reading')).rows.length, 1);
    } finally {
      await r.close();
    }
  });

  test('a failed commit is not acked; the retransmission is stored exactly once', async () => {
    const r = await rig([2101]);
    try {
      let fail = true;
      const flaky: SqlClient = {
        query: (s, p) => r.sql.query(s, p),
        close: () => r.sql.close(),
        transaction: (fn) =>
          r.sql.transaction(async (tx) => {
            let readings = false;
            const out = await fn({ query: (s, p) => ((readings ||= s.startsWith('INSERT INTO reading')), tx.query(s, p)) });
            if (fail && readings) throw Object.assign(new Error('injected: KVS unreachable'), { code: '08006' });
            return out;
          }),
      };
      await r.start({ sql: flaky });
      await r.handshake(r.meters);
      const m = r.meters[0]!;
      const envs = [0, 1, 2].map((k) => r.record(m, report(m.serial, k)));
      const seq = await r.field.send(envs);
      await until('commit failure', () => r.ingests[0]!.stats().storeErrors > 0, 10_000);
      assert.equal(r.field.acks.includes(seq), false);
      fail = false;
      await r.field.send(envs, 'up', seq); // the aggregator's retransmission
      await r.field.acked(seq);
      assert.equal((await r.sql.query('SELECT ts FROM reading')).rows.length, 3);
      assert.equal(r.ingests[0]!.stats().rejected.replay, 0, 'the retransmission was not refused as a replay');
    } finally {
      await r.close();
    }
  });
});

describe('two ingest instances on one shared subscription', () => {
  test('split the work and both serve any meter (sessions from the table)', async () => {
    const r = await rig([3001, 3002, 3003, 3004]);
    try {
      const a = await r.start();
      const b = await r.start();
      await sleep(200);
      await r.handshake(r.meters);
      const seqs: number[] = [];
      for (let k = 0; k < 24; k++) seqs.push(await r.field.send(r.meters.map((m) => r.record(m, report(m.serial, k)))));
      for (const s of seqs) await r.field.acked(s);
      await verifyStored(r, 24 * 4);
      const sa = a.stats();
      const sb = b.stats();
      assert.ok(sa.records > 0 && sb.records > 0, `both took records (${sa.records}, ${sb.records})`);
      assert.equal(sa.records + sb.records, 96);
      assert.equal(sa.readingsStored + sb.readingsStored, 96);
      // Only one instance answered the Finish batch; the other opened records with sessions from meter_session.
      assert.equal(Object.values(sa.rejected).reduce((x, y) => x + y, 0) + Object.values(sb.rejected).reduce((x, y) => x + y, 0), 0);
      assert.ok(sa.sessionsCached === 4 && sb.sessionsCached === 4);
    } finally {
      await r.close();
    }
  });
});
