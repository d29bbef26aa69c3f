// One customer's bill: a pure function of its measurement sets, its directory rows, the tariff and the
// metrology public key (the verifier only caches what it already proved). Steps: verify every reading's
// proof and batch signature, place it on the period's 15-minute grid, check completeness and the register,
// estimate what is missing by the documented rules (FORMAT.md, "Estimation"), price each interval by its
// tariff window, and hash the result.
import { BillingError } from './errors.js';
import { readMeasurementSet, registerOf, demandOf, serialOf, tsOf, type MeasurementSet } from './measurements.js';
import { reportHashOf, money, REPORT_FORMAT, type BillingReport, type ReportBody, type BillLine, type Finding, type FindingCode, type OpeningSource, type ReadingEntry, type Severity } from './report.js';
import { chargeCents, compileTariff, energyCents, taxCents, windowOf, type CompiledTariff, type TariffBook } from './tariff.js';
import { INTERVAL_MS, type Period } from './time.js';
import { BatchVerifier } from './verifier.js';

export interface BillingTask {
  customer: { id: string; class: string; tariff: string };
  meters: number[];
  period: Period;
  source: 'sql' | 'kv';
  /** Measurement sets in the day-blob layout: one per meter and UTC day (kv) or per meter (sql). */
  sets: Uint8Array[];
  /** Stored rows that are not readings (values that cannot be encoded): reported, never used. */
  malformed: Array<{ meter: number; ts: number; reason: string }>;
}

export interface BillingContext {
  tariffs: TariffBook;
  metrologyPublicKey: Buffer;
  /** Shared across tasks in one worker: batch signatures and proven Merkle nodes. */
  verifier?: BatchVerifier;
  now?: () => Date;
}

const SEVERITY: Record<FindingCode, Severity> = {
  gap: 'warning',
  'invalid-signature': 'error',
  malformed: 'error',
  duplicate: 'error',
  'foreign-meter': 'error',
  'off-grid': 'error',
  'register-decrease': 'error',
  'register-inconsistent': 'warning',
  'no-readings': 'error',
};

/** Δ register against the interval's signed demand: floor effects (< 1 Wh) plus float32 rounding. */
export const consistent = (deltaWh: number, demandW: number): boolean => Math.abs(deltaWh - demandW / 4) <= 1.5 + Math.abs(demandW) * 2.5e-6;

