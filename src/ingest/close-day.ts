// Day blobs (the paper's "measurement sets" for the big-data path): one KVS object per meter and day holding
// the day's canonical readings in time order, each with its batch, leaf index and Merkle proof, plus the signed
// headers of those batches — so a blob verifies on its own against the metrology public key.
//
// Key: days/<yyyy-mm-dd>/<meter id, 8 digits zero-padded so that keys list in meter order>.
// Blob (big-endian):
//   'SGD1' ‖ meter u32 ‖ dayStart u64 (epoch ms) ‖ nBatches u32 ‖ batch* ‖ nReadings u32 ‖ reading*
//   batch   = idLen u8 ‖ batchId ‖ keyIdLen u8 ‖ keyId ‖ count u32 ‖ root (32) ‖ sigLen u16 ‖ signature
//   reading = canonicalReading (80) ‖ batch index u32 ‖ leaf u32 ‖ proof hashes u8 ‖ proof (32 each)
import type { KvStore } from '../kvs/index.js';
import { decodeProof } from '../crypto/index.js';
import { CANONICAL_READING_SIZE, canonicalReading, decodeCanonicalReading, type PhasorReport } from '../protocol/index.js';
import { IngestError } from './errors.js';
import { reportFromRow } from './reading.js';
import type { SqlClient } from './sql.js';

const MAGIC = Buffer.from('SGD1', 'latin1');
const DAY_MS = 86_400_000;

export interface DayBatch {
  batchId: string;
  keyId: string;
  count: number;
  root: Buffer;
  signature: Buffer;
}

export interface DayReading {
  report: PhasorReport;
  /** The canonical encoding the leaf hashes (kept as stored, so verifiers hash exactly these bytes). */
  canonical: Buffer;
  batch: DayBatch;
  leaf: number;
  proof: Buffer[];
}

export interface DayBlob {
  meter: number;
  /** yyyy-mm-dd (UTC). */
  date: string;
  readings: DayReading[];
}

/** Epoch ms of 00:00 UTC of a yyyy-mm-dd date; IngestError('bad-input') otherwise. */
export function dayStart(date: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  const t = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : Number.NaN;
  if (!m || Number.isNaN(t) || new Date(t).toISOString().slice(0, 10) !== date) throw new IngestError('bad-input', `date must be yyyy-mm-dd (UTC), got ${JSON.stringify(date)}`);
  return t;
}

export function dayBlobKey(meter: number, date: string): Buffer {
  dayStart(date);
  if (!Number.isInteger(meter) || meter < 0 || meter > 99_999_999) throw new IngestError('bad-input', `meter id must be an integer 0…99999999, got ${meter}`);
  return Buffer.from(`days/${date}/${String(meter).padStart(8, '0')}`, 'utf8');
}

export function encodeDayBlob(meter: number, date: string, readings: readonly DayReading[]): Buffer {
  const batches: DayBatch[] = [];
  const index = new Map<string, number>();
  for (const r of readings) {
    if (!index.has(r.batch.batchId)) {
      index.set(r.batch.batchId, batches.length);
      batches.push(r.batch);
    }
  }
  const parts: Buffer[] = [MAGIC];
  const head = Buffer.alloc(16);
  head.writeUInt32BE(meter, 0);
  head.writeBigUInt64BE(BigInt(dayStart(date)), 4);
  head.writeUInt32BE(batches.length, 12);
  parts.push(head);
  for (const b of batches) {
    const id = Buffer.from(b.batchId, 'utf8');
    const kid = Buffer.from(b.keyId, 'utf8');
    const h = Buffer.alloc(1 + id.length + 1 + kid.length + 4 + 32 + 2);
    let p = h.writeUInt8(id.length, 0);
    p += id.copy(h, p);
    p = h.writeUInt8(kid.length, p);
    p += kid.copy(h, p);
    p = h.writeUInt32BE(b.count, p);
    p += b.root.copy(h, p);
    h.writeUInt16BE(b.signature.length, p);
    parts.push(h, b.signature);
  }
  const n = Buffer.alloc(4);
  n.writeUInt32BE(readings.length, 0);
  parts.push(n);
  for (const r of readings) {
    const t = Buffer.alloc(9);
    t.writeUInt32BE(index.get(r.batch.batchId)!, 0);
    t.writeUInt32BE(r.leaf, 4);
    t.writeUInt8(r.proof.length, 8);
    parts.push(r.canonical, t, ...r.proof);
  }
  return Buffer.concat(parts);
}

