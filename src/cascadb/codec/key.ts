import type { ColumnType, SqlValue } from './types.js';

/** The prefix of every key of one index of one table: u32 BE table id ‖ u16 BE index id (0 = primary key). */
export declare function keyPrefix(tableId: number, indexId: number): Buffer;
/**
 * prefix ‖ encoded values. Each encoded value starts with a marker byte (NULL's marker is greater than every
 * non-NULL marker) and is self-delimiting, so a key of the first n columns is a byte prefix of every longer key
 * that starts with the same values, and byte order = (value order of column 1, then column 2, …).
 * Strings and bytea use escaped groups (0x00 → 0x00 0xFF, terminated by 0x00 0x01); integers and timestamps are
 * 8-byte big-endian with the sign bit flipped; floats are IEEE-754 bits transformed for order (NaN greatest, as in
 * PostgreSQL); numerics are sign, exponent and digit bytes. Throws CodecError on a value of the wrong JS type.
 */
export declare function encodeKey(prefix: Buffer, types: readonly ColumnType[], values: readonly SqlValue[]): Buffer;
/** One value's encoding (marker included), for building range bounds. */
export declare function encodeKeyValue(type: ColumnType, value: SqlValue): Buffer;
/** Decodes `types.length` values starting at `offset`; numerics come back normalized (no trailing zeros). */
export declare function decodeKey(buf: Buffer, offset: number, types: readonly ColumnType[]): { values: SqlValue[]; end: number };
/** The least key greater than every key that starts with `prefix` (for exclusive upper bounds). */
export declare function prefixEnd(prefix: Buffer): Buffer;
/** A readable form, e.g. `/t42/i0/'meter-7'/1732600800000000` (types known) or hex groups (unknown). */
export declare function debugKey(key: Buffer, types?: readonly ColumnType[]): string;
/** Compares two values of one type in the same order as their key encodings (NULL last). */
export declare function compareValues(type: ColumnType, a: SqlValue, b: SqlValue): number;
/** '0012.500' → '12.5', '-0.0' → '0'; throws CodecError on a string that is not a decimal number. */
export declare function normalizeNumeric(s: string): string;