function computeBill(task: BillingTask, ctx: BillingContext): { body: ReportBody; used: UsedReadings; generatedAt: string } {
  const { period } = task;
  const S = period.slots;
  const { tariff, slotWindow } = tariffFor(ctx.tariffs, task.customer.tariff, period);
  const verifier = ctx.verifier ?? new BatchVerifier(ctx.metrologyPublicKey);
  const meters = [...new Set(task.meters)].sort((a, b) => a - b);
  const findings: Finding[] = [];
  const finding = (code: FindingCode, meter: number, fromMs: number | undefined, toMs: number | undefined, count: number, message: string) => {
    const f: Finding = { code, severity: SEVERITY[code], meter, count, message };
    if (fromMs !== undefined) Object.assign(f, { fromMs, toMs, from: new Date(fromMs).toISOString(), to: new Date(toMs!).toISOString() });
    findings.push(f);
  };
  const sets: MeasurementSet[] = [];
  for (const raw of task.sets) {
    try {
      sets.push(readMeasurementSet(raw));
    } catch (err) {
      const b = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
      finding('malformed', b.length >= 8 ? b.readUInt32BE(4) : -1, undefined, undefined, 1, `${(err as Error).message}; its readings are not used`);
    }
  }
  const nw = tariff.windows.length;
  const whBy = new Array<number>(nw).fill(0);
  const estBy = new Array<number>(nw).fill(0);
  const batches: string[] = [];
  const batchIdx = new Map<string, number>();
  const used = usedScratch(sets.reduce((a, x) => a + x.n, 0));
  const setBatchIdx: Array<Int32Array | undefined> = [];
  const estimates: Array<[number, number, number]> = [];
  const openings: BillingReport['openings'] = [];
  let measured = 0;
  let estimated = 0;
  let rejected = task.malformed.length;
  for (const m of task.malformed) finding('malformed', m.meter, m.ts, m.ts, 1, `stored row at ${new Date(m.ts).toISOString()} is not a reading (${m.reason}); not used`);

  for (const meter of meters) {
    // The reading used for each slot: its set and index there, and its leaf hash (32 bytes at 32·k).
    const { slotSet, slotIdx, slotLeaf, R, D, E, est } = meterScratch(S + 1);
    const bad: Array<{ set: MeasurementSet; i: number; ts: number }> = [];
    for (let si = 0; si < sets.length; si++) {
      const set = sets[si]!;
      if (set.meter !== meter) continue;
      const b = set.bytes;
      // A blob names a few batches: their verdicts are looked up once, not per reading.
      const states = set.batches.map((h) => verifier.batch(h));
      for (let i = 0; i < set.n; i++) {
        const at = set.canonicalAt[i]!;
        const ts = tsOf(b, at);
        if (ts < period.fromMs || ts > period.toMs) continue; // the blob's UTC day overlaps the period only partly
        const state = states[set.batchIndex[i]!]!;
        const leaf = verifier.leafHash(b, at);
        if (!verifier.includes(state, set.leaf[i]!, leaf, b, set.proofAt[i]!, set.proofLen[i]!)) {
          const why = state.verdict === 'ok' ? 'its Merkle proof does not reach the signed batch root (altered, shifted or copied)' : state.verdict === 'wrong-key' ? 'its batch is not signed with the metrology key' : state.verdict === 'unknown-batch' ? 'its batch is not in the store' : 'its batch signature does not verify';
          finding('invalid-signature', meter, ts, ts, 1, `reading at ${new Date(ts).toISOString()}: ${why}; not used`);
          if ((ts - period.fromMs) % INTERVAL_MS !== 0) finding('off-grid', meter, ts, ts, 1, `the rejected reading at ${new Date(ts).toISOString()} is also off the 15-minute grid (a shifted timestamp)`);
          bad.push({ set, i, ts });
          rejected++;
          continue;
        }
        const serial = serialOf(b, at);
        if (serial !== meter) {
          finding('foreign-meter', meter, ts, ts, 1, `the signed reading at ${new Date(ts).toISOString()} belongs to meter ${serial}; not used`);
          rejected++;
          continue;
        }
        const off = ts - period.fromMs;
        if (off % INTERVAL_MS !== 0) {
          finding('off-grid', meter, ts, ts, 1, `reading at ${new Date(ts).toISOString()} is not on the 15-minute grid; not used`);
          rejected++;
          continue;
        }
        const k = off / INTERVAL_MS;
        if (slotSet[k]! >= 0) {
          finding('duplicate', meter, ts, ts, 1, `a second signed reading for the slot ending ${new Date(ts).toISOString()}; counted once`);
          rejected++;
          continue;
        }
        slotSet[k] = si;
        slotIdx[k] = i;
        slotLeaf.set(leaf, 32 * k);
        R[k] = registerOf(b, at);
        D[k] = demandOf(b, at);
      }
    }
    // A rejected row that claims the batch leaf of a used reading is a copy of it (a duplicate).
    for (const x of bad) {
      const id = x.set.batches[x.set.batchIndex[x.i]!]!.batchId;
      const leaf = x.set.leaf[x.i]!;
      for (let k = 0; k <= S; k++) {
        if (slotSet[k]! < 0) continue;
        const s = { set: sets[slotSet[k]!]!, i: slotIdx[k]! };
        if (s.set.batches[s.set.batchIndex[s.i]!]!.batchId === id && s.set.leaf[s.i] === leaf) {
          finding('duplicate', meter, x.ts, x.ts, 1, `the row at ${new Date(x.ts).toISOString()} copies the signed reading at ${new Date(period.fromMs + k * INTERVAL_MS).toISOString()}`);
          break;
        }
      }
    }

    // Energy per interval k = 1…S (interval ending at from + k·15 min): E, and est[k] = 1 where estimated.
    let first = -1;
    let last = -1;
    for (let k = 0; k <= S; k++) {
      if (R[k]! >= 0) {
        if (first < 0) first = k;
        last = k;
      }
    }
    let opening: OpeningSource = R[0]! >= 0 ? 'reading' : 'none';
    if (first === 1) {
      // Rule O: no opening reading; the first interval's energy is its signed demand × 15 min.
      R[0] = Math.max(0, R[1]! - Math.round(D[1]! / 4));
      opening = 'demand';
      first = 0;
    }
    openings.push({ meter, source: opening, registerWh: R[0]! >= 0 ? R[0]! : null });
    if (first < 0) {
      finding('no-readings', meter, period.fromMs + INTERVAL_MS, period.toMs, S, `no usable reading in the period: all ${S} intervals estimated as 0 Wh (rule E3)`);
      est.fill(1, 1, S + 1);
    } else {
      let measuredWh = 0;
      let measuredN = 0;
      let prev = first;
      for (let k = first + 1; k <= last; k++) {
        if (R[k]! < 0) continue;
        const ts = period.fromMs + k * INTERVAL_MS;
        if (k === prev + 1) {
          const d = R[k]! - R[prev]!;
          if (d < 0) finding('register-decrease', meter, ts, ts, 1, `register fell by ${-d} Wh in the interval ending ${new Date(ts).toISOString()}; billed 0 Wh`);
          else if (!consistent(d, D[k]!)) finding('register-inconsistent', meter, ts, ts, 1, `register step ${d} Wh but the signed demand gives ${(D[k]! / 4).toFixed(1)} Wh for the interval ending ${new Date(ts).toISOString()}`);
          E[k] = Math.max(0, d);
          measuredWh += E[k]!;
          measuredN++;
        } else {
          // Rule E1: registers of the missing slots interpolated linearly between the readings around the gap.
          const span = k - prev;
          let d = R[k]! - R[prev]!;
          if (d < 0) {
            finding('register-decrease', meter, ts, ts, 1, `register fell by ${-d} Wh across the gap ending ${new Date(ts).toISOString()}; billed 0 Wh`);
            d = 0;
          }
          let before = R[prev]!;
          for (let j = 1; j <= span; j++) {
            const reg = j === span ? R[prev]! + d : R[prev]! + Math.floor((d * j) / span);
            E[prev + j] = reg - before;
            est[prev + j] = 1;
            before = reg;
          }
          const a = period.fromMs + (prev + 1) * INTERVAL_MS;
          finding('gap', meter, a, ts - INTERVAL_MS, span - 1, `${span - 1} reading(s) missing; ${span} intervals estimated (${d} Wh) by register interpolation (rule E1)`);
        }
        prev = k;
      }
      const mean = measuredN > 0 ? Math.floor(measuredWh / measuredN) : 0;
      if (first > 1) {
        // Rule E2: before the first reading, the mean measured interval; the first reading's own interval from its demand.
        for (let k = 1; k < first; k++) {
          E[k] = mean;
          est[k] = 1;
        }
        E[first] = Math.max(0, Math.round(D[first]! / 4));
        est[first] = 1;
        finding('gap', meter, period.fromMs + INTERVAL_MS, period.fromMs + (first - 1) * INTERVAL_MS, first - 1, `${first - 1} reading(s) missing at the start; ${first} intervals estimated (rule E2: ${mean} Wh each, the first reading's from its demand)`);
      }
      if (last < S) {
        // Rule E3: after the last reading, the mean measured interval.
        for (let k = last + 1; k <= S; k++) {
          E[k] = mean;
          est[k] = 1;
        }
        finding('gap', meter, period.fromMs + (last + 1) * INTERVAL_MS, period.toMs, S - last, `${S - last} reading(s) missing at the end; estimated ${mean} Wh each (rule E3)`);
      }
    }
    for (let k = 1; k <= S; k++) {
      const ts = period.fromMs + k * INTERVAL_MS;
      const w = slotWindow[k]!;
      whBy[w]! += E[k]!;
      if (est[k]) {
        estBy[w]! += E[k]!;
        estimated++;
        estimates.push([meter, ts, E[k]!]);
      } else measured++;
    }
    for (let k = 0; k <= S; k++) {
      const si = slotSet[k]!;
      if (si < 0) continue;
      const set = sets[si]!;
      const i = slotIdx[k]!;
      // Index into `batches` of each set batch, resolved once per set and batch.
      const local = (setBatchIdx[si] ??= new Int32Array(set.batches.length).fill(-1));
      let bi = local[set.batchIndex[i]!]!;
      if (bi < 0) {
        const id = set.batches[set.batchIndex[i]!]!.batchId;
        let g = batchIdx.get(id);
        if (g === undefined) {
          g = batches.length;
          batches.push(id);
          batchIdx.set(id, g);
        }
        bi = local[set.batchIndex[i]!] = g;
      }
      used.push(meter, k, bi, set.leaf[i]!, slotLeaf, 32 * k, R[k]!);
    }
  }

  const spec = tariff.applied.spec;
  const lines: BillLine[] = tariff.windows.map((window, w) => {
    const priceMicro = tariff.priceMicro[w]!;
    const cents = energyCents(whBy[w]!, priceMicro);
    return { window, energyWh: whBy[w]!, estimatedWh: estBy[w]!, energyKwh: whBy[w]! / 1000, pricePerKwh: priceMicro / 1e6, priceMicro, amountCents: cents, amount: money(cents) };
  });
  const charges = tariff.charges.map((c) => {
    const cents = chargeCents(c.cents, c.per, S);
    return { name: c.name, per: c.per, amountCents: cents, amount: money(cents) };
  });
  const subtotal = lines.reduce((a, l) => a + l.amountCents, 0) + charges.reduce((a, c) => a + c.amountCents, 0);
  const taxes = tariff.taxes.map((t) => {
    const cents = taxCents(subtotal, t.ratePpm);
    return { name: t.name, rate: t.ratePpm / 1e6, ratePpm: t.ratePpm, amountCents: cents, amount: money(cents) };
  });
  const totalCents = subtotal + taxes.reduce((a, t) => a + t.amountCents, 0);
  const totalWh = whBy.reduce((a, b) => a + b, 0);
  const counts: Partial<Record<FindingCode, number>> = {};
  for (const f of findings) counts[f.code] = (counts[f.code] ?? 0) + 1;
  if (spec.kind !== 'flat' && spec.kind !== 'time-of-use') throw new BillingError('bad-tariffs', `tariff ${tariff.applied.name} has an unknown kind`);
  const body: ReportBody = {
    format: REPORT_FORMAT,
    customer: { ...task.customer },
    period: { label: period.label, from: new Date(period.fromMs).toISOString(), to: new Date(period.toMs).toISOString(), fromMs: period.fromMs, toMs: period.toMs, utcOffsetMinutes: period.utcOffsetMinutes, slots: S },
    meters,
    source: task.source,
    metrologyKeyId: verifier.keyId,
    tariff: { name: tariff.applied.name, digest: tariff.digest, applied: tariff.applied },
    currency: tariff.applied.currency,
    summary: { intervals: S * meters.length, measured, estimated, readingsUsed: used.length, readingsRejected: rejected, findings: counts },
    energy: { totalWh, totalKwh: totalWh / 1000, estimatedWh: estBy.reduce((a, b) => a + b, 0) },
    lines,
    charges,
    taxes,
    totalCents,
    total: money(totalCents),
    openings,
    estimates,
    findings,
    batches,
  };
  return { body, used, generatedAt: (ctx.now?.() ?? new Date()).toISOString() };
}

