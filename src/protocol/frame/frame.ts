// ABNT NBR 14522-style plain frames: bytes in, values out, no I/O (docs/meter-pipeline.md, "Frames").
//
//   command  (66 B) = code (1) ‖ serial (4, packed BCD) ‖ payload (59)  ‖ CRC-16/ARC (2, LSB first)
//   response (258 B) = code (1) ‖ serial (4, packed BCD) ‖ payload (251) ‖ CRC-16/ARC (2, LSB first)
//
// The code fixes the size, so one decoder serves both directions. Codes (ABNT-flavoured: 0x14 is the
// standard's "instantaneous quantities" read, ACK/NAK borrow its 0x06/0x15 signalling characters; a response
// to a command code c is c | 0x80 where it carries data):
//
//   | code | name            | size | direction        | payload (big-endian; the rest is zero)                        |
//   |------|-----------------|------|------------------|---------------------------------------------------------------|
//   | 0x14 | READ            | 66   | collector→meter  | requestId u32                                                 |
//   | 0x24 | DISCONNECT      | 66   | collector→meter  | requestId u32                                                 |
//   | 0x25 | RECONNECT       | 66   | collector→meter  | requestId u32                                                 |
//   | 0x94 | READ_RESPONSE   | 258  | meter→collector  | requestId u32 ‖ report block (76), ts any ms                  |
//   | 0x06 | ACK             | 258  | meter→collector  | requestId u32 ‖ command u8 (0x24/0x25) ‖ ok u8 ‖ loadConnected u8 (0/1) |
//   | 0x15 | NAK             | 258  | meter→collector  | requestId u32 ‖ reason u16 (NakReason)                        |
//   | 0xA0 | PERIODIC_REPORT | 258  | meter→collector  | report block (76), ts a multiple of 900_000 (async, no request) |
//
// Report block: see fields.ts. Decoding is strict (CRC, code, BCD, zero padding, finite floats, 0/1 booleans),
// so a decoded frame re-encodes to the same bytes (float −0 excepted: it decodes as +0).

import type { MeterCommand, MeterResponse, MeterSerial, PhasorReport } from '../types.js';
import { crc16 } from './crc16.js';
import { FrameError } from './error.js';
import { checkSerial, checkU16, checkU32, f32, readBcdSerial, readReportBlock, REPORT_BLOCK_SIZE, writeBcdSerial, writeReportBlock } from './fields.js';

export const COMMAND_FRAME_SIZE = 66;
export const RESPONSE_FRAME_SIZE = 258;

export const FrameCode = {
  read: 0x14,
  disconnect: 0x24,
  reconnect: 0x25,
  readResponse: 0x94,
  ack: 0x06,
  nak: 0x15,
  periodicReport: 0xa0,
} as const;
export type FrameCode = (typeof FrameCode)[keyof typeof FrameCode];

/** Suggested NAK reasons (the wire carries any u16). */
export const NakReason = {
  unsupported: 1,
  busy: 2,
  relayFault: 3,
  notPermitted: 4,
} as const;

export type Frame =
  | { type: 'report'; serial: MeterSerial; report: PhasorReport }
  | { type: 'command'; serial: MeterSerial; command: MeterCommand }
  | { type: 'response'; serial: MeterSerial; response: MeterResponse };

const HEADER = 5; // code ‖ serial
const COMMAND_CODE = { read: FrameCode.read, disconnect: FrameCode.disconnect, reconnect: FrameCode.reconnect } as const;

function seal(b: Buffer): Buffer {
  b.writeUInt16LE(crc16(b, 0, b.length - 2), b.length - 2);
  return b;
}

function start(size: number, code: number, serial: number): Buffer {
  const b = Buffer.alloc(size);
  b[0] = code;
  writeBcdSerial(b, 1, serial);
  return b;
}

/** The async 15-minute report (258 B); the frame serial is report.serial. */
export function encodeReport(report: PhasorReport): Buffer {
  const b = start(RESPONSE_FRAME_SIZE, FrameCode.periodicReport, report.serial);
  writeReportBlock(b, HEADER, report, true);
  return seal(b);
}

export function encodeCommand(serial: MeterSerial, command: MeterCommand): Buffer {
  const code: number | undefined = COMMAND_CODE[command.kind];
  if (code === undefined) throw new FrameError('field', 'unknown command kind');
  checkU32(command.requestId, 'requestId');
  const b = start(COMMAND_FRAME_SIZE, code, serial);
  b.writeUInt32BE(command.requestId, HEADER);
  return seal(b);
}

export function encodeResponse(serial: MeterSerial, response: MeterResponse): Buffer {
  checkSerial(serial);
  checkU32(response.requestId, 'requestId');
  let b: Buffer;
  switch (response.kind) {
    case 'read':
      if (response.report.serial !== serial) throw new FrameError('field', 'read response report.serial differs from the frame serial');
      b = start(RESPONSE_FRAME_SIZE, FrameCode.readResponse, serial);
      writeReportBlock(b, HEADER + 4, response.report, false);
      break;
    case 'ack': {
      const cmd = response.command === 'disconnect' ? FrameCode.disconnect : response.command === 'reconnect' ? FrameCode.reconnect : -1;
      if (cmd < 0) throw new FrameError('field', 'ack command must be disconnect or reconnect');
      if (typeof response.ok !== 'boolean' || typeof response.loadConnected !== 'boolean') throw new FrameError('field', 'ack flags must be booleans');
      b = start(RESPONSE_FRAME_SIZE, FrameCode.ack, serial);
      b[HEADER + 4] = cmd;
      b[HEADER + 5] = response.ok ? 1 : 0;
      b[HEADER + 6] = response.loadConnected ? 1 : 0;
      break;
    }
    case 'nak':
      checkU16(response.reason, 'reason');
      b = start(RESPONSE_FRAME_SIZE, FrameCode.nak, serial);
      b.writeUInt16BE(response.reason, HEADER + 4);
      break;
    default:
      throw new FrameError('field', 'unknown response kind');
  }
  b.writeUInt32BE(response.requestId, HEADER);
  return seal(b);
}

