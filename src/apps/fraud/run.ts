// The fraud run: customers and readings through SQL (CascaDB) or from the simulator, a fleet model from a sample,
// every customer scored as an independent task on the worker pool, then the fleet-level ranking.
import type { SqlQueryable } from '../../ingest/index.js';
import { dayOfIso, isoDate, tsOf, type Fleet } from '../../meter/index.js';
import { FraudError } from './errors.js';
import { buildModel, type FleetModel, type ModelOptions } from './model.js';
import { CustomerPool } from './pool.js';
import { rankResults, type Method, type Ranking } from './rank.js';
import type { CustomerResult } from './score.js';
import { SERIES_COLUMNS, SeriesBuilder, type CustomerInfo, type CustomerSeries } from './series.js';
import { plainFleetOptions, simulatedSeries } from './simulate.js';

export interface FraudProgress {
  phase: 'sample' | 'score';
  done: number;
  total: number;
}

export interface CommonOptions {
  /** Worker threads (0 = score in this thread). Default 2. */
  workers?: number;
  onProgress?: (p: FraudProgress) => void;
  /** Ranking order; default 'stat' (best by measurement, see docs in rank.ts). */
  method?: Method;
  /** Customers whose days train the SOM and the class day effects; default max(200, 5 %) of the fleet. */
  sampleSize?: number;
  /** Top customers whose series are returned for the report's plots; default 5. */
  examples?: number;
  model?: ModelOptions;
}

export interface FraudOptions extends CommonOptions {
  sql: SqlQueryable;
  /** First and last local day (yyyy-mm-dd, Brazil local time). */
  from: string;
  to: string;
}

export interface FraudRun {
  ranking: Ranking;
  model: FleetModel;
  /** By meter id. */
  results: Map<number, CustomerResult>;
  examples: CustomerSeries[];
  readings: number;
  seconds: number;
}

const BATCH = 8;

function window(from: string, to: string): { firstDay: number; days: number } {
  let a: number;
  let b: number;
  try {
    a = dayOfIso(from);
    b = dayOfIso(to);
  } catch {
    throw new FraudError('bad-input', `--from and --to must be dates yyyy-mm-dd, got '${from}' and '${to}'`);
  }
  if (b < a) throw new FraudError('bad-input', `--to ${to} is before --from ${from}`);
  if (b - a + 1 > 400) throw new FraudError('bad-input', `the window ${from}…${to} is ${b - a + 1} days; score at most 400 days at a time`);
  return { firstDay: a, days: b - a + 1 };
}

function sampleIndices(n: number, size: number): number[] {
  const k = Math.min(n, size);
  // Evenly spread over the meter order: deterministic, and independent of which customers steal.
  return Array.from({ length: k }, (_, i) => Math.floor((i * n) / k));
}

/** Every meter with its customer's attributes, in meter order. */
export async function readCustomers(sql: SqlQueryable): Promise<CustomerInfo[]> {
  let meters;
  let customers;
  try {
    meters = (await sql.query('SELECT meter_id, customer_id FROM meter ORDER BY meter_id')).rows;
    customers = (await sql.query('SELECT customer_id, class, contracted_kw, supply_kv FROM customer')).rows;
  } catch (err) {
    throw new FraudError('store', `cannot read the meter and customer tables: ${(err as Error).message} (is this a securegrid store? run 'securegrid ingest provision' first)`);
  }
  const byId = new Map(customers.map((c) => [String(c.customer_id), c]));
  return meters.map((m) => {
    const c = byId.get(String(m.customer_id));
    return {
      meterId: Number(m.meter_id),
      customerId: String(m.customer_id),
      customerClass: c ? String(c.class) : 'unknown',
      contractedKw: c ? Number(c.contracted_kw) : 0,
      supplyKv: c ? Number(c.supply_kv) : 0,
    };
  });
}

/** The reading query of one meter over a window (also what the bench's read-only baseline runs). */
export const READ_SQL = `SELECT ${SERIES_COLUMNS} FROM reading WHERE meter_id = $1 AND ts >= $2 AND ts <= $3`;

/** One customer's readings on local days [firstDay, firstDay + days) through SQL. */
export async function readSeries(sql: SqlQueryable, info: CustomerInfo, firstDay: number, days: number): Promise<{ series: CustomerSeries; rows: number }> {
  const b = new SeriesBuilder(info, firstDay, days);
  let rows;
  try {
    rows = (await sql.query(READ_SQL, [info.meterId, new Date(tsOf(firstDay, 0)), new Date(tsOf(firstDay + days - 1, 95))])).rows;
  } catch (err) {
    throw new FraudError('store', `reading meter ${info.meterId} failed: ${(err as Error).message}`);
  }
  for (const r of rows) b.addRow(r);
  return { series: b.finish(), rows: rows.length };
}

/** Runs tasks with at most `limit` in flight, in order of `items`. */
async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

function finish(results: CustomerResult[], model: FleetModel, o: CommonOptions & { from: string; to: string }): Ranking {
  return rankResults(results, model, { method: o.method, from: o.from, to: o.to });
}

