import { isUtf8 } from 'node:buffer';
import { CodecError, type ColumnType, type SqlValue } from './types.js';
import { NUMERIC_NEG, NUMERIC_POS, NUMERIC_ZERO, compareDecimal, decimalOf, formatDecimal, readNumericKey, writeNumericKey } from './numeric.js';
import { INT4_MAX, INT4_MIN, checkValue } from './values.js';
import { Writer } from './writer.js';

// Marker bytes: one per type (so a key is self-describing for debugging and a type mismatch reads as corrupt),
// NULL above all of them. Within a column only the order among one type's markers and NULL matters.
const INT4 = 0x10;
const INT8 = 0x11;
const TIMESTAMP = 0x12;
const FLOAT4 = 0x13;
const FLOAT8 = 0x14;
const FALSE = 0x18;
const TRUE = 0x19;
const TEXT = 0x1a;
const BYTEA = 0x1b;
const NULL = 0xfe;

const PREFIX_LEN = 6;
const TWO32 = 4294967296;

const w = new Writer();

/** The prefix of every key of one index of one table: u32 BE table id ‖ u16 BE index id (0 = primary key). */
export function keyPrefix(tableId: number, indexId: number): Buffer {
  if (!Number.isInteger(tableId) || !Number.isInteger(indexId)) throw new CodecError('BadValue', `key prefix expects integer table and index ids, got ${tableId}, ${indexId}`);
  if (tableId < 0 || tableId >= TWO32) throw new CodecError('OutOfRange', `table id ${tableId} out of range (u32)`);
  if (indexId < 0 || indexId > 0xffff) throw new CodecError('OutOfRange', `index id ${indexId} out of range (u16)`);
  const b = Buffer.allocUnsafe(PREFIX_LEN);
  b.writeUInt32BE(tableId, 0);
  b.writeUInt16BE(indexId, 4);
  return b;
}

/**
 * prefix ‖ encoded values. Each encoded value starts with a marker byte (NULL's marker is greater than every
 * non-NULL marker) and is self-delimiting, so a key of the first n columns is a byte prefix of every longer key
 * that starts with the same values, and byte order = (value order of column 1, then column 2, …).
 * Strings and bytea use escaped groups (0x00 → 0x00 0xFF, terminated by 0x00 0x01); integers and timestamps are
 * 8-byte big-endian with the sign bit flipped; floats are IEEE-754 bits transformed for order (NaN greatest, as in
 * PostgreSQL); numerics are sign, exponent and digit bytes. Throws CodecError on a value of the wrong JS type.
 * `values` may be shorter than `types` (a key of the leading columns, for range bounds).
 */
export function encodeKey(prefix: Buffer, types: readonly ColumnType[], values: readonly SqlValue[]): Buffer {
  if (values.length > types.length) throw new CodecError('BadValue', `encodeKey got ${values.length} values for ${types.length} columns`);
  w.reset();
  w.ensure(prefix.length);
  prefix.copy(w.buf, 0);
  w.pos = prefix.length;
  for (let i = 0; i < values.length; i++) writeKeyValue(types[i]!, values[i]!);
  return w.finish();
}

/** One value's encoding (marker included), for building range bounds. */
export function encodeKeyValue(type: ColumnType, value: SqlValue): Buffer {
  w.reset();
  writeKeyValue(type, value);
  return w.finish();
}

function writeKeyValue(type: ColumnType, v: SqlValue): void {
  if (v === null) {
    w.ensure(1);
    w.buf[w.pos++] = NULL;
    return;
  }
  checkValue(type, v);
  switch (type) {
    case 'int4':
      return writeInt(INT4, v as number);
    case 'int8':
      return writeInt(INT8, v as number);
    case 'timestamp':
      return writeInt(TIMESTAMP, v as number);
    case 'float4':
      return writeFloat(FLOAT4, v as number);
    case 'float8':
      return writeFloat(FLOAT8, v as number);
    case 'numeric':
      return writeNumericKey(w, decimalOf(v as string));
    case 'bool':
      w.ensure(1);
      w.buf[w.pos++] = v ? TRUE : FALSE;
      return;
    case 'text':
      return writeText(v as string);
    case 'bytea':
      return writeBytes(v as Uint8Array);
  }
}

