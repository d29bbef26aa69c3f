// The demo's second part, meters to store (paper, Fig. 1): simulated meters → aggregators (untrusted relays) →
// MQTT broker → two ingest instances on a shared subscription → CascaDB tables and day blobs in the Secure KVS.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startAggregator, inProcessFieldLink, type Aggregator } from '../aggregator/index.js';
import { audit, billPeriod, loadTariffs, writeReports } from '../apps/billing/index.js';
import { evaluate, evaluationTable, runFraud, writeFraudReport } from '../apps/fraud/index.js';
import { startBroker } from '../broker/index.js';
import { startCascadb, type Cascadb } from '../cascadb/index.js';
import { decodeProof, verifyBatch, verifyInclusion, leafHash, type SuiteName } from '../crypto/index.js';
import {
  EngineSqlClient,
  FileIngestKeys,
  closeDay,
  ensureSchema,
  initIngestKeys,
  provisionDirectory,
  readDayBlob,
  reportFromRow,
  startIngest,
  type Ingest,
  type PublicIngestKeys,
} from '../ingest/index.js';
import { EmbeddedKvStore, parsePolicy } from '../kvs/index.js';
import { createFleet, fleetDirectory, generateReports, LabelLog, Simulator, writeTheftLabels, DAY_MS, LOCAL_OFFSET_MS, dayOfIso, isoDate } from '../meter/index.js';
import { canonicalReading, REJECT_REASONS, roundReport, type PhasorReport } from '../protocol/index.js';
import { packageFile } from './package-file.js';
import { filesUnder } from './files.js';
import { progress } from './progress.js';

export interface MetersDemoOptions {
  root: string;
  meters: number;
  days: number;
  /** First local day, yyyy-mm-dd. */
  start: string;
}

const SUITES: SuiteName[] = ['x25519-ed25519-aes256gcm', 'p256-aes128gcm'];
const AGGREGATORS = 4;
const TAMPER_RATE = 0.0005;

/** What a plaintext reading would look like in a CascaDB row: its nine phasor REALs as consecutive doubles. */
function rowNeedle(r: PhasorReport): Buffer {
  const b = Buffer.alloc(72);
  r.phases.forEach((p, k) => {
    b.writeDoubleBE(p.voltageV, 8 * k);
    b.writeDoubleBE(p.currentA, 24 + 8 * k);
    b.writeDoubleBE(p.angleDeg, 48 + 8 * k);
  });
  return b;
}

const sameReport = (a: PhasorReport, b: PhasorReport) => canonicalReading(a).equals(canonicalReading(b));

export async function demoMeters(o: MetersDemoOptions): Promise<{ ok: boolean; lines: string[] }> {
  const t0 = Date.now();
  const start = dayOfIso(o.start) * DAY_MS - LOCAL_OFFSET_MS; // local midnight (Brazil, UTC−3)
  const keysDir = join(o.root, 'ingest-keys');
  const pub = await initIngestKeys(keysDir, SUITES);
  if (!pub.metrology) throw new Error(`ingest keys in ${keysDir} have no metrology key`);
  const metrology = pub.metrology;
  const collectorKeys = Object.fromEntries(Object.entries(pub.collector).map(([s, b64]) => [s, Buffer.from(b64, 'base64')]));
  console.log(`\n7. meters to store: ingest keys made (collector ${SUITES.join(', ')}; metrology key ${metrology.keyId})`);

  const db = await startCascadb({ embedded: { dataDir: join(o.root, 'cascadb') }, pgPort: 0, httpPort: -1, user: 'demo', password: 'demo-password' });
  const sql = new EngineSqlClient(db.engine);
  const closers: Array<() => Promise<unknown> | unknown> = [() => db.close()];
  try {
    return await run(o, { db, sql, pub, metrology, keysDir, start, collectorKeys, t0, closers });
  } finally {
    for (const c of closers.reverse()) await c();
  }
}

