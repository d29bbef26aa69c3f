// Fraud detection end to end through SQL: a simulated fleet stored in CascaDB (embedded KVS) in signed batches,
// `runFraud` on a worker pool, the ranking, the evaluation against labels, the report files; and its errors.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateMetrologyKey } from '../../src/crypto/index.js';
import { closeDay, dayBlobKey, EngineSqlClient, ensureSchema, provisionDirectory, signBatch, storeBatch, type SqlClient } from '../../src/ingest/index.js';
import { EmbeddedKvStore, parsePolicy, type KvStore } from '../../src/kvs/index.js';
import { createFleet, directoryEntry, generateReports, LabelLog, writeTheftLabels, DAY_MS, LOCAL_OFFSET_MS, type Fleet } from '../../src/meter/index.js';
import { blobDates, evaluate, evaluationTable, FraudError, runFraud, simulateFraud, writeFraudReport } from '../../src/apps/fraud/index.js';
import { startTestDb, type TestDb } from '../helpers/cascadb.js';

const START_DAY = Date.UTC(2026, 8, 1) / DAY_MS;

async function storeFleet(sql: SqlClient, fleet: Fleet): Promise<number> {
  await provisionDirectory(
    sql,
    [...fleet.meters()].map((m) => {
      const e = directoryEntry(fleet, m);
      return { ...e.customer, ...e.meter, public_key: e.meter.public_key.toString('base64') };
    }),
  );
  const key = generateMetrologyKey();
  let batch = [];
  let n = 0;
  for (const report of generateReports(fleet)) {
    batch.push({ report, counter: null });
    if (batch.length === 2000) {
      await storeBatch(sql, signBatch(batch, { batchId: `t-${n++}`, source: 'import', instance: 'test', key }));
      batch = [];
    }
  }
  if (batch.length) await storeBatch(sql, signBatch(batch, { batchId: `t-${n++}`, source: 'import', instance: 'test', key }));
  return n;
}