function writeInt(marker: number, v: number): void {
  w.ensure(9);
  const buf = w.buf;
  const p = w.pos;
  const hi = Math.floor(v / TWO32);
  const lo = v - hi * TWO32;
  buf[p] = marker;
  buf.writeUInt32BE((hi ^ 0x80000000) >>> 0, p + 1);
  buf.writeUInt32BE(lo, p + 5);
  w.pos = p + 9;
}

function writeFloat(marker: number, v: number): void {
  w.ensure(9);
  const buf = w.buf;
  const p = w.pos;
  buf[p] = marker;
  if (v !== v) {
    // One NaN, above +Infinity: the transform of the canonical quiet NaN 0x7FF8….
    buf[p + 1] = 0xff;
    buf[p + 2] = 0xf8;
    buf.fill(0, p + 3, p + 9);
  } else {
    buf.writeDoubleBE(v === 0 ? 0 : v, p + 1);
    if (buf[p + 1]! & 0x80) for (let i = p + 1; i < p + 9; i++) buf[i] = ~buf[i]! & 0xff;
    else buf[p + 1]! ^= 0x80;
  }
  w.pos = p + 9;
}

function writeText(s: string): void {
  w.ensure(1 + s.length * 3 + 2);
  w.buf[w.pos++] = TEXT;
  if (s.indexOf('\0') < 0) {
    w.pos += w.buf.write(s, w.pos);
  } else {
    const parts = s.split('\0');
    w.ensure(2 * parts.length);
    for (let i = 0; i < parts.length; i++) {
      if (i > 0) {
        w.buf[w.pos++] = 0x00;
        w.buf[w.pos++] = 0xff;
      }
      w.pos += w.buf.write(parts[i]!, w.pos);
    }
  }
  w.buf[w.pos++] = 0x00;
  w.buf[w.pos++] = 0x01;
}

function writeBytes(b: Uint8Array): void {
  w.ensure(1 + b.length + 2);
  w.buf[w.pos++] = BYTEA;
  let from = 0;
  let z = b.indexOf(0);
  if (z >= 0) {
    let zeros = 0;
    for (let i = z; i < b.length; i++) if (b[i] === 0) zeros++;
    w.ensure(b.length + zeros + 2);
    while (z >= 0) {
      w.buf.set(b.subarray(from, z), w.pos);
      w.pos += z - from;
      w.buf[w.pos++] = 0x00;
      w.buf[w.pos++] = 0xff;
      from = z + 1;
      z = b.indexOf(0, from);
    }
  }
  w.buf.set(from === 0 ? b : b.subarray(from), w.pos);
  w.pos += b.length - from;
  w.buf[w.pos++] = 0x00;
  w.buf[w.pos++] = 0x01;
}

// Decoding. `cursor.pos` is where the last decoded value ended (one object, reused, instead of one per value).
const cursor = { pos: 0 };

function corrupt(what: string): CodecError {
  return new CodecError('Corrupt', `corrupt key: ${what}`);
}

/** Decodes `types.length` values starting at `offset`; numerics come back normalized (no trailing zeros). */
export function decodeKey(buf: Buffer, offset: number, types: readonly ColumnType[]): { values: SqlValue[]; end: number } {
  if (!Number.isInteger(offset) || offset < 0 || offset > buf.length) throw corrupt(`offset ${offset} outside the key`);
  const values: SqlValue[] = new Array(types.length);
  let p = offset;
  for (let i = 0; i < types.length; i++) {
    values[i] = readKeyValue(buf, p, types[i]!);
    p = cursor.pos;
  }
  return { values, end: p };
}

