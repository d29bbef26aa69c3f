// Where a customer's readings come from: CascaDB SQL (its meters' rows by primary-key range, with the batch
// rows they name) or the KVS day blobs (the big-data path). Either way the task gets measurement sets in the
// day-blob layout, so the billing computation reads one format and trusts neither store: it verifies.
import { canonicalReading } from '../../protocol/index.js';
import { decodeProof } from '../../crypto/index.js';
import { dayBlobKey, encodeDayBlob, reportFromRow, type DayBatch, type DayReading, type SqlClient } from '../../ingest/index.js';
import type { KvStore } from '../../kvs/index.js';
import { BillingError } from './errors.js';
import type { BillingTask } from './bill.js';
import { utcDates, type Period } from './time.js';

export interface CustomerEntry {
  id: string;
  class: string;
  tariff: string;
  meters: number[];
}

/** Customers with their meters (sorted by first meter id, so neighbours in a batch bill together). */
export async function loadDirectory(sql: SqlClient, only?: readonly string[]): Promise<CustomerEntry[]> {
  const customers = new Map<string, CustomerEntry>();
  for (const r of (await sql.query('SELECT customer_id, class, tariff FROM customer')).rows) {
    customers.set(String(r.customer_id), { id: String(r.customer_id), class: String(r.class ?? ''), tariff: String(r.tariff ?? ''), meters: [] });
  }
  for (const r of (await sql.query('SELECT meter_id, customer_id FROM meter')).rows) customers.get(String(r.customer_id))?.meters.push(Number(r.meter_id));
  let list = [...customers.values()];
  if (only && only.length > 0) {
    const missing = only.filter((c) => !customers.has(c));
    if (missing.length > 0) throw new BillingError('unknown-customer', `customer(s) ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ' …' : ''} not in the directory; check --customers`);
    const want = new Set(only);
    list = list.filter((c) => want.has(c.id));
  }
  for (const c of list) c.meters.sort((a, b) => a - b);
  return list.sort((a, b) => (a.meters[0] ?? Infinity) - (b.meters[0] ?? Infinity) || (a.id < b.id ? -1 : 1));
}

const READINGS = 'SELECT meter_id, ts, v1, v2, v3, i1, i2, i3, a1, a2, a3, p_w, q_var, pf, thd, freq, demand_w, energy_wh, status, batch_id, leaf, proof FROM reading WHERE meter_id = $1 AND ts >= $2 AND ts <= $3 ORDER BY ts';

/** A missing batch row: count 0 never verifies, and the verifier names it 'unknown-batch'. */
const noBatch = (id: string): DayBatch => ({ batchId: id || '?', keyId: '', count: 0, root: Buffer.alloc(32), signature: Buffer.alloc(0) });

/** Reads a customer's rows from CascaDB; batch rows are cached across customers by the caller's map. */
export async function sqlTask(sql: SqlClient, c: CustomerEntry, period: Period, batchCache: Map<string, DayBatch>): Promise<BillingTask> {
  const sets: Uint8Array[] = [];
  const malformed: BillingTask['malformed'] = [];
  const date = new Date(period.fromMs).toISOString().slice(0, 10);
  for (const meter of c.meters) {
    const rows = (await sql.query(READINGS, [meter, new Date(period.fromMs), new Date(period.toMs)])).rows;
    const day: DayReading[] = [];
    for (const row of rows) {
      const ts = Number(row.ts);
      const id = typeof row.batch_id === 'string' ? row.batch_id : '';
      let batch = batchCache.get(id);
      if (!batch) {
        const b = id ? (await sql.query('SELECT batch_id, key_id, count, merkle_root, signature FROM batch WHERE batch_id = $1', [id])).rows[0] : undefined;
        batch = b && Buffer.isBuffer(b.merkle_root) && Buffer.isBuffer(b.signature) && b.signature.length < 65536 && String(b.key_id).length < 256
          ? { batchId: id, keyId: String(b.key_id), count: Number(b.count) >>> 0, root: b.merkle_root.length === 32 ? b.merkle_root : Buffer.alloc(32), signature: b.signature }
          : noBatch(id);
        if (Buffer.byteLength(batch.batchId) > 255) batch = noBatch(batch.batchId.slice(0, 64));
        batchCache.set(id, batch);
      }
      const leaf = Number(row.leaf);
      let proof: Buffer[] = [];
      try {
        proof = decodeProof(row.proof as Buffer);
      } catch {
        proof = []; // an unreadable proof proves nothing: the reading fails verification
      }
      try {
        if (!Number.isInteger(leaf) || leaf < 0 || leaf > 0xffffffff) throw new Error(`leaf index ${row.leaf}`);
        const report = reportFromRow(row);
        day.push({ report, canonical: canonicalReading(report), batch, leaf, proof: proof.length > 255 ? [] : proof });
      } catch (err) {
        malformed.push({ meter, ts, reason: (err as Error).message.slice(0, 120) });
      }
    }
    sets.push(encodeDayBlob(meter, date, day));
  }
  return { customer: { id: c.id, class: c.class, tariff: c.tariff }, meters: c.meters, period, source: 'sql', sets, malformed };
}

/** Reads a customer's day blobs (days/<UTC date>/<meter>) for every UTC day the period touches. */
export async function kvTask(kv: KvStore, c: CustomerEntry, period: Period): Promise<BillingTask> {
  const keys: Buffer[] = [];
  for (const meter of c.meters) for (const d of utcDates(period.fromMs, period.toMs)) keys.push(dayBlobKey(meter, d));
  const blobs = keys.length ? await kv.getMany(keys) : [];
  return { customer: { id: c.id, class: c.class, tariff: c.tariff }, meters: c.meters, period, source: 'kv', sets: blobs.filter((b): b is Buffer => b !== undefined), malformed: [] };
}
