// SQL types in the engine: PostgreSQL's text input and output for each, OIDs for the wire, coercions.
import { Decimal } from 'decimal.js';
import type { ColumnType, SqlValue } from '../codec/index.js';
import { PgError } from '../server/backend.js';

/** Expression types: the stored column types plus 'unknown' (an untyped literal, a NULL or a parameter). */
export type SqlType = ColumnType | 'unknown';

export const OID: Record<string, number> = {
  bool: 16,
  bytea: 17,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  oid: 26,
  float4: 700,
  float8: 701,
  unknown: 705,
  varchar: 1043,
  bpchar: 1042,
  timestamp: 1114,
  timestamptz: 1184,
  numeric: 1700,
  name: 19,
  char: 18,
  regclass: 2205,
};

export const TYPE_SIZE: Record<string, number> = { bool: 1, int2: 2, int4: 4, int8: 8, float4: 4, float8: 8, timestamp: 8, oid: 4, name: 64, char: 1 };

/** PostgreSQL's name for a column's declared type (format_type). */
export function formatType(type: ColumnType, pgType: string, typmod: number): string {
  switch (pgType) {
    case 'varchar':
      return typmod >= 0 ? `character varying(${typmod})` : 'character varying';
    case 'numeric':
      return typmod >= 0 ? `numeric(${typmod >> 16},${typmod & 0xffff})` : 'numeric';
    case 'int4':
      return 'integer';
    case 'int8':
      return 'bigint';
    case 'float4':
      return 'real';
    case 'float8':
      return 'double precision';
    case 'bool':
      return 'boolean';
    case 'timestamp':
      return 'timestamp without time zone';
    default:
      return type === 'text' ? 'text' : type;
  }
}

Decimal.set({ precision: 1000, rounding: Decimal.ROUND_HALF_UP, toExpNeg: -1e9, toExpPos: 1e9 });
export { Decimal };

const INT4_MIN = -2147483648;
const INT4_MAX = 2147483647;
const INT8_LIMIT = Number.MAX_SAFE_INTEGER;

export function invalidInput(type: string, text: string): PgError {
  const name = type === 'int4' ? 'integer' : type === 'int8' ? 'bigint' : type === 'float8' ? 'double precision' : type === 'float4' ? 'real' : type === 'bool' ? 'boolean' : type === 'timestamp' ? 'timestamp' : type;
  return new PgError('22P02', `invalid input syntax for type ${name}: "${text}"`);
}

export function outOfRange(type: SqlType): PgError {
  if (type === 'int4') return new PgError('22003', 'integer out of range');
  if (type === 'int8') return new PgError('22003', 'bigint out of range (securegrid keeps int8 within ±(2^53−1))');
  return new PgError('22003', `value out of range for type ${type}`);
}

export function checkInt(type: 'int4' | 'int8', v: number): number {
  if (!Number.isFinite(v)) throw outOfRange(type);
  if (type === 'int4' ? v < INT4_MIN || v > INT4_MAX : Math.abs(v) > INT8_LIMIT) throw outOfRange(type);
  return v === 0 ? 0 : v;
}

const DECIMAL_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** Canonical numeric text as PostgreSQL prints it (no exponent; scale as given by the input). */
export function numericText(d: Decimal, scale?: number): string {
  const s = scale === undefined ? d.toFixed() : d.toFixed(scale);
  return s === '-0' || /^-0\.0*$/.test(s) ? s.slice(1) : s;
}

/** The display scale of a numeric text (digits after the point). */
export function numericScale(s: string): number {
  const i = s.indexOf('.');
  return i < 0 ? 0 : s.length - i - 1;
}

export function parseNumeric(text: string): string {
  const t = text.trim();
  if (!DECIMAL_RE.test(t)) throw invalidInput('numeric', text);
  const d = new Decimal(t);
  if (/[eE]/.test(t)) return numericText(d);
  // Keep the input's scale ('1.50' stays '1.50'), drop a leading '+' and leading zeros.
  return numericText(d, numericScale(t));
}

/** Applies NUMERIC(p, s): rounds to s digits, errors when the integer part needs more than p - s digits. */
export function applyNumericTypmod(v: string, typmod: number): string {
  if (typmod < 0) return v;
  const p = typmod >> 16;
  const s = typmod & 0xffff;
  const d = new Decimal(v).toDecimalPlaces(s, Decimal.ROUND_HALF_UP);
  const intDigits = d.abs().trunc().isZero() ? 0 : d.abs().trunc().toFixed().length;
  if (intDigits > p - s) {
    throw new PgError('22003', 'numeric field overflow', { detail: `A field with precision ${p}, scale ${s} must round to an absolute value less than 10^${p - s}.` });
  }
  return numericText(d, s);
}

