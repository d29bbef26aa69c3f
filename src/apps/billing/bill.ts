// One customer's bill: a pure function of its measurement sets, its directory rows, the tariff and the
// metrology public key (the verifier only caches what it already proved). Steps: verify every reading's
// proof and batch signature, place it on the period's 15-minute grid, check completeness and the register,
// estimate what is missing by the documented rules (FORMAT.md, "Estimation"), price each interval by its
// tariff window, and hash the result.
import { BillingError } from './errors.js';
import { readMeasurementSet, registerOf, demandOf, serialOf, tsOf, type MeasurementSet } from './measurements.js';
import { reportHash, money, REPORT_FORMAT, type BillingReport, type BillLine, type Finding, type FindingCode, type OpeningSource, type ReadingEntry, type Severity } from './report.js';
import { chargeCents, compileTariff, energyCents, taxCents, windowOf, type TariffBook } from './tariff.js';
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

export function billCustomer(task: BillingTask, ctx: BillingContext): BillingReport {
  const { period } = task;
  const S = period.slots;
  const tariff = compileTariff(ctx.tariffs, task.customer.tariff, period);
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
  const readings: ReadingEntry[] = [];
  const estimates: Array<[number, number, number]> = [];
  const openings: BillingReport['openings'] = [];
  let measured = 0;
  let estimated = 0;
  let rejected = task.malformed.length;
  for (const m of task.malformed) finding('malformed', m.meter, m.ts, m.ts, 1, `stored row at ${new Date(m.ts).toISOString()} is not a reading (${m.reason}); not used`);

  for (const meter of meters) {
    // The reading used for each slot: its set and index there, and its leaf hash (hex).
    const slotSet = new Int32Array(S + 1).fill(-1);
    const slotIdx = new Int32Array(S + 1);
    const slotHex: string[] = new Array<string>(S + 1);
    const R = new Float64Array(S + 1).fill(-1);
    const D = new Float64Array(S + 1);
    const bad: Array<{ set: MeasurementSet; i: number; ts: number }> = [];
    for (let si = 0; si < sets.length; si++) {
      const set = sets[si]!;
      if (set.meter !== meter) continue;
      const b = set.bytes;
      for (let i = 0; i < set.n; i++) {
        const at = set.canonicalAt[i]!;
        const ts = tsOf(b, at);
        if (ts < period.fromMs || ts > period.toMs) continue; // the blob's UTC day overlaps the period only partly
        const state = verifier.batch(set.batches[set.batchIndex[i]!]!);
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
        slotHex[k] = leaf.toString('hex');
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

    // Energy per interval k = 1…S (interval ending at from + k·15 min).
    const E = new Float64Array(S + 1);
    const est = new Uint8Array(S + 1);
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
      est.fill(1, 1);
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
      const w = windowOf(tariff, ts);
      whBy[w]! += E[k]!;
      if (est[k]) {
        estBy[w]! += E[k]!;
        estimated++;
        estimates.push([meter, ts, E[k]!]);
      } else measured++;
    }
    for (let k = 0; k <= S; k++) {
      if (slotSet[k]! < 0) continue;
      const s = { set: sets[slotSet[k]!]!, i: slotIdx[k]!, leafHex: slotHex[k]! };
      const id = s.set.batches[s.set.batchIndex[s.i]!]!.batchId;
      let bi = batchIdx.get(id);
      if (bi === undefined) {
        bi = batches.length;
        batches.push(id);
        batchIdx.set(id, bi);
      }
      readings.push([meter, period.fromMs + k * INTERVAL_MS, bi, s.set.leaf[s.i]!, s.leafHex, R[k]!]);
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
  const body: Omit<BillingReport, 'hash' | 'generatedAt'> = {
    format: REPORT_FORMAT,
    customer: { ...task.customer },
    period: { label: period.label, from: new Date(period.fromMs).toISOString(), to: new Date(period.toMs).toISOString(), fromMs: period.fromMs, toMs: period.toMs, utcOffsetMinutes: period.utcOffsetMinutes, slots: S },
    meters,
    source: task.source,
    metrologyKeyId: verifier.keyId,
    tariff: { name: tariff.applied.name, digest: tariff.digest, applied: tariff.applied },
    currency: tariff.applied.currency,
    summary: { intervals: S * meters.length, measured, estimated, readingsUsed: readings.length, readingsRejected: rejected, findings: counts },
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
    readings,
  };
  return { ...body, hash: { algorithm: 'sha256', serialization: REPORT_FORMAT, value: reportHash(body) }, generatedAt: (ctx.now?.() ?? new Date()).toISOString() };
}