// Per-thread work arrays, reused by every bill the thread computes (allocating them per meter made most of the
// garbage: a backing store each). Indices ≥ the bill's slots are left over from earlier bills and never read.
let scratch: { size: number; slotSet: Int32Array; slotIdx: Int32Array; slotLeaf: Uint8Array; R: Float64Array; D: Float64Array; E: Float64Array; est: Uint8Array } | undefined;
function meterScratch(n: number): NonNullable<typeof scratch> {
  if (!scratch || scratch.size < n) {
    scratch = { size: n, slotSet: new Int32Array(n), slotIdx: new Int32Array(n), slotLeaf: new Uint8Array(32 * n), R: new Float64Array(n), D: new Float64Array(n), E: new Float64Array(n), est: new Uint8Array(n) };
  }
  scratch.slotSet.fill(-1, 0, n);
  scratch.R.fill(-1, 0, n);
  scratch.D.fill(0, 0, n);
  scratch.E.fill(0, 0, n);
  scratch.est.fill(0, 0, n);
  return scratch;
}

let usedReadings: UsedReadings | undefined;
function usedScratch(capacity: number): UsedReadings {
  if (!usedReadings || usedReadings.capacity < capacity) usedReadings = new UsedReadings(capacity);
  usedReadings.length = 0;
  return usedReadings;
}

