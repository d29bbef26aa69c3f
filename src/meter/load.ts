// Standard load profiles: 96 quarter-hour values per local day for residential, commercial and industrial
// customers, by day type and southern-hemisphere season, scaled per customer, shifted by the customer's habits,
// with seeded multiplicative noise. Every value is a pure function of (fleet seed, serial, ts).
import type { CustomerClass, MeterSpec, Region } from './fleet.js';
import { STREAM } from './fleet.js';
import { hashKeys, normalFrom } from './rng.js';
import { INTERVALS_PER_DAY, localDay, season, slotOf, weekday } from './time.js';

export type DayType = 'weekday' | 'saturday' | 'sunday';

/** A Gaussian bump of load on the 24-hour circle: centre (h), width (h), height (× base unit). */
type Bump = readonly [mu: number, sigma: number, amp: number];
interface Shape {
  base: number;
  bumps: readonly Bump[];
  /** Air conditioning, weighted by how far into summer the day is. */
  summer: readonly Bump[];
  /** Electric showers and heaters in the South's winter. */
  winter: readonly Bump[];
}

// Brazil's evening peak (18–21 h: showers, lighting, TV) dominates homes; AC moves load to afternoons and nights.
const RES_WEEKDAY: Shape = { base: 0.35, bumps: [[6.75, 0.9, 0.6], [12.25, 1.2, 0.35], [19.5, 1.6, 1.3]], summer: [[23, 2.2, 0.9], [15.5, 2, 0.4]], winter: [[19, 1, 0.6]] };
const RES_WEEKEND: Shape = { base: 0.4, bumps: [[9, 1.5, 0.5], [12.75, 1.5, 0.6], [16, 2, 0.3], [20, 1.8, 1.0]], summer: [[23, 2.2, 0.9], [15, 2.5, 0.6]], winter: [[19.5, 1, 0.5]] };
const COM_WEEKDAY: Shape = { base: 0.25, bumps: [[9, 1.3, 0.9], [11.5, 1.3, 1.0], [14, 1.3, 1.0], [16.5, 1.3, 0.9]], summer: [[14.5, 3, 0.8]], winter: [] };
const COM_SATURDAY: Shape = { base: 0.25, bumps: [[9.5, 1.2, 0.8], [11.5, 1.2, 0.7]], summer: [[11, 2, 0.4]], winter: [] };
const COM_SUNDAY: Shape = { base: 0.25, bumps: [], summer: [[14, 3, 0.1]], winter: [] };
// Industrial A4/A3 tariffs price the 18–21 h peak ("ponta") high: plants shed load there.
const IND2_WEEKDAY: Shape = { base: 0.3, bumps: [[8, 1.3, 0.8], [11, 1.3, 0.85], [14, 1.3, 0.85], [17, 1.3, 0.8], [19.5, 0.8, -0.3], [21, 0.9, 0.6]], summer: [[14, 3, 0.15]], winter: [] };
const IND2_SATURDAY: Shape = { base: 0.3, bumps: [[9, 1.5, 0.6], [12, 1.5, 0.6]], summer: [[13, 3, 0.1]], winter: [] };
const IND2_SUNDAY: Shape = { base: 0.3, bumps: [], summer: [], winter: [] };
const IND3_WEEKDAY: Shape = { base: 1.0, bumps: [[10, 3, 0.15], [15, 3, 0.15], [19.5, 0.8, -0.25]], summer: [[14, 3, 0.1]], winter: [] };
const IND3_SATURDAY: Shape = { base: 0.85, bumps: [[19.5, 0.8, -0.2]], summer: [[14, 3, 0.08]], winter: [] };
const IND3_SUNDAY: Shape = { base: 0.7, bumps: [], summer: [], winter: [] };

interface ClassModel {
  /** Share of an average day's energy by day type. */
  dayWeight: Record<DayType, number>;
  /** Seasonal energy swing per unit of the region's summer amplitude. */
  summerGain: number;
  /** Extra winter energy per unit of the region's winter amplitude. */
  winterGain: number;
  /** σ of the log-normal day and interval noise. */
  dayNoise: number;
  intervalNoise: number;
}

const CLASS: Record<CustomerClass | 'industrial3', ClassModel> = {
  residential: { dayWeight: { weekday: 0.97, saturday: 1.05, sunday: 1.08 }, summerGain: 0.15, winterGain: 0.12, dayNoise: 0.12, intervalNoise: 0.25 },
  commercial: { dayWeight: { weekday: 1.15, saturday: 0.7, sunday: 0.3 }, summerGain: 0.2, winterGain: 0, dayNoise: 0.08, intervalNoise: 0.1 },
  industrial: { dayWeight: { weekday: 1.15, saturday: 0.75, sunday: 0.4 }, summerGain: 0.04, winterGain: 0, dayNoise: 0.05, intervalNoise: 0.06 },
  industrial3: { dayWeight: { weekday: 1.05, saturday: 0.95, sunday: 0.85 }, summerGain: 0.04, winterGain: 0, dayNoise: 0.05, intervalNoise: 0.06 },
};

