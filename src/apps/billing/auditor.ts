// The independent auditor (the metrology authority's side of the paper's data-validation application).
// Its own small verifier: it imports no billing computation — only the store doors, the canonical reading
// encoding and node:crypto/src/crypto primitives — and re-derives from the signed readings what the report
// claims: the hash of its canonical serialization, every reading used (present, signed, unaltered, counted
// once, of this customer), none omitted, the estimates, the energy per window and the amounts under the
// official tariff file. FORMAT.md is the shared specification, not shared code.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { decodeProof, leafHash, metrologyKeyId, verifyBatch, verifyInclusion } from '../../crypto/index.js';
import { canonicalReading } from '../../protocol/index.js';
import { readDayBlob, reportFromRow, type SqlClient } from '../../ingest/index.js';
import type { KvStore } from '../../kvs/index.js';

const FORMAT = 'securegrid-bill/1';
const STEP = 900_000;
const DAY = 86_400_000;

export type DiscrepancyCode =
  | 'hash-mismatch' // the report was edited after it was hashed
  | 'missing-reading' // a reading the report used is not in the store
  | 'unsigned-reading' // a reading the report used does not verify against the metrology key
  | 'altered-value' // the report's digest or value differs from the signed reading's
  | 'duplicate-counted' // the report counts a reading twice
  | 'foreign-reading' // the report uses a reading of a meter that is not the customer's, or outside the period
  | 'omitted-reading' // a signed reading of the period the report did not use
  | 'wrong-meters' // the report's meters are not the customer's meters in the directory
  | 'wrong-tariff' // the tariff named or applied is not the customer's official tariff
  | 'wrong-key' // the report names another metrology key
  | 'wrong-estimate' // estimated intervals or openings differ from the documented rules
  | 'wrong-energy' // energy per tariff window differs
  | 'wrong-amount' // a line, charge or tax amount differs
  | 'wrong-total'; // the total differs

export interface Discrepancy {
  code: DiscrepancyCode;
  message: string;
  meter?: number;
  ts?: number;
}

export interface AuditResult {
  pass: boolean;
  customer: string;
  period: string;
  hash: { reported: string; recomputed: string };
  discrepancies: Discrepancy[];
  checked: { readings: number; signedInStore: number; rejectedInStore: number };
}

export interface AuditOptions {
  /** The directory (customer, meter) and, unless reading blobs, the readings and batch rows. */
  sql: SqlClient;
  kv?: KvStore;
  /** Where to re-read the signed readings; default kv when given, else sql. */
  source?: 'sql' | 'kv';
  /** The metrology public key (SPKI DER) the auditor trusts. */
  metrologyPublicKey: Buffer;
  /** The official tariff file (parsed JSON, securegrid-tariffs/1). */
  tariffs: unknown;
}

/** A report that is not a report, or a store that cannot be read: exit status 2, not a FAIL. */
export class AuditError extends Error {
  constructor(readonly code: 'bad-report' | 'io', message: string) {
    super(message);
    this.name = 'AuditError';
  }
}