function sizeOf(code: number): number {
  switch (code) {
    case FrameCode.read:
    case FrameCode.disconnect:
    case FrameCode.reconnect:
      return COMMAND_FRAME_SIZE;
    case FrameCode.readResponse:
    case FrameCode.ack:
    case FrameCode.nak:
    case FrameCode.periodicReport:
      return RESPONSE_FRAME_SIZE;
    default:
      return 0;
  }
}

function zeroFrom(b: Buffer, from: number): void {
  const end = b.length - 2;
  for (let i = from; i < end; i++) if (b[i] !== 0) throw new FrameError('field', `padding byte ${i} is not zero`);
}

function flag(v: number, what: string): boolean {
  if (v > 1) throw new FrameError('field', `${what} must be 0 or 1`);
  return v === 1;
}

export function decodeFrame(input: Uint8Array): Frame {
  const b = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const n = b.length;
  if (n !== COMMAND_FRAME_SIZE && n !== RESPONSE_FRAME_SIZE) throw new FrameError('length', `frame is ${n} bytes, not 66 or 258`);
  if (crc16(b, 0, n - 2) !== b.readUInt16LE(n - 2)) throw new FrameError('crc', 'CRC mismatch');
  const code = b[0]!;
  const size = sizeOf(code);
  if (size === 0) throw new FrameError('code', `unknown frame code 0x${code.toString(16)}`);
  if (size !== n) throw new FrameError('length', `code 0x${code.toString(16)} frames are ${size} bytes, got ${n}`);
  const serial = readBcdSerial(b, 1);
  switch (code) {
    case FrameCode.periodicReport: {
      const report = readReportBlock(b, HEADER, serial, true);
      zeroFrom(b, HEADER + REPORT_BLOCK_SIZE);
      return { type: 'report', serial, report };
    }
    case FrameCode.read:
    case FrameCode.disconnect:
    case FrameCode.reconnect: {
      const requestId = b.readUInt32BE(HEADER);
      zeroFrom(b, HEADER + 4);
      const kind = code === FrameCode.read ? 'read' : code === FrameCode.disconnect ? 'disconnect' : 'reconnect';
      return { type: 'command', serial, command: { kind, requestId } };
    }
    case FrameCode.readResponse: {
      const requestId = b.readUInt32BE(HEADER);
      const report = readReportBlock(b, HEADER + 4, serial, false);
      zeroFrom(b, HEADER + 4 + REPORT_BLOCK_SIZE);
      return { type: 'response', serial, response: { kind: 'read', requestId, report } };
    }
    case FrameCode.ack: {
      const requestId = b.readUInt32BE(HEADER);
      const cmd = b[HEADER + 4];
      if (cmd !== FrameCode.disconnect && cmd !== FrameCode.reconnect) throw new FrameError('field', 'ack names no disconnect/reconnect command');
      const ok = flag(b[HEADER + 5]!, 'ok');
      const loadConnected = flag(b[HEADER + 6]!, 'loadConnected');
      zeroFrom(b, HEADER + 7);
      return { type: 'response', serial, response: { kind: 'ack', requestId, command: cmd === FrameCode.disconnect ? 'disconnect' : 'reconnect', ok, loadConnected } };
    }
    default: {
      // FrameCode.nak: the only code left.
      const requestId = b.readUInt32BE(HEADER);
      const reason = b.readUInt16BE(HEADER + 4);
      zeroFrom(b, HEADER + 6);
      return { type: 'response', serial, response: { kind: 'nak', requestId, reason } };
    }
  }
}

/** The report exactly as it will decode: float32-rounded, −0 as +0. Does not validate; encodeReport does. */
export function roundReport(report: PhasorReport): PhasorReport {
  const [p1, p2, p3] = report.phases;
  return {
    serial: report.serial,
    ts: report.ts,
    phases: [
      { voltageV: f32(p1.voltageV), currentA: f32(p1.currentA), angleDeg: f32(p1.angleDeg) },
      { voltageV: f32(p2.voltageV), currentA: f32(p2.currentA), angleDeg: f32(p2.angleDeg) },
      { voltageV: f32(p3.voltageV), currentA: f32(p3.currentA), angleDeg: f32(p3.angleDeg) },
    ],
    activePowerW: f32(report.activePowerW),
    reactivePowerVar: f32(report.reactivePowerVar),
    powerFactor: f32(report.powerFactor),
    thdPercent: f32(report.thdPercent),
    frequencyHz: f32(report.frequencyHz),
    demandW: f32(report.demandW),
    energyWh: report.energyWh,
    status: report.status,
  };
}
