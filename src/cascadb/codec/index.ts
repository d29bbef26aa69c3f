// cascadb/codec: how SQL rows become KV pairs. Pure functions, bytes in, values out, no I/O.
// Keys are memcomparable (as TiDB's tablecodec and CockroachDB's encoding): byte order of encoded keys equals
// value order, for every type, for composite keys, for NULLs and for strings that prefix one another.
export type { ColumnType, SqlValue } from './types.js';
export { COLUMN_TYPES, CodecError } from './types.js';
export { keyPrefix, encodeKey, encodeKeyValue, decodeKey, prefixEnd, debugKey, compareValues, normalizeNumeric } from './key.js';
export { encodeRow, decodeRow } from './row.js';
