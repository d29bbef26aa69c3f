// Billing and the auditor end to end over an embedded CascaDB (and KVS day blobs): clean data bills with zero
// findings and audits PASS; then the store is tampered for real — a row dropped, duplicated, altered,
// re-signed with a wrong key, replayed from another meter, shifted in time — and a report is edited: billing
// flags each, the auditor fails each doctored report, and passes the honest reports of the tampered store.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { generateMetrologyKey, type MetrologyKey } from '../../src/crypto/index.js';
import { closeDay, EngineSqlClient, provisionDirectory, ensureSchema, insertRows, parseDirectory, readingRow, reportFromRow, READING_COLUMNS, signBatch, storeBatch, type SqlClient } from '../../src/ingest/index.js';
import { createFleet, directoryJsonLine, fleetDirectory, generateReports, type Fleet } from '../../src/meter/index.js';
import { EmbeddedKvStore, parsePolicy, type KvStore } from '../../src/kvs/index.js';
import { audit, billPeriod, parseTariffs, reportHash, writeReports, type AuditResult, type BillingReport, type TariffBook } from '../../src/apps/billing/index.js';
import { startTestDb, type TestDb } from '../helpers/cascadb.js';

function fixture(name: string): string {
  for (let d = import.meta.dirname; d !== dirname(d); d = dirname(d)) {
    const f = join(d, 'test', 'fixtures', name);
    if (existsSync(f) && existsSync(join(d, 'package.json'))) return f;
  }
  throw new Error(`fixture ${name} not found above ${import.meta.dirname}`);
}

const STEP = 900_000;
// Monday 2024-03-04 00:00 local (UTC−3): the period is Mon–Tue, so peak and intermediate windows apply.
const T0 = Date.UTC(2024, 2, 4, 3);
const PERIOD = { from: '2024-03-04', to: '2024-03-05' };
const codes = (r: BillingReport) => [...new Set(r.findings.map((f) => f.code))].sort();
const dcodes = (a: AuditResult): string[] => [...new Set(a.discrepancies.map((d) => d.code))].sort();
const rehash = (r: BillingReport): BillingReport => ({ ...r, hash: { ...r.hash, value: reportHash(r) } });