/** Compiled tariffs and each slot's window, per tariff book, name and period: one thread bills many customers. */
const tariffCache = new WeakMap<TariffBook, Map<string, { tariff: CompiledTariff; slotWindow: Uint8Array }>>();
function tariffFor(book: TariffBook, name: string, period: Period): { tariff: CompiledTariff; slotWindow: Uint8Array } {
  let byName = tariffCache.get(book);
  if (!byName) tariffCache.set(book, (byName = new Map()));
  const key = `${period.fromMs}/${period.toMs}/${name}`;
  let c = byName.get(key);
  if (!c) {
    if (byName.size >= 256) byName.clear();
    const tariff = compileTariff(book, name, period);
    const slotWindow = new Uint8Array(period.slots + 1);
    for (let k = 1; k <= period.slots; k++) slotWindow[k] = windowOf(tariff, period.fromMs + k * INTERVAL_MS);
    byName.set(key, (c = { tariff, slotWindow }));
  }
  return c;
}

/** One customer's bill as a report object. */
export function billCustomer(task: BillingTask, ctx: BillingContext): BillingReport {
  const { body, used, generatedAt } = computeBill(task, ctx);
  const readings = used.entries(body.period.fromMs);
  const value = reportHashOf(body, used.serialization(body.period, body.batches));
  // The applied tariff is shared by every bill of the thread: each report object gets its own copy.
  const tariff = { ...body.tariff, applied: structuredClone(body.tariff.applied) };
  return { ...body, tariff, readings, hash: { algorithm: 'sha256', serialization: REPORT_FORMAT, value }, generatedAt };
}

