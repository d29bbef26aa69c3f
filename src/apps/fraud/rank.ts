// The fleet step after every customer task: raw features → robust z-scores within the customer's class, the
// statistical score, the paper's score, their rank combination, the ranking and the analyst's explanations.
import { isoDate } from '../../meter/index.js';
import type { FleetModel } from './model.js';
import { FEATURES, FI, NF, type CustomerResult, type Feature } from './score.js';
import { mad, mean, median } from './stats.js';

export const METHODS = ['paper', 'stat', 'combined'] as const;
export type Method = (typeof METHODS)[number];
export const METHOD_NAMES: Readonly<Record<Method, string>> = {
  paper: 'paper: SOM classes + daily correlation with regular behaviour',
  stat: 'stat: robust z-scores of level, shape and phasor features within the class (largest z + ½ the second; z capped at 30, so 45 is the maximum)',
  combined: 'combined: percentile ranks, 3/4 stat + 1/4 paper (the best of the combinations measured)',
};

/** Below these spreads a feature's scatter is measurement noise, not behaviour (fractions, t statistics, pf). */
const FLOOR: Readonly<Record<Feature, number>> = {
  levelDrop: 0.75,
  lowLoad: 0.15,
  zeros: 0.003,
  flat: 0.02,
  smooth: 0.03,
  roughening: 0.03,
  shapeShift: 0.03,
  shapeBreak: 0.02,
  reversal: 0.03,
  phaseZero: 0.003,
  imbalance: 0.004,
  currentMismatch: 0.003,
  registerMismatch: 0.003,
  pfShift: 0.003,
};
/** Features whose class reference is uninformative for low-voltage homes (contracted demand is a breaker size). */
const SKIP: Readonly<Record<string, readonly Feature[]>> = { residential: ['lowLoad'] };
const Z_CLIP = 30;

export interface DayFinding {
  date: string;
  what: string[];
}

export interface RankedCustomer {
  rank: number;
  meterId: number;
  customerId: string;
  customerClass: string;
  /** The method that ordered the ranking, and its score for this customer. */
  method: Method;
  score: number;
  scores: Record<Method, number>;
  /** Robust z per feature (stat scorer), rounded. */
  z: Record<Feature, number>;
  reasons: string[];
  days: DayFinding[];
  notes: string[];
  usableDays: number;
}

export interface Ranking {
  method: Method;
  methods: Record<Method, string>;
  from: string;
  to: string;
  customers: RankedCustomer[];
  model: { somWidth: number; somHeight: number; sampleCustomers: number; sampleProfiles: number };
  notes: string[];
}

export interface RankOptions {
  method?: Method;
  from: string;
  to: string;
}

/** The statistical score from a customer's z vector: the two strongest positive deviations (a theft shows in one or two quantities, never in all). */
export function statScore(z: ArrayLike<number>): number {
  let a = 0;
  let b = 0;
  for (let i = 0; i < z.length; i++) {
    const v = Math.max(0, z[i]!);
    if (v > a) {
      b = a;
      a = v;
    } else if (v > b) b = v;
  }
  return a + 0.5 * b;
}

function percentileRanks(v: Float64Array): Float64Array {
  const idx = Array.from(v.keys()).sort((i, j) => v[i]! - v[j]!);
  const out = new Float64Array(v.length);
  for (let r = 0; r < idx.length; ) {
    let e = r;
    while (e + 1 < idx.length && v[idx[e + 1]!] === v[idx[r]!]) e++;
    for (let k = r; k <= e; k++) out[idx[k]!] = (r + e) / 2 / Math.max(1, idx.length - 1);
    r = e + 1;
  }
  return out;
}

/** z-scores of every customer's features within its class (pooled over the fleet for classes under 30). */
export function zScores(results: readonly CustomerResult[]): Float64Array[] {
  const groups = new Map<string, number[]>();
  results.forEach((r, i) => {
    if (r.usableDays === 0) return;
    const k = r.info.customerClass;
    const g = groups.get(k) ?? [];
    g.push(i);
    groups.set(k, g);
  });
  const all = results.map((_, i) => i).filter((i) => results[i]!.usableDays > 0);
  const ref = new Map<string, { med: number[]; sd: number[] }>();
  const stats = (idx: number[]) => {
    const med: number[] = [];
    const sd: number[] = [];
    for (let f = 0; f < NF; f++) {
      const v = idx.map((i) => results[i]!.features[f]!);
      const m = median(v);
      med.push(m);
      sd.push(Math.max(mad(v, m), FLOOR[FEATURES[f]!]));
    }
    return { med, sd };
  };
  const pooled = stats(all);
  for (const [k, idx] of groups) ref.set(k, idx.length >= 30 ? stats(idx) : pooled);
  return results.map((r) => {
    const z = new Float64Array(NF);
    if (r.usableDays === 0) return z;
    const s = ref.get(r.info.customerClass) ?? pooled;
    const skip = SKIP[r.info.customerClass] ?? [];
    for (let f = 0; f < NF; f++) {
      if (skip.includes(FEATURES[f]!)) continue;
      const v = (r.features[f]! - s.med[f]!) / s.sd[f]!;
      z[f] = Math.max(-Z_CLIP, Math.min(Z_CLIP, Number.isFinite(v) ? v : 0));
    }
    return z;
  });
}

