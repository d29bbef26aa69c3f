// The day-blob source (the paper's big-data path): a customer's measurement sets are the KVS objects
// days/<UTC date>/<meter> that `securegrid ingest close-day` writes (layout: src/ingest/close-day.ts). They are
// walked in place and written straight into the scorer's typed arrays: no reading objects, proofs skipped.
// Blobs are keyed by UTC date and the scorer works on Brazil local days (UTC−3), so a window of local days
// [first, last] needs UTC dates first … last + 1; each reading carries its ts and lands on its local day.
import { dayBlobKey } from '../../ingest/index.js';
import type { KvStore } from '../../kvs/index.js';
import { DAY_MS, INTERVALS_PER_DAY, isoDate, localDay, slotOf, tsOf } from '../../meter/index.js';
import { CANONICAL_READING_SIZE } from '../../protocol/index.js';
import { FraudError } from './errors.js';
import { CH, SeriesBuilder, type CustomerInfo, type CustomerSeries } from './series.js';

const MAGIC = 0x53474431; // 'SGD1'
const TWO_32 = 0x1_0000_0000;

/** UTC dates whose blobs can hold readings of local days firstDay … firstDay + days − 1. */
export function blobDates(firstDay: number, days: number): string[] {
  // From the UTC date of the window's first interval end to that of its last (UTC−3: one date more than days).
  const a = Math.floor(tsOf(firstDay, 0) / DAY_MS);
  const z = Math.floor(tsOf(firstDay + days - 1, INTERVALS_PER_DAY - 1) / DAY_MS);
  return Array.from({ length: z - a + 1 }, (_, i) => isoDate(a + i));
}

/** The KVS keys of one meter's blobs for a window of local days. */
export function blobKeys(meterId: number, firstDay: number, days: number): Buffer[] {
  return blobDates(firstDay, days).map((d) => dayBlobKey(meterId, d));
}

/**
 * Adds the readings of one day blob to a series builder; returns how many fell inside the window. Throws
 * FraudError('store') on a blob that is not a day blob of this meter (a wrong object must not pass as data).
 */
export function addDayBlob(b: SeriesBuilder, blob: Uint8Array): number {
  const meter = b.series.info.meterId;
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const len = blob.byteLength;
  const bad = (what: string): never => {
    throw new FraudError('store', `the day blob of meter ${meter} is malformed (${what}); re-run 'securegrid ingest close-day' for its day`);
  };
  if (len < 20 || dv.getUint32(0) !== MAGIC) bad('bad magic');
  if (dv.getUint32(4) !== meter) bad(`it belongs to meter ${dv.getUint32(4)}`);
  const nb = dv.getUint32(16);
  let p = 20;
  for (let i = 0; i < nb; i++) {
    // batch = idLen u8 ‖ id ‖ keyIdLen u8 ‖ keyId ‖ count u32 ‖ root 32 ‖ sigLen u16 ‖ signature
    if (p + 1 > len) bad('truncated batch header');
    p += 1 + blob[p]!;
    if (p + 1 > len) bad('truncated batch header');
    p += 1 + blob[p]! + 36;
    if (p + 2 > len) bad('truncated batch header');
    p += 2 + dv.getUint16(p);
  }
  if (p + 4 > len) bad('truncated');
  const n = dv.getUint32(p);
  p += 4;
  const s = b.series;
  const x = s.data;
  const regs = b.registers;
  const cells = s.days * INTERVALS_PER_DAY;
  let added = 0;
  for (let i = 0; i < n; i++) {
    if (p + CANONICAL_READING_SIZE + 9 > len) bad(`truncated at reading ${i}`);
    // canonical = serial u32 ‖ ts u64 ‖ v1 v2 v3 i1 i2 i3 a1 a2 a3 P Q PF THD f demand (f32) ‖ energy u48 ‖ status u16
    if (dv.getUint32(p) !== meter) bad(`reading ${i} is of meter ${dv.getUint32(p)}`);
    const ts = dv.getUint32(p + 4) * TWO_32 + dv.getUint32(p + 8);
    const np = blob[p + CANONICAL_READING_SIZE + 8]!;
    const q = p;
    p += CANONICAL_READING_SIZE + 9 + np * 32;
    const d = localDay(ts) - s.firstDay;
    if (d < 0 || d >= s.days) continue;
    const o = d * INTERVALS_PER_DAY + slotOf(ts);
    x[CH.v1 * cells + o] = dv.getFloat32(q + 12);
    x[CH.v2 * cells + o] = dv.getFloat32(q + 16);
    x[CH.v3 * cells + o] = dv.getFloat32(q + 20);
    x[CH.i1 * cells + o] = dv.getFloat32(q + 24);
    x[CH.i2 * cells + o] = dv.getFloat32(q + 28);
    x[CH.i3 * cells + o] = dv.getFloat32(q + 32);
    x[CH.a1 * cells + o] = dv.getFloat32(q + 36);
    x[CH.a2 * cells + o] = dv.getFloat32(q + 40);
    x[CH.a3 * cells + o] = dv.getFloat32(q + 44);
    x[CH.p * cells + o] = dv.getFloat32(q + 48);
    x[CH.q * cells + o] = dv.getFloat32(q + 52);
    x[CH.pf * cells + o] = dv.getFloat32(q + 56);
    regs[o] = dv.getUint16(q + 72) * TWO_32 + dv.getUint32(q + 74);
    x[CH.status * cells + o] = dv.getUint16(q + 78);
    added++;
  }
  if (p !== len) bad(p > len ? 'truncated proofs' : `${len - p} trailing bytes`);
  return added;
}

/** One customer's series from its blobs (undefined = that day was not closed or had no readings). */
export function seriesFromBlobs(info: CustomerInfo, firstDay: number, days: number, blobs: ReadonlyArray<Uint8Array | undefined>): { series: CustomerSeries; rows: number } {
  const b = new SeriesBuilder(info, firstDay, days);
  let rows = 0;
  for (const blob of blobs) if (blob) rows += addDayBlob(b, blob);
  return { series: b.finish(), rows };
}

/** Raw blobs of several customers in one getMany (the caller bounds how many such calls are in flight). */
export async function fetchBlobs(kv: KvStore, infos: readonly CustomerInfo[], firstDay: number, days: number): Promise<Array<Array<Buffer | undefined>>> {
  const per = blobDates(firstDay, days).length;
  const keys = infos.flatMap((c) => blobKeys(c.meterId, firstDay, days));
  let got: Array<Buffer | undefined>;
  try {
    got = keys.length ? await kv.getMany(keys) : [];
  } catch (err) {
    throw new FraudError('store', `reading the day blobs of meters ${infos[0]?.meterId}…${infos[infos.length - 1]?.meterId} from the KVS failed: ${(err as Error).message}`);
  }
  return infos.map((_, i) => got.slice(i * per, (i + 1) * per));
}