async function run(
  o: MetersDemoOptions,
  { db, sql, metrology, keysDir, start, collectorKeys, t0, closers }: {
    db: Cascadb; sql: EngineSqlClient; pub: PublicIngestKeys; metrology: { keyId: string; publicKey: string }; keysDir: string;
    start: number; collectorKeys: Record<string, Buffer>; t0: number; closers: Array<() => Promise<unknown> | unknown>;
  },
): Promise<{ ok: boolean; lines: string[] }> {
  await ensureSchema(sql);
  const fleet = createFleet({
    count: o.meters,
    seed: `demo-${Date.now()}`,
    suiteMix: { 'x25519-ed25519-aes256gcm': 3, 'p256-aes128gcm': 1 },
    aggregators: AGGREGATORS,
    theft: { fraction: 0.1 },
    start,
    days: o.days,
  });
  const prov = await provisionDirectory(sql, [...fleetDirectory(fleet)].map((e) => ({ ...e.customer, ...e.meter })));
  console.log(`   CascaDB over an embedded Secure KVS (PostgreSQL port ${db.pgPort}); provisioned ${prov.customers} customers, ${prov.meters} meters`);

  // The canary: one meter's plaintext report blocks (as a frame carries them) and row bytes (as CascaDB stores them).
  const canaryReports = [...generateReports(fleet)].filter((r) => r.serial === fleet.meter(0).serial).slice(0, 16).map(roundReport);
  const frameNeedles = canaryReports.map((r) => canonicalReading(r).subarray(4));
  const rowNeedles = canaryReports.map(rowNeedle);
  let tapped = 0;
  let tapBytes = 0;
  let tapHits = 0;
  const broker = await startBroker({
    port: 0,
    tap: (_topic, payload) => {
      tapped++;
      tapBytes += payload.length;
      for (const n of frameNeedles) if (payload.includes(n)) tapHits++;
    },
  });
  closers.push(() => broker.close());
  const aggregators: Aggregator[] = [];
  const meterLinks = [];
  for (const id of fleet.aggregatorIds) {
    const link = inProcessFieldLink();
    const a = await startAggregator({ id, broker: broker.url, field: link.aggregatorSide });
    closers.push(() => a.close());
    aggregators.push(a);
    meterLinks.push(link.meterSide);
  }
  const ingests: Ingest[] = [];
  for (let i = 0; i < 2; i++) {
    const ing = await startIngest({ broker: broker.url, sql, keys: new FileIngestKeys(keysDir), instanceId: `ingest-${i + 1}` });
    closers.push(() => ing.close());
    ingests.push(ing);
  }
  console.log(`   broker ${broker.url} (aedes, tapped); ${AGGREGATORS} aggregators (no keys); 2 ingest instances on $share/ingest/sg/+/up`);

  const labels = new LabelLog();
  writeTheftLabels(fleet, labels);
  const sim = new Simulator({
    fleet,
    links: meterLinks,
    collectorKeys,
    labels,
    tamper: { rate: TAMPER_RATE },
    onProgress: (p) => {
      if (p.phase === 'handshake') progress('handshakes', p.done, p.total);
      else if (p.phase === 'reporting') progress('15-minute intervals sent', p.done, p.total);
    },
  });
  closers.push(() => sim.close());
  const lines: string[] = [];
  {
    const ts = Date.now();
    console.log(`   ${o.meters} meters × ${o.days} day${o.days === 1 ? '' : 's'} (${fleet.days * 96} intervals each; ${labels.theft.length} stealing customers; frame attacks at rate ${TAMPER_RATE})`);
    const stats = await sim.run();
    sim.close();
    const summary = labels.summary!;
    const expected = stats.reportsSealed - summary.lost;
    // Drain: every uplink batch acked (i.e. durable) and the stored count reached.
    const deadline = Date.now() + 120_000;
    let stored = 0;
    while (Date.now() < deadline) {
      stored = ingests.reduce((n, i) => n + i.stats().readingsStored, 0);
      const unacked = aggregators.reduce((n, a) => n + a.stats().unackedEnvelopes, 0);
      progress('readings durable', Math.min(stored, expected), expected);
      if (stored >= expected && unacked === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const secs = (Date.now() - ts) / 1000;
    const rejected = Object.fromEntries(REJECT_REASONS.map((r) => [r, ingests.reduce((n, i) => n + i.stats().rejected[r], 0)]));
    const rows = Number((await sql.query('SELECT count(*) AS n FROM reading')).rows[0]!.n);
    const batches = Number((await sql.query('SELECT count(*) AS n FROM batch')).rows[0]!.n);
    console.log(`   ${stats.envelopesSent} envelopes sent, ${stats.handshakes} handshakes; ${rows} readings in ${batches} signed batches in ${secs.toFixed(1)} s (${(rows / secs).toFixed(0)} readings/s)`);
    console.log(`   rejected by reason: ${REJECT_REASONS.map((r) => `${r} ${rejected[r]}`).join(', ')}`);
    const exp = summary.expectedRejects;
    console.log(`   injected frame attacks: ${Object.entries(summary.tamper).map(([k, v]) => `${k} ${v}`).join(', ')} → expected ${Object.entries(exp).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`);

    // Ground truth: the stored readings of a sample of meters equal the simulator's, field by field; proofs verify.
    const lost = new Set(labels.tamper.filter((l) => !l.stored).map((l) => `${l.serial}/${l.ts}`));
    const sample = Array.from({ length: Math.min(40, fleet.count) }, (_, k) => fleet.meter(Math.floor((k * fleet.count) / Math.min(40, fleet.count))).serial);
    const sampleSet = new Set(sample);
    const truth = new Map<string, PhasorReport>();
    for (const r of generateReports(fleet)) if (sampleSet.has(r.serial) && !lost.has(`${r.serial}/${r.ts}`)) truth.set(`${r.serial}/${r.ts}`, roundReport(r));
    const metrologyKey = Buffer.from(metrology.publicKey, 'base64');
    const batchRows = new Map<string, { root: Buffer; signature: Buffer; count: number }>();
    for (const b of (await sql.query('SELECT batch_id, merkle_root, signature, count FROM batch')).rows) batchRows.set(String(b.batch_id), { root: b.merkle_root as Buffer, signature: b.signature as Buffer, count: Number(b.count) });
    let matched = 0;
    let wrong = 0;
    let badProofs = 0;
    for (const serial of sample) {
      const got = await sql.query('SELECT * FROM reading WHERE meter_id = $1', [serial]);
      for (const row of got.rows) {
        const r = reportFromRow(row);
        const want = truth.get(`${r.serial}/${r.ts}`);
        if (want && sameReport(want, r)) matched++;
        else wrong++;
        const b = batchRows.get(String(row.batch_id));
        const ok = b && verifyBatch(metrologyKey, { batchId: String(row.batch_id), count: b.count, root: b.root }, b.signature) && verifyInclusion(leafHash(canonicalReading(r)), Number(row.leaf), b.count, decodeProof(row.proof as Buffer), b.root);
        if (!ok) badProofs++;
      }
    }
    const missing = truth.size - matched;
    console.log(`   ground truth for ${sample.length} sampled meters: ${matched} readings equal the simulator's, ${wrong} differ or extra, ${missing} missing; ${badProofs} bad Merkle proofs or signatures`);

    // Day blobs: the measurement sets of the big-data path.
    // The measurement sets live in their own bucket under the paper's warm policy (1 replica + 8 shards, 6 suffice).
    await db.gateway!.objects.createBucket('cascadb', 'measurements', parsePolicy('hybrid:1+6/8'));
    const kv = new EmbeddedKvStore(db.gateway!.objects, 'cascadb', 'measurements');
    let blobs = 0;
    // close-day works on UTC dates: the local days of the window span one more.
    const firstDay = new Date(start).toISOString().slice(0, 10);
    for (let t = Date.parse(`${firstDay}T00:00:00Z`); t < start + fleet.days * DAY_MS; t += DAY_MS) {
      const r = await closeDay(sql, kv, new Date(t).toISOString().slice(0, 10));
      blobs += r.meters;
    }
    const blob = await readDayBlob(kv, sample[0]!, firstDay);
    console.log(`   close-day: ${blobs} day blobs (one per meter and UTC day) in KVS bucket 'measurements' (hybrid:1+6/8); meter ${sample[0]} on ${firstDay}: ${blob?.readings.length ?? 0} readings`);

    // Billing validation (the distribution company) and the independent auditor (the metrology authority).
    const tariffFile = packageFile('config/tariffs.json');
    const tariffs = await loadTariffs(tariffFile);
    const tariffJson = JSON.parse(readFileSync(tariffFile, 'utf8')) as unknown;
    const lastDay = isoDate(dayOfIso(o.start) + fleet.days - 1);
    console.log(`8. billing ${o.start} … ${lastDay} from the day blobs (${tariffFile.split('/').slice(-2).join('/')}), every reading's proof and batch signature checked`);
    const billing = await billPeriod({ sql, kv, from: o.start, to: lastDay, tariffs, metrologyPublicKey: metrologyKey, workers: 2, onProgress: (p) => progress('customers billed', p.done, p.total) });
    const billDir = join(o.root, 'bills');
    await writeReports(billDir, billing.reports);
    const findings: Record<string, number> = {};
    for (const r of billing.reports) for (const [k, v] of Object.entries(r.summary.findings)) findings[k] = (findings[k] ?? 0) + (v ?? 0);
    const withFindings = billing.reports.filter((r) => r.findings.length > 0).length;
    console.log(`   ${billing.reports.length} bills, ${billing.readings} readings verified in ${billing.seconds.toFixed(1)} s; total ${billing.reports[0]?.currency ?? ''} ${(billing.totalCents / 100).toFixed(2)}; ${withFindings} bills with data-quality findings (${Object.entries(findings).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}); reports in ${billDir}`);
    let passed = 0;
    const failed: string[] = [];
    for (const r of billing.reports) {
      const a = await audit(JSON.parse(JSON.stringify(r)) as unknown, { sql, kv, metrologyPublicKey: metrologyKey, tariffs: tariffJson });
      if (a.pass) passed++;
      else failed.push(`${a.customer}: ${a.discrepancies.map((d) => d.code).join(', ')}`);
      progress('reports audited', passed + failed.length, billing.reports.length);
    }
    console.log(`   auditor (independent code path): ${failed.length === 0 ? `PASS — ${passed}/${billing.reports.length} reports` : `FAIL — ${failed.length} reports: ${failed.slice(0, 3).join('; ')}`}`);

    // Fraud detection: rank the consumer units most likely to be stealing, and score it against the injected thieves.
    console.log(`9. fraud detection over ${o.start} … ${lastDay} through SQL (SOM + daily correlation, and the feature scorer)`);
    const fraud = await runFraud({ sql, from: o.start, to: lastDay, workers: 2, onProgress: (p) => progress(p.phase === 'sample' ? 'SOM training sample' : 'customers scored', p.done, p.total) });
    const thieves = new Set(labels.theft.map((l) => l.serial));
    const evaluation = evaluate(fraud.ranking, labels.theft, { ks: [10, Math.max(1, thieves.size)] });
    const fraudDir = join(o.root, 'fraud');
    const files = writeFraudReport(fraudDir, { ...fraud, evaluation, thieves });
    console.log(`   ${fraud.ranking.customers.length} customers ranked by '${fraud.ranking.method}' in ${fraud.seconds.toFixed(1)} s; top 5:`);
    for (const c of fraud.ranking.customers.slice(0, 5)) console.log(`     #${c.rank} meter ${c.meterId} (${c.customerClass}) score ${c.score.toFixed(2)}${thieves.has(c.meterId) ? ' [injected thief]' : ''}: ${c.reasons[0] ?? ''}`);
    for (const note of fraud.ranking.notes) console.log(`   note: ${note}`);
    console.log(evaluationTable(evaluation).split('\n').map((l) => `   ${l}`).join('\n'));
    console.log(`   report: ${files.html}`);
    const overall = evaluation.rows.filter((r) => r.group === 'all');

    // Confidentiality: no plaintext reading in broker traffic or on the storage nodes.
    let nodeHits = 0;
    let nodeBytes = 0;
    for (const file of filesUnder(join(o.root, 'cascadb', 'kvs', 'nodes'))) {
      const buf = readFileSync(file);
      nodeBytes += statSync(file).size;
      for (const n of [...frameNeedles, ...rowNeedles]) if (buf.includes(n)) nodeHits++;
    }
    console.log(`   canary meter ${fleet.meter(0).serial}: ${tapHits} plaintext hits in ${tapped} broker messages (${(tapBytes / 1048576).toFixed(1)} MiB); ${nodeHits} hits in storage-node files (${(nodeBytes / 1048576).toFixed(1)} MiB)`);

    // A duplicated or replayed record that reaches the other instance first is opened there and stored once
    // (`duplicate`), so only the deterministic reasons are held to the labels.
    const expectMatch = REJECT_REASONS.every((r) => r === 'duplicate' || r === 'replay' || (exp[r] ?? 0) <= rejected[r]!);
    const ok = fraud.ranking.customers.length === fleet.count && failed.length === 0 && billing.reports.length === fleet.count && rows === expected && wrong === 0 && missing === 0 && badProofs === 0 && tapHits === 0 && nodeHits === 0 && expectMatch && stats.handshakeFailures === 0;
    lines.push(`fraud: ${fraud.ranking.customers.length} customers ranked; AUC overall ${overall.map((r) => `${r.method} ${r.auc.toFixed(3)}`).join(', ')} (${thieves.size} injected thieves, ${fleet.days} days of history)`);
    lines.push(`billing: ${billing.reports.length} bills, auditor ${failed.length === 0 ? 'PASS' : `FAIL (${failed.length})`}`);
    lines.push(`meters: ${rows}/${expected} readings stored exactly once (${(rows / secs).toFixed(0)}/s), ${Object.values(rejected).reduce((a, b) => a + b, 0)} envelopes rejected by reason, ${badProofs} bad proofs, ${tapHits + nodeHits} plaintext canary hits`);
    console.log(`   meters-to-store ${ok ? 'checks passed' : 'FOUND PROBLEMS'} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return { ok, lines };
  }
}
