// One customer's readings as a dense day × slot grid of typed arrays (the unit of work a scorer gets), built from
// stored rows or from simulator reports. Missing intervals are NaN, so a gap never looks like zero consumption.
import { INTERVALS_PER_DAY, localDay, slotOf } from '../../meter/index.js';
import type { PhasorReport } from '../../protocol/index.js';

/** Quantities kept per interval, in this order (channel-major in `data`). */
export const CHANNELS = ['p', 'q', 'pf', 'i1', 'i2', 'i3', 'v1', 'v2', 'v3', 'a1', 'a2', 'a3', 'reg', 'status'] as const;
export type Channel = (typeof CHANNELS)[number];
export const CH: Readonly<Record<Channel, number>> = Object.fromEntries(CHANNELS.map((c, i) => [c, i])) as Record<Channel, number>;
export const N_CHANNELS = CHANNELS.length;

/** Customer attributes from the `customer` and `meter` tables. */
export interface CustomerInfo {
  meterId: number;
  customerId: string;
  customerClass: string;
  contractedKw: number;
  supplyKv: number;
}

/** A customer's readings on local days firstDay … firstDay + days − 1 (Brazil local time, as the simulator). */
export interface CustomerSeries {
  info: CustomerInfo;
  firstDay: number;
  days: number;
  /** N_CHANNELS × days × 96, channel-major; NaN where no reading. `reg` is the register step (interval Wh). */
  data: Float32Array;
}

export function emptySeries(info: CustomerInfo, firstDay: number, days: number): CustomerSeries {
  return { info, firstDay, days, data: new Float32Array(N_CHANNELS * days * INTERVALS_PER_DAY).fill(Number.NaN) };
}

/** Index of (channel, day, slot) in `data`. */
export function at(s: CustomerSeries, ch: number, day: number, slot: number): number {
  return (ch * s.days + day) * INTERVALS_PER_DAY + slot;
}

/** One channel of one day (a view, no copy). */
export function dayView(s: CustomerSeries, ch: number, day: number): Float32Array {
  const o = at(s, ch, day, 0);
  return s.data.subarray(o, o + INTERVALS_PER_DAY);
}

/** Adds readings (in any order); returns how many fell inside the window. Registers are kept as step sizes. */
export class SeriesBuilder {
  readonly series: CustomerSeries;
  /** Register readings (Wh) by day × slot, turned into steps by finish(); the blob reader writes it directly. */
  readonly registers: Float64Array;
  constructor(info: CustomerInfo, firstDay: number, days: number) {
    this.series = emptySeries(info, firstDay, days);
    this.registers = new Float64Array(days * INTERVALS_PER_DAY).fill(Number.NaN);
  }

  add(r: PhasorReport): boolean {
    const s = this.series;
    const d = localDay(r.ts) - s.firstDay;
    if (d < 0 || d >= s.days) return false;
    const slot = slotOf(r.ts);
    const x = s.data;
    const put = (ch: number, v: number) => (x[at(s, ch, d, slot)] = v);
    put(CH.p, r.activePowerW);
    put(CH.q, r.reactivePowerVar);
    put(CH.pf, r.powerFactor);
    for (let j = 0; j < 3; j++) {
      const ph = r.phases[j]!;
      put(CH.i1 + j, ph.currentA);
      put(CH.v1 + j, ph.voltageV);
      put(CH.a1 + j, ph.angleDeg);
    }
    put(CH.status, r.status);
    this.registers[d * INTERVALS_PER_DAY + slot] = r.energyWh;
    return true;
  }

  /** Adds one stored `reading` row (columns SERIES_COLUMNS; ts as epoch ms), without building a report object. */
  addRow(row: Record<string, unknown>): boolean {
    const s = this.series;
    const ts = Number(row.ts);
    const d = localDay(ts) - s.firstDay;
    if (d < 0 || d >= s.days) return false;
    const slot = slotOf(ts);
    const x = s.data;
    const o = d * INTERVALS_PER_DAY + slot;
    const n = s.days * INTERVALS_PER_DAY;
    x[CH.p * n + o] = Number(row.p_w);
    x[CH.q * n + o] = Number(row.q_var);
    x[CH.pf * n + o] = Number(row.pf);
    x[CH.i1 * n + o] = Number(row.i1);
    x[CH.i2 * n + o] = Number(row.i2);
    x[CH.i3 * n + o] = Number(row.i3);
    x[CH.v1 * n + o] = Number(row.v1);
    x[CH.v2 * n + o] = Number(row.v2);
    x[CH.v3 * n + o] = Number(row.v3);
    x[CH.a1 * n + o] = Number(row.a1);
    x[CH.a2 * n + o] = Number(row.a2);
    x[CH.a3 * n + o] = Number(row.a3);
    x[CH.status * n + o] = Number(row.status);
    this.registers[o] = Number(row.energy_wh);
    return true;
  }

  /** The finished series (register steps computed; the first interval of the window has none). */
  finish(): CustomerSeries {
    const s = this.series;
    const n = s.days * INTERVALS_PER_DAY;
    const base = CH.reg * n;
    for (let k = 1; k < n; k++) {
      const a = this.registers[k - 1]!;
      const b = this.registers[k]!;
      s.data[base + k] = Number.isNaN(a) || Number.isNaN(b) ? Number.NaN : b - a;
    }
    return s;
  }
}

/** Which days have enough readings to judge (≥ 90 of 96). */
export function usableDays(s: CustomerSeries): boolean[] {
  const out: boolean[] = [];
  for (let d = 0; d < s.days; d++) {
    const v = dayView(s, CH.p, d);
    let n = 0;
    for (let t = 0; t < v.length; t++) if (!Number.isNaN(v[t]!)) n++;
    out.push(n >= 90);
  }
  return out;
}

/** The reading columns a series needs, in the order addRow reads them. */
export const SERIES_COLUMNS = 'ts, v1, v2, v3, i1, i2, i3, a1, a2, a3, p_w, q_var, pf, energy_wh, status';