const TS_RE = /^\s*(\d{4,})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?\s*$/i;

export function parseTimestamp(text: string): number {
  const m = TS_RE.exec(text);
  if (!m) {
    const t = text.trim().toLowerCase();
    if (t === 'epoch') return 0;
    throw invalidInput('timestamp', text);
  }
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = ''] = m;
  const month = Number(mo);
  const day = Number(d);
  if (month < 1 || month > 12 || day < 1 || day > 31 || Number(h) > 24 || Number(mi) > 59 || Number(s) > 60) {
    throw new PgError('22008', `date/time field value out of range: "${text}"`);
  }
  const ms = Date.UTC(Number(y), month - 1, day, Number(h), Number(mi), Number(s));
  const check = new Date(ms);
  if (check.getUTCDate() !== day) throw new PgError('22008', `date/time field value out of range: "${text}"`);
  const micros = Number((frac + '000000').slice(0, 6));
  return ms * 1000 + micros;
}

export function formatTimestamp(us: number): string {
  const seconds = Math.floor(us / 1_000_000);
  const frac = us - seconds * 1_000_000; // microseconds within the second, never negative
  const d = new Date(seconds * 1000);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  let out = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  if (frac > 0) out += `.${String(frac).padStart(6, '0').replace(/0+$/, '')}`;
  return out;
}

export function parseBool(text: string): boolean {
  const t = text.trim().toLowerCase();
  if (t.length > 0) {
    if ('true'.startsWith(t) || 'yes'.startsWith(t) || t === 'on' || t === '1') return true;
    if ('false'.startsWith(t) || 'no'.startsWith(t) || t === 'off' || t === '0') return false;
  }
  throw invalidInput('bool', text);
}

export function parseBytea(text: string): Buffer {
  if (text.startsWith('\\x')) {
    const hex = text.slice(2).replace(/\s/g, '');
    if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length % 2) throw new PgError('22P02', `invalid hexadecimal data: "${text}"`);
    return Buffer.from(hex, 'hex');
  }
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c) {
      if (text[i + 1] === '\\') {
        out.push(0x5c);
        i++;
      } else if (/^[0-3][0-7]{2}$/.test(text.slice(i + 1, i + 4))) {
        out.push(parseInt(text.slice(i + 1, i + 4), 8));
        i += 3;
      } else throw new PgError('22P02', 'invalid input syntax for type bytea');
    } else out.push(...Buffer.from(text[i]!, 'utf8'));
  }
  return Buffer.from(out);
}

export function parseFloatText(type: 'float4' | 'float8', text: string): number {
  const t = text.trim();
  const l = t.toLowerCase();
  let v: number;
  if (l === 'nan') v = NaN;
  else if (l === 'infinity' || l === '+infinity' || l === 'inf') v = Infinity;
  else if (l === '-infinity' || l === '-inf') v = -Infinity;
  else if (DECIMAL_RE.test(t)) v = Number(t);
  else throw invalidInput(type, text);
  if (!Number.isFinite(v) && !/inf|nan/i.test(t)) throw new PgError('22003', `"${text}" is out of range for type ${type === 'float8' ? 'double precision' : 'real'}`);
  return type === 'float4' ? Math.fround(v) : v;
}

/** A value from its PostgreSQL text form (parameters, casts from text, defaults). */
export function fromText(type: SqlType, text: string): SqlValue {
  switch (type) {
    case 'int4':
    case 'int8': {
      const t = text.trim();
      if (!/^[+-]?\d+$/.test(t)) throw invalidInput(type, text);
      return checkInt(type, Number(t));
    }
    case 'float4':
    case 'float8':
      return parseFloatText(type, text);
    case 'numeric':
      return parseNumeric(text);
    case 'bool':
      return parseBool(text);
    case 'timestamp':
      return parseTimestamp(text);
    case 'bytea':
      return parseBytea(text);
    default:
      return text;
  }
}

/** Shortest text that reads back as the same float4 (PostgreSQL prints float4 this way). */
function float4Text(v: number): string {
  for (let p = 1; p <= 9; p++) {
    const s = v.toPrecision(p);
    if (Math.fround(Number(s)) === v) return pgFloatFormat(Number(s), p, 6);
  }
  return pgFloatFormat(v, 9, 6);
}

