// billPeriod: the distribution company's billing run. Reads each customer's measurement sets (CascaDB or KVS
// day blobs) in this thread, a few customers ahead, and bills them on the worker pool as independent tasks.
import type { SqlClient } from '../../ingest/index.js';
import type { DayBatch } from '../../ingest/index.js';
import type { KvStore } from '../../kvs/index.js';
import { BillingError } from './errors.js';
import { BillingPool } from './pool.js';
import type { BillingProgress } from './progress.js';
import type { BillingReport } from './report.js';
import { kvTask, loadDirectory, sqlTask, type CustomerEntry } from './source.js';
import type { TariffBook } from './tariff.js';
import { parsePeriod, type Period } from './time.js';
import type { BillingTask } from './bill.js';

export interface BillPeriodOptions {
  /** The directory (customer, meter) and, for source 'sql', the readings and batch rows. */
  sql: SqlClient;
  /** Day blobs; when given, readings come from them unless source is 'sql'. */
  kv?: KvStore;
  source?: 'sql' | 'kv';
  /** 'YYYY-MM', or from/to local dates YYYY-MM-DD (inclusive). */
  period?: string;
  from?: string;
  to?: string;
  /** Customer ids; default every customer in the directory. */
  customers?: string[];
  tariffs: TariffBook;
  /** The metrology (INMETRO) Ed25519 public key, SPKI DER. */
  metrologyPublicKey: Buffer;
  /** Worker threads; 0 = this thread. Default every core. */
  workers?: number;
  onProgress?: (p: BillingProgress) => void;
  /** Called with each report as it is ready (in completion order). */
  onReport?: (r: BillingReport) => void | Promise<void>;
  /** Keep every report in the result (default true; false for large runs that stream with onReport). */
  keepReports?: boolean;
}

export interface BillingRun {
  period: Period;
  source: 'sql' | 'kv';
  reports: BillingReport[];
  customers: number;
  readings: number;
  findings: number;
  totalCents: number;
  seconds: number;
  /** Seconds spent reading the store in this thread (the rest of the wall time is the pool's). */
  readSeconds: number;
  hashes: number;
  signatures: number;
}

export function periodOf(o: Pick<BillPeriodOptions, 'period' | 'from' | 'to'>, tariffs: TariffBook): Period {
  if (o.period !== undefined) return parsePeriod({ period: o.period }, tariffs.utcOffsetMinutes);
  if (o.from !== undefined && o.to !== undefined) return parsePeriod({ from: o.from, to: o.to }, tariffs.utcOffsetMinutes);
  throw new BillingError('bad-period', 'give a period (YYYY-MM) or from and to dates (YYYY-MM-DD)');
}

export async function billPeriod(o: BillPeriodOptions): Promise<BillingRun> {
  const t0 = performance.now();
  const period = periodOf(o, o.tariffs);
  const source = o.source ?? (o.kv ? 'kv' : 'sql');
  if (source === 'kv' && !o.kv) throw new BillingError('store', "source 'kv' needs a KvStore with the day blobs");
  const customers = await loadDirectory(o.sql, o.customers);
  for (const c of customers) if (!o.tariffs.tariffs[c.tariff]) throw new BillingError('unknown-tariff', `customer ${c.id} has tariff '${c.tariff}', which the tariff file does not define; add it`);
  const pool = new BillingPool({ tariffs: o.tariffs, metrologyPublicKey: o.metrologyPublicKey, workers: o.workers });
  const batchCache = new Map<string, DayBatch>();
  const keep = o.keepReports ?? true;
  const reports: BillingReport[] = [];
  const run: BillingRun = { period, source, reports, customers: customers.length, readings: 0, findings: 0, totalCents: 0, seconds: 0, readSeconds: 0, hashes: 0, signatures: 0 };
  let done = 0;
  const read = async (c: CustomerEntry): Promise<BillingTask> => {
    const r0 = performance.now();
    const t = source === 'kv' ? await kvTask(o.kv!, c, period) : await sqlTask(o.sql, c, period, batchCache);
    run.readSeconds += (performance.now() - r0) / 1000;
    return t;
  };
  const ahead = Math.max(2, pool.size * 4);
  const inflight = new Set<Promise<void>>();
  let failure: unknown;
  try {
    for (const c of customers) {
      if (failure) break;
      const task = await read(c);
      const p: Promise<void> = pool.run(task).then(
        async (report) => {
          const seen = ++done;
          run.readings += report.summary.readingsUsed;
          run.findings += report.findings.length;
          run.totalCents += report.totalCents;
          const readings = run.readings;
          if (keep) reports.push(report);
          await o.onReport?.(report);
          o.onProgress?.({ done: seen, total: customers.length, readings, elapsedMs: performance.now() - t0 });
        },
        (err: unknown) => {
          failure ??= err;
        },
      );
      const tracked = p.finally(() => inflight.delete(tracked));
      inflight.add(tracked);
      while (inflight.size >= ahead) await Promise.race(inflight);
    }
    await Promise.all(inflight);
    if (failure) throw failure;
  } finally {
    const s = pool.stats();
    run.hashes = s.hashes;
    run.signatures = s.signatures;
    await pool.close();
  }
  if (customers.length === 0) o.onProgress?.({ done: 0, total: 0, readings: 0, elapsedMs: performance.now() - t0 });
  reports.sort((a, b) => (a.customer.id < b.customer.id ? -1 : a.customer.id > b.customer.id ? 1 : 0));
  run.seconds = (performance.now() - t0) / 1000;
  return run;
}
