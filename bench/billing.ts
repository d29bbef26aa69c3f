// `npm run bench:billing`: billing validation throughput beside the SHA-256 bound, in the same run.
//
// What runs:
//   1. The bound: SHA-256 of 81-byte Merkle leaves (node:crypto) on every core at once, one thread per core,
//      for --bound-seconds. Verifying a reading needs at least its leaf hash, so leaf hashes/s of all cores is
//      the ceiling for readings/s; a naive verifier (one full proof per reading, 1 + ~12 hashes) gets a
//      thirteenth of it.
//   2. Compute: a simulated fleet (--customers meters, one per customer, --days days; src/meter ground truth)
//      signed as ingest does — readings in arrival order (all meters of one 15-minute round, then the next),
//      cut into Merkle batches of --batch readings, each root signed with an Ed25519 metrology key — and laid
//      out as the KVS day blobs (one per meter and UTC day). The blobs are handed to the billing pool as they
//      would come out of the store, and every customer is billed: each reading's proof and batch signature
//      verified, completeness and register checks, tarifa-branca/flat pricing, the report and its hash.
//      Run with one thread per core and with one thread (the scaling figure).
//   3. Store paths, small: --store-customers customers × 1 day written to an embedded CascaDB (gateway + 3
//      local LMDB nodes) with signed batches, closed into day blobs, then billed end to end from CascaDB SQL
//      (rows by primary-key range) and from the KVS day blobs. These include the store reads in this thread.
// Projection: 10,000 customers × 30 days = 28.8 M readings at each measured rate, against the 120 s target.
// The last line of stdout is one JSON object with every figure. A measurement, not a test: it never fails on
// a figure; exit 1 only if a clean bill has findings (the data set is clean by construction).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { generateMetrologyKey } from '../src/crypto/index.js';
import { closeDay, EngineSqlClient, encodeDayBlob, ensureSchema, parseDirectory, provisionDirectory, signBatch, storeBatch, type BatchReading, type DayBatch, type DayReading } from '../src/ingest/index.js';
import { createFleet, directoryJsonLine, fleetDirectory, ReportModel } from '../src/meter/index.js';
import { canonicalReading } from '../src/protocol/index.js';
import { EmbeddedKvStore, localNodeSpecs, parsePolicy, startGateway } from '../src/kvs/index.js';
import { Engine } from '../src/cascadb/index.js';
import { logger } from '../src/observe/index.js';
import { BillingPool, billPeriod, parsePeriod, parseTariffs, type BillingTask, type TariffBook } from '../src/apps/billing/index.js';
import { num, printJsonLast, ratio, round, table } from './lib.js';

const USAGE = `usage: node dist/bench/billing.js [flags]   (npm run bench:billing -- [flags])

  --customers N        simulated customers for the compute run (default 4096)
  --days N             days billed (default 2)
  --batch N            readings per Merkle batch (default 4096, as ingest)
  --workers N          billing threads (default: one per core, ${availableParallelism()})
  --store-customers N  customers for the CascaDB / day-blob runs (default 128; 0 = skip)
  --bound-seconds S    seconds of the SHA-256 bound (default 1.5)`;

const STEP = 900_000;
const DAY = 86_400_000;
const TARGET_READINGS = 10_000 * 30 * 96;
const TARGET_SECONDS = 120;
// Monday 2024-03-04 00:00 local (UTC−3).
const T0 = Date.UTC(2024, 2, 4, 3);

const TARIFFS: TariffBook = parseTariffs({
  format: 'securegrid-tariffs/1',
  currency: 'BRL',
  holidays: [],
  tariffs: Object.fromEntries(
    ['B1-convencional', 'B1-baixa-renda', 'B3-convencional', 'A4-verde', 'A4-azul', 'A3-azul', 'B1-branca', 'B3-branca'].map((t) => [
      t,
      t.includes('convencional') || t.includes('baixa')
        ? { kind: 'flat', pricePerKwh: 0.79, taxes: [{ name: 'ICMS', rate: 0.18 }] }
        : { kind: 'time-of-use', windows: [{ name: 'peak', pricePerKwh: 1.52, weekdayHours: ['18:00-21:00'] }, { name: 'intermediate', pricePerKwh: 0.99, weekdayHours: ['17:00-18:00', '21:00-22:00'] }, { name: 'off-peak', pricePerKwh: 0.65 }], taxes: [{ name: 'ICMS', rate: 0.18 }] },
    ]),
  ),
});

