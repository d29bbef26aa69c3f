// CSV import into CascaDB (embedded KVS) in signed 'import' batches; close-day blobs from what it stored; keys.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { decodeProof, generateIdentity, leafHash, verifyBatch, verifyInclusion, type MetrologyKey } from '../../src/crypto/index.js';
import { canonicalReading } from '../../src/protocol/index.js';
import {
  closeDay,
  dayBlobKey,
  EngineSqlClient,
  ensureSchema,
  FileIngestKeys,
  importCsv,
  initIngestKeys,
  IngestError,
  provisionDirectory,
  publicIngestKeys,
  readDayBlob,
  reportFromRow,
  splitCsvLine,
  type SqlClient,
} from '../../src/ingest/index.js';
import { EmbeddedKvStore, parsePolicy } from '../../src/kvs/index.js';
import { startTestDb, type TestDb } from '../helpers/cascadb.js';

// The compiled test runs from dist/ or another build dir: find the checkout's fixture by walking up.
function fixture(name: string): string {
  for (let d = import.meta.dirname; d !== dirname(d); d = dirname(d)) {
    const f = join(d, 'test', 'fixtures', name);
    if (existsSync(f) && existsSync(join(d, 'package.json'))) return f;
  }
  throw new Error(`fixture ${name} not found above ${import.meta.dirname}`);
}
const FIXTURE = fixture('import-sample.csv');

