// protocol/frame: ABNT NBR 14522-style frames with CRC-16, and the canonical reading encoding. Pure codecs.
export { crc16 } from './crc16.js';
export { FrameError, type FrameErrorDetail } from './error.js';
export { MAX_METER_SERIAL, REPORT_INTERVAL_MS } from './fields.js';
export {
  COMMAND_FRAME_SIZE,
  RESPONSE_FRAME_SIZE,
  FrameCode,
  NakReason,
  type Frame,
  encodeReport,
  encodeCommand,
  encodeResponse,
  decodeFrame,
  roundReport,
} from './frame.js';
export { CANONICAL_READING_SIZE, canonicalReading, decodeCanonicalReading } from './canonical.js';