/** PostgreSQL's float output: shortest round-trip digits; exponent form below 1e-4 or from 1e15 (float8) up. */
function pgFloatFormat(v: number, digits?: number, maxFixedExp = 15): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '-Infinity';
  if (v === 0) return Object.is(v, -0) ? '-0' : '0';
  const av = Math.abs(v);
  // Fixed notation in this range, where JavaScript's shortest form is PostgreSQL's too.
  if (digits === undefined && av >= 1e-4 && av < 1e15) return String(v);
  const sig = digits ?? shortestDigits(v);
  // Exponent form below 1e-4 and from 1e15 (float8) or 1e6 (float4) up, whatever the number of digits.
  const [mant, e] = v.toExponential(Math.max(0, sig - 1)).split('e') as [string, string];
  const en = Number(e);
  if (en < -4 || en >= maxFixedExp) {
    return `${mant.includes('.') ? mant.replace(/\.?0+$/, '') : mant}e${en < 0 ? '-' : '+'}${String(Math.abs(en)).padStart(2, '0')}`;
  }
  return String(v);
}

function shortestDigits(v: number): number {
  const s = v.toExponential().split('e')[0]!.replace('-', '').replace('.', '');
  return s.length;
}

/** PostgreSQL text output of a value of a type. */
export function toText(type: SqlType, v: SqlValue): string | null {
  if (v === null) return null;
  switch (type) {
    case 'bool':
      return v ? 't' : 'f';
    case 'float8':
      return pgFloatFormat(v as number);
    case 'float4':
      return float4Text(v as number);
    case 'timestamp':
      return formatTimestamp(v as number);
    case 'bytea':
      return `\\x${(v as Buffer).toString('hex')}`;
    default:
      if (typeof v === 'boolean') return v ? 't' : 'f';
      if (Buffer.isBuffer(v)) return `\\x${v.toString('hex')}`;
      return String(v);
  }
}

/** JSON form for POST /v1/sql: numbers stay numbers where exact, numerics and big values stay text. */
export function toJson(type: SqlType, v: SqlValue): unknown {
  if (v === null) return null;
  switch (type) {
    case 'int4':
    case 'int8':
    case 'bool':
      return v;
    case 'float4':
      // The float4's own shortest decimal (1.1, not 1.100000023841858), as PostgreSQL prints it.
      return Number.isFinite(v as number) ? Number(toText(type, v)) : toText(type, v);
    case 'float8':
      return Number.isFinite(v as number) ? v : toText(type, v);
    case 'timestamp':
      return formatTimestamp(v as number);
    case 'bytea':
      return `\\x${(v as Buffer).toString('hex')}`;
    default:
      return toText(type, v);
  }
}

export function typeOid(type: SqlType, pgType?: string): number {
  if (pgType === 'varchar') return OID.varchar!;
  // Catalog columns: oid (kept as int8), name and "char" (kept as text).
  if (pgType === 'oid' || pgType === 'name' || pgType === 'char') return OID[pgType]!;
  if (type === 'unknown') return OID.text!;
  return OID[type] ?? OID.text!;
}

