// Field layouts shared by frames and the canonical reading: the BCD serial, range checks, and the 76-byte
// report block. Hot path: Buffer methods on the caller's buffer, no allocation per field.

import type { PhasorReport, PhaseReading } from '../types.js';
import { FrameError } from './error.js';

export const MAX_METER_SERIAL = 99_999_999;
/** Periodic reports close 15-minute intervals. */
export const REPORT_INTERVAL_MS = 900_000;
const MAX_U48 = 2 ** 48 - 1;
const TWO_32 = 2 ** 32;

/**
 * Report block, big-endian, 76 bytes:
 *   0 ts u64 ms | 8 v1 v2 v3 | 20 i1 i2 i3 | 32 a1 a2 a3 (float32) |
 *   44 activePowerW reactivePowerVar powerFactor thdPercent frequencyHz demandW (float32) |
 *   68 energyWh u48 | 74 status u16
 * Order follows the `reading` table's columns, which the auditor reads back.
 */
export const REPORT_BLOCK_SIZE = 76;

export function checkSerial(serial: number): void {
  if (!Number.isInteger(serial) || serial < 0 || serial > MAX_METER_SERIAL) {
    throw new FrameError('field', `serial must be an integer 0..${MAX_METER_SERIAL}`);
  }
}

export function checkU32(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new FrameError('field', `${what} must be a u32`);
}

export function checkU16(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new FrameError('field', `${what} must be a u16`);
}

export function writeBcdSerial(b: Buffer, off: number, serial: number): void {
  checkSerial(serial);
  let s = serial;
  for (let i = 3; i >= 0; i--) {
    const lo = s % 10;
    s = (s - lo) / 10;
    const hi = s % 10;
    s = (s - hi) / 10;
    b[off + i] = (hi << 4) | lo;
  }
}

export function readBcdSerial(b: Buffer, off: number): number {
  let serial = 0;
  for (let i = 0; i < 4; i++) {
    const byte = b[off + i]!;
    const hi = byte >>> 4;
    const lo = byte & 0x0f;
    if (hi > 9 || lo > 9) throw new FrameError('bcd', `serial byte ${i} (0x${byte.toString(16)}) is not BCD`);
    serial = serial * 100 + hi * 10 + lo;
  }
  return serial;
}

/** float32 as it travels: rounded, and -0 folded into +0 so equal readings have equal bytes. */
export function f32(x: number): number {
  return Math.fround(x) + 0;
}

function writeF32(b: Buffer, off: number, x: number, what: string): void {
  const f = Math.fround(x) + 0;
  if (!Number.isFinite(f)) throw new FrameError('field', `${what} is not a finite float32`);
  b.writeFloatBE(f, off);
}

function readF32(b: Buffer, off: number, what: string): number {
  const f = b.readFloatBE(off);
  if (!Number.isFinite(f)) throw new FrameError('field', `${what} is not finite`);
  return f + 0;
}

export function writeU64(b: Buffer, off: number, v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new FrameError('field', `${what} must be a non-negative safe integer`);
  b.writeUInt32BE(Math.floor(v / TWO_32), off);
  b.writeUInt32BE(v >>> 0, off + 4);
}

export function readU64(b: Buffer, off: number, what: string): number {
  const hi = b.readUInt32BE(off);
  // Above 2^53 − 1 a JS number is no longer exact; such a value is not one we ever wrote.
  if (hi > 0x1fffff) throw new FrameError('field', `${what} exceeds 2^53 - 1`);
  return hi * TWO_32 + b.readUInt32BE(off + 4);
}

/** Writes the report block at off; `periodic` demands ts on the 15-minute grid. */
export function writeReportBlock(b: Buffer, off: number, r: PhasorReport, periodic: boolean): void {
  writeU64(b, off, r.ts, 'ts');
  if (periodic && r.ts % REPORT_INTERVAL_MS !== 0) throw new FrameError('field', `periodic report ts must be a multiple of ${REPORT_INTERVAL_MS}`);
  const [p1, p2, p3] = r.phases;
  writeF32(b, off + 8, p1.voltageV, 'v1');
  writeF32(b, off + 12, p2.voltageV, 'v2');
  writeF32(b, off + 16, p3.voltageV, 'v3');
  writeF32(b, off + 20, p1.currentA, 'i1');
  writeF32(b, off + 24, p2.currentA, 'i2');
  writeF32(b, off + 28, p3.currentA, 'i3');
  writeF32(b, off + 32, p1.angleDeg, 'a1');
  writeF32(b, off + 36, p2.angleDeg, 'a2');
  writeF32(b, off + 40, p3.angleDeg, 'a3');
  writeF32(b, off + 44, r.activePowerW, 'activePowerW');
  writeF32(b, off + 48, r.reactivePowerVar, 'reactivePowerVar');
  writeF32(b, off + 52, r.powerFactor, 'powerFactor');
  writeF32(b, off + 56, r.thdPercent, 'thdPercent');
  writeF32(b, off + 60, r.frequencyHz, 'frequencyHz');
  writeF32(b, off + 64, r.demandW, 'demandW');
  const e = r.energyWh;
  if (!Number.isInteger(e) || e < 0 || e > MAX_U48) throw new FrameError('field', 'energyWh must be an integer 0..2^48-1');
  b.writeUIntBE(e, off + 68, 6);
  checkU16(r.status, 'status');
  b.writeUInt16BE(r.status, off + 74);
}

function phase(b: Buffer, off: number, k: number): PhaseReading {
  return {
    voltageV: readF32(b, off + 8 + 4 * k, 'voltage'),
    currentA: readF32(b, off + 20 + 4 * k, 'current'),
    angleDeg: readF32(b, off + 32 + 4 * k, 'angle'),
  };
}

export function readReportBlock(b: Buffer, off: number, serial: number, periodic: boolean): PhasorReport {
  const ts = readU64(b, off, 'ts');
  if (periodic && ts % REPORT_INTERVAL_MS !== 0) throw new FrameError('field', `periodic report ts must be a multiple of ${REPORT_INTERVAL_MS}`);
  return {
    serial,
    ts,
    phases: [phase(b, off, 0), phase(b, off, 1), phase(b, off, 2)],
    activePowerW: readF32(b, off + 44, 'activePowerW'),
    reactivePowerVar: readF32(b, off + 48, 'reactivePowerVar'),
    powerFactor: readF32(b, off + 52, 'powerFactor'),
    thdPercent: readF32(b, off + 56, 'thdPercent'),
    frequencyHz: readF32(b, off + 60, 'frequencyHz'),
    demandW: readF32(b, off + 64, 'demandW'),
    energyWh: b.readUIntBE(off + 68, 6),
    status: b.readUInt16BE(off + 74),
  };
}