export async function readReportFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new AuditError('io', `cannot read the report ${path}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new AuditError('bad-report', `${path} is not JSON: ${(err as Error).message}`);
  }
}

// ---- the report as the auditor reads it (checked field by field; nothing is taken on trust) ----

type Entry = [number, number, number, number, string, number];
interface Doc {
  customer: { id: string };
  period: { fromMs: number; toMs: number; label: string };
  meters: number[];
  metrologyKeyId: string;
  tariff: { name: string; digest: string };
  readings: Entry[];
  batches: string[];
  estimates: Array<[number, number, number]>;
  openings: Array<{ meter: number; source: string; registerWh: number | null }>;
  findings: Array<{ code: string; meter: number; fromMs?: number; toMs?: number; count: number }>;
  lines: Array<{ window: string; energyWh: number; estimatedWh: number; priceMicro: number; amountCents: number }>;
  charges: Array<{ name: string; amountCents: number }>;
  taxes: Array<{ name: string; ratePpm: number; amountCents: number }>;
  totalCents: number;
  hash: { value: string };
}

function asDoc(r: unknown): Doc {
  const bad = (what: string): never => {
    throw new AuditError('bad-report', `not a ${FORMAT} report: ${what}`);
  };
  const o = r as Record<string, any>;
  if (typeof o !== 'object' || o === null || o.format !== FORMAT) bad('format');
  const int = (v: unknown, w: string) => (Number.isSafeInteger(v) ? (v as number) : bad(w));
  const s = (v: unknown, w: string) => (typeof v === 'string' ? v : bad(w));
  const arr = (v: unknown, w: string) => (Array.isArray(v) ? (v as unknown[]) : bad(w));
  s(o.customer?.id, 'customer.id');
  int(o.period?.fromMs, 'period.fromMs');
  int(o.period?.toMs, 'period.toMs');
  if (o.period.toMs <= o.period.fromMs || (o.period.toMs - o.period.fromMs) % STEP !== 0 || o.period.toMs - o.period.fromMs > 62 * DAY) bad('period');
  arr(o.meters, 'meters').forEach((m, i) => int(m, `meters[${i}]`));
  s(o.metrologyKeyId, 'metrologyKeyId');
  s(o.tariff?.name, 'tariff.name');
  s(o.tariff?.digest, 'tariff.digest');
  arr(o.batches, 'batches').forEach((b, i) => s(b, `batches[${i}]`));
  arr(o.readings, 'readings').forEach((e, i) => {
    const a = arr(e, `readings[${i}]`);
    if (a.length !== 6) bad(`readings[${i}]`);
    [0, 1, 2, 3, 5].forEach((j) => int(a[j], `readings[${i}][${j}]`));
    s(a[4], `readings[${i}][4]`);
    if ((a[2] as number) < 0 || (a[2] as number) >= o.batches.length) bad(`readings[${i}] names batch ${a[2]}`);
  });
  arr(o.estimates, 'estimates').forEach((e, i) => (arr(e, `estimates[${i}]`).length === 3 ? (e as unknown[]).forEach((v, j) => int(v, `estimates[${i}][${j}]`)) : bad(`estimates[${i}]`)));
  arr(o.openings, 'openings').forEach((x, i) => (int((x as Record<string, unknown>)?.meter, `openings[${i}].meter`), s((x as Record<string, unknown>).source, `openings[${i}].source`)));
  arr(o.findings, 'findings').forEach((f, i) => (s((f as Record<string, unknown>)?.code, `findings[${i}].code`), int((f as Record<string, unknown>).count, `findings[${i}].count`)));
  arr(o.lines, 'lines').forEach((l, i) => ['energyWh', 'estimatedWh', 'priceMicro', 'amountCents'].forEach((k) => int((l as Record<string, unknown>)?.[k], `lines[${i}].${k}`)));
  arr(o.charges, 'charges').forEach((c, i) => int((c as Record<string, unknown>)?.amountCents, `charges[${i}].amountCents`));
  arr(o.taxes, 'taxes').forEach((t, i) => int((t as Record<string, unknown>)?.amountCents, `taxes[${i}].amountCents`));
  int(o.totalCents, 'totalCents');
  s(o.hash?.value, 'hash.value');
  return o as Doc;
}

/** FORMAT.md, "Hash" — written from the specification, separately from the billing code's serializer. */
function serialization(d: Doc): string {
  let out = `${FORMAT}\ncustomer\t${d.customer.id}\nperiod\t${d.period.fromMs}\t${d.period.toMs}\ntariff\t${d.tariff.name}\t${d.tariff.digest}\nmetrology-key\t${d.metrologyKeyId}\n`;
  for (const m of d.meters) out += `meter\t${m}\n`;
  for (const e of d.readings) out += `reading\t${e[0]}\t${e[1]}\t${d.batches[e[2]]}\t${e[3]}\t${e[4]}\t${e[5]}\n`;
  for (const e of d.estimates) out += `estimate\t${e[0]}\t${e[1]}\t${e[2]}\n`;
  for (const o of d.openings) out += `opening\t${o.meter}\t${o.source}\t${o.registerWh === null || o.registerWh === undefined ? '-' : o.registerWh}\n`;
  for (const f of d.findings) out += `finding\t${f.code}\t${f.meter}\t${f.fromMs ?? '-'}\t${f.toMs ?? '-'}\t${f.count}\n`;
  for (const l of d.lines) out += `line\t${l.window}\t${l.energyWh}\t${l.estimatedWh}\t${l.priceMicro}\t${l.amountCents}\n`;
  for (const c of d.charges) out += `charge\t${c.name}\t${c.amountCents}\n`;
  for (const t of d.taxes) out += `tax\t${t.name}\t${t.ratePpm}\t${t.amountCents}\n`;
  return `${out}total\t${d.totalCents}\n`;
}

// ---- the official tariff, read by the auditor itself ----

function sortedJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(sortedJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${sortedJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

interface Official {
  digest: string;
  windowOf: (ts: number) => number;
  windows: Array<{ name: string; priceMicro: number }>;
  charges: Array<{ name: string; cents: number }>;
  taxes: Array<{ name: string; ratePpm: number }>;
}

function official(file: unknown, name: string, fromMs: number, toMs: number): Official | undefined {
  const f = file as { currency?: string; utcOffsetMinutes?: number; holidays?: string[]; tariffs?: Record<string, any> };
  const spec = f?.tariffs?.[name];
  if (!spec || (spec.kind !== 'flat' && spec.kind !== 'time-of-use')) return undefined;
  const offset = (f.utcOffsetMinutes ?? -180) * 60_000;
  const first = Math.floor((fromMs + offset) / DAY);
  const last = Math.floor((toMs - 1 + offset) / DAY);
  const holidays = [...new Set(f.holidays ?? [])].sort().filter((h) => {
    const d = Date.parse(`${h}T00:00:00Z`) / DAY;
    return d >= first && d <= last;
  });
  const holidayDays = new Set(holidays.map((h) => Date.parse(`${h}T00:00:00Z`) / DAY));
  const applied = { format: 'securegrid-tariff/1', name, currency: f.currency, utcOffsetMinutes: f.utcOffsetMinutes ?? -180, holidays, spec };
  const digest = createHash('sha256').update(sortedJson(applied)).digest('hex');
  const micro = (p: number) => Math.round(p * 1e6);
  const windows: Official['windows'] = spec.kind === 'flat' ? [{ name: 'all', priceMicro: micro(spec.pricePerKwh) }] : spec.windows.map((w: { name: string; pricePerKwh: number }) => ({ name: w.name, priceMicro: micro(w.pricePerKwh) }));
  const minute = (t: string) => Number(t.slice(0, 2)) * 60 + Number(t.slice(3, 5));
  const windowOf = (ts: number): number => {
    if (spec.kind === 'flat') return 0;
    const start = ts - STEP + offset; // an interval belongs to the window its start falls in (rule T)
    const day = Math.floor(start / DAY);
    const weekday = new Date(day * DAY).getUTCDay();
    const def = spec.windows.findIndex((w: { weekdayHours?: string[] }) => !w.weekdayHours);
    if (weekday === 0 || weekday === 6 || holidayDays.has(day)) return def;
    const m = (start - day * DAY) / 60_000;
    for (let i = 0; i < spec.windows.length; i++) {
      for (const span of (spec.windows[i].weekdayHours ?? []) as string[]) {
        const [a, b] = span.split('-') as [string, string];
        if (m >= minute(a) && m < minute(b)) return i;
      }
    }
    return def;
  };
  return {
    digest,
    windowOf,
    windows,
    charges: (spec.charges ?? []).map((c: { name: string; amount: number; per: string }) => {
      const cents = BigInt(Math.round(c.amount * 100));
      const slots = BigInt((toMs - fromMs) / STEP);
      const v = c.per === 'bill' ? cents : c.per === 'day' ? (cents * slots * 2n + 96n) / 192n : (cents * slots * 2n + 2880n) / 5760n;
      return { name: c.name, cents: Number(v) };
    }),
    taxes: (spec.taxes ?? []).map((t: { name: string; rate: number }) => ({ name: t.name, ratePpm: Math.round(t.rate * 1e6) })),
  };
}

// ---- the signed readings, re-read from the store ----

interface Stored {
  valid: boolean;
  why: string;
  leafHex: string;
  batchId: string;
  leaf: number;
  register: number;
  demand: number;
  serial: number;
}

type BatchRow = { keyId: string; count: number; root: Buffer; signature: Buffer } | undefined;

function check(canonical: Buffer | undefined, batch: BatchRow, leaf: number, proof: Buffer[], pub: Buffer, keyId: string, sigs: Map<string, boolean>, batchId: string): { ok: boolean; why: string; leafHex: string } {
  if (!canonical) return { ok: false, why: 'the stored row is not a reading', leafHex: '' };
  const lh = leafHash(canonical);
  const leafHex = lh.toString('hex');
  if (!batch) return { ok: false, why: `batch ${batchId} is not in the store`, leafHex };
  if (batch.keyId !== keyId) return { ok: false, why: `batch ${batchId} names key ${batch.keyId}, not the metrology key ${keyId}`, leafHex };
  const k = `${batchId}\0${batch.count}\0${batch.root.toString('hex')}\0${batch.signature.toString('hex')}`;
  let sig = sigs.get(k);
  if (sig === undefined) sigs.set(k, (sig = verifyBatch(pub, { batchId, count: batch.count, root: batch.root }, batch.signature)));
  if (!sig) return { ok: false, why: `batch ${batchId} signature does not verify with the metrology key`, leafHex };
  if (!verifyInclusion(lh, leaf, batch.count, proof, batch.root)) return { ok: false, why: `its Merkle proof does not reach batch ${batchId}'s signed root`, leafHex };
  return { ok: true, why: '', leafHex };
}

