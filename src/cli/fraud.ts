// `securegrid fraud`: rank the consumer units most likely to be stealing (readings through SQL or from the KVS
// day blobs), and
// `securegrid fraud eval`: the same methods against ground-truth theft labels. Logic lives in apps/fraud.
import { resolve } from 'node:path';
import { evaluate, evaluationTable, FraudError, METHODS, runFraud, simulateFraud, writeFraudReport, type FraudRun, type Method } from '../apps/fraud/index.js';
import { createFleet, DAY_MS, dayOfIso, LabelLog, LOCAL_OFFSET_MS, readLabels, THEFT_TYPES, writeTheftLabels, type TheftLabel, type TheftType } from '../meter/index.js';
import { intFlag, parseFlags, usage, UsageError, type FlagSpec } from './args.js';
import { BLOB_FLAGS, openBlobStore } from './billing.js';
import { openStore, STORE_FLAGS } from './ingest.js';
import { progress } from './progress.js';

const COMMON: Record<string, FlagSpec> = {
  out: { type: 'string', default: './fraud-report', help: 'directory for ranking.csv, ranking.json and report.html' },
  workers: { type: 'string', default: '2', help: 'worker threads scoring customers (0 = this thread)' },
  method: { type: 'string', default: 'stat', help: `ranking order: ${METHODS.join(' | ')}` },
  sample: { type: 'string', help: 'customers that train the SOM and class day effects (default max(200, 5 %))' },
  top: { type: 'string', default: '20', help: 'ranked customers printed here (all are in the files)' },
};

const RANK_SPEC: Record<string, FlagSpec> = {
  ...STORE_FLAGS,
  ...BLOB_FLAGS,
  source: { type: 'string', default: 'sql', help: "where readings come from: 'sql' (CascaDB rows) or 'kv' (the KVS day blobs of 'ingest close-day'; much faster); customers always come from SQL" },
  from: { type: 'string', help: 'first local day to score (yyyy-mm-dd, Brazil local time)' },
  to: { type: 'string', help: 'last local day to score (yyyy-mm-dd)' },
  ...COMMON,
};

const EVAL_SPEC: Record<string, FlagSpec> = {
  ...RANK_SPEC,
  labels: { type: 'string', help: "theft labels (JSON lines, as 'securegrid meters --labels' writes) for data in the store" },
  simulate: { type: 'boolean', default: false, help: 'evaluate on a fleet generated in memory from the simulator (no store)' },
  count: { type: 'string', default: '2000', help: 'with --simulate: customers' },
  days: { type: 'string', default: '60', help: 'with --simulate: days' },
  seed: { type: 'string', default: 'fraud-eval', help: 'with --simulate: fleet seed' },
  start: { type: 'string', default: '2026-09-01', help: 'with --simulate: first local day' },
  'theft-fraction': { type: 'string', default: '0.1', help: 'with --simulate: fraction of thieves' },
  'theft-types': { type: 'string', help: 'with --simulate: attack types (default h1–h6)' },
  'theft-variant': { type: 'string', default: 'mixed', help: 'with --simulate: tampering | bypass | mixed' },
  k: { type: 'string', help: 'comma-separated k for precision@k / recall@k (default 100 and the number of thieves)' },
};

function method(v: unknown): Method {
  if (!METHODS.includes(v as Method)) throw new UsageError(`--method must be one of ${METHODS.join(', ')}, got '${v}'`);
  return v as Method;
}

function common(f: Record<string, string | boolean | undefined>) {
  return {
    workers: intFlag(f.workers, 'workers', 0, 64),
    method: method(f.method),
    ...(f.sample !== undefined ? { sampleSize: intFlag(f.sample, 'sample', 1, 1_000_000) } : {}),
    onProgress: (p: { phase: string; done: number; total: number }) => progress(p.phase === 'sample' ? 'sample read (SOM training)' : 'customers scored', p.done, p.total),
  };
}

function printRanking(run: FraudRun, top: number): void {
  const r = run.ranking;
  console.log(`\nranking by ${r.method} (${r.customers.length} customers, ${r.from} … ${r.to}, ${run.readings.toLocaleString('en-US')} readings, ${run.seconds.toFixed(1)} s)`);
  for (const c of r.customers.slice(0, top)) {
    console.log(`  ${String(c.rank).padStart(4)}  meter ${c.meterId}  ${c.customerId}  ${c.customerClass.padEnd(11)}  ${c.method} ${c.score.toFixed(3)}  (paper ${c.scores.paper.toFixed(3)}, stat ${c.scores.stat.toFixed(2)})`);
    for (const why of c.reasons.slice(0, 2)) console.log(`          ${why}`);
  }
  for (const n of r.notes) console.log(`note: ${n}`);
}

function window(f: Record<string, string | boolean | undefined>): { from: string; to: string } {
  if (typeof f.from !== 'string' || typeof f.to !== 'string') throw new UsageError('give the window to score: --from yyyy-mm-dd --to yyyy-mm-dd (local days)');
  return { from: f.from, to: f.to };
}