describe('fraud through SQL', () => {
  let db: TestDb;
  let sql: SqlClient;
  let fleet: Fleet;
  let dir: string;
  const labels = new LabelLog();
  before(async () => {
    db = await startTestDb(3);
    sql = new EngineSqlClient(db.engine);
    await ensureSchema(sql);
    fleet = createFleet({ count: 24, seed: 'fraud-sql', aggregators: 1, start: START_DAY * DAY_MS - LOCAL_OFFSET_MS, days: 8, theft: { fraction: 0.35, types: ['h2', 'h5'], days: [3, 4, 5, 6, 7] } });
    writeTheftLabels(fleet, labels);
    await storeFleet(sql, fleet);
    dir = mkdtempSync(join(tmpdir(), 'sg-fraud-'));
  });
  after(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('ranks every customer from the store on a worker pool, flat and zeroed thieves first', async () => {
    const phases = new Set<string>();
    const run = await runFraud({ sql, from: '2026-09-01', to: '2026-09-08', workers: 2, sampleSize: 12, onProgress: (p) => phases.add(p.phase) });
    assert.deepEqual([...phases].sort(), ['sample', 'score']);
    assert.equal(run.ranking.customers.length, 24);
    assert.equal(run.readings, 24 * 8 * 96, 'every reading of the window, each read once');
    const thieves = new Set(labels.theft.map((l) => l.serial));
    assert.ok(thieves.size >= 3, 'the fleet has thieves');
    const top = run.ranking.customers.slice(0, thieves.size).map((c) => c.meterId);
    assert.deepEqual(new Set(top), thieves, 'h2 and h5 thieves rank above every clean customer');
    const first = run.ranking.customers[0]!;
    assert.equal(first.method, 'stat');
    assert.ok(first.reasons.some((r) => /zero consumption|flat daily profile/.test(r)), first.reasons.join('; '));
    assert.ok(first.days.length > 0 && /^2026-09-0[4-8]$/.test(first.days[0]!.date), 'the deviating days are theft days');
    const ev = evaluate(run.ranking, labels.theft);
    const all = ev.rows.find((r) => r.method === 'stat' && r.group === 'all')!;
    assert.equal(all.auc, 1);
    assert.match(evaluationTable(ev), /paper AUC/);
    const paths = writeFraudReport(dir, { ...run, evaluation: ev, thieves });
    const html = readFileSync(paths.html, 'utf8');
    assert.match(html, /<svg/);
    assert.match(html, /Self-organizing map/);
    assert.equal(readFileSync(paths.csv, 'utf8').trim().split('\n').length, 25);
    assert.equal(JSON.parse(readFileSync(paths.json, 'utf8')).customers.length, 24);
  });

  test('the in-memory simulator path scores the same as the store path', async () => {
    const a = await runFraud({ sql, from: '2026-09-01', to: '2026-09-08', workers: 0, sampleSize: 12 });
    const b = await simulateFraud({ fleet, workers: 0, sampleSize: 12 });
    const sa = new Map(a.ranking.customers.map((c) => [c.meterId, c.scores.stat]));
    for (const c of b.ranking.customers) assert.ok(Math.abs(c.scores.stat - sa.get(c.meterId)!) < 1e-3, `meter ${c.meterId}`);
  });

  test('the day blobs in the KVS (source kv) give the same readings and scores as SQL', async () => {
    await db.gateway.objects.createBucket('t', 'measurements', parsePolicy('replicate:3'));
    const kv: KvStore = new EmbeddedKvStore(db.gateway.objects, 't', 'measurements');
    // Local days 09-01…09-08 (UTC−3) end at 09-09 03:00 UTC: nine UTC dates of blobs.
    const dates = blobDates(START_DAY, 8);
    assert.deepEqual([dates[0], dates.at(-1), dates.length], ['2026-09-01', '2026-09-09', 9]);
    for (const d of dates) await closeDay(sql, kv, d);
    const a = await runFraud({ sql, from: '2026-09-01', to: '2026-09-08', workers: 0, sampleSize: 12 });
    const b = await runFraud({ sql, kv, source: 'kv', from: '2026-09-01', to: '2026-09-08', workers: 2, sampleSize: 12 });
    assert.equal(a.source, 'sql');
    assert.equal(b.source, 'kv');
    assert.equal(b.readings, a.readings);
    assert.deepEqual(b.ranking.customers.map((c) => [c.meterId, c.scores]), a.ranking.customers.map((c) => [c.meterId, c.scores]));
    assert.deepEqual(b.examples.map((e) => [e.info.meterId, [...e.data]]), a.examples.map((e) => [e.info.meterId, [...e.data]]));
    // A window inside one UTC day still maps readings to their local days.
    const c = await runFraud({ sql, kv, from: '2026-09-05', to: '2026-09-06', workers: 0, sampleSize: 12 });
    const d = await runFraud({ sql, from: '2026-09-05', to: '2026-09-06', workers: 0, sampleSize: 12 });
    assert.equal(c.readings, 24 * 2 * 96);
    assert.deepEqual(c.ranking.customers.map((x) => x.scores), d.ranking.customers.map((x) => x.scores));
    // No blobs for the window: a no-data error that names close-day; a foreign blob: a store error.
    await assert.rejects(runFraud({ sql, kv, from: '2026-10-01', to: '2026-10-03', workers: 0 }), (e: unknown) => e instanceof FraudError && e.code === 'no-data' && /close-day/.test(e.message));
    const m = [...fleet.meters()];
    const other = await kv.get(dayBlobKey(m[1]!.serial, '2026-09-03'));
    await kv.write([{ op: 'put', key: dayBlobKey(m[0]!.serial, '2026-09-03'), value: other! }]);
    await assert.rejects(runFraud({ sql, kv, from: '2026-09-01', to: '2026-09-08', workers: 0, sampleSize: 24 }), (e: unknown) => e instanceof FraudError && e.code === 'store' && /belongs to meter/.test(e.message));
    await assert.rejects(runFraud({ sql, source: 'kv', from: '2026-09-01', to: '2026-09-08' }), (e: unknown) => e instanceof FraudError && e.code === 'bad-input');
  });

  test('a short window works and says so', async () => {
    const run = await runFraud({ sql, from: '2026-09-07', to: '2026-09-08', workers: 0 });
    assert.equal(run.ranking.customers.length, 24);
    assert.ok(run.ranking.notes.some((n) => /fewer than 8 usable days/.test(n)));
    assert.ok(run.ranking.customers[0]!.notes.some((n) => /short history/.test(n)));
  });

  test('bad windows and empty windows are errors with codes', async () => {
    await assert.rejects(runFraud({ sql, from: '2026-13-01', to: '2026-09-08' }), (e: unknown) => e instanceof FraudError && e.code === 'bad-input');
    await assert.rejects(runFraud({ sql, from: '2026-09-08', to: '2026-09-01' }), (e: unknown) => e instanceof FraudError && e.code === 'bad-input');
    await assert.rejects(runFraud({ sql, from: '2027-01-01', to: '2027-01-05', workers: 0 }), (e: unknown) => e instanceof FraudError && e.code === 'no-data');
  });
});