/** The report's fields a run needs without parsing the whole report (index page, totals, progress). */
export type ReportHead = Pick<BillingReport, 'customer' | 'period' | 'total' | 'totalCents' | 'currency' | 'energy' | 'summary' | 'hash'> & { findings: number };

/**
 * One customer's bill as the UTF-8 JSON text of its report (what `billCustomer` returns, serialized) and its
 * head. A worker hands the bytes over without a copy; the readings part is written straight into them.
 */
export function billCustomerJson(task: BillingTask, ctx: BillingContext): { json: Buffer; head: ReportHead } {
  const { body, used, generatedAt } = computeBill(task, ctx);
  const { lines, json } = used.texts(body.period, body.batches);
  const hash: BillingReport['hash'] = { algorithm: 'sha256', serialization: REPORT_FORMAT, value: reportHashOf(body, lines) };
  const text = JSON.stringify({ ...body, readings: READINGS_TOKEN, hash, generatedAt });
  // The token is a JSON string whose quotes cannot appear unescaped inside another string: the one match is ours.
  const at = text.lastIndexOf(READINGS_JSON_TOKEN);
  const before = `${text.slice(0, at)}"readings":[`;
  const after = `]${text.slice(at + READINGS_JSON_TOKEN.length)}`;
  const nb = Buffer.byteLength(before);
  const out = Buffer.allocUnsafeSlow(nb + json.length + Buffer.byteLength(after));
  out.write(before, 0);
  json.copy(out, nb);
  out.write(after, nb + json.length);
  const head: ReportHead = { customer: body.customer, period: body.period, total: body.total, totalCents: body.totalCents, currency: body.currency, energy: body.energy, summary: body.summary, hash, findings: body.findings.length };
  return { json: out, head };
}

