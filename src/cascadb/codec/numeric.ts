// NUMERIC values as PostgreSQL's text form, handled as digit strings (no floating point, no big-number library):
// parsing and normalizing, comparison by value, and the memcomparable key form.
import { CodecError } from './types.js';
import type { Writer } from './writer.js';

/** ±0.digits × 10^exp; `digits` has no leading or trailing zeros, and is '' for zero (then neg = false, exp = 0). */
export interface Decimal {
  neg: boolean;
  exp: number;
  digits: string;
}

const ZERO: Decimal = { neg: false, exp: 0, digits: '' };

/** Parses `[+-]digits[.digits]` (either side of the point may be empty, not both); undefined if it is not one. */
export function parseDecimal(s: string): Decimal | undefined {
  const n = s.length;
  let i = 0;
  let neg = false;
  if (n > 0) {
    const c = s.charCodeAt(0);
    if (c === 45) {
      neg = true;
      i = 1;
    } else if (c === 43) i = 1;
  }
  const intStart = i;
  while (i < n && isDigit(s.charCodeAt(i))) i++;
  const intEnd = i;
  let fracStart = i;
  let fracEnd = i;
  if (i < n && s.charCodeAt(i) === 46) {
    fracStart = ++i;
    while (i < n && isDigit(s.charCodeAt(i))) i++;
    fracEnd = i;
  }
  if (i !== n || (intEnd === intStart && fracEnd === fracStart)) return undefined;

  let p = intStart;
  while (p < intEnd && s.charCodeAt(p) === 48) p++;
  let q = fracEnd;
  while (q > fracStart && s.charCodeAt(q - 1) === 48) q--;
  if (p < intEnd) {
    if (q > fracStart) return { neg, exp: intEnd - p, digits: s.slice(p, intEnd) + s.slice(fracStart, q) };
    let r = intEnd;
    while (s.charCodeAt(r - 1) === 48) r--;
    return { neg, exp: intEnd - p, digits: s.slice(p, r) };
  }
  let f = fracStart;
  while (f < q && s.charCodeAt(f) === 48) f++;
  if (f === q) return ZERO;
  return { neg, exp: fracStart - f, digits: s.slice(f, q) };
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

export function formatDecimal(d: Decimal): string {
  const { digits, exp } = d;
  if (digits === '') return '0';
  let s: string;
  if (exp <= 0) s = '0.' + '0'.repeat(-exp) + digits;
  else if (exp >= digits.length) s = digits + '0'.repeat(exp - digits.length);
  else s = digits.slice(0, exp) + '.' + digits.slice(exp);
  return d.neg ? '-' + s : s;
}

export function compareDecimal(a: Decimal, b: Decimal): number {
  const sa = a.digits === '' ? 0 : a.neg ? -1 : 1;
  const sb = b.digits === '' ? 0 : b.neg ? -1 : 1;
  if (sa !== sb) return sa < sb ? -1 : 1;
  if (sa === 0) return 0;
  const c = a.exp !== b.exp ? (a.exp < b.exp ? -1 : 1) : a.digits < b.digits ? -1 : a.digits > b.digits ? 1 : 0;
  return sa < 0 && c !== 0 ? -c : c;
}

// PostgreSQL's limits: up to 131072 digits before the decimal point and 16383 after it.
const MAX_INT_DIGITS = 131072;
const MAX_FRAC_DIGITS = 16383;

export function withinLimits(d: Decimal): boolean {
  return d.exp <= MAX_INT_DIGITS && d.digits.length - d.exp <= MAX_FRAC_DIGITS;
}

/** Parses a numeric value; throws CodecError('BadValue') if it is not a decimal number, 'OutOfRange' beyond PostgreSQL's limits. */
export function decimalOf(v: string): Decimal {
  const d = parseDecimal(v);
  if (d === undefined) throw new CodecError('BadValue', `numeric expects a decimal number string, got ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`);
  if (!withinLimits(d)) throw new CodecError('OutOfRange', `numeric value out of range (at most ${MAX_INT_DIGITS} digits before the point and ${MAX_FRAC_DIGITS} after)`);
  return d;
}

// Key form. Markers: negative < zero < positive. The body of a non-zero value is the base-100 exponent E as an
// ordered varint, then the base-100 digits c1…cn of the mantissa (value = 0.c1c2…cn × 100^E, c1 ≠ 0, cn ≠ 0),
// each as 2c+1 except the last as 2c, which makes the digits self-delimiting and longer mantissas greater (as
// CockroachDB's decimal encoding). A negative value's body is the bitwise complement of its magnitude's body.
export const NUMERIC_NEG = 0x15;
export const NUMERIC_ZERO = 0x16;
export const NUMERIC_POS = 0x17;

export function writeNumericKey(w: Writer, d: Decimal): void {
  if (d.digits === '') {
    w.ensure(1);
    w.buf[w.pos++] = NUMERIC_ZERO;
    return;
  }
  let ds = d.digits;
  let e = d.exp;
  if (e % 2 !== 0) {
    ds = '0' + ds;
    e += 1;
  }
  if (ds.length % 2 !== 0) ds += '0';
  const pairs = ds.length / 2;
  w.ensure(1 + 9 + pairs);
  const buf = w.buf;
  buf[w.pos++] = d.neg ? NUMERIC_NEG : NUMERIC_POS;
  const start = w.pos;
  writeOrderedInt(w, e / 2);
  let p = w.pos;
  for (let k = 0; k < pairs; k++) {
    const c = (ds.charCodeAt(2 * k) - 48) * 10 + (ds.charCodeAt(2 * k + 1) - 48);
    buf[p++] = k === pairs - 1 ? 2 * c : 2 * c + 1;
  }
  w.pos = p;
  if (d.neg) for (let i = start; i < p; i++) buf[i] = ~buf[i]! & 0xff;
}

/** Signed integers, order-preserving: one byte for -120…119, else a length byte and big-endian bytes. */
function writeOrderedInt(w: Writer, v: number): void {
  const buf = w.buf;
  if (v >= -120 && v <= 119) {
    buf[w.pos++] = 0x80 + v;
    return;
  }
  const neg = v < 0;
  const u = neg ? -v - 121 : v - 120;
  let n = 1;
  while (n < 6 && u >= 256 ** n) n++;
  if (u >= 256 ** n) throw new CodecError('OutOfRange', 'numeric exponent out of range');
  buf[w.pos++] = neg ? 0x08 - n : 0xf7 + n;
  let t = neg ? 256 ** n - 1 - u : u;
  for (let i = n - 1; i >= 0; i--) {
    buf[w.pos + i] = t % 256;
    t = Math.floor(t / 256);
  }
  w.pos += n;
}

const PAIRS: string[] = Array.from({ length: 100 }, (_, i) => (i < 10 ? '0' : '') + String(i));

/** Reads a numeric key body after its marker; `end.pos` is set past it. Throws CodecError('Corrupt'). */
export function readNumericKey(buf: Buffer, p: number, marker: number, end: { pos: number }): string {
  if (marker === NUMERIC_ZERO) {
    end.pos = p;
    return '0';
  }
  const neg = marker === NUMERIC_NEG;
  const inv = neg ? 0xff : 0;
  const len = buf.length;
  if (p >= len) throw corrupt('truncated numeric');
  // Exponent.
  const b0 = buf[p++]! ^ inv;
  let e: number;
  if (b0 >= 0x08 && b0 <= 0xf7) e = b0 - 0x80;
  else {
    const n = b0 > 0xf7 ? b0 - 0xf7 : 0x08 - b0;
    if (n > 6 || p + n > len) throw corrupt('bad numeric exponent');
    let t = 0;
    for (let i = 0; i < n; i++) t = t * 256 + (buf[p + i]! ^ inv);
    if (n > 1 && (buf[p]! ^ inv) === (b0 > 0xf7 ? 0 : 0xff)) throw corrupt('non-canonical numeric exponent');
    p += n;
    e = b0 > 0xf7 ? t + 120 : -(256 ** n - 1 - t) - 121;
  }
  // Mantissa.
  let ds = '';
  let first = true;
  while (true) {
    if (p >= len) throw corrupt('truncated numeric');
    const b = buf[p++]! ^ inv;
    const last = (b & 1) === 0;
    const c = last ? b / 2 : (b - 1) / 2;
    if (c > 99 || (first && c === 0) || (last && c === 0)) throw corrupt('bad numeric digit');
    first = false;
    ds += PAIRS[c]!;
    if (last) break;
  }
  end.pos = p;
  let exp = 2 * e;
  if (ds.charCodeAt(0) === 48) {
    ds = ds.slice(1);
    exp -= 1;
  }
  if (ds.charCodeAt(ds.length - 1) === 48) ds = ds.slice(0, -1);
  const d = { neg, exp, digits: ds };
  if (!withinLimits(d)) throw corrupt('numeric out of range');
  return formatDecimal(d);
}

function corrupt(what: string): CodecError {
  return new CodecError('Corrupt', `corrupt key: ${what}`);
}
