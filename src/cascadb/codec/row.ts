import { isUtf8 } from 'node:buffer';
import { CodecError, type ColumnType, type SqlValue } from './types.js';
import { decimalOf, parseDecimal, withinLimits } from './numeric.js';
import { INT4_MAX, INT4_MIN, INT8_MAX, checkValue } from './values.js';
import { Writer } from './writer.js';

const FORMAT_V1 = 0x01;
const TWO27 = 0x8000000;

const w = new Writer();

/**
 * A compact tuple: a format byte, a NULL bitmap, then each non-NULL value in column order
 * (int4/int8/timestamp as zig-zag varints, floats as 8-byte doubles, bool 1 byte, text/numeric/bytea
 * varint length + bytes). Numerics keep their text form exactly (trailing zeros included).
 * The bitmap has ⌈n/8⌉ bytes, bit i % 8 of byte ⌊i/8⌋ set when column i is NULL; floats are big-endian.
 */
export function encodeRow(types: readonly ColumnType[], values: readonly SqlValue[]): Buffer {
  const n = types.length;
  if (values.length !== n) throw new CodecError('BadValue', `encodeRow got ${values.length} values for ${n} columns`);
  const mapLen = (n + 7) >>> 3;
  w.reset();
  w.ensure(1 + mapLen);
  w.buf[0] = FORMAT_V1;
  w.buf.fill(0, 1, 1 + mapLen);
  w.pos = 1 + mapLen;
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    const type = types[i]!;
    if (v === null) {
      w.buf[1 + (i >>> 3)]! |= 1 << (i & 7);
      continue;
    }
    checkValue(type, v);
    switch (type) {
      case 'int4':
      case 'int8':
      case 'timestamp':
        writeZigzag(v as number);
        break;
      case 'float4':
      case 'float8':
        w.ensure(8);
        if (v !== v) {
          // One NaN (JavaScript may carry other payloads through typed arrays).
          w.buf.writeUInt32BE(0x7ff80000, w.pos);
          w.buf.writeUInt32BE(0, w.pos + 4);
        } else w.buf.writeDoubleBE(v as number, w.pos); // -0 is kept in rows, as PostgreSQL keeps it
        w.pos += 8;
        break;
      case 'bool':
        w.ensure(1);
        w.buf[w.pos++] = v ? 1 : 0;
        break;
      case 'text':
        writeText(v as string);
        break;
      case 'numeric': {
        const s = v as string;
        decimalOf(s); // throws unless it is a decimal number within range
        writeLength(s.length);
        w.ensure(s.length);
        w.pos += w.buf.write(s, w.pos, 'latin1');
        break;
      }
      case 'bytea': {
        const b = v as Uint8Array;
        writeLength(b.length);
        w.ensure(b.length);
        w.buf.set(b, w.pos);
        w.pos += b.length;
        break;
      }
    }
  }
  return w.finish();
}