export function decodeDayBlob(blob: Buffer): DayBlob {
  const bad = (what: string) => new IngestError('bad-input', `not a day blob: ${what}`);
  let p = 0;
  const need = (n: number) => {
    if (blob.length - p < n) throw bad(`truncated at byte ${p}`);
  };
  need(20);
  if (!blob.subarray(0, 4).equals(MAGIC)) throw bad('bad magic');
  const meter = blob.readUInt32BE(4);
  const start = Number(blob.readBigUInt64BE(8));
  const nb = blob.readUInt32BE(16);
  p = 20;
  const batches: DayBatch[] = [];
  for (let i = 0; i < nb; i++) {
    need(1);
    const il = blob[p++]!;
    need(il + 1);
    const batchId = blob.subarray(p, p + il).toString('utf8');
    p += il;
    const kl = blob[p++]!;
    need(kl + 4 + 32 + 2);
    const keyId = blob.subarray(p, p + kl).toString('utf8');
    p += kl;
    const count = blob.readUInt32BE(p);
    const root = Buffer.from(blob.subarray(p + 4, p + 36));
    const sl = blob.readUInt16BE(p + 36);
    p += 38;
    need(sl);
    batches.push({ batchId, keyId, count, root, signature: Buffer.from(blob.subarray(p, p + sl)) });
    p += sl;
  }
  need(4);
  const nr = blob.readUInt32BE(p);
  p += 4;
  const readings: DayReading[] = [];
  for (let i = 0; i < nr; i++) {
    need(CANONICAL_READING_SIZE + 9);
    const canonical = Buffer.from(blob.subarray(p, p + CANONICAL_READING_SIZE));
    p += CANONICAL_READING_SIZE;
    const bi = blob.readUInt32BE(p);
    const leaf = blob.readUInt32BE(p + 4);
    const np = blob[p + 8]!;
    p += 9;
    need(np * 32);
    const batch = batches[bi];
    if (!batch) throw bad(`reading ${i} names batch ${bi} of ${nb}`);
    readings.push({ report: decodeCanonicalReading(canonical), canonical, batch, leaf, proof: decodeProof(blob.subarray(p, p + np * 32)) });
    p += np * 32;
  }
  if (p !== blob.length) throw bad(`${blob.length - p} trailing bytes`);
  return { meter, date: new Date(start).toISOString().slice(0, 10), readings };
}

const READING_SELECT = 'SELECT meter_id, ts, v1, v2, v3, i1, i2, i3, a1, a2, a3, p_w, q_var, pf, thd, freq, demand_w, energy_wh, status, batch_id, leaf, proof FROM reading WHERE meter_id = $1 AND ts >= $2 AND ts < $3 ORDER BY ts';

/**
 * Writes days/<date>/<meter> for every meter with readings on `date` (UTC). Idempotent: a re-run rewrites the
 * same bytes (or adds readings that arrived late). Returns the meters written and the readings they hold.
 */
export async function closeDay(sql: SqlClient, kv: KvStore, date: string, o: { onProgress?: (done: number, total: number) => void } = {}): Promise<{ meters: number; readings: number }> {
  const start = dayStart(date);
  const meters = (await sql.query('SELECT meter_id FROM meter ORDER BY meter_id')).rows.map((r) => Number(r.meter_id));
  const batches = new Map<string, DayBatch>();
  const batchOf = async (id: string): Promise<DayBatch> => {
    const hit = batches.get(id);
    if (hit) return hit;
    const r = (await sql.query('SELECT batch_id, key_id, count, merkle_root, signature FROM batch WHERE batch_id = $1', [id])).rows[0];
    if (!r) throw new IngestError('store', `reading rows name batch ${id}, which is not in the batch table`);
    const b: DayBatch = { batchId: id, keyId: String(r.key_id), count: Number(r.count), root: r.merkle_root as Buffer, signature: r.signature as Buffer };
    batches.set(id, b);
    return b;
  };
  let written = 0;
  let readings = 0;
  for (let i = 0; i < meters.length; i++) {
    const meter = meters[i]!;
    const rows = (await sql.query(READING_SELECT, [meter, new Date(start), new Date(start + DAY_MS)])).rows;
    o.onProgress?.(i + 1, meters.length);
    if (rows.length === 0) continue;
    const day: DayReading[] = [];
    for (const row of rows) {
      const report = reportFromRow(row);
      day.push({ report, canonical: canonicalReading(report), batch: await batchOf(String(row.batch_id)), leaf: Number(row.leaf), proof: decodeProof(row.proof as Buffer) });
    }
    await kv.write([{ op: 'put', key: dayBlobKey(meter, date), value: encodeDayBlob(meter, date, day) }]);
    written++;
    readings += day.length;
  }
  return { meters: written, readings };
}

/** The day blob of a meter, or undefined if the day was not closed (or the meter had no readings). */
export async function readDayBlob(kv: KvStore, meter: number, date: string): Promise<DayBlob | undefined> {
  const v = await kv.get(dayBlobKey(meter, date));
  return v ? decodeDayBlob(v) : undefined;
}