/** Converts a value to another type, as an explicit or implicit cast does. */
export function castValue(v: SqlValue, from: SqlType, to: SqlType): SqlValue {
  if (v === null || from === to) return v;
  // boolean → text is 'true'/'false' (boolout's 't'/'f' is the wire format, not the cast).
  if (to === 'text') return typeof v === 'boolean' ? (v ? 'true' : 'false') : toText(from, v);
  if (from === 'text' || from === 'unknown' || typeof v === 'string') {
    if (from === 'numeric' && (to === 'int4' || to === 'int8')) return checkInt(to, new Decimal(v as string).toDecimalPlaces(0, Decimal.ROUND_HALF_UP).toNumber());
    if (from === 'numeric' && (to === 'float4' || to === 'float8')) return to === 'float4' ? Math.fround(Number(v)) : Number(v);
    return fromText(to, String(v));
  }
  switch (to) {
    case 'int4':
    case 'int8':
      if (typeof v === 'boolean') return v ? 1 : 0;
      if (typeof v === 'number') {
        if (Number.isNaN(v)) throw outOfRange(to);
        // PostgreSQL rounds floats to the nearest integer, halves away from zero… but rint() rounds half to even.
        const r = from === 'float4' || from === 'float8' ? roundHalfEven(v) : v;
        return checkInt(to, r);
      }
      break;
    case 'float4':
    case 'float8':
      if (typeof v === 'number') return to === 'float4' ? Math.fround(v) : v;
      break;
    case 'numeric':
      if (typeof v === 'number') {
        if (!Number.isFinite(v)) return Number.isNaN(v) ? 'NaN' : (() => { throw new PgError('0A000', 'cannot convert infinity to numeric'); })();
        return from === 'float4' ? numericText(new Decimal(float4Text(v))) : numericText(new Decimal(from === 'float8' ? pgFloatFormat(v) : v));
      }
      break;
    case 'bool':
      if (typeof v === 'number' && (from === 'int4' || from === 'int8')) return v !== 0;
      break;
    case 'timestamp':
      break;
    case 'bytea':
      break;
  }
  throw new PgError('42846', `cannot cast type ${from} to ${to}`);
}

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Resolves a parsed type name (libpg-query TypeName) to a column type, PostgreSQL type name and typmod. */
export function resolveTypeName(names: string[], typmods: number[]): { type: ColumnType; pgType: string; typmod: number } {
  const n = names[names.length - 1]!.toLowerCase();
  switch (n) {
    case 'int4':
    case 'int':
    case 'integer':
    case 'int2':
    case 'smallint':
      return { type: 'int4', pgType: 'int4', typmod: -1 };
    case 'int8':
    case 'bigint':
      return { type: 'int8', pgType: 'int8', typmod: -1 };
    case 'float4':
    case 'real':
      return { type: 'float4', pgType: 'float4', typmod: -1 };
    case 'float8':
    case 'double precision':
      return { type: 'float8', pgType: 'float8', typmod: -1 };
    case 'numeric':
    case 'decimal': {
      if (typmods.length === 0) return { type: 'numeric', pgType: 'numeric', typmod: -1 };
      const p = typmods[0]!;
      const s = typmods[1] ?? 0;
      if (p < 1 || p > 1000) throw new PgError('22023', `NUMERIC precision ${p} must be between 1 and 1000`);
      if (s < 0 || s > p) throw new PgError('22023', `NUMERIC scale ${s} must be between 0 and precision ${p}`);
      return { type: 'numeric', pgType: 'numeric', typmod: (p << 16) | s };
    }
    case 'text':
      return { type: 'text', pgType: 'text', typmod: -1 };
    case 'varchar':
    case 'character varying':
      return { type: 'text', pgType: 'varchar', typmod: typmods.length ? typmods[0]! : -1 };
    case 'bool':
    case 'boolean':
      return { type: 'bool', pgType: 'bool', typmod: -1 };
    case 'timestamp':
      return { type: 'timestamp', pgType: 'timestamp', typmod: -1 };
    case 'bytea':
      return { type: 'bytea', pgType: 'bytea', typmod: -1 };
    default:
      throw new PgError('0A000', `type "${names.join('.')}" is not supported by CascaDB (supported: integer, bigint, real, double precision, numeric, text, varchar, boolean, timestamp, bytea)`);
  }
}

/** The result type of arithmetic between two numeric types. */
export function numericResult(a: SqlType, b: SqlType): SqlType {
  const rank = (t: SqlType) => (t === 'int4' ? 1 : t === 'int8' ? 2 : t === 'numeric' ? 3 : t === 'float4' ? 4 : t === 'float8' ? 5 : 0);
  if (a === 'unknown') return b === 'unknown' ? 'numeric' : b;
  if (b === 'unknown') return a;
  if ((a === 'float4' && b === 'float4')) return 'float4';
  const r = Math.max(rank(a), rank(b));
  if (r === 4) return 'float8';
  return (['int4', 'int4', 'int8', 'numeric', 'float8', 'float8'] as SqlType[])[r]!;
}

export function isNumericType(t: SqlType): boolean {
  return t === 'int4' || t === 'int8' || t === 'float4' || t === 'float8' || t === 'numeric';
}

/** PostgreSQL's select_div_scale: the display scale of a numeric quotient. */
export function divScale(a: Decimal, b: Decimal, scaleA: number, scaleB: number): number {
  const weightAndFirst = (d: Decimal): [number, number] => {
    if (d.isZero()) return [0, 0];
    // Base-10000 digits: weight = index of the most significant group, first = that group's value.
    const e = d.abs().e; // decimal exponent of the leading digit
    const weight = Math.floor(e / 4);
    const first = Math.floor(d.abs().div(new Decimal(10000).pow(weight)).toNumber());
    return [weight, first];
  };
  const [w1, f1] = weightAndFirst(a);
  const [w2, f2] = weightAndFirst(b);
  let qweight = w1 - w2;
  if (f1 <= f2) qweight--;
  let rscale = 16 - qweight * 4;
  rscale = Math.max(rscale, scaleA, scaleB, 0);
  return Math.min(rscale, 1000);
}
