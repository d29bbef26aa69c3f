// One customer, one independent task: its days against its own regular behaviour (the paper's SOM class and
// daily correlation) and the raw features of the statistical scorer. Sees only this customer's series and the
// shared fleet model; fleet-relative scaling happens afterwards in rank.ts.
import { INTERVALS_PER_DAY, dayTypeOf } from '../../meter/index.js';
import { bmu, prototype } from './som.js';
import { dailyEnergy, dayEffectOf, dayProfile, type FleetModel } from './model.js';
import { CH, at, type CustomerInfo, type CustomerSeries } from './series.js';
import { cv, lag1, mad, mean, median, pearson } from './stats.js';

/** The statistical scorer's features, each oriented so that higher is more suspicious. */
export const FEATURES = [
  'levelDrop',
  'lowLoad',
  'zeros',
  'flat',
  'smooth',
  'roughening',
  'shapeShift',
  'shapeBreak',
  'reversal',
  'phaseZero',
  'imbalance',
  'currentMismatch',
  'registerMismatch',
  'pfShift',
] as const;
export type Feature = (typeof FEATURES)[number];
export const NF = FEATURES.length;
export const FI: Readonly<Record<Feature, number>> = Object.fromEntries(FEATURES.map((f, i) => [f, i])) as Record<Feature, number>;

/** Per day of the window (NaN / 0 on unusable days). */
export interface DailyDetail {
  usable: Uint8Array;
  energyKwh: Float32Array;
  /** log daily energy minus the class day effect (level against the customer's peers' rhythm). */
  level: Float32Array;
  /** Correlation with the customer's regular behaviour (the paper's daily coefficient). */
  corr: Float32Array;
  /** SOM cell (behaviour class) of the day; −1 when unusable. */
  cell: Int16Array;
  zeros: Uint8Array;
  phaseZero: Uint8Array;
  mismatch: Uint8Array;
  flat: Uint8Array;
  pf: Float32Array;
}

export interface CustomerResult {
  info: CustomerInfo;
  firstDay: number;
  days: number;
  usableDays: number;
  referenceDays: number;
  recentDays: number;
  /** Raw feature values, in FEATURES order. */
  features: Float64Array;
  /** The paper's score: mean (1 − daily correlation with regular behaviour) over recent days. */
  paper: number;
  /** Day index (from firstDay) where the daily level drops most, with the drop in percent; null when none. */
  onset: number | null;
  dropPct: number;
  /** Regular SOM cell per day type (weekday, saturday, sunday); −1 when unknown. */
  regular: [number, number, number];
  phaseShares: { reference: [number, number, number]; recent: [number, number, number] };
  daily: DailyDetail;
  notes: string[];
}

const DAY_TYPES = ['weekday', 'saturday', 'sunday'] as const;

function mode(xs: number[]): number {
  const c = new Map<number, number>();
  let best = -1;
  let bestN = 0;
  for (const x of xs) {
    const n = (c.get(x) ?? 0) + 1;
    c.set(x, n);
    if (n > bestN) {
      best = x;
      bestN = n;
    }
  }
  return best;
}

/** Largest one-sided drop of the level (CUSUM-style t statistic over every split) and where it happens. */
function levelChange(level: number[]): { t: number; k: number; drop: number } {
  const n = level.length;
  if (n < 4) return { t: 0, k: -1, drop: 0 };
  const diffs: number[] = [];
  for (let i = 1; i < n; i++) diffs.push(level[i]! - level[i - 1]!);
  const sigma = Math.max(mad(diffs) / Math.SQRT2, 0.02);
  const prefix = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) prefix[i + 1] = prefix[i]! + level[i]!;
  let best = { t: 0, k: -1, drop: 0 };
  const kmin = Math.max(1, Math.floor(n / 12));
  for (let k = kmin; k <= n - kmin; k++) {
    const before = prefix[k]! / k;
    const after = (prefix[n]! - prefix[k]!) / (n - k);
    const t = ((before - after) * Math.sqrt((k * (n - k)) / n)) / sigma;
    if (t > best.t) best = { t, k, drop: before - after };
  }
  return best;
}

/**
 * The paper's daily correlation coefficient matrix (day × day, on hourly shapes), and the strongest break in it:
 * over every split day k, how much more the days agree within [0, k) and [k, U) than across the split.
 */
export function correlationMatrix(profiles: readonly Float64Array[]): Float64Array {
  const n = profiles.length;
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    m[i * n + i] = 1;
    for (let j = i + 1; j < n; j++) m[i * n + j] = m[j * n + i] = pearson(profiles[i]!, profiles[j]!);
  }
  return m;
}