/** Leaf hashes/s on `threads` threads at once (each hashing 81-byte buffers for `seconds`). */
async function sha256Bound(threads: number, seconds: number): Promise<{ perThread: number[]; total: number; cpuUsPerHash: number }> {
  const c0 = process.cpuUsage();
  const code = `
    const { hash } = require('node:crypto'); const { parentPort, workerData } = require('node:worker_threads');
    const b = Buffer.alloc(81, 7); let n = 0; const end = performance.now() + workerData * 1000; const t0 = performance.now();
    while (performance.now() < end) { for (let i = 0; i < 1000; i++) { b[1] = i; hash('sha256', b, 'buffer'); } n += 1000; }
    parentPort.postMessage(n / ((performance.now() - t0) / 1000));`;
  const perThread = await Promise.all(
    Array.from({ length: threads }, () => new Promise<number>((res, rej) => {
      const w = new Worker(code, { eval: true, workerData: seconds });
      w.once('message', (m: number) => (res(m), void w.terminate()));
      w.once('error', rej);
    })),
  );
  const c = process.cpuUsage(c0);
  const total = perThread.reduce((a, b) => a + b, 0);
  // CPU per hash: the whole process's CPU (thread start-up included, so slightly high) over the hashes done.
  return { perThread, total, cpuUsPerHash: (c.user + c.system) / (total * seconds) };
}

interface DataSet {
  tasks: BillingTask[];
  readings: number;
  batches: number;
  meanProof: number;
  seconds: number;
  /** The metrology public key the batches are signed for. */
  key: Buffer;
}

/** The fleet's readings for `days` local days, signed in ingest-shaped batches, as day blobs per meter. */
export function buildDataSet(customers: number, days: number, batchSize: number): DataSet {
  const t0 = performance.now();
  const fleet = createFleet({ count: customers, seed: 'bench-billing', aggregators: 1, start: T0 - STEP, days: days + 1 / 96 });
  const period = parsePeriod({ from: '2024-03-04', to: new Date(T0 + (days - 1) * DAY).toISOString().slice(0, 10) }, -180);
  const model = new ReportModel(fleet);
  const key = generateMetrologyKey();
  const blobs: Buffer[][] = Array.from({ length: customers }, () => []);
  const pending: DayReading[][] = Array.from({ length: customers }, () => []);
  const flush = (i: number) => {
    const day = pending[i]!;
    if (day.length === 0) return;
    blobs[i]!.push(encodeDayBlob(fleet.meter(i).serial, new Date(day[0]!.report.ts).toISOString().slice(0, 10), day));
    pending[i] = [];
  };
  let open: Array<{ r: BatchReading; i: number }> = [];
  let nBatches = 0;
  let proofHashes = 0;
  let readings = 0;
  const seal = () => {
    const b = signBatch(open.map((x) => x.r), { batchId: `bench-${++nBatches}`, source: 'ingest', instance: 'bench', key });
    const header: DayBatch = { batchId: b.batchId, keyId: b.keyId, count: open.length, root: b.root, signature: b.signature };
    open.forEach((x, leaf) => {
      const proof = b.proofs[leaf]!;
      proofHashes += proof.length / 32;
      const hs: Buffer[] = [];
      for (let at = 0; at < proof.length; at += 32) hs.push(proof.subarray(at, at + 32));
      pending[x.i]!.push({ report: x.r.report, canonical: canonicalReading(x.r.report), batch: header, leaf, proof: hs });
    });
    open = [];
  };
  let lastDay = Math.floor(period.fromMs / DAY);
  for (let ts = period.fromMs; ts <= period.toMs; ts += STEP) {
    if (Math.floor(ts / DAY) !== lastDay) {
      if (open.length) seal();
      for (let i = 0; i < customers; i++) flush(i);
      lastDay = Math.floor(ts / DAY);
    }
    for (let i = 0; i < customers; i++) {
      open.push({ r: { report: model.next(i, ts), counter: readings }, i });
      readings++;
      if (open.length === batchSize) seal();
    }
  }
  if (open.length) seal();
  for (let i = 0; i < customers; i++) flush(i);
  const tasks: BillingTask[] = [];
  for (let i = 0; i < customers; i++) {
    const m = fleet.meter(i);
    tasks.push({ customer: { id: m.customerId, class: m.customerClass, tariff: m.tariff }, meters: [m.serial], period, source: 'kv', sets: blobs[i]!, malformed: [] });
  }
  return { tasks, readings, batches: nBatches, meanProof: proofHashes / readings, seconds: (performance.now() - t0) / 1000, key: key.publicKey };
}

