// From an interval's energy to the phasor report a three-phase meter sends: P, Q, per-phase V, I and angle,
// power factor, THD, grid frequency, demand and the energy register, physically consistent (Σ V·I·cos φ = P,
// Σ V·I·sin φ = Q, pf = P/√(P²+Q²)) and float32-exact through roundReport.
//
// Voltages and currents are primary-side values: a medium-voltage (13.8 / 69 kV) meter applies its VT and CT
// ratios, as ABNT meters report primary quantities, so P = Σ V·I·cos φ holds in the same units for every class.
// Every meter is three-phase (low voltage: 127 V phase-to-neutral, 220 V between phases).
import { roundReport, type PhasorReport, type PhaseReading } from '../protocol/index.js';
import type { CustomerClass, MeterSpec } from './fleet.js';
import { STREAM } from './fleet.js';
import { hashKeys, normalFrom, unit } from './rng.js';
import { localDay, slotOf } from './time.js';

/** How a tampered meter's report relates to the load it really serves. */
export type TheftVariant = 'tampering' | 'bypass';

export interface PhasorInput {
  /** Energy the meter reports for the interval, Wh (after any theft; 0 when disconnected). */
  energyWh: number;
  /** Energy the load really drew, Wh (for bypass: the currents of the whole load before the jumper). */
  trueEnergyWh: number;
  variant?: TheftVariant;
  /** The energy register at ts, Wh (integer). */
  registerWh: number;
  status: number;
}

const PF_RANGE: Record<CustomerClass, readonly [number, number]> = {
  residential: [0.92, 0.98],
  commercial: [0.88, 0.96],
  industrial: [0.85, 0.95],
};
const IMBALANCE_NOISE: Record<CustomerClass, number> = { residential: 0.02, commercial: 0.01, industrial: 0.005 };
const DEG = 180 / Math.PI;

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}

function circ(h: number, mu: number): number {
  return ((((h - mu) % 24) + 36) % 24) - 12;
}

/** The customer's power factor at ts: its base, a slow daily swing (motors and AC in the afternoon), daily drift. */
export function powerFactorAt(m: MeterSpec, ts: number): number {
  const day = localDay(ts);
  const h = (slotOf(ts) + 0.5) / 4;
  const drift = normalFrom(hashKeys(m.seedWord, STREAM.phasor, m.serial, day, 1), hashKeys(m.seedWord, STREAM.phasor, m.serial, day, 2));
  const [lo, hi] = PF_RANGE[m.customerClass];
  return clamp(m.pfBase - 0.012 * Math.sin((2 * Math.PI * (h - 9)) / 24) + 0.005 * drift, lo, hi);
}

/** Grid frequency at ts: the same for every meter of the fleet (one interconnected system), 60 Hz ± 0.05. */
export function gridFrequencyHz(seedWord: number, ts: number): number {
  const k = ts / 900_000;
  const z = normalFrom(hashKeys(seedWord, STREAM.grid, k), hashKeys(seedWord, STREAM.grid, k, 1));
  return clamp(60 + 0.02 * Math.sin(k * 0.37) + 0.012 * z, 59.95, 60.05);
}

/** Phase-to-neutral nominal voltage, V. */
export function nominalPhaseVoltage(supplyKv: number): number {
  // 0.22 kV low voltage is 127/220 V; kV supplies are line-to-line.
  return supplyKv === 0.22 ? 127 : (supplyKv * 1000) / Math.sqrt(3);
}

/** The report a meter sends for the interval ending at ts. */
export function phasorReport(m: MeterSpec, ts: number, input: PhasorInput): PhasorReport {
  const slot = slotOf(ts);
  const h = (slot + 0.5) / 4;
  const k = ts / 900_000;
  const pf0 = powerFactorAt(m, ts);
  const phi = Math.acos(pf0) * DEG;
  const p = input.energyWh * 4; // average W over a quarter hour
  const noise = IMBALANCE_NOISE[m.customerClass];

  // Share of the load per phase this interval.
  const w = [0, 0, 0];
  let wsum = 0;
  for (let j = 0; j < 3; j++) {
    const z = normalFrom(hashKeys(m.seedWord, STREAM.phasor, m.serial, k, 10 + j), hashKeys(m.seedWord, STREAM.phasor, m.serial, k, 20 + j));
    w[j] = Math.max(0.05, m.phaseWeights[j]! * (1 + noise * z));
    wsum += w[j]!;
  }
  const pk = [0, 0, 0];
  if (input.variant === 'bypass' && input.trueEnergyWh > input.energyWh) {
    // A jumper around the current coils takes whole phases first (C, then B, then A): the meter measures the rest.
    const truth = input.trueEnergyWh * 4;
    let deficit = truth - p;
    for (let j = 2; j >= 0; j--) {
      const full = (truth * w[j]!) / wsum;
      const cut = Math.min(full, deficit);
      pk[j] = full - cut;
      deficit -= cut;
    }
    // Rounding leaves the meter's P as the sum of what it measured.
    const got = pk[0]! + pk[1]! + pk[2]!;
    if (got > 0) for (let j = 0; j < 3; j++) pk[j] = (pk[j]! * p) / got;
  } else {
    for (let j = 0; j < 3; j++) pk[j] = (p * w[j]!) / wsum;
  }

  // Voltage: the meter's position on the feeder, a sag at the evening peak, a small per-phase offset, noise.
  const vn = nominalPhaseVoltage(m.supplyKv);
  const sag = -0.015 * Math.exp(-(circ(h, 19.5) ** 2) / 8);
  const phases: PhaseReading[] = [];
  let q = 0;
  for (let j = 0; j < 3; j++) {
    const offset = (unit(hashKeys(m.seedWord, STREAM.voltage, m.serial, j)) - 0.5) * 0.01;
    const z = normalFrom(hashKeys(m.seedWord, STREAM.voltage, m.serial, k, j + 1), hashKeys(m.seedWord, STREAM.voltage, m.serial, k, j + 11));
    const v = vn * (m.voltagePu + sag + offset + 0.002 * z);
    if (pk[j]! > 0) {
      const angle = phi + m.angleOffsetsDeg[j]!;
      const cos = Math.cos(angle / DEG);
      phases.push({ voltageV: v, currentA: pk[j]! / (v * cos), angleDeg: angle });
      q += pk[j]! * Math.tan(angle / DEG);
    } else {
      phases.push({ voltageV: v, currentA: 0, angleDeg: 0 });
    }
  }
  const flowing = p > 0;
  const thdZ = normalFrom(hashKeys(m.seedWord, STREAM.phasor, m.serial, k, 30), hashKeys(m.seedWord, STREAM.phasor, m.serial, k, 31));
  const thd = flowing ? clamp(m.thdBase + 1.2 * Math.exp(-(circ(h, 20.5) ** 2) / 4.5) + 0.25 * thdZ, 2, 8) : 0;
  return roundReport({
    serial: m.serial,
    ts,
    phases: phases as [PhaseReading, PhaseReading, PhaseReading],
    activePowerW: p,
    reactivePowerVar: q,
    powerFactor: flowing ? p / Math.sqrt(p * p + q * q) : 1,
    thdPercent: thd,
    frequencyHz: gridFrequencyHz(m.seedWord, ts),
    demandW: p,
    energyWh: input.registerWh,
    status: input.status,
  });
}
