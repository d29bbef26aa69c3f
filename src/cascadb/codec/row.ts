import type { ColumnType, SqlValue } from './types.js';

/**
 * A compact tuple: a format byte, a NULL bitmap, then each non-NULL value in column order
 * (int4/int8/timestamp as zig-zag varints, floats as 8-byte doubles, bool 1 byte, text/numeric/bytea
 * varint length + bytes). Numerics keep their text form exactly (trailing zeros included).
 */
export declare function encodeRow(types: readonly ColumnType[], values: readonly SqlValue[]): Buffer;
/** Throws CodecError('Corrupt') on a malformed buffer, never returns garbage. */
export declare function decodeRow(types: readonly ColumnType[], buf: Buffer): SqlValue[];
