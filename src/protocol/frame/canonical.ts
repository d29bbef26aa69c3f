// The canonical reading encoding: what metrology Merkle leaves hash and the billing auditor recomputes from
// stored rows. Fixed size, big-endian: serial u32 ‖ report block (ts u64 ‖ v1..v3 i1..i3 a1..a3 ‖
// P Q PF THD f demand, all float32 ‖ energyWh u48 ‖ status u16) = 80 bytes. Never change it: old proofs hash it.

import type { PhasorReport } from '../types.js';
import { FrameError } from './error.js';
import { checkSerial, MAX_METER_SERIAL, readReportBlock, REPORT_BLOCK_SIZE, writeReportBlock } from './fields.js';

export const CANONICAL_READING_SIZE = 4 + REPORT_BLOCK_SIZE;

/** Rounds floats to float32 (−0 as +0) like the frame codec; throws FrameError('field') on unencodable values. */
export function canonicalReading(report: PhasorReport): Buffer {
  checkSerial(report.serial);
  const b = Buffer.alloc(CANONICAL_READING_SIZE);
  b.writeUInt32BE(report.serial, 0);
  // Any ts: on-demand reads are readings too; the 15-minute grid is the frame codec's rule for reports.
  writeReportBlock(b, 4, report, false);
  return b;
}

export function decodeCanonicalReading(input: Uint8Array): PhasorReport {
  const b = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (b.length !== CANONICAL_READING_SIZE) throw new FrameError('length', `canonical reading is ${CANONICAL_READING_SIZE} bytes, got ${b.length}`);
  const serial = b.readUInt32BE(0);
  if (serial > MAX_METER_SERIAL) throw new FrameError('field', `serial ${serial} exceeds ${MAX_METER_SERIAL}`);
  return readReportBlock(b, 4, serial, false);
}