function writeLength(n: number): void {
  w.ensure(5);
  const buf = w.buf;
  while (n >= 0x80) {
    buf[w.pos++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[w.pos++] = n;
}

/** Zig-zag varint of a safe integer: 2v for v ≥ 0, −2v − 1 below, in two halves (the result may exceed 2^53). */
function writeZigzag(v: number): void {
  w.ensure(8);
  const buf = w.buf;
  let p = w.pos;
  const neg = v < 0;
  const m = neg ? -v - 1 : v === 0 ? 0 : v;
  if (m < TWO27) {
    let z = m * 2 + (neg ? 1 : 0);
    while (z >= 0x80) {
      buf[p++] = (z & 0x7f) | 0x80;
      z >>>= 7;
    }
    buf[p++] = z;
  } else {
    const hi = Math.floor(m / TWO27);
    let lo = (m - hi * TWO27) * 2 + (neg ? 1 : 0); // the low 28 bits, as four 7-bit groups
    for (let k = 0; k < 4; k++) {
      buf[p++] = (lo & 0x7f) | 0x80;
      lo >>>= 7;
    }
    let z = hi;
    while (z >= 0x80) {
      buf[p++] = (z & 0x7f) | 0x80;
      z >>>= 7;
    }
    buf[p++] = z;
  }
  w.pos = p;
}

function writeText(s: string): void {
  if (s.length < 43) {
    // At most 126 bytes of UTF-8: a one-byte length, filled in once the bytes are written.
    w.ensure(1 + s.length * 3);
    const at = w.pos++;
    const n = w.buf.write(s, w.pos);
    w.buf[at] = n;
    w.pos += n;
    return;
  }
  const n = Buffer.byteLength(s, 'utf8');
  writeLength(n);
  w.ensure(n);
  w.pos += w.buf.write(s, w.pos, n);
}

function corrupt(what: string): CodecError {
  return new CodecError('Corrupt', `corrupt row: ${what}`);
}

/** Throws CodecError('Corrupt') on a malformed buffer, never returns garbage. */
export function decodeRow(types: readonly ColumnType[], buf: Buffer): SqlValue[] {
  const n = types.length;
  const len = buf.length;
  const mapLen = (n + 7) >>> 3;
  if (len < 1 + mapLen) throw corrupt('truncated header');
  if (buf[0] !== FORMAT_V1) throw corrupt(`unknown format 0x${buf[0]!.toString(16).padStart(2, '0')}`);
  if (n & 7 && buf[mapLen]! >>> (n & 7)) throw corrupt('NULL bits beyond the last column');
  const out: SqlValue[] = new Array(n);
  let p = 1 + mapLen;
  for (let i = 0; i < n; i++) {
    if (buf[1 + (i >>> 3)]! & (1 << (i & 7))) {
      out[i] = null;
      continue;
    }
    const type = types[i]!;
    switch (type) {
      case 'int4':
      case 'int8':
      case 'timestamp': {
        // Zig-zag varint: up to four 7-bit groups of the low 28 bits, then the high part as a varint.
        let lo = 0;
        let k = 0;
        let b = 0x80;
        while (k < 4) {
          if (p >= len) throw corrupt(`truncated ${type}`);
          b = buf[p++]!;
          lo |= (b & 0x7f) << (7 * k);
          k++;
          if (!(b & 0x80)) break;
        }
        let hi = 0;
        let long = false;
        if (b & 0x80) {
          long = true;
          k = 0;
          while (true) {
            if (p >= len) throw corrupt(`truncated ${type}`);
            b = buf[p++]!;
            hi |= (b & 0x7f) << (7 * k);
            k++;
            if (!(b & 0x80)) break;
            if (k === 4) throw corrupt(`${type} varint too long`);
          }
          if (hi >= 0x4000000) throw corrupt(`${type} out of range`);
        }
        if (b === 0 && (k > 1 || long)) throw corrupt(`non-canonical ${type} varint`);
        const m = hi * TWO27 + (lo >>> 1);
        const v = lo & 1 ? -m - 1 : m;
        if (type === 'int4' ? v < INT4_MIN || v > INT4_MAX : v < -INT8_MAX) throw corrupt(`${type} out of range`);
        out[i] = v;
        break;
      }
      case 'float4':
      case 'float8': {
        if (p + 8 > len) throw corrupt(`truncated ${type}`);
        const v = buf.readDoubleBE(p);
        p += 8;
        if (v !== v && (buf.readUInt32BE(p - 8) !== 0x7ff80000 || buf.readUInt32BE(p - 4) !== 0)) throw corrupt('non-canonical NaN');
        if (type === 'float4' && Number.isFinite(v) && !Number.isFinite(Math.fround(v))) throw corrupt('float4 out of range');
        out[i] = v;
        break;
      }
      case 'bool': {
        if (p >= len) throw corrupt('truncated bool');
        const b = buf[p++];
        if (b !== 0 && b !== 1) throw corrupt(`bool byte 0x${b!.toString(16).padStart(2, '0')}`);
        out[i] = b === 1;
        break;
      }
      case 'text':
      case 'numeric':
      case 'bytea': {
        // Length varint, at most 5 bytes (< 2^32 − 1, which no Buffer reaches).
        let size = 0;
        let k = 0;
        let b: number;
        do {
          if (p >= len) throw corrupt(`truncated ${type} length`);
          b = buf[p++]!;
          if (k === 4 && b > 0x0f) throw corrupt(`${type} length too long`);
          size += (b & 0x7f) * 2 ** (7 * k);
          k++;
        } while (b & 0x80);
        if (b === 0 && k > 1) throw corrupt(`non-canonical ${type} length`);
        if (size > len - p) throw corrupt(`truncated ${type}`);
        const end = p + size;
        if (type === 'bytea') {
          const v = Buffer.allocUnsafe(size);
          buf.copy(v, 0, p, end);
          out[i] = v;
        } else if (type === 'text') {
          if (!isUtf8Range(buf, p, end)) throw corrupt('text is not UTF-8');
          out[i] = buf.toString('utf8', p, end);
        } else {
          const s = buf.toString('latin1', p, end);
          const d = parseDecimal(s);
          if (d === undefined || !withinLimits(d)) throw corrupt('numeric is not a decimal number within range');
          out[i] = s;
        }
        p = end;
        break;
      }
      default:
        throw new CodecError('BadValue', `unknown column type ${JSON.stringify(type)}`);
    }
  }
  if (p !== len) throw corrupt(`${len - p} bytes after the last column`);
  return out;
}

function isUtf8Range(buf: Buffer, start: number, end: number): boolean {
  if (end - start < 32) {
    let i = start;
    while (i < end && buf[i]! < 0x80) i++;
    if (i === end) return true;
  }
  return isUtf8(buf.subarray(start, end));
}