function readKeyValue(buf: Buffer, p: number, type: ColumnType): SqlValue {
  const len = buf.length;
  if (p >= len) throw corrupt(`truncated before a ${type} value`);
  const m = buf[p++]!;
  if (m === NULL) {
    cursor.pos = p;
    return null;
  }
  switch (type) {
    case 'int4':
    case 'int8':
    case 'timestamp': {
      if (m !== (type === 'int4' ? INT4 : type === 'int8' ? INT8 : TIMESTAMP)) throw badMarker(type, m);
      if (p + 8 > len) throw corrupt(`truncated ${type}`);
      const hi = (buf.readUInt32BE(p) ^ 0x80000000) | 0;
      const lo = buf.readUInt32BE(p + 4);
      cursor.pos = p + 8;
      if (type === 'int4') {
        if (hi === 0 ? lo > INT4_MAX : hi !== -1 || lo < TWO32 + INT4_MIN) throw corrupt('int4 out of range');
      } else if (hi < -0x200000 || hi > 0x1fffff || (hi === -0x200000 && lo === 0)) throw corrupt(`${type} out of range`);
      return hi * TWO32 + lo;
    }
    case 'float4':
    case 'float8': {
      if (m !== (type === 'float4' ? FLOAT4 : FLOAT8)) throw badMarker(type, m);
      if (p + 8 > len) throw corrupt(`truncated ${type}`);
      cursor.pos = p + 8;
      return readFloat(buf, p, type);
    }
    case 'numeric':
      if (m !== NUMERIC_NEG && m !== NUMERIC_ZERO && m !== NUMERIC_POS) throw badMarker(type, m);
      return readNumericKey(buf, p, m, cursor);
    case 'bool':
      if (m !== FALSE && m !== TRUE) throw badMarker(type, m);
      cursor.pos = p;
      return m === TRUE;
    case 'text': {
      if (m !== TEXT) throw badMarker(type, m);
      const b = readEscaped(buf, p);
      if (b === undefined) {
        // No escaped NUL: the bytes are in place.
        const end = cursor.pos - 2;
        if (!isAsciiOrUtf8(buf, p, end)) throw corrupt('text is not UTF-8');
        return buf.toString('utf8', p, end);
      }
      if (!isUtf8(b)) throw corrupt('text is not UTF-8');
      return b.toString('utf8');
    }
    case 'bytea': {
      if (m !== BYTEA) throw badMarker(type, m);
      const b = readEscaped(buf, p);
      return b ?? Buffer.from(buf.subarray(p, cursor.pos - 2));
    }
    default:
      throw new CodecError('BadValue', `unknown column type ${JSON.stringify(type)}`);
  }
}

function isAsciiOrUtf8(buf: Buffer, start: number, end: number): boolean {
  if (end - start < 32) {
    let i = start;
    while (i < end && buf[i]! < 0x80) i++;
    if (i === end) return true;
  }
  return isUtf8(buf.subarray(start, end));
}

/**
 * Reads an escaped byte string from `p`; sets cursor.pos past its terminator. Returns undefined when it holds no
 * escaped 0x00 (the caller then reads buf[p, cursor.pos − 2) in place), else the unescaped bytes.
 */
function readEscaped(buf: Buffer, p: number): Buffer | undefined {
  let z = buf.indexOf(0, p);
  if (z < 0 || z + 1 >= buf.length) throw corrupt('unterminated string');
  if (buf[z + 1] === 0x01) {
    cursor.pos = z + 2;
    return undefined;
  }
  const parts: Buffer[] = [];
  let size = 0;
  while (true) {
    if (z < 0 || z + 1 >= buf.length) throw corrupt('unterminated string');
    const e = buf[z + 1];
    if (e === 0x01) {
      parts.push(buf.subarray(p, z));
      size += z - p;
      cursor.pos = z + 2;
      return Buffer.concat(parts, size);
    }
    if (e !== 0xff) throw corrupt(`bad escape 0x00 0x${e!.toString(16).padStart(2, '0')}`);
    parts.push(buf.subarray(p, z + 1)); // the data up to and including the 0x00
    size += z + 1 - p;
    p = z + 2;
    z = buf.indexOf(0, p);
  }
}

const f64 = Buffer.alloc(8);

function readFloat(buf: Buffer, p: number, type: 'float4' | 'float8'): number {
  if (buf[p]! & 0x80) {
    buf.copy(f64, 0, p, p + 8);
    f64[0]! ^= 0x80;
  } else for (let i = 0; i < 8; i++) f64[i] = ~buf[p + i]! & 0xff;
  const v = f64.readDoubleBE(0);
  if (v !== v) {
    if (f64[0] !== 0x7f || f64[1] !== 0xf8 || f64.readUInt32BE(2) !== 0 || f64.readUInt16BE(6) !== 0) throw corrupt('non-canonical NaN');
  } else if (Object.is(v, -0)) throw corrupt('negative zero');
  else if (type === 'float4' && Number.isFinite(v) && !Number.isFinite(Math.fround(v))) throw corrupt('float4 out of range');
  return v;
}

function badMarker(type: ColumnType, m: number): CodecError {
  return corrupt(`marker 0x${m.toString(16).padStart(2, '0')} is not a ${type} marker`);
}