describe('ingest import, close-day and keys', () => {
  let db: TestDb;
  let sql: SqlClient;
  let dir: string;
  let keys: FileIngestKeys;
  let mk: MetrologyKey;
  let metrologyPub: Buffer;
  before(async () => {
    db = await startTestDb(3);
    sql = new EngineSqlClient(db.engine);
    await ensureSchema(sql);
    dir = mkdtempSync(join(tmpdir(), 'sg-import-'));
    const pub = await initIngestKeys(join(dir, 'keys'), ['p256-aes128gcm']);
    metrologyPub = Buffer.from(pub.metrology!.publicKey, 'base64');
    keys = new FileIngestKeys(join(dir, 'keys'));
    mk = await keys.metrologyKey();
    const entries = [5001, 5002].map((m) => ({
      customer_id: `c${m}`, class: 'commercial', tariff: 'B3', supply_kv: 0.22, region: 'south', contracted_kw: 30,
      meter_id: m, suite: 'p256-aes128gcm', public_key: generateIdentity('p256-aes128gcm').publicKey.toString('base64'), aggregator_id: 'agg9',
    }));
    assert.deepEqual(await provisionDirectory(sql, entries), { customers: 2, meters: 2 });
    assert.deepEqual(await provisionDirectory(sql, entries), { customers: 0, meters: 0 }, 'provisioning is idempotent');
  });
  after(async () => {
    await keys.close();
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('stops at the first bad line with its number', async () => {
    await assert.rejects(importCsv(FIXTURE, { sql, metrologyKey: mk }), (e: unknown) => e instanceof IngestError && e.code === 'bad-input' && /line 6: energy_wh/.test(e.message));
  });

  test('an unknown meter is an error naming it unless --create-meters', async () => {
    await assert.rejects(importCsv(FIXTURE, { sql, metrologyKey: mk, skipBad: true }), (e: unknown) => e instanceof IngestError && e.code === 'unknown-meter' && /5003/.test(e.message));
  });

  test('imports the sample: rows, an import batch with a valid signature, bad lines reported by number', async () => {
    const res = await importCsv(FIXTURE, { sql, metrologyKey: mk, skipBad: true, createMeters: true });
    assert.deepEqual(res.errors.map((e) => e.line), [6, 7, 10, 11]);
    assert.match(res.errors[1]!.message, /15-minute/);
    assert.match(res.errors[2]!.message, /18 fields/);
    assert.match(res.errors[3]!.message, /v1 is outside/);
    assert.equal(res.rows, 10);
    assert.equal(res.skipped, 4);
    assert.equal(res.stored, 6);
    assert.deepEqual(res.metersCreated, [5003]);
    const rows = (await sql.query('SELECT * FROM reading ORDER BY meter_id, ts')).rows;
    assert.equal(rows.length, 6);
    const r0 = rows[0]!;
    assert.equal(r0.meter_id, 5001);
    assert.equal(r0.ts, Date.UTC(2024, 1, 1, 0, 15));
    assert.equal(r0.energy_wh, 120000);
    assert.equal(r0.v1, Math.fround(220.5));
    assert.equal(r0.counter, null);
    const tz = rows.find((r) => r.meter_id === 5002)!;
    assert.equal(tz.ts, Date.UTC(2024, 1, 1, 3, 15), 'a -03:00 time is stored in UTC');
    for (const row of rows) {
      const b = (await sql.query('SELECT * FROM batch WHERE batch_id = $1', [row.batch_id as string])).rows[0]!;
      assert.equal(b.source, 'import');
      assert.equal(b.key_id, mk.keyId);
      assert.ok(verifyBatch(metrologyPub, { batchId: String(b.batch_id), count: Number(b.count), root: b.merkle_root as Buffer }, b.signature as Buffer));
      assert.ok(verifyInclusion(leafHash(canonicalReading(reportFromRow(row))), Number(row.leaf), Number(b.count), decodeProof(row.proof as Buffer), b.merkle_root as Buffer));
    }
    const again = await importCsv(FIXTURE, { sql, metrologyKey: mk, skipBad: true });
    assert.equal(again.stored, 0);
    assert.equal(again.duplicates, 6, 're-importing stores nothing twice');
  });

  test('interval_wh builds the register from the last stored one', async () => {
    const f = join(dir, 'interval.csv');
    writeFileSync(f, 'meter_id,timestamp,interval_wh\n5001,2024-02-01T01:00:00Z,100.4\n5001,2024-02-01T01:15:00Z,100.4\n5001,2024-02-01T01:30:00Z,100.4\n');
    const res = await importCsv(f, { sql, metrologyKey: mk });
    assert.equal(res.stored, 3);
    const rows = (await sql.query('SELECT energy_wh, demand_w, pf, freq FROM reading WHERE meter_id = $1 AND ts >= $2 ORDER BY ts', [5001, new Date(Date.UTC(2024, 1, 1, 1))])).rows;
    assert.deepEqual(rows.map((r) => r.energy_wh), [121465, 121566, 121666]); // 121365 + 100.4, 200.8, 301.2, rounded
    assert.equal(rows[0]!.demand_w, Math.fround(401.6));
    assert.equal(rows[0]!.pf, 1);
    assert.equal(rows[0]!.freq, 60);
  });

  test('CSV quoting', () => {
    assert.deepEqual(splitCsvLine('a,"b,c", "d""e" ,f'), ['a', 'b,c', 'd"e', 'f']);
  });

  test('close-day blobs round trip and verify on their own; closing twice writes the same bytes', async () => {
    await db.gateway.objects.createBucket('t', 'days', parsePolicy('replicate:3'));
    const kv = new EmbeddedKvStore(db.gateway.objects, 't', 'days');
    const r = await closeDay(sql, kv, '2024-02-01');
    assert.deepEqual(r, { meters: 3, readings: 9 });
    const blob = await readDayBlob(kv, 5001, '2024-02-01');
    assert.ok(blob);
    assert.equal(blob.meter, 5001);
    assert.equal(blob.date, '2024-02-01');
    assert.deepEqual(blob.readings.map((x) => x.report.ts), [15, 30, 45, 60, 75, 90].map((m) => Date.UTC(2024, 1, 1, 0, m)));
    for (const x of blob.readings) {
      assert.ok(verifyBatch(metrologyPub, { batchId: x.batch.batchId, count: x.batch.count, root: x.batch.root }, x.batch.signature));
      assert.ok(verifyInclusion(leafHash(x.canonical), x.leaf, x.batch.count, x.proof, x.batch.root));
      assert.deepEqual(canonicalReading(x.report), x.canonical);
    }
    const first = await kv.get(dayBlobKey(5001, '2024-02-01'));
    await closeDay(sql, kv, '2024-02-01');
    assert.deepEqual(await kv.get(dayBlobKey(5001, '2024-02-01')), first);
    assert.equal(await readDayBlob(kv, 5001, '2024-02-02'), undefined);
    await assert.rejects(closeDay(sql, kv, '2024-02-30'), (e: unknown) => e instanceof IngestError && e.code === 'bad-input');
  });

  test('keys: public output has no private material; init keeps existing keys; identities load and match', async () => {
    const kdir = join(dir, 'keys');
    const before = await publicIngestKeys(kdir);
    const after = await initIngestKeys(kdir, ['p256-aes128gcm', 'x25519-ed25519-aes256gcm']);
    assert.equal(after.collector['p256-aes128gcm'], before.collector['p256-aes128gcm']);
    assert.equal(after.metrology!.keyId, before.metrology!.keyId);
    assert.ok(after.collector['x25519-ed25519-aes256gcm']);
    const text = JSON.stringify(after);
    assert.doesNotMatch(text, /PRIVATE|sealed/);
    const file = readFileSync(join(kdir, 'ingest-keys.json'), 'utf8');
    assert.doesNotMatch(file, /PRIVATE KEY/, 'private keys are sealed on disk');
    const k = new FileIngestKeys(kdir);
    try {
      assert.deepEqual((await k.suites()).sort(), ['p256-aes128gcm', 'x25519-ed25519-aes256gcm']);
      const id = await k.collectorIdentity('x25519-ed25519-aes256gcm');
      assert.equal(id.publicKey.toString('base64'), after.collector['x25519-ed25519-aes256gcm']);
      assert.equal((await k.metrologyKey()).keyId, after.metrology!.keyId);
      assert.equal((await k.cookieKey()).length, 32);
      await assert.rejects(k.collectorIdentity('rsa2048-aes128gcm'), (e: unknown) => e instanceof IngestError && e.code === 'no-keys');
    } finally {
      await k.close();
    }
  });
});