async function rankFromStore(f: Record<string, string | boolean | undefined>): Promise<FraudRun> {
  const source = String(f.source);
  if (source !== 'sql' && source !== 'kv') throw new UsageError(`--source must be 'sql' or 'kv', got '${source}'`);
  const w = window(f);
  const store = await openStore(f);
  try {
    const blobs = source === 'kv' ? await openBlobStore(f, store) : undefined;
    try {
      console.log(`securegrid fraud: customers from ${store.where}; readings from ${blobs ? `the KVS day blobs (bucket ${String(f['kvs-bucket'])})` : 'the same, through SQL'}`);
      return await runFraud({ sql: store.sql, ...(blobs ? { kv: blobs.kv } : {}), source, ...w, ...common(f) });
    } finally {
      await blobs?.close();
    }
  } finally {
    await store.close();
  }
}

function fraction(v: unknown, name: string): number {
  const n = Number(v);
  if (typeof v !== 'string' || !(n >= 0 && n <= 1)) throw new UsageError(`--${name} must be a number between 0 and 1, got '${v}'`);
  return n;
}

async function runEval(argv: string[]): Promise<number> {
  const f = parseFlags(argv, EVAL_SPEC);
  if (f.help) {
    console.log(usage('fraud eval', 'AUC, precision@k and recall@k of every method, overall and per attack type (Jokar h1–h6), against theft labels: on a simulated fleet (--simulate) or on data in the store (--labels FILE with --from/--to and the store flags).', EVAL_SPEC));
    return 0;
  }
  let run: FraudRun;
  let labels: TheftLabel[];
  if (f.simulate) {
    const types = typeof f['theft-types'] === 'string' ? f['theft-types'].split(',').map((s) => s.trim()) : undefined;
    for (const t of types ?? []) if (!THEFT_TYPES.includes(t as TheftType)) throw new UsageError(`--theft-types: unknown type '${t}' (use ${THEFT_TYPES.join(', ')})`);
    const variant = String(f['theft-variant']);
    if (variant !== 'tampering' && variant !== 'bypass' && variant !== 'mixed') throw new UsageError('--theft-variant must be tampering, bypass or mixed');
    let startDay: number;
    try {
      startDay = dayOfIso(String(f.start));
    } catch {
      throw new UsageError(`--start must be yyyy-mm-dd, got '${f.start}'`);
    }
    const fleet = createFleet({
      count: intFlag(f.count, 'count', 10, 1_000_000),
      seed: String(f.seed),
      aggregators: 1,
      start: startDay * DAY_MS - LOCAL_OFFSET_MS,
      days: intFlag(f.days, 'days', 1, 400),
      theft: { fraction: fraction(f['theft-fraction'], 'theft-fraction'), variant, ...(types ? { types: types as TheftType[] } : {}) },
    });
    const log = new LabelLog();
    writeTheftLabels(fleet, log);
    labels = log.theft;
    console.log(`securegrid fraud eval: simulated fleet of ${fleet.count} customers × ${fleet.days} days (seed not shown), ${labels.length} thieves`);
    run = await simulateFraud({ fleet, ...common(f) });
  } else {
    if (typeof f.labels !== 'string') throw new UsageError('give --labels FILE (theft labels for data in the store) or --simulate');
    try {
      labels = readLabels(resolve(f.labels)).theft;
    } catch (err) {
      throw new FraudError('labels', `cannot read labels ${f.labels}: ${(err as Error).message}`);
    }
    run = await rankFromStore(f);
    const known = new Set(run.ranking.customers.map((c) => c.meterId));
    if (labels.length > 0 && !labels.some((l) => known.has(l.serial))) throw new FraudError('labels', `no labelled thief of ${f.labels} is a meter in the store: wrong labels file or store?`);
  }
  const ks = typeof f.k === 'string' ? f.k.split(',').map((s) => intFlag(s.trim(), 'k', 1)) : undefined;
  const evaluation = evaluate(run.ranking, labels, ks ? { ks } : {});
  printRanking(run, Math.min(intFlag(f.top, 'top', 0), 10));
  console.log(`\n${evaluationTable(evaluation)}`);
  const paths = writeFraudReport(resolve(String(f.out)), { ...run, evaluation, thieves: new Set(labels.map((l) => l.serial)) });
  console.log(`\nwrote ${paths.csv}, ${paths.json} and ${paths.html}`);
  return 0;
}

/** `securegrid fraud …` and `securegrid fraud eval …`. */
export async function runFraudCommand(argv: string[]): Promise<number> {
  if (argv[0] === 'eval') return runEval(argv.slice(1));
  const f = parseFlags(argv, RANK_SPEC);
  if (f.help) {
    console.log(usage('fraud', "Ranks the consumer units most likely to be stealing: the paper's SOM + daily correlation, a statistical scorer, and their combination, with explanations. Subcommand: fraud eval.", RANK_SPEC));
    return 0;
  }
  const run = await rankFromStore(f);
  printRanking(run, intFlag(f.top, 'top', 0));
  const paths = writeFraudReport(resolve(String(f.out)), run);
  console.log(`\nwrote ${paths.csv}, ${paths.json} and ${paths.html}`);
  return 0;
}

export { runFraudCommand as runFraud };