function shapeBreakOf(m: Float64Array, n: number): { gap: number; k: number } {
  if (n < 4) return { gap: 0, k: -1 };
  // 2-D prefix sums: the sum of any block of the matrix in O(1).
  const P = new Float64Array((n + 1) * (n + 1));
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) P[(i + 1) * (n + 1) + j + 1] = m[i * n + j]! + P[i * (n + 1) + j + 1]! + P[(i + 1) * (n + 1) + j]! - P[i * (n + 1) + j]!;
  const block = (r0: number, r1: number, c0: number, c1: number) => P[r1 * (n + 1) + c1]! - P[r0 * (n + 1) + c1]! - P[r1 * (n + 1) + c0]! + P[r0 * (n + 1) + c0]!;
  let best = { gap: 0, k: -1 };
  const kmin = Math.max(2, Math.floor(n / 12));
  for (let k = kmin; k <= n - kmin; k++) {
    const a = k;
    const b = n - k;
    const within = (block(0, k, 0, k) - a + block(k, n, k, n) - b) / (a * (a - 1) + b * (b - 1));
    const across = block(0, k, k, n) / (a * b);
    if (within - across > best.gap) best = { gap: within - across, k };
  }
  return best;
}

/** Scores one customer (pure: the same series and model give the same result). */
export function scoreCustomer(s: CustomerSeries, model: FleetModel): CustomerResult {
  const D = s.days;
  const x = s.data;
  const daily: DailyDetail = {
    usable: new Uint8Array(D),
    energyKwh: new Float32Array(D).fill(Number.NaN),
    level: new Float32Array(D).fill(Number.NaN),
    corr: new Float32Array(D).fill(Number.NaN),
    cell: new Int16Array(D).fill(-1),
    zeros: new Uint8Array(D),
    phaseZero: new Uint8Array(D),
    mismatch: new Uint8Array(D),
    flat: new Uint8Array(D),
    pf: new Float32Array(D).fill(Number.NaN),
  };
  const notes: string[] = [];
  const used: number[] = [];
  const profiles: Float64Array[] = [];
  const lags: number[] = [];
  const regMis: number[] = [];
  const phaseSum: Array<[number, number, number]> = [];
  const p96 = new Float64Array(INTERVALS_PER_DAY);
  for (let d = 0; d < D; d++) {
    const e = dailyEnergy(s, d);
    if (!Number.isFinite(e)) continue;
    daily.usable[d] = 1;
    used.push(d);
    daily.energyKwh[d] = e / 1000;
    daily.level[d] = Math.log(Math.max(e, 1)) - dayEffectOf(model, s.info.customerClass, s.firstDay + d);
    const prof = dayProfile(s, d);
    profiles.push(prof);
    daily.cell[d] = bmu(model.som, prof);
    let zeros = 0;
    let phaseZero = 0;
    let mismatch = 0;
    let reg = 0;
    const sums: [number, number, number] = [0, 0, 0];
    const pfs: number[] = [];
    let m = 0;
    let n = 0;
    for (let t = 0; t < INTERVALS_PER_DAY; t++) {
      const p = x[at(s, CH.p, d, t)]!;
      if (Number.isNaN(p)) continue;
      m += p;
      n++;
    }
    m /= n;
    for (let t = 0; t < INTERVALS_PER_DAY; t++) {
      const p = x[at(s, CH.p, d, t)]!;
      p96[t] = Number.isNaN(p) ? m : p;
      if (Number.isNaN(p)) continue;
      const disconnected = (x[at(s, CH.status, d, t)]! & 1) !== 0;
      if (p === 0 && !disconnected) zeros++;
      let vi = 0;
      let minI = Infinity;
      for (let j = 0; j < 3; j++) {
        const i = x[at(s, CH.i1 + j, d, t)]!;
        vi += x[at(s, CH.v1 + j, d, t)]! * i * Math.cos((x[at(s, CH.a1 + j, d, t)]! * Math.PI) / 180);
        sums[j] += i;
        if (i < minI) minI = i;
      }
      if (p > 0 && minI === 0) phaseZero++;
      // Currents that carry more (or less) power than the meter registers: a CT or metrology manipulation.
      if (Math.abs(vi - p) > 0.05 * Math.abs(p) + 5) mismatch++;
      const r = x[at(s, CH.reg, d, t)]!;
      if (!Number.isNaN(r) && Math.abs(r - p / 4) > Math.max(2, 0.05 * (p / 4))) reg++;
      if (p > 0) pfs.push(x[at(s, CH.pf, d, t)]!);
    }
    daily.zeros[d] = zeros;
    daily.phaseZero[d] = phaseZero;
    daily.mismatch[d] = mismatch;
    daily.pf[d] = pfs.length ? median(pfs) : Number.NaN;
    const c = cv(p96);
    daily.flat[d] = c < 0.02 ? 1 : 0;
    lags.push(lag1(p96));
    regMis.push(reg);
    phaseSum.push(sums);
  }
  const U = used.length;
  const features = new Float64Array(NF);
  const result: CustomerResult = {
    info: s.info,
    firstDay: s.firstDay,
    days: D,
    usableDays: U,
    referenceDays: 0,
    recentDays: 0,
    features,
    paper: 0,
    onset: null,
    dropPct: 0,
    regular: [-1, -1, -1],
    phaseShares: { reference: [1 / 3, 1 / 3, 1 / 3], recent: [1 / 3, 1 / 3, 1 / 3] },
    daily,
    notes,
  };
  if (U === 0) {
    notes.push('no day with ≥ 90 of 96 readings in the window: not scored');
    return result;
  }
  // Reference: the earliest quarter of the usable days (the customer's regular behaviour); recent: the last half.
  const nRef = Math.max(1, Math.round(U / 4));
  const nRecent = Math.max(1, Math.ceil(U / 2));
  result.referenceDays = nRef;
  result.recentDays = nRecent;
  if (U < 8) notes.push(`short history (${U} usable day${U === 1 ? '' : 's'}): the reference is ${nRef} day${nRef === 1 ? '' : 's'}, scores are weak`);
  const ref = used.slice(0, nRef).map((_, i) => i);
  const recent = used.slice(U - nRecent).map((_, i) => U - nRecent + i);

  for (let k = 0; k < 3; k++) {
    const of = ref.filter((i) => dayTypeOf(s.firstDay + used[i]!) === DAY_TYPES[k]).map((i) => daily.cell[used[i]!]!);
    result.regular[k] = of.length ? mode(of) : mode(ref.map((i) => daily.cell[used[i]!]!));
  }
  const corr: number[] = [];
  const rev: number[] = [];
  const reversed = new Float64Array(24);
  for (let i = 0; i < U; i++) {
    const d = used[i]!;
    const cell = result.regular[DAY_TYPES.indexOf(dayTypeOf(s.firstDay + d) as (typeof DAY_TYPES)[number])]!;
    const p = prototype(model.som, cell);
    const prof = profiles[i]!;
    const c = pearson(prof, p);
    for (let h = 0; h < 24; h++) reversed[h] = prof[23 - h]!;
    corr.push(c);
    rev.push(pearson(reversed, p) - c);
    daily.corr[d] = c;
  }
  const over = (idx: number[], v: number[]) => mean(idx.map((i) => v[i]!));
  const paper = over(recent, corr.map((c) => 1 - c));
  result.paper = paper;

  const brk = shapeBreakOf(correlationMatrix(profiles), U);
  const level = used.map((d) => daily.level[d]!);
  const ch = levelChange(level);
  if (ch.k > 0 && ch.t > 3) {
    result.onset = used[ch.k]!;
    result.dropPct = 100 * (1 - Math.exp(-ch.drop));
  }
  const recentIntervals = recent.length * INTERVALS_PER_DAY;
  const sumOver = (idx: number[], arr: ArrayLike<number>) => idx.reduce((a, i) => a + arr[used[i]!]!, 0);
  const shares = (idx: number[]): [number, number, number] => {
    const t = [0, 0, 0];
    for (const i of idx) for (let j = 0; j < 3; j++) t[j]! += phaseSum[i]![j]!;
    const tot = t[0]! + t[1]! + t[2]!;
    return tot > 0 ? [t[0]! / tot, t[1]! / tot, t[2]! / tot] : [1 / 3, 1 / 3, 1 / 3];
  };
  const sRef = shares(ref);
  const sRec = shares(recent);
  result.phaseShares = { reference: sRef, recent: sRec };
  const contractedWh = s.info.contractedKw * 1000 * 24;
  const meanE = mean(used.map((d) => daily.energyKwh[d]! * 1000));
  const pfRef = median(ref.map((i) => daily.pf[used[i]!]!));
  const pfRec = median(recent.map((i) => daily.pf[used[i]!]!));

  features[FI.levelDrop] = ch.t;
  features[FI.lowLoad] = contractedWh > 0 && meanE > 0 ? -Math.log(meanE / contractedWh) : 0;
  features[FI.zeros] = sumOver(recent, daily.zeros) / recentIntervals;
  features[FI.flat] = sumOver(recent, daily.flat) / recent.length;
  features[FI.smooth] = -median(recent.map((i) => lags[i]!));
  features[FI.roughening] = median(ref.map((i) => lags[i]!)) - median(recent.map((i) => lags[i]!));
  features[FI.shapeShift] = paper - over(ref, corr.map((c) => 1 - c));
  features[FI.shapeBreak] = brk.gap;
  features[FI.reversal] = over(recent, rev);
  features[FI.phaseZero] = sumOver(recent, daily.phaseZero) / recentIntervals;
  features[FI.imbalance] = Math.max(Math.abs(sRec[0] - sRef[0]), Math.abs(sRec[1] - sRef[1]), Math.abs(sRec[2] - sRef[2]));
  features[FI.currentMismatch] = sumOver(recent, daily.mismatch) / recentIntervals;
  features[FI.registerMismatch] = recent.reduce((a, i) => a + regMis[i]!, 0) / recentIntervals;
  features[FI.pfShift] = Number.isFinite(pfRef) && Number.isFinite(pfRec) ? Math.abs(pfRec - pfRef) : 0;
  if (U < 4) features[FI.levelDrop] = 0;
  return result;
}
