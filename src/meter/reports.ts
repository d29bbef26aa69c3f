// The report stream of a fleet: interval energy (load.ts) → theft (theft.ts) → phasors (phasors.ts), with
// each meter's register accumulating what it reports. The runtime and the offline generator share this model,
// so generateReports is the ground truth of every frame the simulator sends.
import { ReportStatus, type PhasorReport } from '../protocol/index.js';
import type { Fleet, MeterSpec } from './fleet.js';
import { dayEnergiesWh, intervalEnergyWh } from './load.js';
import { phasorReport } from './phasors.js';
import { theftDay, theftPlan, type TheftPlan } from './theft.js';
import { INTERVAL_MS, localDay, slotOf } from './time.js';

export class ReportModel {
  readonly fleet: Fleet;
  /** Energy each meter has reported since the window start, Wh (float; the register is its integer part). */
  readonly #cum: Float64Array;
  /** ts of the last interval each meter accounted for. */
  readonly #last: Float64Array;
  readonly #plans: Array<TheftPlan | null | undefined>;
  /** A stealing meter's reported energies for the day it is in (h4–h6 need the whole day). */
  readonly #days = new Map<number, { day: number; values: Float64Array }>();

  constructor(fleet: Fleet) {
    this.fleet = fleet;
    this.#cum = new Float64Array(fleet.count);
    this.#last = new Float64Array(fleet.count).fill(fleet.start);
    this.#plans = new Array<TheftPlan | null | undefined>(fleet.count);
  }

  plan(index: number): TheftPlan | undefined {
    let p = this.#plans[index];
    if (p === undefined) {
      p = theftPlan(this.fleet, this.fleet.meter(index)) ?? null;
      this.#plans[index] = p;
    }
    return p ?? undefined;
  }

  /** Energy the load drew and energy the meter reports for the interval ending at ts, Wh. */
  energies(index: number, ts: number): { truth: number; reported: number; stealing: boolean } {
    const m = this.fleet.meter(index);
    const truth = intervalEnergyWh(m, ts);
    const plan = this.plan(index);
    if (!plan) return { truth, reported: truth, stealing: false };
    const day = localDay(ts);
    if (!plan.days.includes(day)) return { truth, reported: truth, stealing: false };
    let cached = this.#days.get(index);
    if (!cached || cached.day !== day) {
      cached = { day, values: theftDay(m, plan, day, dayEnergiesWh(m, day)).values };
      this.#days.set(index, cached);
    }
    return { truth, reported: cached.values[slotOf(ts)]!, stealing: true };
  }

  /** The register at the meter's last accounted interval, Wh. */
  registerWh(index: number): number {
    return this.fleet.meter(index).registerStartWh + Math.floor(this.#cum[index]!);
  }

  /** ts of the last interval the meter accounted for (the window start before its first). */
  lastTs(index: number): number {
    return this.#last[index]!;
  }

  /**
   * The report for the interval ending at ts, advancing the meter's register. Intervals must come in order;
   * a gap is filled as if the meter had metered through it (it keeps metering while frames are lost).
   * A disconnected load draws nothing: zero current and power, the register frozen, LoadDisconnected set.
   */
  next(index: number, ts: number, disconnected = false): PhasorReport {
    const last = this.#last[index]!;
    if (ts % INTERVAL_MS !== 0 || ts <= last) throw new RangeError(`meter ${index}: report ts ${ts} is not after ${last} on the 15-minute grid`);
    for (let t = last + INTERVAL_MS; t < ts; t += INTERVAL_MS) this.#cum[index]! += this.energies(index, t).reported;
    this.#last[index] = ts;
    return this.#build(index, ts, disconnected, true);
  }

  /** The meter's report for its last accounted interval again (a `read` command), without advancing. */
  current(index: number, disconnected = false): PhasorReport {
    return this.#build(index, this.#last[index]!, disconnected, false);
  }

  #build(index: number, ts: number, disconnected: boolean, advance: boolean): PhasorReport {
    const m: MeterSpec = this.fleet.meter(index);
    if (disconnected) {
      return phasorReport(m, ts, { energyWh: 0, trueEnergyWh: 0, registerWh: this.registerWh(index), status: ReportStatus.LoadDisconnected });
    }
    const e = this.energies(index, ts);
    if (advance) this.#cum[index]! += e.reported;
    return phasorReport(m, ts, { energyWh: e.reported, trueEnergyWh: e.truth, ...(e.stealing ? { variant: this.plan(index)!.variant } : {}), registerWh: this.registerWh(index), status: 0 });
  }
}

/**
 * Every report of the fleet for intervals ending in [from, to] (defaults: the whole window), in time order
 * (all meters for one ts, then the next ts): what the simulator sends, minus dropped frames and commands' effects.
 */
export function* generateReports(fleet: Fleet, from = fleet.start + INTERVAL_MS, to = fleet.end): IterableIterator<PhasorReport> {
  const first = Math.ceil(Math.max(from, fleet.start + INTERVAL_MS) / INTERVAL_MS) * INTERVAL_MS;
  const model = new ReportModel(fleet);
  for (let ts = first; ts <= to; ts += INTERVAL_MS) for (let i = 0; i < fleet.count; i++) yield model.next(i, ts);
}

/** One meter's reports for intervals ending in [from, to], in time order. */
export function* meterReports(fleet: Fleet, index: number, from = fleet.start + INTERVAL_MS, to = fleet.end): IterableIterator<PhasorReport> {
  const first = Math.ceil(Math.max(from, fleet.start + INTERVAL_MS) / INTERVAL_MS) * INTERVAL_MS;
  const model = new ReportModel(fleet);
  for (let ts = first; ts <= to; ts += INTERVAL_MS) yield model.next(index, ts);
}