/** `securegrid fraud`: reads customers and readings through SQL, scores everyone, ranks. */
export async function runFraud(o: FraudOptions): Promise<FraudRun> {
  const started = performance.now();
  const { firstDay, days } = window(o.from, o.to);
  const customers = await readCustomers(o.sql);
  if (customers.length === 0) throw new FraudError('no-data', "the store has no meters: provision a directory ('securegrid ingest provision') or import readings first");
  const pool = new CustomerPool(o.workers ?? 2);
  let readings = 0;
  try {
    const sampleIdx = sampleIndices(customers.length, o.sampleSize ?? Math.max(200, Math.ceil(customers.length * 0.05)));
    const inSample = new Set(sampleIdx);
    const sample: CustomerSeries[] = new Array(sampleIdx.length);
    let sampled = 0;
    await forEachLimited(sampleIdx, 4, async (ci, k) => {
      const r = await readSeries(o.sql, customers[ci]!, firstDay, days);
      readings += r.rows;
      sample[k] = r.series;
      o.onProgress?.({ phase: 'sample', done: ++sampled, total: sampleIdx.length });
    });
    if (readings === 0) throw new FraudError('no-data', `no readings between ${o.from} and ${o.to} (local days): check the window against what was ingested`);
    const model = buildModel(sample, o.model);
    await pool.setModel(model);
    const results: CustomerResult[] = [];
    let done = 0;
    const total = customers.length;
    const scoring: Array<Promise<void>> = [];
    const running = new Set<Promise<void>>();
    const submit = (batch: CustomerSeries[]) => {
      const job: Promise<void> = pool.score(batch).then((rs) => {
        running.delete(job);
        results.push(...rs);
        done += rs.length;
        o.onProgress?.({ phase: 'score', done, total });
      });
      running.add(job);
      scoring.push(job);
    };
    for (let i = 0; i < sample.length; i += BATCH) submit(sample.slice(i, i + BATCH));
    const rest = customers.filter((_, i) => !inSample.has(i));
    let batch: CustomerSeries[] = [];
    const limit = Math.max(4, pool.size * 3);
    await forEachLimited(rest, 4, async (info) => {
      const r = await readSeries(o.sql, info, firstDay, days);
      readings += r.rows;
      batch.push(r.series);
      if (batch.length >= BATCH) {
        submit(batch);
        batch = [];
      }
      // Backpressure: reading stays at most a few batches ahead of the workers.
      while (running.size > limit) await Promise.race(running);
    });
    if (batch.length) submit(batch);
    await Promise.all(scoring);
    const ranking = finish(results, model, o);
    const examples: CustomerSeries[] = [];
    const byMeter = new Map(customers.map((c) => [c.meterId, c]));
    for (const c of ranking.customers.slice(0, o.examples ?? 5)) examples.push((await readSeries(o.sql, byMeter.get(c.meterId)!, firstDay, days)).series);
    return { ranking, model, results: new Map(results.map((r) => [r.info.meterId, r])), examples, readings, seconds: (performance.now() - started) / 1000 };
  } finally {
    await pool.close();
  }
}

export interface SimulatedOptions extends CommonOptions {
  fleet: Fleet;
}

/** The same run on readings generated in memory from the simulator's report model (evaluations, no store). */
export async function simulateFraud(o: SimulatedOptions): Promise<FraudRun> {
  const started = performance.now();
  const fleet = o.fleet;
  const plain = plainFleetOptions(fleet);
  const { firstDay, days } = { firstDay: fleet.firstDay, days: Math.floor(fleet.days) };
  const from = isoDate(firstDay);
  const to = isoDate(firstDay + days - 1);
  const pool = new CustomerPool(o.workers ?? 2);
  try {
    const sampleIdx = sampleIndices(fleet.count, o.sampleSize ?? Math.max(200, Math.ceil(fleet.count * 0.05)));
    const inSample = new Set(sampleIdx);
    const chunks: number[][] = [];
    for (let i = 0; i < sampleIdx.length; i += BATCH) chunks.push(sampleIdx.slice(i, i + BATCH));
    const sample: CustomerSeries[] = [];
    await Promise.all(
      chunks.map(async (c) => {
        const s = await pool.simulate(plain, c, firstDay, days, false);
        sample.push(...s);
        o.onProgress?.({ phase: 'sample', done: sample.length, total: sampleIdx.length });
      }),
    );
    sample.sort((a, b) => a.info.meterId - b.info.meterId);
    const model = buildModel(sample, o.model);
    await pool.setModel(model);
    const results: CustomerResult[] = [];
    const total = fleet.count;
    const jobs: Array<Promise<CustomerResult[]>> = [];
    for (let i = 0; i < sample.length; i += BATCH) jobs.push(pool.score(sample.slice(i, i + BATCH)));
    const rest = Array.from({ length: fleet.count }, (_, i) => i).filter((i) => !inSample.has(i));
    for (let i = 0; i < rest.length; i += BATCH) jobs.push(pool.simulate(plain, rest.slice(i, i + BATCH), firstDay, days, true));
    await Promise.all(
      jobs.map((j) =>
        j.then((rs) => {
          results.push(...rs);
          o.onProgress?.({ phase: 'score', done: results.length, total });
        }),
      ),
    );
    const ranking = finish(results, model, { ...o, from, to });
    const examples = ranking.customers.slice(0, o.examples ?? 5).map((c) => simulatedSeries(fleet, c.meterId - fleet.serialBase, firstDay, days));
    const readings = fleet.count * days * 96;
    return { ranking, model, results: new Map(results.map((r) => [r.info.meterId, r])), examples, readings, seconds: (performance.now() - started) / 1000 };
  } finally {
    await pool.close();
  }
}
