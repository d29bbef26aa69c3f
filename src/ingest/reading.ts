// A PhasorReport as a `reading` row and back, and the physical range check applied to every decrypted report.
import type { PhasorReport } from '../protocol/index.js';
import type { SqlParam } from './sql.js';

/** The reading columns in insert order (the metrology columns, then counter, batch_id, leaf, proof). */
export const READING_COLUMNS = ['meter_id', 'ts', 'v1', 'v2', 'v3', 'i1', 'i2', 'i3', 'a1', 'a2', 'a3', 'p_w', 'q_var', 'pf', 'thd', 'freq', 'demand_w', 'energy_wh', 'status', 'counter', 'batch_id', 'leaf', 'proof'] as const;

export function readingRow(r: PhasorReport, counter: number | null, batchId: string, leaf: number, proof: Buffer): SqlParam[] {
  const [p1, p2, p3] = r.phases;
  return [
    r.serial, new Date(r.ts),
    p1.voltageV, p2.voltageV, p3.voltageV,
    p1.currentA, p2.currentA, p3.currentA,
    p1.angleDeg, p2.angleDeg, p3.angleDeg,
    r.activePowerW, r.reactivePowerVar, r.powerFactor, r.thdPercent, r.frequencyHz, r.demandW,
    r.energyWh, r.status, counter, batchId, leaf, proof,
  ];
}

/** The report a stored row holds (REAL columns are float32, so the canonical encoding is recomputed exactly). */
export function reportFromRow(row: Record<string, unknown>): PhasorReport {
  const n = (k: string) => Math.fround(Number(row[k]));
  return {
    serial: Number(row.meter_id),
    ts: Number(row.ts),
    phases: [
      { voltageV: n('v1'), currentA: n('i1'), angleDeg: n('a1') },
      { voltageV: n('v2'), currentA: n('i2'), angleDeg: n('a2') },
      { voltageV: n('v3'), currentA: n('i3'), angleDeg: n('a3') },
    ],
    activePowerW: n('p_w'),
    reactivePowerVar: n('q_var'),
    powerFactor: n('pf'),
    thdPercent: n('thd'),
    frequencyHz: n('freq'),
    demandW: n('demand_w'),
    energyWh: Number(row.energy_wh),
    status: Number(row.status),
  };
}

/**
 * Physical bounds of a report; outside them a reading is rejected as `range` (it decrypted, so the meter sent
 * it: a faulty or tampered meter, never stored as metrology data). The bounds cover LV and MV supplies
 * (up to 69 kV line-to-line: 39.8 kV to neutral, 41.9 kV at the 72.5 kV equipment maximum) with margin;
 * they catch broken values, not fraud.
 */
export const RANGE = {
  voltageV: [0, 50_000],
  currentA: [0, 10_000],
  angleDeg: [-180, 180],
  powerW: [-1e9, 1e9], // active, reactive and demand
  powerFactor: [-1, 1],
  thdPercent: [0, 1000],
  frequencyHz: [45, 65],
  /** 2000-01-01 … 2100-01-01, on the 15-minute grid for periodic reports. */
  tsMs: [946_684_800_000, 4_102_444_800_000],
} as const;

const within = (v: number, [lo, hi]: readonly [number, number]) => Number.isFinite(v) && v >= lo && v <= hi;

/** undefined when the report is plausible, else the name of the first implausible field. */
export function rangeViolation(r: PhasorReport, periodic = true): string | undefined {
  if (!Number.isSafeInteger(r.ts) || !within(r.ts, RANGE.tsMs) || (periodic && r.ts % 900_000 !== 0)) return 'ts';
  for (let k = 0; k < 3; k++) {
    const p = r.phases[k]!;
    if (!within(p.voltageV, RANGE.voltageV)) return `v${k + 1}`;
    if (!within(p.currentA, RANGE.currentA)) return `i${k + 1}`;
    if (!within(p.angleDeg, RANGE.angleDeg)) return `a${k + 1}`;
  }
  if (!within(r.activePowerW, RANGE.powerW)) return 'p_w';
  if (!within(r.reactivePowerVar, RANGE.powerW)) return 'q_var';
  if (!within(r.demandW, RANGE.powerW)) return 'demand_w';
  if (!within(r.powerFactor, RANGE.powerFactor)) return 'pf';
  if (!within(r.thdPercent, RANGE.thdPercent)) return 'thd';
  if (!within(r.frequencyHz, RANGE.frequencyHz)) return 'freq';
  if (!Number.isSafeInteger(r.energyWh) || r.energyWh < 0 || r.energyWh > 2 ** 48 - 1) return 'energy_wh';
  if (!Number.isInteger(r.status) || r.status < 0 || r.status > 0xffff) return 'status';
  return undefined;
}