describe('billing validation and the auditor', () => {
  let db: TestDb;
  let sql: SqlClient;
  let kv: KvStore;
  let fleet: Fleet;
  let key: MetrologyKey;
  let tariffs: TariffBook;
  let clean: Map<string, BillingReport>;
  let meterOf: (i: number) => number;
  let customerOf: (i: number) => string;
  let dir: string;
  const T = T0 + 10 * STEP;
  const T2 = T0 + 40 * STEP;

  before(async () => {
    db = await startTestDb(3);
    sql = new EngineSqlClient(db.engine);
    await ensureSchema(sql);
    await db.gateway.objects.createBucket('t', 'measurements', parsePolicy('replicate:3'));
    kv = new EmbeddedKvStore(db.gateway.objects, 't', 'measurements');
    dir = mkdtempSync(join(tmpdir(), 'sg-billing-'));
    tariffs = parseTariffs(JSON.parse(readFileSync(fixture('tariffs.json'), 'utf8')));
    // The fleet's first report is at T0 (the opening register) and its last at the period's end.
    fleet = createFleet({ count: 8, seed: 'billing-tamper', aggregators: 1, start: T0 - STEP, days: 2 + 1 / 96 });
    meterOf = (i) => fleet.meter(i).serial;
    customerOf = (i) => fleet.meter(i).customerId;
    await provisionDirectory(sql, parseDirectory([...fleetDirectory(fleet)].map(directoryJsonLine).join('\n')));
    key = generateMetrologyKey();
    // Two 15-minute rounds of the fleet per batch (16 readings), as ingest batches whatever arrived.
    let round: Array<{ report: ReturnType<typeof reportFromRow>; counter: number }> = [];
    let n = 0;
    for (const report of generateReports(fleet)) {
      round.push({ report, counter: n++ });
      if (round.length === 16) {
        await storeBatch(sql, signBatch(round, { batchId: `test-${n}`, source: 'ingest', instance: 'test', key }));
        round = [];
      }
    }
    if (round.length) await storeBatch(sql, signBatch(round, { batchId: `test-${n}`, source: 'ingest', instance: 'test', key }));
    for (const d of ['2024-03-04', '2024-03-05', '2024-03-06']) await closeDay(sql, kv, d);
  });
  after(async () => {
    await db?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const bill = async (o: { kv?: KvStore; workers?: number; customers?: string[] } = {}) =>
    (await billPeriod({ sql, ...PERIOD, tariffs, metrologyPublicKey: key.publicKey, workers: o.workers ?? 0, ...(o.kv ? { kv: o.kv } : {}), ...(o.customers ? { customers: o.customers } : {}) })).reports;
  const auditOf = (r: BillingReport, o: { kv?: KvStore } = {}) => audit(JSON.parse(JSON.stringify(r)), { sql, ...(o.kv ? { kv: o.kv } : {}), metrologyPublicKey: key.publicKey, tariffs: JSON.parse(readFileSync(fixture('tariffs.json'), 'utf8')) });

  test('clean data: every customer billed with zero findings, SQL and KV agree, the auditor says PASS', async () => {
    const viaSql = await bill({ workers: 2 });
    assert.equal(viaSql.length, 8);
    clean = new Map(viaSql.map((r) => [r.customer.id, r]));
    for (const r of viaSql) {
      assert.deepEqual(r.findings, [], `${r.customer.id}: ${JSON.stringify(r.findings)}`);
      assert.equal(r.summary.measured, 192);
      assert.equal(r.summary.estimated, 0);
      assert.equal(r.readings.length, 193, 'the opening reading and 192 interval ends');
      assert.equal(r.openings[0]!.source, 'reading');
      assert.ok(r.energy.totalWh > 0);
      const a = await auditOf(r);
      assert.equal(a.pass, true, `${r.customer.id}: ${JSON.stringify(a.discrepancies.slice(0, 3))}`);
    }
    // The register difference over the period is exactly the billed energy (no estimate, no loss).
    for (const r of viaSql) {
      const first = r.readings[0]!;
      const last = r.readings[r.readings.length - 1]!;
      assert.equal(r.energy.totalWh, last[5] - first[5]);
    }
    const viaKv = await bill({ kv });
    for (const r of viaKv) {
      assert.equal(r.source, 'kv');
      assert.equal(r.hash.value, clean.get(r.customer.id)!.hash.value, 'the same signed readings give the same hash from either store');
      assert.equal((await auditOf(r, { kv })).pass, true);
    }
    const paths = await writeReports(dir, viaSql);
    assert.equal(paths.length, 8);
    assert.match(readFileSync(paths[0]!.replace(/\.json$/, '.md'), 'utf8'), /No findings/);
  });

  test('tampered store: billing flags every kind, the auditor fails the clean reports and passes the honest ones', async () => {
    const row = async (i: number, ts: number) => (await sql.query('SELECT * FROM reading WHERE meter_id = $1 AND ts = $2', [meterOf(i), new Date(ts)])).rows[0]!;
    const del = (i: number, ts: number) => sql.query('DELETE FROM reading WHERE meter_id = $1 AND ts = $2', [meterOf(i), new Date(ts)]);
    const put = async (r: Record<string, unknown>, change: { meter?: number; ts?: number; energyWh?: number }) => {
      const rep = reportFromRow(r);
      const copy = { ...rep, serial: change.meter ?? rep.serial, ts: change.ts ?? rep.ts, energyWh: change.energyWh ?? rep.energyWh };
      await insertRows(sql, 'reading', READING_COLUMNS, [readingRow(copy, Number(r.counter), String(r.batch_id), Number(r.leaf), r.proof as Buffer)], false);
    };
    // 1 dropped: a stored reading row deleted.
    await del(1, T);
    // 2 duplicated: the slot at T2 replaced by a copy of the reading at T (same batch leaf and proof).
    const dup = await row(2, T);
    await del(2, T2);
    await put(dup, { ts: T2 });
    // 3 altered value: 500 Wh added to a stored register.
    await sql.query('UPDATE reading SET energy_wh = energy_wh + 500 WHERE meter_id = $1 AND ts = $2', [meterOf(3), new Date(T)]);
    // 4 re-signed with a wrong key: an altered reading in a new batch signed by another key claiming the real key id.
    const orig = reportFromRow(await row(4, T));
    await del(4, T);
    const forged = signBatch([{ report: { ...orig, energyWh: orig.energyWh + 2000 }, counter: null }], { batchId: 'forged-1', source: 'ingest', instance: 'evil', key: generateMetrologyKey() });
    await storeBatch(sql, { ...forged, keyId: key.keyId });
    // 5 replayed from another meter: meter 7's signed reading at T stored under meter 5.
    const other = await row(7, T);
    await del(5, T);
    await put(other, { meter: meterOf(5) });
    // 6 shifted timestamp: the reading at T moved 5 minutes later.
    const shifted = await row(6, T);
    await del(6, T);
    await put(shifted, { ts: T + 300_000 });

    const after = new Map((await bill()).map((r) => [r.customer.id, r]));
    const expect: Record<number, { billing: string[]; audit: string }> = {
      1: { billing: ['gap'], audit: 'missing-reading' },
      2: { billing: ['duplicate', 'gap', 'invalid-signature'], audit: 'unsigned-reading' },
      3: { billing: ['gap', 'invalid-signature'], audit: 'unsigned-reading' },
      4: { billing: ['gap', 'invalid-signature'], audit: 'unsigned-reading' },
      5: { billing: ['gap', 'invalid-signature'], audit: 'unsigned-reading' },
      6: { billing: ['gap', 'invalid-signature', 'off-grid'], audit: 'missing-reading' },
    };
    for (const i of [0, 7]) assert.deepEqual(after.get(customerOf(i))!.findings, [], `customer ${i} was not tampered`);
    for (const [k, e] of Object.entries(expect)) {
      const i = Number(k);
      const r = after.get(customerOf(i))!;
      assert.deepEqual(codes(r), e.billing, `kind ${i}: ${JSON.stringify(r.findings)}`);
      assert.equal(r.summary.estimated, 2, `kind ${i}: the missing slot and the interval after it are estimated`);
      assert.ok(r.estimates.every(([m]) => m === meterOf(i)));
      const gap = r.findings.find((f) => f.code === 'gap')!;
      assert.equal(gap.fromMs, i === 2 ? T2 : T);
      // The doctored report (billed before the tampering) no longer matches the store.
      const a = await auditOf(clean.get(customerOf(i))!);
      assert.equal(a.pass, false);
      assert.ok(dcodes(a).includes(e.audit), `kind ${i}: ${JSON.stringify(a.discrepancies)}`);
      // The honest report of the tampered store agrees with the auditor's own derivation.
      const h = await auditOf(r);
      assert.equal(h.pass, true, `kind ${i} honest: ${JSON.stringify(h.discrepancies)}`);
    }
    const wrongKey = after.get(customerOf(4))!.findings.find((f) => f.code === 'invalid-signature')!;
    assert.match(wrongKey.message, /batch signature does not verify/);

    // A doctored report that uses the tampered rows as if they were signed fails too.
    const honest5 = after.get(customerOf(5))!;
    const replayEntry: BillingReport['readings'][number] = [meterOf(5), T, 0, 0, '00'.repeat(32), Number(other.energy_wh)];
    const doctored5 = rehash({ ...honest5, readings: [...honest5.readings, replayEntry].sort((a, b) => a[1] - b[1]) });
    assert.ok(dcodes(await auditOf(doctored5)).includes('unsigned-reading'));
  });

  test('doctored reports: listed twice, altered value, omitted, wrong tariff, edited afterwards', async () => {
    const r = clean.get(customerOf(0))!;
    const twice = rehash({ ...r, readings: [...r.readings.slice(0, 6), r.readings[5]!, ...r.readings.slice(6)] });
    assert.deepEqual(dcodes(await auditOf(twice)), ['duplicate-counted']);

    const altered = structuredClone(r);
    altered.readings[20]![5] += 100;
    // The register is re-derived from the signed value, so only the altered reading is named.
    assert.ok(dcodes(await auditOf(rehash(altered))).includes('altered-value'));

    const omitted = rehash({ ...r, readings: r.readings.filter((_, i) => i !== 30) });
    assert.ok(dcodes(await auditOf(omitted)).includes('omitted-reading'));

    const otherTariff = Object.keys(tariffs.tariffs).find((t) => t !== r.tariff.name)!;
    const wrongTariff = rehash({ ...r, tariff: { ...r.tariff, name: otherTariff } });
    assert.ok(dcodes(await auditOf(wrongTariff)).includes('wrong-tariff'));
    const cheaper = structuredClone(r);
    cheaper.lines[0]!.priceMicro -= 10_000;
    cheaper.tariff.digest = '00'.repeat(32);
    const c = dcodes(await auditOf(rehash(cheaper)));
    assert.ok(c.includes('wrong-tariff') && c.includes('wrong-amount'), JSON.stringify(c));

    const edited = { ...r, totalCents: r.totalCents - 1000, total: 'edited' };
    assert.deepEqual(dcodes(await auditOf(edited)), ['hash-mismatch', 'wrong-total']);
    assert.deepEqual(dcodes(await auditOf(rehash(edited))), ['wrong-total'], 'a recomputed hash does not save an edited amount');
  });
});
