// The fleet-level parameters every customer task shares: the SOM of daily shapes and the class-wide day effects
// (weekday/weekend, weather) that a customer's own level is compared against. Built from a sample of customers;
// carries no customer's readings, only prototypes and per-day medians.
import { INTERVALS_PER_DAY } from '../../meter/index.js';
import { CH, dayView, usableDays, type CustomerSeries } from './series.js';
import { trainSom, znorm, type SomModel } from './som.js';
import { hourly, median, rng } from './stats.js';

export interface FleetModel {
  som: SomModel;
  /** Per customer class: median over the sample of (log daily energy − the customer's mean log daily energy), by absolute local day. */
  dayEffect: Record<string, { firstDay: number; values: number[] }>;
  /** How many customers and daily profiles the model was built from. */
  sampleCustomers: number;
  sampleProfiles: number;
}

export interface ModelOptions {
  somWidth?: number;
  somHeight?: number;
  epochs?: number;
  /** At most this many daily profiles train the SOM. */
  maxProfiles?: number;
  seed?: number;
}

/** Daily energy, Wh (NaN when the day is not usable). Missing intervals count at the day's mean. */
export function dailyEnergy(s: CustomerSeries, d: number): number {
  const v = dayView(s, CH.p, d);
  let e = 0;
  let n = 0;
  for (let t = 0; t < INTERVALS_PER_DAY; t++) {
    const x = v[t]!;
    if (!Number.isNaN(x)) {
      e += x / 4;
      n++;
    }
  }
  return n >= 90 ? (e * INTERVALS_PER_DAY) / n : Number.NaN;
}

/** A day's hourly profile, z-normalized (NaN intervals → the day's mean power). */
export function dayProfile(s: CustomerSeries, d: number): Float64Array {
  const v = dayView(s, CH.p, d);
  let m = 0;
  let n = 0;
  for (let t = 0; t < INTERVALS_PER_DAY; t++) if (!Number.isNaN(v[t]!)) {
      m += v[t]!;
      n++;
    }
  m = n ? m / n : 0;
  const filled = new Float64Array(INTERVALS_PER_DAY);
  for (let t = 0; t < INTERVALS_PER_DAY; t++) filled[t] = Number.isNaN(v[t]!) ? m : v[t]!;
  return znorm(hourly(filled));
}

export function buildModel(sample: readonly CustomerSeries[], o: ModelOptions = {}): FleetModel {
  const next = rng(o.seed ?? 7);
  const maxProfiles = o.maxProfiles ?? 20_000;
  let total = 0;
  for (const s of sample) total += s.days;
  const keep = Math.min(1, maxProfiles / Math.max(1, total));
  const profiles: Float64Array[] = [];
  const byClass = new Map<string, Map<number, number[]>>();
  for (const s of sample) {
    const ok = usableDays(s);
    const logs: Array<[number, number]> = [];
    for (let d = 0; d < s.days; d++) {
      if (!ok[d]) continue;
      if (next() < keep) profiles.push(dayProfile(s, d));
      const e = dailyEnergy(s, d);
      if (e > 0) logs.push([s.firstDay + d, Math.log(e)]);
    }
    if (logs.length < 2) continue;
    const mu = logs.reduce((a, [, l]) => a + l, 0) / logs.length;
    let m = byClass.get(s.info.customerClass);
    if (!m) byClass.set(s.info.customerClass, (m = new Map()));
    for (const [day, l] of logs) {
      let arr = m.get(day);
      if (!arr) m.set(day, (arr = []));
      arr.push(l - mu);
    }
  }
  const dayEffect: FleetModel['dayEffect'] = {};
  for (const [cls, m] of byClass) {
    const days = [...m.keys()].sort((a, b) => a - b);
    const first = days[0]!;
    const values = new Array<number>(days[days.length - 1]! - first + 1).fill(0);
    // Fewer than 3 peers on a day say nothing about the class: no adjustment then.
    for (const [day, arr] of m) values[day - first] = arr.length >= 3 ? median(arr) : 0;
    dayEffect[cls] = { firstDay: first, values };
  }
  const som = trainSom(profiles, 24, { width: o.somWidth ?? 8, height: o.somHeight ?? 8, epochs: o.epochs ?? 4, seed: o.seed ?? 7 });
  return { som, dayEffect, sampleCustomers: sample.length, sampleProfiles: profiles.length };
}

/** The class's day effect on an absolute local day (0 when unknown). */
export function dayEffectOf(m: FleetModel, cls: string, day: number): number {
  const e = m.dayEffect[cls];
  if (!e) return 0;
  return e.values[day - e.firstDay] ?? 0;
}
