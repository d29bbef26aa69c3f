// Energy theft, Jokar et al. 2016 ("Electricity theft detection in AMI using customers' consumption patterns"),
// false-data types h1–h6 applied to a day's 96 interval energies x_t of a chosen fraction of customers.
//
// Physical consistency of what a stealing meter reports (phasors.ts):
//   tampering (h1–h6): the meter's metrology is manipulated; it reports I, P and Q scaled with the energy on every
//     phase, voltage, angles, power factor and THD those of the real load. h4–h6 need the day's mean or its
//     future, so only a manipulated meter can produce them: they are always tampering.
//   bypass (h1–h3 only): a jumper around the current coils carries part of the load; the honest meter measures
//     what is left. The jumper takes whole phases (C, then B, then A), so the report keeps V and angles but shows a
//     current imbalance a tampered meter would not; a fully bypassed interval (h2's window) shows zero current.
// Either way the register accumulates what the meter reports. Labels never enter the data path.
import type { Fleet, MeterSpec, TheftType } from './fleet.js';
import { STREAM, THEFT_TYPES } from './fleet.js';
import type { TheftVariant } from './phasors.js';
import { Prng, hashKeys } from './rng.js';
import { INTERVALS_PER_DAY, localDay } from './time.js';

export interface TheftPlan {
  type: TheftType;
  variant: TheftVariant;
  /** Local days (days since epoch, local time) on which the customer steals, ascending. */
  days: number[];
}

export interface TheftDayParams {
  /** h1: the day's α. */
  alpha?: number;
  /** h2: the zeroed window, slots [start, start + length). */
  window?: { start: number; length: number };
  /** h3, h4: the 96 γ_t. */
  gamma?: number[];
}

const BYPASSABLE: ReadonlySet<TheftType> = new Set(['h1', 'h2', 'h3']);

/** Number of local days the fleet window touches. */
export function windowDays(fleet: Fleet): number {
  return localDay(fleet.end) - fleet.firstDay + 1;
}

/** Whether and how this customer steals (a pure function of the fleet seed and options). */
export function theftPlan(fleet: Fleet, m: MeterSpec): TheftPlan | undefined {
  const t = fleet.options.theft;
  if (!t || t.fraction <= 0) return undefined;
  const r = new Prng(hashKeys(fleet.seedWord, STREAM.theftPlan, m.serial));
  if (r.float() >= t.fraction) return undefined;
  const types = t.types && t.types.length > 0 ? t.types : THEFT_TYPES;
  const type = types[r.int(types.length)]!;
  const mode = t.variant ?? 'mixed';
  const coin = r.float();
  const variant: TheftVariant = !BYPASSABLE.has(type) || mode === 'tampering' ? 'tampering' : mode === 'bypass' ? 'bypass' : coin < 0.5 ? 'bypass' : 'tampering';
  const n = windowDays(fleet);
  let days: number[];
  if (t.days) {
    days = [...new Set(t.days.filter((d) => Number.isInteger(d) && d >= 0 && d < n))].sort((a, b) => a - b).map((d) => fleet.firstDay + d);
  } else {
    const onset = r.int(Math.max(1, Math.ceil(n / 2)));
    days = Array.from({ length: n - onset }, (_, i) => fleet.firstDay + onset + i);
  }
  return days.length > 0 ? { type, variant, days } : undefined;
}

function mean(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]!;
  return s / x.length;
}

/** Applies attack `type` to one day's readings x (96 values), drawing its parameters from r. */
export function applyTheft(type: TheftType, x: ArrayLike<number>, r: Prng): { values: Float64Array; params: TheftDayParams } {
  const n = x.length;
  const y = new Float64Array(n);
  switch (type) {
    case 'h1': {
      const alpha = r.uniform(0.1, 0.8);
      for (let t = 0; t < n; t++) y[t] = alpha * x[t]!;
      return { values: y, params: { alpha } };
    }
    case 'h2': {
      // At least 4 h (16 intervals), at most 16 h, anywhere in the day.
      const length = Math.min(n, 16 + r.int(49));
      const start = r.int(n - length + 1);
      for (let t = 0; t < n; t++) y[t] = t >= start && t < start + length ? 0 : x[t]!;
      return { values: y, params: { window: { start, length } } };
    }
    case 'h3':
    case 'h4': {
      const gamma = Array.from({ length: n }, () => r.uniform(0.1, 0.8));
      const m = mean(x);
      for (let t = 0; t < n; t++) y[t] = type === 'h3' ? gamma[t]! * x[t]! : gamma[t]! * m;
      return { values: y, params: { gamma } };
    }
    case 'h5': {
      const m = mean(x);
      y.fill(m);
      return { values: y, params: {} };
    }
    case 'h6': {
      for (let t = 0; t < n; t++) y[t] = x[n - 1 - t]!;
      return { values: y, params: {} };
    }
  }
}

/** The seeded parameter stream of (meter, day): the same draws every time the day is recomputed. */
export function theftRng(m: MeterSpec, day: number): Prng {
  return new Prng(hashKeys(m.seedWord, STREAM.theftDay, m.serial, day));
}

/** What a stealing meter reports on `day` given the true readings x (or x itself on a day it does not steal). */
export function theftDay(m: MeterSpec, plan: TheftPlan | undefined, day: number, x: Float64Array): { values: Float64Array; params?: TheftDayParams } {
  if (!plan || !plan.days.includes(day)) return { values: x };
  if (x.length !== INTERVALS_PER_DAY) throw new RangeError(`a day has ${INTERVALS_PER_DAY} readings, got ${x.length}`);
  return applyTheft(plan.type, x, theftRng(m, day));
}
