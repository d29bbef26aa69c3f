// The fraud run: customers through SQL (CascaDB); readings through SQL, from the KVS day blobs or from the
// simulator; a fleet model from a sample, every customer scored as an independent task on the worker pool, then
// the fleet-level ranking.
import type { SqlQueryable } from '../../ingest/index.js';
import type { KvStore } from '../../kvs/index.js';
import { dayOfIso, isoDate, tsOf, type Fleet } from '../../meter/index.js';
import { fetchBlobs, seriesFromBlobs } from './blobs.js';
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
  /** Customers and their attributes (`customer`, `meter`), and the readings when source is 'sql'. */
  sql: SqlQueryable;
  /** The KVS holding the day blobs of `securegrid ingest close-day` (source 'kv'). */
  kv?: KvStore;
  /** Where readings come from: 'sql' (CascaDB rows) or 'kv' (day blobs); default 'kv' when kv is given. */
  source?: 'sql' | 'kv';
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
  /** Where the readings came from. */
  source: 'sql' | 'kv' | 'simulator';
  /** Wall seconds of the phases: reading the sample, training the model, reading + scoring everyone, the examples. */
  phases: { sample: number; model: number; score: number; examples: number };
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

/** Reads the series of a group of customers (at most BATCH) from one source. */
type GroupReader = (infos: CustomerInfo[]) => Promise<{ series: CustomerSeries[]; rows: number }>;

/** The reader of a source: SQL one customer at a time, or the group's day blobs in one getMany. */
export function groupReader(o: Pick<FraudOptions, 'sql' | 'kv' | 'source'>, firstDay: number, days: number): GroupReader {
  const source = o.source ?? (o.kv ? 'kv' : 'sql');
  if (source === 'kv') {
    const kv = o.kv;
    if (!kv) throw new FraudError('bad-input', "source 'kv' needs the KVS holding the day blobs ('securegrid ingest close-day' writes them)");
    return async (infos) => {
      const blobs = await fetchBlobs(kv, infos, firstDay, days);
      let rows = 0;
      const series = infos.map((info, i) => {
        const r = seriesFromBlobs(info, firstDay, days, blobs[i]!);
        rows += r.rows;
        return r.series;
      });
      return { series, rows };
    };
  }
  return async (infos) => {
    const series: CustomerSeries[] = [];
    let rows = 0;
    for (const info of infos) {
      const r = await readSeries(o.sql, info, firstDay, days);
      series.push(r.series);
      rows += r.rows;
    }
    return { series, rows };
  };
}

function groups<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Groups read at once: SQL keeps 4 queries in flight as before. */
const READ_AHEAD = 4;
/** Blobs: 16 customers' days per getMany, 3 in flight (bigger calls cost the store less CPU per blob). */
const KV_GROUP = 16;
const KV_AHEAD = 3;

/** `securegrid fraud`: customers through SQL, readings through SQL or from the day blobs, everyone scored, ranked. */
export async function runFraud(o: FraudOptions): Promise<FraudRun> {
  const started = performance.now();
  const { firstDay, days } = window(o.from, o.to);
  const source = o.source ?? (o.kv ? 'kv' : 'sql');
  const read = groupReader(o, firstDay, days);
  const customers = await readCustomers(o.sql);
  if (customers.length === 0) throw new FraudError('no-data', "the store has no meters: provision a directory ('securegrid ingest provision') or import readings first");
  const pool = new CustomerPool(o.workers ?? 2);
  let readings = 0;
  try {
    const sampleIdx = sampleIndices(customers.length, o.sampleSize ?? Math.max(200, Math.ceil(customers.length * 0.05)));
    const inSample = new Set(sampleIdx);
    const sampleGroups = groups(sampleIdx, BATCH);
    const sampleParts: CustomerSeries[][] = new Array(sampleGroups.length);
    let sampled = 0;
    await forEachLimited(sampleGroups, READ_AHEAD, async (g, k) => {
      const r = await read(g.map((ci) => customers[ci]!));
      readings += r.rows;
      sampleParts[k] = r.series;
      sampled += g.length;
      o.onProgress?.({ phase: 'sample', done: sampled, total: sampleIdx.length });
    });
    const sample = sampleParts.flat();
    const t1 = performance.now();
    if (readings === 0) throw new FraudError('no-data', `no readings between ${o.from} and ${o.to} (local days): check the window against what was ingested${source === 'kv' ? " and that 'securegrid ingest close-day' ran for those days" : ''}`);
    const model = buildModel(sample, o.model);
    await pool.setModel(model);
    const t2 = performance.now();
    const results: CustomerResult[] = [];
    let done = 0;
    const total = customers.length;
    const scoring: Array<Promise<void>> = [];
    const running = new Set<Promise<void>>();
    const track = (job: Promise<CustomerResult[]>) => {
      const p: Promise<void> = job.then((rs) => {
        running.delete(p);
        results.push(...rs);
        done += rs.length;
        o.onProgress?.({ phase: 'score', done, total });
      });
      running.add(p);
      scoring.push(p);
    };
    for (let i = 0; i < sample.length; i += BATCH) track(pool.score(sample.slice(i, i + BATCH)));
    const others = customers.filter((_, i) => !inSample.has(i));
    const limit = Math.max(4, pool.size * 3);
    // Backpressure: reading stays at most a few batches ahead of the workers.
    const drain = async () => {
      while (running.size > limit) await Promise.race(running);
    };
    // Blobs come in bigger getMany groups than SQL's per-customer queries; workers get BATCH customers each.
    const [size, ahead] = source === 'kv' ? [KV_GROUP, KV_AHEAD] : [BATCH, READ_AHEAD];
    await forEachLimited(groups(others, size), ahead, async (g) => {
      const r = await read(g);
      readings += r.rows;
      for (let i = 0; i < r.series.length; i += BATCH) track(pool.score(r.series.slice(i, i + BATCH)));
      await drain();
    });
    await Promise.all(scoring);
    const ranking = finish(results, model, o);
    const t3 = performance.now();
    const byMeter = new Map(customers.map((c) => [c.meterId, c]));
    const examples = (await read(ranking.customers.slice(0, o.examples ?? 5).map((c) => byMeter.get(c.meterId)!))).series;
    const t4 = performance.now();
    const phases = { sample: (t1 - started) / 1000, model: (t2 - t1) / 1000, score: (t3 - t2) / 1000, examples: (t4 - t3) / 1000 };
    return { ranking, model, results: new Map(results.map((r) => [r.info.meterId, r])), examples, readings, seconds: (t4 - started) / 1000, source, phases };
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
    const seconds = (performance.now() - started) / 1000;
    return { ranking, model, results: new Map(results.map((r) => [r.info.meterId, r])), examples, readings, seconds, source: 'simulator', phases: { sample: 0, model: 0, score: seconds, examples: 0 } };
  } finally {
    await pool.close();
  }
}