const pct = (x: number) => `${(100 * x).toFixed(0)} %`;
const f2 = (x: number) => x.toFixed(2);

function reasonsFor(r: CustomerResult, z: Float64Array): string[] {
  const order = FEATURES.map((f, i) => [f, z[i]!] as const)
    .filter(([, v]) => v >= 3)
    .sort((a, b) => b[1] - a[1]);
  const date = (d: number | null) => (d === null ? '?' : isoDate(r.firstDay + d));
  const dd = r.daily;
  const firstWith = (arr: ArrayLike<number>) => {
    for (let d = 0; d < r.days; d++) if (arr[d]! > 0) return d;
    return null;
  };
  const countDays = (arr: ArrayLike<number>) => {
    let n = 0;
    for (let d = 0; d < r.days; d++) if (arr[d]! > 0) n++;
    return n;
  };
  const sumArr = (arr: ArrayLike<number>) => {
    let n = 0;
    for (let d = 0; d < r.days; d++) n += arr[d]!;
    return n;
  };
  const out: string[] = [];
  for (const [f, v] of order) {
    const zs = `z ${v.toFixed(1)}`;
    switch (f) {
      case 'levelDrop':
        out.push(r.onset !== null ? `daily energy fell ${r.dropPct.toFixed(0)} % from ${date(r.onset)} on against its own history, class day effects removed (${zs})` : `daily energy dropped against its own history (${zs})`);
        break;
      case 'lowLoad':
        out.push(`uses ${pct(Math.exp(-r.features[FI.lowLoad]!))} of its contracted demand on average, far below its class (${zs})`);
        break;
      case 'zeros':
        out.push(`zero consumption while connected in ${sumArr(dd.zeros)} intervals on ${countDays(dd.zeros)} days, first ${date(firstWith(dd.zeros))} (${zs})`);
        break;
      case 'flat':
        out.push(`flat daily profile (variation < 2 %) on ${countDays(dd.flat)} days, first ${date(firstWith(dd.flat))} (${zs})`);
        break;
      case 'smooth':
      case 'roughening':
        // Both features have one explanation: say it once.
        if (out.some((t) => t.startsWith('erratic'))) break;
        out.push(`erratic interval-to-interval profile recently (lag-1 autocorrelation ${f2(-r.features[FI.smooth]!)}, ${f2(r.features[FI.roughening]!)} lower than in its reference days) (${zs})`);
        break;
      case 'shapeShift': {
        const refC = mean(Array.from(dd.corr.subarray(0, Math.max(1, r.days - r.recentDays))).filter(Number.isFinite));
        out.push(`daily curve no longer matches its regular behaviour: correlation ${f2(1 - r.paper)} on recent days vs ${f2(refC)} before (${zs})`);
        break;
      }
      case 'shapeBreak':
        out.push(`its days split into two behaviours: before and after a change, the daily curves agree with each other ${f2(r.features[FI.shapeBreak]!)} better than across it (${zs})`);
        break;
      case 'reversal':
        out.push(`recent daily curves correlate better with its regular behaviour played backwards (time-reversed profile) (${zs})`);
        break;
      case 'phaseZero':
        out.push(`a phase carries no current while power flows in ${sumArr(dd.phaseZero)} intervals, first ${date(firstWith(dd.phaseZero))}: a bypassed current coil? (${zs})`);
        break;
      case 'imbalance': {
        const a = r.phaseShares.reference.map(pct).join('/');
        const b = r.phaseShares.recent.map(pct).join('/');
        out.push(`phase current shares A/B/C moved from ${a} to ${b} (${zs})`);
        break;
      }
      case 'currentMismatch':
        out.push(`currents × voltages no longer match the registered power in ${sumArr(dd.mismatch)} intervals (${zs})`);
        break;
      case 'registerMismatch':
        out.push(`energy register steps do not match the interval power (${zs})`);
        break;
      case 'pfShift':
        out.push(`power factor shifted by ${r.features[FI.pfShift]!.toFixed(3)} against its reference days (${zs})`);
        break;
    }
    if (out.length >= 4) break;
  }
  return out;
}