const READINGS_TOKEN = '\u0001readings\u0001';
const READINGS_JSON_TOKEN = `"readings":${JSON.stringify(READINGS_TOKEN)}`;

/** ASCII decimal text of every slot's ts for a period, kept per thread: every customer of a run shares it. */
let slotText: { fromMs: number; slots: number; width: number; bytes: Buffer } | undefined;
function slotTs(fromMs: number, slots: number): { width: number; bytes: Buffer } | undefined {
  if (slotText?.fromMs !== fromMs || slotText.slots !== slots) {
    const first = String(fromMs);
    const last = String(fromMs + slots * INTERVAL_MS);
    // Only when every slot's ts has the same number of digits (any date from 2001 to 2286).
    if (first.length !== last.length || !Number.isSafeInteger(fromMs) || fromMs < 0) return undefined;
    const bytes = Buffer.alloc(first.length * (slots + 1));
    for (let k = 0; k <= slots; k++) bytes.write(String(fromMs + k * INTERVAL_MS), k * first.length, 'latin1');
    slotText = { fromMs, slots, width: first.length, bytes };
  }
  return slotText;
}

const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');

/** A growable byte buffer with the few writers the report text needs (ASCII digits, hex, copied bytes). */
class Out {
  buf: Buffer;
  n = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(Math.max(256, size));
  }

  /** Empties the buffer (reused by the next bill of the thread) with room for k bytes. */
  reset(k: number): this {
    this.n = 0;
    this.room(k);
    return this;
  }

  room(k: number): void {
    if (this.n + k <= this.buf.length) return;
    const b = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.n + k));
    this.buf.copy(b, 0, 0, this.n);
    this.buf = b;
  }

  byte(c: number): void {
    this.buf[this.n++] = c;
  }

  bytes(src: Uint8Array, from: number, len: number): void {
    const b = this.buf;
    let n = this.n;
    for (let j = 0; j < len; j++) b[n++] = src[from + j]!;
    this.n = n;
  }

  /** A number exactly as String(v) writes it (digits by hand for the non-negative safe integers it always is). */
  num(v: number): void {
    if (!(Number.isSafeInteger(v) && v >= 0)) {
      const t = String(v);
      this.room(t.length);
      this.n += this.buf.write(t, this.n, 'latin1');
      return;
    }
    const b = this.buf;
    let len = 1;
    for (let x = v; x >= 10; x = Math.floor(x / 10)) len++;
    let at = this.n + len;
    this.n = at;
    let x = v;
    do {
      const q = Math.floor(x / 10);
      b[--at] = 48 + x - q * 10;
      x = q;
    } while (x > 0);
  }

  hex(src: Uint8Array, from: number): void {
    const b = this.buf;
    let n = this.n;
    for (let j = 0; j < 32; j++) {
      const v = src[from + j]!;
      b[n++] = HEX_DIGITS[v >> 4]!;
      b[n++] = HEX_DIGITS[v & 15]!;
    }
    this.n = n;
  }

  view(): Buffer {
    return this.buf.subarray(0, this.n);
  }
}

/** The readings a bill used, in report order, kept in columns until they are written out. */
class UsedReadings {
  length = 0;
  readonly capacity: number;
  #meter: Float64Array;
  #slot: Int32Array;
  #batch: Int32Array;
  #leaf: Float64Array;
  #reg: Float64Array;
  #hash: Uint8Array;

  /** capacity: at most this many readings (the readings in the task's sets). */
  constructor(capacity: number) {
    this.capacity = capacity;
    this.#meter = new Float64Array(capacity);
    this.#slot = new Int32Array(capacity);
    this.#batch = new Int32Array(capacity);
    this.#leaf = new Float64Array(capacity);
    this.#reg = new Float64Array(capacity);
    this.#hash = new Uint8Array(32 * capacity);
  }