/** How strongly summer (AC) and winter (heating) show in a region's load. */
const REGION_SUMMER: Record<Region, number> = { norte: 0.3, nordeste: 0.5, 'centro-oeste': 0.8, sudeste: 1.0, sul: 0.9 };
const REGION_WINTER: Record<Region, number> = { norte: 0, nordeste: 0, 'centro-oeste': 0.3, sudeste: 0.6, sul: 1.0 };

const DAYS_PER_MONTH = 365.25 / 12;
const SQRT_2PI_OVER_24 = Math.sqrt(2 * Math.PI) / 24;

export function dayTypeOf(day: number): DayType {
  const w = weekday(day);
  return w === 0 ? 'sunday' : w === 6 ? 'saturday' : 'weekday';
}

function shapeOf(m: MeterSpec, t: DayType): Shape {
  switch (m.customerClass) {
    case 'residential':
      return t === 'weekday' ? RES_WEEKDAY : RES_WEEKEND;
    case 'commercial':
      return t === 'weekday' ? COM_WEEKDAY : t === 'saturday' ? COM_SATURDAY : COM_SUNDAY;
    default:
      if (m.shifts === 3) return t === 'weekday' ? IND3_WEEKDAY : t === 'saturday' ? IND3_SATURDAY : IND3_SUNDAY;
      return t === 'weekday' ? IND2_WEEKDAY : t === 'saturday' ? IND2_SATURDAY : IND2_SUNDAY;
  }
}

function classModel(m: MeterSpec): ClassModel {
  return m.customerClass === 'industrial' && m.shifts === 3 ? CLASS.industrial3 : CLASS[m.customerClass];
}

function bumps(list: readonly Bump[], h: number): number {
  let v = 0;
  for (const [mu, sigma, amp] of list) {
    const d = ((((h - mu) % 24) + 36) % 24) - 12; // circular distance in [−12, 12)
    v += amp * Math.exp((-d * d) / (2 * sigma * sigma));
  }
  return v;
}

function bumpMass(list: readonly Bump[]): number {
  let v = 0;
  for (const [, sigma, amp] of list) v += amp * sigma * SQRT_2PI_OVER_24;
  return v;
}

/** What a day looks like for a meter before noise: weights of the seasonal components and the energy scale. */
interface DayContext {
  shape: Shape;
  summerW: number;
  winterW: number;
  /** Mean of the shape over the day (closed form: the Gaussians' mass on the circle). */
  shapeMean: number;
  /** Expected energy of one interval of this day at shape value = shapeMean, Wh. */
  scaleWh: number;
}

function dayContext(m: MeterSpec, day: number): DayContext {
  const t = dayTypeOf(day);
  const shape = shapeOf(m, t);
  const cm = classModel(m);
  const s = season(day);
  const summerW = REGION_SUMMER[m.region] * Math.max(0, s);
  const winterW = REGION_WINTER[m.region] * Math.max(0, -s);
  const seasonal = 1 + cm.summerGain * REGION_SUMMER[m.region] * s + cm.winterGain * winterW;
  const dz = normalFrom(hashKeys(m.seedWord, STREAM.day, m.serial, day), hashKeys(m.seedWord, STREAM.day, m.serial, day, 1));
  const dayNoise = Math.exp(cm.dayNoise * dz - (cm.dayNoise * cm.dayNoise) / 2);
  const shapeMean = shape.base + bumpMass(shape.bumps) + summerW * bumpMass(shape.summer) + winterW * bumpMass(shape.winter);
  const scaleWh = ((m.monthlyKwh * 1000) / DAYS_PER_MONTH / INTERVALS_PER_DAY) * cm.dayWeight[t] * seasonal * dayNoise;
  return { shape, summerW, winterW, shapeMean, scaleWh };
}

function slotEnergy(m: MeterSpec, ctx: DayContext, day: number, slot: number): number {
  const h = (slot + 0.5) / 4 - m.habitShiftH;
  const { shape } = ctx;
  const v = shape.base + bumps(shape.bumps, h) + (ctx.summerW > 0 ? ctx.summerW * bumps(shape.summer, h) : 0) + (ctx.winterW > 0 ? ctx.winterW * bumps(shape.winter, h) : 0);
  const rel = Math.max(v / ctx.shapeMean, 0.02);
  const sigma = classModel(m).intervalNoise;
  const z = normalFrom(hashKeys(m.seedWord, STREAM.interval, m.serial, day, slot), hashKeys(m.seedWord, STREAM.interval, m.serial, day, slot + 0x10000));
  return ctx.scaleWh * rel * Math.exp(sigma * z - (sigma * sigma) / 2);
}

/** Energy the customer actually consumes in the interval ending at ts, Wh (float; before any theft). */
export function intervalEnergyWh(m: MeterSpec, ts: number): number {
  const day = localDay(ts);
  return slotEnergy(m, dayContext(m, day), day, slotOf(ts));
}

/** The 96 interval energies of a local day, Wh: x_t of the theft models. */
export function dayEnergiesWh(m: MeterSpec, day: number): Float64Array {
  const ctx = dayContext(m, day);
  const out = new Float64Array(INTERVALS_PER_DAY);
  for (let s = 0; s < INTERVALS_PER_DAY; s++) out[s] = slotEnergy(m, ctx, day, s);
  return out;
}