/** CPU seconds of each thread of this process (Linux /proc; empty elsewhere): main, workers, V8's GC and compiler threads. */
function threadCpu(): Map<string, number> {
  const out = new Map<string, number>();
  try {
    for (const t of readdirSync('/proc/self/task')) {
      const st = readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      out.set(t, (Number(f[11]) + Number(f[12])) / 100);
    }
  } catch {
    // not Linux: the per-thread split is left out
  }
  return out;
}

interface Billed {
  seconds: number;
  readings: number;
  findings: number;
  hashes: number;
  signatures: number;
  /** CPU µs per reading, all threads of the process (main, workers, GC and compiler threads). */
  cpuUs: number;
  /** CPU µs per reading: this (main) thread, the billing workers together, the rest (V8 GC / compiler threads). */
  split?: { main: number; workers: number; other: number };
}

async function billAll(data: DataSet, key: Buffer, workers: number): Promise<Billed> {
  const before = threadCpu();
  const pool = new BillingPool({ tariffs: TARIFFS, metrologyPublicKey: key, workers });
  // Warm-up is not billing: thread start-up and the JIT's first seconds (a 28.8 M run takes minutes) — a few chunks per thread.
  const warm = data.tasks.slice(-Math.min(data.tasks.length, 2 * pool.window));
  await Promise.all(warm.map((t, i) => pool.runJson({ ...t, sets: t.sets.map((s) => new Uint8Array(s)), customer: { ...t.customer, id: `warm-${i}` } })));
  const s0 = pool.stats();
  let readings = 0;
  let findings = 0;
  const t0c = threadCpu();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const inflight = new Set<Promise<void>>();
  for (const t of data.tasks) {
    // Fresh copies, as the store would hand them over (the pool transfers and detaches them).
    const p: Promise<void> = pool.runJson({ ...t, sets: t.sets.map((s) => new Uint8Array(s)) }).then((r) => {
      readings += r.head.summary.readingsUsed;
      findings += r.head.findings;
    });
    const tracked = p.finally(() => inflight.delete(tracked));
    inflight.add(tracked);
    while (inflight.size >= pool.window) await Promise.race(inflight);
  }
  await Promise.all(inflight);
  const seconds = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  const t1c = threadCpu();
  const s1 = pool.stats();
  await pool.close();
  const perReading = (sec: number) => (sec * 1e6) / readings;
  let split: Billed['split'];
  if (t1c.size > 0) {
    // The main thread's tid is the pid; threads absent before the pool started are its workers.
    let main = 0;
    let work = 0;
    let other = 0;
    for (const [tid, cpu] of t1c) {
      const d = cpu - (t0c.get(tid) ?? 0);
      if (tid === String(process.pid)) main += d;
      else if (!before.has(tid)) work += d;
      else other += d;
    }
    split = { main: perReading(main), workers: perReading(work), other: perReading(other) };
  }
  return { seconds, readings, findings, hashes: s1.hashes - s0.hashes, signatures: s1.signatures, cpuUs: perReading((c.user + c.system) / 1e6), ...(split ? { split } : {}) };
}