  push(meter: number, slot: number, batch: number, leaf: number, hash: Uint8Array, hashAt: number, registerWh: number): void {
    const i = this.length++;
    this.#meter[i] = meter;
    this.#slot[i] = slot;
    this.#batch[i] = batch;
    this.#leaf[i] = leaf;
    this.#reg[i] = registerWh;
    this.#hash.set(hash.subarray(hashAt, hashAt + 32), 32 * i);
  }

  entries(fromMs: number): ReadingEntry[] {
    const out: ReadingEntry[] = [];
    const hex = Buffer.from(this.#hash.buffer, this.#hash.byteOffset, this.#hash.byteLength);
    for (let i = 0; i < this.length; i++) out.push([this.#meter[i]!, fromMs + this.#slot[i]! * INTERVAL_MS, this.#batch[i]!, this.#leaf[i]!, hex.toString('hex', 32 * i, 32 * i + 32), this.#reg[i]!]);
    return out;
  }

  /** The `reading` lines of the securegrid-bill/1 serialization (FORMAT.md, "Hash"), UTF-8. */
  serialization(p: Pick<Period, 'fromMs' | 'slots'>, batches: readonly string[]): Buffer {
    return this.texts(p, batches, false).lines;
  }

  /** The serialization's `reading` lines and, unless asked not to, the JSON array items of `readings`. */
  texts(p: Pick<Period, 'fromMs' | 'slots'>, batches: readonly string[], withJson = true): { lines: Buffer; json: Buffer } {
    const ids = batches.map((b) => Buffer.from(b, 'utf8'));
    const longest = ids.reduce((a, b) => Math.max(a, b.length), 0);
    const tsText = slotTs(p.fromMs, p.slots);
    const lines = outLines.reset(this.length * (120 + longest));
    const json = outJson.reset(withJson ? this.length * 110 : 0);
    const h = this.#hash;
    const T = 9;
    const NL = 10;
    const COMMA = 44;
    for (let i = 0; i < this.length; i++) {
      const id = ids[this.#batch[i]!]!;
      lines.room(160 + id.length);
      json.room(160);
      const k = this.#slot[i]!;
      // reading\t<meter>\t<ts>\t<batchId>\t<leaf>\t<leafHashHex>\t<registerWh>\n
      lines.bytes(READING, 0, READING.length);
      lines.num(this.#meter[i]!);
      lines.byte(T);
      if (tsText) lines.bytes(tsText.bytes, k * tsText.width, tsText.width);
      else lines.num(p.fromMs + k * INTERVAL_MS);
      lines.byte(T);
      lines.bytes(id, 0, id.length);
      lines.byte(T);
      lines.num(this.#leaf[i]!);
      lines.byte(T);
      lines.hex(h, 32 * i);
      lines.byte(T);
      lines.num(this.#reg[i]!);
      lines.byte(NL);
      if (!withJson) continue;
      // [meter,ts,batchIndex,leaf,"hex",registerWh]
      if (i > 0) json.byte(COMMA);
      json.byte(0x5b);
      json.num(this.#meter[i]!);
      json.byte(COMMA);
      if (tsText) json.bytes(tsText.bytes, k * tsText.width, tsText.width);
      else json.num(p.fromMs + k * INTERVAL_MS);
      json.byte(COMMA);
      json.num(this.#batch[i]!);
      json.byte(COMMA);
      json.num(this.#leaf[i]!);
      json.byte(COMMA);
      json.byte(0x22);
      json.hex(h, 32 * i);
      json.byte(0x22);
      json.byte(COMMA);
      json.num(this.#reg[i]!);
      json.byte(0x5d);
    }
    return { lines: lines.view(), json: json.view() };
  }
}

const READING = Buffer.from('reading\t', 'latin1');
// The texts of the bill being written: hashed or copied out before the thread's next bill reuses them.
const outLines = new Out(1 << 16);
const outJson = new Out(1 << 16);