async function storedReadings(o: AuditOptions, meters: number[], fromMs: number, toMs: number): Promise<Map<number, Map<number, Stored[]>>> {
  const pub = o.metrologyPublicKey;
  const keyId = metrologyKeyId(pub);
  const sigs = new Map<string, boolean>();
  const out = new Map<number, Map<number, Stored[]>>();
  const add = (meter: number, ts: number, s: Stored) => {
    let m = out.get(meter);
    if (!m) out.set(meter, (m = new Map()));
    const l = m.get(ts);
    if (l) l.push(s);
    else m.set(ts, [s]);
  };
  const source = o.source ?? (o.kv ? 'kv' : 'sql');
  if (source === 'kv') {
    if (!o.kv) throw new AuditError('io', "reading day blobs needs a KVS ('kv')");
    for (const meter of meters) {
      for (let d = Math.floor(fromMs / DAY); d <= Math.floor(toMs / DAY); d++) {
        const blob = await readDayBlob(o.kv, meter, new Date(d * DAY).toISOString().slice(0, 10));
        for (const r of blob?.readings ?? []) {
          const ts = r.report.ts;
          if (ts < fromMs || ts > toMs) continue;
          const c = check(r.canonical, r.batch, r.leaf, r.proof, pub, keyId, sigs, r.batch.batchId);
          add(meter, ts, { valid: c.ok && blob!.meter === meter, why: c.why || (blob!.meter !== meter ? `blob of meter ${blob!.meter}` : ''), leafHex: c.leafHex, batchId: r.batch.batchId, leaf: r.leaf, register: r.report.energyWh, demand: r.report.demandW, serial: r.report.serial });
        }
      }
    }
    return out;
  }
  const batches = new Map<string, BatchRow>();
  for (const meter of meters) {
    const rows = (await o.sql.query('SELECT meter_id, ts, v1, v2, v3, i1, i2, i3, a1, a2, a3, p_w, q_var, pf, thd, freq, demand_w, energy_wh, status, batch_id, leaf, proof FROM reading WHERE meter_id = $1 AND ts >= $2 AND ts <= $3', [meter, new Date(fromMs), new Date(toMs)])).rows;
    for (const row of rows) {
      const ts = Number(row.ts);
      const batchId = String(row.batch_id);
      if (!batches.has(batchId)) {
        const b = (await o.sql.query('SELECT key_id, count, merkle_root, signature FROM batch WHERE batch_id = $1', [batchId])).rows[0];
        batches.set(batchId, b && Buffer.isBuffer(b.merkle_root) && Buffer.isBuffer(b.signature) ? { keyId: String(b.key_id), count: Number(b.count), root: b.merkle_root, signature: b.signature } : undefined);
      }
      let canonical: Buffer | undefined;
      let proof: Buffer[] = [];
      let register = Number.NaN;
      let demand = Number.NaN;
      try {
        const rep = reportFromRow(row);
        canonical = canonicalReading(rep);
        register = rep.energyWh;
        demand = rep.demandW;
        proof = decodeProof(row.proof as Buffer);
      } catch {
        // an unencodable row or an unreadable proof: it cannot verify
      }
      const c = check(canonical, batches.get(batchId), Number(row.leaf), proof, pub, keyId, sigs, batchId);
      add(meter, ts, { valid: c.ok, why: c.why, leafHex: c.leafHex, batchId, leaf: Number(row.leaf), register, demand, serial: meter });
    }
  }
  return out;
}

