// billPeriod: the distribution company's billing run. Reads each customer's measurement sets (CascaDB or KVS
// day blobs) in this thread, several customers at once and ahead of the pool, and bills them on the worker
// pool as independent tasks. Reports come back as JSON text and are parsed only for callers that want objects.
import type { SqlClient } from '../../ingest/index.js';
import type { DayBatch } from '../../ingest/index.js';
import type { KvStore } from '../../kvs/index.js';
import { BillingError } from './errors.js';
import { BillingPool, type RawReport } from './pool.js';
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
  /** A started pool to bill on (left open; its tariffs and key must be these): skips thread start-up. */
  pool?: BillingPool;
  onProgress?: (p: BillingProgress) => void;
  /** Called with each report as it is ready (in completion order). */
  onReport?: (r: BillingReport) => void | Promise<void>;
  /** Called with each report's JSON text and head, unparsed (for writers that only store it). */
  onReportJson?: (r: RawReport) => void | Promise<void>;
  /** Customers read from the store at once (default 8 for day blobs, 2 for SQL). */
  readConcurrency?: number;
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
  /** Seconds this thread waited for the store with nothing read ahead (the rest of the wall time is the pool's). */
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
  const pool = o.pool ?? new BillingPool({ tariffs: o.tariffs, metrologyPublicKey: o.metrologyPublicKey, workers: o.workers });
  const s0 = pool.stats();
  const batchCache = new Map<string, DayBatch>();
  const keep = o.keepReports ?? true;
  const reports: BillingReport[] = [];
  const run: BillingRun = { period, source, reports, customers: customers.length, readings: 0, findings: 0, totalCents: 0, seconds: 0, readSeconds: 0, hashes: 0, signatures: 0 };
  let done = 0;
  const read = (c: CustomerEntry): Promise<BillingTask> => (source === 'kv' ? kvTask(o.kv!, c, period) : sqlTask(o.sql, c, period, batchCache));
  const ahead = pool.window;
  const inflight = new Set<Promise<void>>();
  let failure: unknown;
  // Reads run several customers ahead, in customer order (the pool's chunks keep neighbours on one thread).
  const reads: Array<Promise<BillingTask>> = [];
  let next = 0;
  const readMore = () => {
    while (next < customers.length && reads.length < (o.readConcurrency ?? (source === 'kv' ? 8 : 2))) {
      const p = read(customers[next++]!);
      p.catch(() => undefined); // awaited in order below; a run that stops early must not leave it unhandled
      reads.push(p);
    }
  };
  try {
    readMore();
    while (reads.length > 0) {
      if (failure) break;
      const r0 = performance.now();
      const task = await reads.shift()!;
      run.readSeconds += (performance.now() - r0) / 1000;
      readMore();
      const p: Promise<void> = pool.runJson(task).then(
        async (raw) => {
          const seen = ++done;
          const h = raw.head;
          run.readings += h.summary.readingsUsed;
          run.findings += h.findings;
          run.totalCents += h.totalCents;
          const readings = run.readings;
          if (keep || o.onReport) {
            const report = JSON.parse(raw.json.toString('utf8')) as BillingReport;
            if (keep) reports.push(report);
            await o.onReport?.(report);
          }
          await o.onReportJson?.(raw);
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
    run.hashes = s.hashes - s0.hashes;
    run.signatures = s.signatures - s0.signatures;
    if (!o.pool) await pool.close();
  }
  if (customers.length === 0) o.onProgress?.({ done: 0, total: 0, readings: 0, elapsedMs: performance.now() - t0 });
  reports.sort((a, b) => (a.customer.id < b.customer.id ? -1 : a.customer.id > b.customer.id ? 1 : 0));
  run.seconds = (performance.now() - t0) / 1000;
  return run;
}