/**
 * The least key greater than every key that starts with `prefix` (for exclusive upper bounds): trailing 0xFF bytes
 * dropped, the last other byte incremented. A prefix of only 0xFF bytes (or none) has no such key: the result is
 * then empty, meaning "no upper bound".
 */
export function prefixEnd(prefix: Buffer): Buffer {
  let n = prefix.length;
  while (n > 0 && prefix[n - 1] === 0xff) n--;
  const out = Buffer.allocUnsafe(n);
  if (n === 0) return out;
  prefix.copy(out, 0, 0, n);
  out[n - 1]!++;
  return out;
}

/** A readable form, e.g. `/t42/i0/'meter-7'/1732600800000000` (types known) or hex groups (unknown). */
export function debugKey(key: Buffer, types?: readonly ColumnType[]): string {
  if (key.length < PREFIX_LEN) return key.length === 0 ? '/' : `/${key.toString('hex')}`;
  let s = `/t${key.readUInt32BE(0)}/i${key.readUInt16BE(4)}`;
  let p = PREFIX_LEN;
  if (types) {
    for (const t of types) {
      if (p >= key.length) break;
      try {
        s += '/' + formatValue(t, readKeyValue(key, p, t));
        p = cursor.pos;
      } catch {
        return `${s}/?${key.toString('hex', p)}`;
      }
    }
    return p < key.length ? `${s}/+${key.toString('hex', p)}` : s;
  }
  // Types unknown: one hex group per value, split where the self-describing markers say values end.
  while (p < key.length) {
    const t = MARKER_TYPES.get(key[p]!);
    let end = key.length;
    if (t !== undefined) {
      try {
        readKeyValue(key, p, t);
        end = cursor.pos;
      } catch {
        end = key.length;
      }
    }
    s += '/' + key.toString('hex', p, end);
    p = end;
  }
  return s;
}

const MARKER_TYPES = new Map<number, ColumnType>([
  [INT4, 'int4'],
  [INT8, 'int8'],
  [TIMESTAMP, 'timestamp'],
  [FLOAT4, 'float4'],
  [FLOAT8, 'float8'],
  [NUMERIC_NEG, 'numeric'],
  [NUMERIC_ZERO, 'numeric'],
  [NUMERIC_POS, 'numeric'],
  [FALSE, 'bool'],
  [TRUE, 'bool'],
  [TEXT, 'text'],
  [BYTEA, 'bytea'],
  [NULL, 'int4'],
]);

function formatValue(type: ColumnType, v: SqlValue): string {
  if (v === null) return 'NULL';
  if (type === 'text') return `'${quoteText(v as string)}'`;
  if (type === 'bytea') return `'\\x${(v as Buffer).toString('hex')}'`;
  return String(v);
}

/** Backslash before quote and backslash; control characters as \xNN. */
function quoteText(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.charCodeAt(0);
    if (ch === "'" || ch === '\\') out += '\\' + ch;
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out;
}

/** Compares two values of one type in the same order as their key encodings (NULL last). */
export function compareValues(type: ColumnType, a: SqlValue, b: SqlValue): number {
  if (a === null || b === null) return a === null ? (b === null ? 0 : 1) : -1;
  checkValue(type, a);
  checkValue(type, b);
  switch (type) {
    case 'int4':
    case 'int8':
    case 'timestamp':
    case 'float4':
    case 'float8': {
      const x = a as number;
      const y = b as number;
      if (x !== x || y !== y) return x !== x ? (y !== y ? 0 : 1) : -1;
      return x < y ? -1 : x > y ? 1 : 0;
    }
    case 'numeric':
      return compareDecimal(decimalOf(a as string), decimalOf(b as string));
    case 'bool':
      return a === b ? 0 : a ? 1 : -1;
    case 'text':
      return compareText(a as string, b as string);
    case 'bytea':
      return Math.sign(Buffer.compare(a as Uint8Array, b as Uint8Array));
  }
}

/** Code point order (= UTF-8 byte order), not JavaScript's UTF-16 code unit order. */
function compareText(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      // Surrogates (code points ≥ U+10000) after U+E000…U+FFFF.
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x < y ? -1 : 1;
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

/** '0012.500' → '12.5', '-0.0' → '0'; throws CodecError on a string that is not a decimal number. */
export function normalizeNumeric(s: string): string {
  if (typeof s !== 'string') throw new CodecError('BadValue', `numeric expects a decimal number string, got ${typeof s}`);
  return formatDecimal(decimalOf(s));
}