// ---- the audit ----

export async function audit(report: unknown, o: AuditOptions): Promise<AuditResult> {
  const d = asDoc(report);
  const out: Discrepancy[] = [];
  const add = (code: DiscrepancyCode, message: string, meter?: number, ts?: number) => out.push({ code, message, ...(meter !== undefined ? { meter } : {}), ...(ts !== undefined ? { ts } : {}) });
  const at = (ts: number) => new Date(ts).toISOString();
  const { fromMs, toMs } = d.period;
  const S = (toMs - fromMs) / STEP;

  const recomputed = createHash('sha256').update(serialization(d), 'utf8').digest('hex');
  if (recomputed !== d.hash.value) add('hash-mismatch', `the report's hash ${d.hash.value.slice(0, 16)}… is not the SHA-256 of its content (${recomputed.slice(0, 16)}…): it was edited after billing`);
  const keyId = metrologyKeyId(o.metrologyPublicKey);
  if (d.metrologyKeyId !== keyId) add('wrong-key', `the report names metrology key ${d.metrologyKeyId}; the auditor's key is ${keyId}`);

  let customer: Record<string, unknown> | undefined;
  let meters: number[];
  try {
    customer = (await o.sql.query('SELECT customer_id, tariff FROM customer WHERE customer_id = $1', [d.customer.id])).rows[0];
    meters = (await o.sql.query('SELECT meter_id FROM meter WHERE customer_id = $1', [d.customer.id])).rows.map((r) => Number(r.meter_id)).sort((a, b) => a - b);
  } catch (err) {
    throw new AuditError('io', `cannot read the directory: ${(err as Error).message}`);
  }
  if (!customer) add('wrong-meters', `customer ${d.customer.id} is not in the directory`);
  const reportMeters = [...d.meters].sort((a, b) => a - b);
  if (reportMeters.join(',') !== meters.join(',')) add('wrong-meters', `the report bills meters ${reportMeters.join(', ') || 'none'}; the directory gives ${meters.join(', ') || 'none'}`);

  const tariffName = customer ? String(customer.tariff) : d.tariff.name;
  if (customer && d.tariff.name !== tariffName) add('wrong-tariff', `the report applies tariff '${d.tariff.name}'; customer ${d.customer.id} is on '${tariffName}'`);
  const tariff = official(o.tariffs, tariffName, fromMs, toMs);
  if (!tariff) add('wrong-tariff', `tariff '${tariffName}' is not in the official tariff file`);
  else if (d.tariff.name === tariffName && d.tariff.digest !== tariff.digest) add('wrong-tariff', `the report's tariff '${tariffName}' (digest ${d.tariff.digest.slice(0, 16)}…) differs from the official one (${tariff.digest.slice(0, 16)}…): other prices, windows, charges or holidays`);

  let stored: Map<number, Map<number, Stored[]>>;
  try {
    stored = await storedReadings(o, meters, fromMs, toMs);
  } catch (err) {
    if (err instanceof AuditError) throw err;
    throw new AuditError('io', `cannot read the signed readings: ${(err as Error).message}`);
  }
  let signedInStore = 0;
  let rejectedInStore = 0;
  for (const m of stored.values()) for (const l of m.values()) for (const s of l) {
    if (s.valid) signedInStore++;
    else rejectedInStore++;
  }

  // Every reading the report used: present, signed, the same digest and value, counted once, this customer's.
  const mine = new Set(meters);
  const used = new Map<number, Map<number, Stored>>();
  const seenSlot = new Set<string>();
  const seenLeaf = new Set<string>();
  for (const [meter, ts, bi, leaf, leafHex, reg] of d.readings) {
    const batchId = d.batches[bi]!;
    if (seenSlot.has(`${meter}/${ts}`) || seenLeaf.has(`${batchId}/${leaf}`)) {
      add('duplicate-counted', `the reading of meter ${meter} at ${at(ts)} (batch ${batchId}, leaf ${leaf}) is counted more than once`, meter, ts);
      continue;
    }
    seenSlot.add(`${meter}/${ts}`);
    seenLeaf.add(`${batchId}/${leaf}`);
    if (!mine.has(meter)) {
      add('foreign-reading', `the report uses a reading of meter ${meter}, which is not customer ${d.customer.id}'s`, meter, ts);
      continue;
    }
    if (ts < fromMs || ts > toMs || (ts - fromMs) % STEP !== 0) {
      add('foreign-reading', `the report uses a reading at ${at(ts)}, not an interval end of the period`, meter, ts);
      continue;
    }
    const cands = stored.get(meter)?.get(ts) ?? [];
    if (cands.length === 0) {
      add('missing-reading', `the report uses a reading of meter ${meter} at ${at(ts)} that is not in the store`, meter, ts);
      continue;
    }
    const good = cands.find((s) => s.valid && s.serial === meter);
    if (!good) {
      add('unsigned-reading', `the report uses the reading of meter ${meter} at ${at(ts)}, which does not verify: ${cands[0]!.why || 'another meter\'s reading'}`, meter, ts);
      continue;
    }
    if (good.leafHex !== leafHex || good.batchId !== batchId || good.leaf !== leaf || good.register !== reg) {
      add('altered-value', `the reading of meter ${meter} at ${at(ts)} differs from the signed one: report ${leafHex.slice(0, 12)}… ${reg} Wh, signed ${good.leafHex.slice(0, 12)}… ${good.register} Wh (batch ${good.batchId} leaf ${good.leaf})`, meter, ts);
      continue;
    }
    let m = used.get(meter);
    if (!m) used.set(meter, (m = new Map()));
    m.set(ts, good);
  }
  // Nothing missing: every signed reading of the period on the grid is in the report.
  for (const [meter, m] of stored) {
    for (const [ts, l] of m) {
      if ((ts - fromMs) % STEP !== 0 || !l.some((s) => s.valid && s.serial === meter)) continue;
      if (!seenSlot.has(`${meter}/${ts}`)) add('omitted-reading', `the signed reading of meter ${meter} at ${at(ts)} is not in the report`, meter, ts);
    }
  }

  // Re-derive the intervals from the accepted signed readings (FORMAT.md rules O, E1–E3).
  const estimates: string[] = [];
  const openings: string[] = [];
  const nw = tariff?.windows.length ?? 0;
  const wh = new Array<number>(nw).fill(0);
  const estWh = new Array<number>(nw).fill(0);
  for (const meter of meters) {
    const regs = new Map<number, { r: number; dmd: number }>();
    for (const [ts, s] of used.get(meter) ?? []) regs.set((ts - fromMs) / STEP, { r: s.register, dmd: s.demand });
    const ks = [...regs.keys()].sort((a, b) => a - b);
    const energy = new Array<number>(S + 1).fill(0);
    const estimated = new Array<boolean>(S + 1).fill(false);
    let opening: { source: string; reg: number | null } = { source: regs.has(0) ? 'reading' : 'none', reg: regs.get(0)?.r ?? null };
    if (ks.length === 0) for (let k = 1; k <= S; k++) estimated[k] = true;
    else {
      if (ks[0] === 1) {
        const r0 = Math.max(0, regs.get(1)!.r - Math.round(regs.get(1)!.dmd / 4));
        regs.set(0, { r: r0, dmd: 0 });
        ks.unshift(0);
        opening = { source: 'demand', reg: r0 };
      }
      let sum = 0;
      let n = 0;
      for (let i = 1; i < ks.length; i++) {
        const a = ks[i - 1]!;
        const b = ks[i]!;
        const delta = Math.max(0, regs.get(b)!.r - regs.get(a)!.r);
        if (b === a + 1) {
          energy[b] = delta;
          sum += delta;
          n++;
        } else {
          let prevReg = regs.get(a)!.r;
          for (let j = 1; j <= b - a; j++) {
            const reg = j === b - a ? regs.get(a)!.r + delta : regs.get(a)!.r + Math.floor((delta * j) / (b - a));
            energy[a + j] = reg - prevReg;
            estimated[a + j] = true;
            prevReg = reg;
          }
        }
      }
      const mean = n > 0 ? Math.floor(sum / n) : 0;
      const firstK = ks[0]!;
      const lastK = ks[ks.length - 1]!;
      if (firstK > 1) {
        for (let k = 1; k < firstK; k++) {
          energy[k] = mean;
          estimated[k] = true;
        }
        energy[firstK] = Math.max(0, Math.round(regs.get(firstK)!.dmd / 4));
        estimated[firstK] = true;
      }
      for (let k = lastK + 1; k <= S; k++) {
        energy[k] = mean;
        estimated[k] = true;
      }
    }
    openings.push(`${meter}\t${opening.source}\t${opening.reg ?? '-'}`);
    for (let k = 1; k <= S; k++) {
      const ts = fromMs + k * STEP;
      if (estimated[k]) estimates.push(`${meter}\t${ts}\t${energy[k]}`);
      if (tariff) {
        const w = tariff.windowOf(ts);
        wh[w]! += energy[k]!;
        if (estimated[k]) estWh[w]! += energy[k]!;
      }
    }
  }
  const reportEst = d.estimates.map((e) => e.join('\t'));
  const mineEst = new Set(estimates);
  const theirEst = new Set(reportEst);
  const extra = reportEst.filter((e) => !mineEst.has(e));
  const lacking = estimates.filter((e) => !theirEst.has(e));
  if (extra.length + lacking.length > 0) add('wrong-estimate', `${lacking.length} interval(s) the rules estimate differently or that the report does not mark as estimated, ${extra.length} estimate(s) the rules do not give${lacking[0] ? `; e.g. meter/ts/Wh ${lacking[0].replace(/\t/g, ' ')}` : extra[0] ? `; e.g. report's ${extra[0].replace(/\t/g, ' ')}` : ''}`);
  const reportOpen = d.openings.map((x) => `${x.meter}\t${x.source}\t${x.registerWh ?? '-'}`).sort();
  if (reportOpen.join('\n') !== [...openings].sort().join('\n')) add('wrong-estimate', `the opening registers differ: report ${reportOpen.join('; ')}, signed readings give ${openings.sort().join('; ')}`.replace(/\t/g, ' '));

  if (tariff) {
    let subtotal = 0;
    if (d.lines.length !== nw || d.lines.some((l, i) => l.window !== tariff.windows[i]!.name)) add('wrong-tariff', `the report's lines (${d.lines.map((l) => l.window).join(', ')}) are not the tariff's windows (${tariff.windows.map((w) => w.name).join(', ')})`);
    tariff.windows.forEach((w, i) => {
      const cents = Number((BigInt(wh[i]!) * BigInt(w.priceMicro) + 5_000_000n) / 10_000_000n);
      subtotal += cents;
      const l = d.lines.find((x) => x.window === w.name);
      if (!l) return;
      if (l.energyWh !== wh[i] || l.estimatedWh !== estWh[i]) add('wrong-energy', `window ${w.name}: the report bills ${l.energyWh} Wh (${l.estimatedWh} estimated), the signed readings give ${wh[i]} Wh (${estWh[i]} estimated)`);
      if (l.priceMicro !== w.priceMicro || l.amountCents !== cents) add('wrong-amount', `window ${w.name}: the report charges ${l.amountCents} cents at ${l.priceMicro / 1e6}/kWh, the official tariff gives ${cents} cents at ${w.priceMicro / 1e6}/kWh`);
    });
    for (const c of tariff.charges) {
      subtotal += c.cents;
      const rc = d.charges.find((x) => x.name === c.name);
      if (!rc || rc.amountCents !== c.cents) add('wrong-amount', `charge '${c.name}': the report has ${rc ? rc.amountCents : 'none'}, the tariff gives ${c.cents} cents`);
    }
    if (d.charges.length !== tariff.charges.length) add('wrong-amount', `the report has ${d.charges.length} charges, the tariff ${tariff.charges.length}`);
    let total = subtotal;
    for (const t of tariff.taxes) {
      const cents = Number((BigInt(subtotal) * BigInt(t.ratePpm) + 500_000n) / 1_000_000n);
      total += cents;
      const rt = d.taxes.find((x) => x.name === t.name);
      if (!rt || rt.amountCents !== cents || rt.ratePpm !== t.ratePpm) add('wrong-amount', `tax '${t.name}': the report has ${rt ? rt.amountCents : 'none'}, the tariff gives ${cents} cents`);
    }
    if (d.taxes.length !== tariff.taxes.length) add('wrong-amount', `the report has ${d.taxes.length} taxes, the tariff ${tariff.taxes.length}`);
    if (d.totalCents !== total) add('wrong-total', `the report's total is ${d.totalCents} cents; the signed readings under the official tariff give ${total} cents`);
  }

  return {
    pass: out.length === 0,
    customer: d.customer.id,
    period: d.period.label,
    hash: { reported: d.hash.value, recomputed },
    discrepancies: out,
    checked: { readings: d.readings.length, signedInStore, rejectedInStore },
  };
}