/** The days an analyst should open, worst first (at most 8), and what deviates on each. */
function dayFindings(r: CustomerResult): DayFinding[] {
  const dd = r.daily;
  const refIdx: number[] = [];
  for (let d = 0; d < r.days && refIdx.length < r.referenceDays; d++) if (dd.usable[d]) refIdx.push(d);
  const refLevel = median(refIdx.map((d) => dd.level[d]!));
  const refCorr = median(refIdx.map((d) => dd.corr[d]!));
  const refPf = median(refIdx.map((d) => dd.pf[d]!));
  const found: Array<DayFinding & { w: number }> = [];
  for (let d = 0; d < r.days; d++) {
    if (!dd.usable[d]) continue;
    const what: string[] = [];
    let w = 0;
    const add = (text: string, weight: number) => {
      what.push(text);
      w += weight;
    };
    const drop = 1 - Math.exp(dd.level[d]! - refLevel);
    if (drop > 0.3) add(`energy ${pct(drop)} below its reference days`, drop * 3);
    if (dd.corr[d]! < refCorr - 0.3) add(`curve correlation ${f2(dd.corr[d]!)} (regular ${f2(refCorr)})`, refCorr - dd.corr[d]!);
    if (dd.zeros[d]) add(`${dd.zeros[d]} zero intervals`, 2 + dd.zeros[d]! / 16);
    if (dd.flat[d]) add('flat profile', 3);
    if (dd.phaseZero[d]) add(`${dd.phaseZero[d]} intervals with a dead phase`, 2 + dd.phaseZero[d]! / 16);
    if (dd.mismatch[d]) add(`${dd.mismatch[d]} intervals where current does not match power`, 2);
    if (Math.abs(dd.pf[d]! - refPf) > 0.03) add(`power factor ${f2(dd.pf[d]!)} (regular ${f2(refPf)})`, 1);
    if (what.length) found.push({ date: isoDate(r.firstDay + d), what, w });
  }
  return found
    .sort((a, b) => b.w - a.w)
    .slice(0, 8)
    .map(({ date, what }) => ({ date, what }));
}

/** Orders the customers by `method` (default: stat, the best overall AUC in the evaluation) and explains each. */
export function rankResults(results: readonly CustomerResult[], model: FleetModel, o: RankOptions): Ranking {
  const method = o.method ?? 'stat';
  const zs = zScores(results);
  const n = results.length;
  const paper = Float64Array.from(results, (r) => r.paper);
  const stat = Float64Array.from(zs, (z) => statScore(z));
  const pp = percentileRanks(paper);
  const ps = percentileRanks(stat);
  const combined = Float64Array.from({ length: n }, (_, i) => 0.75 * ps[i]! + 0.25 * pp[i]!);
  const by: Record<Method, Float64Array> = { paper, stat, combined };
  // Ties are common at the top (two features at the z cap give stat 45): more deviating evidence ranks first.
  const evidence = Float64Array.from(zs, (z) => z.reduce((t, v) => t + Math.max(0, v), 0));
  const order = Array.from({ length: n }, (_, i) => i).sort(
    (a, b) => by[method][b]! - by[method][a]! || stat[b]! - stat[a]! || evidence[b]! - evidence[a]! || paper[b]! - paper[a]! || results[a]!.info.meterId - results[b]!.info.meterId,
  );
  const customers: RankedCustomer[] = order.map((i, k) => {
    const r = results[i]!;
    const z = zs[i]!;
    return {
      rank: k + 1,
      meterId: r.info.meterId,
      customerId: r.info.customerId,
      customerClass: r.info.customerClass,
      method,
      score: round(by[method][i]!),
      scores: { paper: round(paper[i]!), stat: round(stat[i]!), combined: round(combined[i]!) },
      z: Object.fromEntries(FEATURES.map((f, j) => [f, round(z[j]!, 2)])) as Record<Feature, number>,
      reasons: k < 2000 ? reasonsFor(r, z) : [],
      days: k < 500 ? dayFindings(r) : [],
      notes: r.notes,
      usableDays: r.usableDays,
    };
  });
  const notes: string[] = [];
  const short = results.filter((r) => r.usableDays > 0 && r.usableDays < 8).length;
  if (short) notes.push(`${short} customer(s) have fewer than 8 usable days: their reference behaviour is one or two days and their scores are weak`);
  const none = results.filter((r) => r.usableDays === 0).length;
  if (none) notes.push(`${none} customer(s) have no usable day (≥ 90 of 96 readings) in the window and rank last`);
  return {
    method,
    methods: { ...METHOD_NAMES },
    from: o.from,
    to: o.to,
    customers,
    model: { somWidth: model.som.width, somHeight: model.som.height, sampleCustomers: model.sampleCustomers, sampleProfiles: model.sampleProfiles },
    notes,
  };
}

function round(x: number, digits = 4): number {
  const f = 10 ** digits;
  return Number.isFinite(x) ? Math.round(x * f) / f : 0;
}
