// Checks that a JavaScript value fits its column type, shared by the key and row encoders and compareValues.
import { CodecError, type ColumnType, type SqlValue } from './types.js';

export const INT4_MIN = -2147483648;
export const INT4_MAX = 2147483647;
export const INT8_MAX = Number.MAX_SAFE_INTEGER;
const FLOAT4_MAX = 3.4028234663852886e38;

/** Throws CodecError unless `v` (not null) is a valid value of `type`. */
export function checkValue(type: ColumnType, v: SqlValue): void {
  switch (type) {
    case 'int4':
      if (typeof v !== 'number' || !Number.isInteger(v)) throw bad(type, 'an integer number', v);
      if (v < INT4_MIN || v > INT4_MAX) throw range(type, v);
      return;
    case 'int8':
    case 'timestamp':
      if (typeof v !== 'number' || !Number.isInteger(v)) throw bad(type, 'an integer number', v);
      if (v < -INT8_MAX || v > INT8_MAX) throw range(type, v);
      return;
    case 'float4':
      if (typeof v !== 'number') throw bad(type, 'a number', v);
      if (Math.abs(v) > FLOAT4_MAX && Number.isFinite(v) && !Number.isFinite(Math.fround(v))) throw range(type, v);
      return;
    case 'float8':
      if (typeof v !== 'number') throw bad(type, 'a number', v);
      return;
    case 'numeric':
      if (typeof v !== 'string') throw bad(type, 'a decimal number string', v);
      return; // the digits are checked where they are parsed
    case 'text':
      if (typeof v !== 'string') throw bad(type, 'a string', v);
      if (!isWellFormed(v)) throw new CodecError('BadValue', 'text expects a well-formed string, got one with a lone surrogate');
      return;
    case 'bool':
      if (typeof v !== 'boolean') throw bad(type, 'a boolean', v);
      return;
    case 'bytea':
      if (!(v instanceof Uint8Array)) throw bad(type, 'a Buffer', v);
      return;
    default:
      throw new CodecError('BadValue', `unknown column type ${JSON.stringify(type)}`);
  }
}

// String.prototype.isWellFormed is in Node 20 but not in the ES2023 lib typings.
const wellFormed = (String.prototype as unknown as { isWellFormed: (this: string) => boolean }).isWellFormed;
export function isWellFormed(s: string): boolean {
  return wellFormed.call(s);
}

export function describe(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (v === null) return 'null';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return `${typeof v} ${String(v)}`;
  if (Buffer.isBuffer(v)) return `Buffer of ${v.length} bytes`;
  return typeof v;
}

function bad(type: ColumnType, what: string, v: unknown): CodecError {
  return new CodecError('BadValue', `${type} expects ${what}, got ${describe(v)}`);
}

function range(type: ColumnType, v: number): CodecError {
  return new CodecError('OutOfRange', `${type} value ${v} out of range`);
}