async function storeRuns(customers: number, workers: number): Promise<{ readings: number; sqlSeconds: number; kvSeconds: number; closeSeconds: number; writeSeconds: number; sqlRead: number; kvRead: number; findings: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'sg-bench-billing-'));
  const gateway = await startGateway({ dataDir: join(dir, 'gw'), nodes: localNodeSpecs(join(dir, 'nodes'), 3), noListen: true });
  try {
    await gateway.objects.createBucket('b', 'db', parsePolicy('replicate:3'));
    await gateway.objects.createBucket('b', 'measurements', parsePolicy('replicate:3'));
    const engine = new Engine({ kv: new EmbeddedKvStore(gateway.objects, 'b', 'db'), log: logger('bench') });
    await engine.start();
    const sql = new EngineSqlClient(engine);
    const kv = new EmbeddedKvStore(gateway.objects, 'b', 'measurements');
    await ensureSchema(sql);
    const fleet = createFleet({ count: customers, seed: 'bench-billing-store', aggregators: 1, start: T0 - STEP, days: 1 + 1 / 96 });
    await provisionDirectory(sql, parseDirectory([...fleetDirectory(fleet)].map(directoryJsonLine).join('\n')));
    const key = generateMetrologyKey();
    const model = new ReportModel(fleet);
    const w0 = performance.now();
    let open: BatchReading[] = [];
    let n = 0;
    for (let ts = T0; ts <= T0 + DAY; ts += STEP) {
      for (let i = 0; i < customers; i++) {
        open.push({ report: model.next(i, ts), counter: n++ });
        if (open.length === 4096) {
          await storeBatch(sql, signBatch(open, { batchId: `s-${n}`, source: 'ingest', instance: 'bench', key }));
          open = [];
        }
      }
    }
    if (open.length) await storeBatch(sql, signBatch(open, { batchId: `s-${n}`, source: 'ingest', instance: 'bench', key }));
    const writeSeconds = (performance.now() - w0) / 1000;
    const c0 = performance.now();
    for (const d of ['2024-03-04', '2024-03-05']) await closeDay(sql, kv, d);
    const closeSeconds = (performance.now() - c0) / 1000;
    // One started pool for both runs, warmed by a first pass over the blobs: thread start-up is not the store path.
    const pool = new BillingPool({ tariffs: TARIFFS, metrologyPublicKey: key.publicKey, workers });
    try {
      const common = { sql, from: '2024-03-04', to: '2024-03-04', tariffs: TARIFFS, metrologyPublicKey: key.publicKey, pool, keepReports: false };
      await billPeriod({ ...common, kv });
      const viaSql = await billPeriod(common);
      const viaKv = await billPeriod({ ...common, kv });
      return { readings: viaSql.readings, sqlSeconds: viaSql.seconds, kvSeconds: viaKv.seconds, closeSeconds, writeSeconds, sqlRead: viaSql.readSeconds, kvRead: viaKv.readSeconds, findings: viaSql.findings + viaKv.findings };
    } finally {
      await pool.close();
    }
  } finally {
    await gateway.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  const { values: f } = parseArgs({
    options: {
      customers: { type: 'string', default: '4096' },
      days: { type: 'string', default: '2' },
      batch: { type: 'string', default: '4096' },
      workers: { type: 'string', default: String(availableParallelism()) },
      'store-customers': { type: 'string', default: '128' },
      'bound-seconds': { type: 'string', default: '1.5' },
      help: { type: 'boolean' },
    },
  });
  if (f.help) return (console.log(USAGE), 0);
  const customers = Number(f.customers);
  const days = Number(f.days);
  const workers = Number(f.workers);
  const cores = availableParallelism();
  console.log(`bench:billing — ${customers} customers × ${days} days, batches of ${f.batch}, ${workers} billing threads on ${cores} cores (load average ${loadavg()[0]!.toFixed(1)})`);

  const bound1 = await sha256Bound(1, Number(f['bound-seconds']));
  const boundAll = await sha256Bound(cores, Number(f['bound-seconds']));
  console.log(`SHA-256 bound: ${num(bound1.total)} leaf hashes/s on one thread, ${num(boundAll.total)} on ${cores} threads at once`);

  const data = buildDataSet(customers, days, Number(f.batch));
  const key = data.key;
  console.log(`data set: ${num(data.readings)} signed readings in ${num(data.batches)} batches (mean proof ${data.meanProof.toFixed(1)} hashes) as ${num(data.tasks.reduce((a, t) => a + t.sets.length, 0))} day blobs, built in ${data.seconds.toFixed(1)} s`);

  const all = await billAll(data, key, workers);
  const one = workers > 1 ? await billAll(data, key, 1) : all;
  const rate = all.readings / all.seconds;
  const rate1 = one.readings / one.seconds;
  const hashesPerReading = all.hashes / all.readings;
  const naive = boundAll.total / (1 + data.meanProof);
  const projected = TARGET_READINGS / rate;

  const store = Number(f['store-customers']) > 0 ? await storeRuns(Number(f['store-customers']), workers) : undefined;
  // CPU time is steadier than wall time on a shared machine: 28.8 M × CPU per reading over every core.
  const cpuProjected = (us: number) => (TARGET_READINGS * us) / 1e6 / cores;
  const rows: string[][] = [
    ['SHA-256 bound (1 leaf hash per reading, all cores)', num(boundAll.total), '1.00×', '-', '-', bound1.cpuUsPerHash.toFixed(2), num(cpuProjected(bound1.cpuUsPerHash), 1)],
    ['naive bound (full proof per reading, all cores)', num(naive), ratio(naive / boundAll.total), '-', num(TARGET_READINGS / naive, 1), '-', '-'],
    [`billing, in memory, ${workers} threads`, num(rate), ratio(rate / boundAll.total), hashesPerReading.toFixed(2), num(projected, 1), all.cpuUs.toFixed(2), num(cpuProjected(all.cpuUs), 1)],
    ['billing, in memory, 1 thread', num(rate1), ratio(rate1 / boundAll.total), (one.hashes / one.readings).toFixed(2), num(TARGET_READINGS / rate1, 1), one.cpuUs.toFixed(2), num(cpuProjected(one.cpuUs), 1)],
  ];
  if (store) {
    rows.push([`billing from CascaDB SQL (${Number(f['store-customers'])} customers × 1 day)`, num(store.readings / store.sqlSeconds), ratio(store.readings / store.sqlSeconds / boundAll.total), '-', num(TARGET_READINGS / (store.readings / store.sqlSeconds), 0), '-', '-']);
    rows.push([`billing from KVS day blobs (same)`, num(store.readings / store.kvSeconds), ratio(store.readings / store.kvSeconds / boundAll.total), '-', num(TARGET_READINGS / (store.readings / store.kvSeconds), 0), '-', '-']);
  }
  console.log('');
  console.log(table(['path', 'readings/s', 'vs SHA-256 bound', 'SHA-256 per reading', 's for 28.8 M', 'CPU µs/reading', 'CPU s / cores for 28.8 M'], rows));
  console.log('');
  if (all.split) console.log(`CPU µs per reading, ${workers} threads: main ${all.split.main.toFixed(2)}, billing workers ${all.split.workers.toFixed(2)}, V8 GC/compiler threads ${all.split.other.toFixed(2)}`);
  console.log(`scaling ${workers} threads vs 1: ${ratio(rate / rate1)}; signatures verified ${num(all.signatures)} (${data.batches} batches × ${workers} threads at most); findings on clean data: ${all.findings}`);
  console.log(`target: 28.8 M readings in < ${TARGET_SECONDS} s → ${num(TARGET_READINGS / TARGET_SECONDS)} readings/s; in memory: ${projected.toFixed(1)} s projected (${projected < TARGET_SECONDS ? 'meets' : 'misses'} it)`);
  if (store) console.log(`store paths (${num(store.readings)} readings): SQL ${store.sqlSeconds.toFixed(2)} s of which ${store.sqlRead.toFixed(2)} s reading rows; day blobs ${store.kvSeconds.toFixed(2)} s of which ${store.kvRead.toFixed(2)} s reading blobs; close-day ${store.closeSeconds.toFixed(2)} s; writing the signed rows ${store.writeSeconds.toFixed(2)} s`);
  printJsonLast({
    bench: 'billing',
    customers, days, batch: Number(f.batch), workers, cores,
    readings: data.readings,
    sha256LeafPerSecOneThread: round(bound1.total, 0),
    sha256LeafPerSecAllCores: round(boundAll.total, 0),
    readingsPerSec: round(rate, 0),
    readingsPerSecOneThread: round(rate1, 0),
    ratioVsSha256Bound: round(rate / boundAll.total, 3),
    ratioVsNaiveBound: round(rate / naive, 3),
    sha256PerReading: round(hashesPerReading, 3),
    meanProofHashes: round(data.meanProof, 2),
    projectedSecondsFor28_8M: round(projected, 1),
    cpuUsPerReading: round(all.cpuUs, 2),
    cpuUsPerReadingOneThread: round(one.cpuUs, 2),
    ...(all.split ? { cpuUsPerReadingSplit: { main: round(all.split.main, 2), workers: round(all.split.workers, 2), other: round(all.split.other, 2) } } : {}),
    sha256CpuUsPerHash: round(bound1.cpuUsPerHash, 3),
    cpuProjectedSecondsFor28_8M: round(cpuProjected(all.cpuUs), 1),
    targetSeconds: TARGET_SECONDS,
    meetsTarget: projected < TARGET_SECONDS,
    ...(store ? { storeReadings: store.readings, sqlReadingsPerSec: round(store.readings / store.sqlSeconds, 0), kvReadingsPerSec: round(store.readings / store.kvSeconds, 0), closeDaySeconds: round(store.closeSeconds, 2) } : {}),
    findingsOnCleanData: all.findings + (store?.findings ?? 0),
    loadAverage: round(loadavg()[0]!, 2),
  });
  return all.findings + (store?.findings ?? 0) > 0 ? 1 : 0;
}

if (!process.env.SG_BENCH_NO_MAIN) process.exitCode = await main();
