// Column types CascaDB stores, and their JavaScript values.
//   int4, int8   → number (integers; int8 limited to ±(2^53−1), JavaScript's exact range — larger is an error)
//   float4, float8 → number (NaN and ±Infinity allowed; -0 is stored as 0)
//   numeric      → string, PostgreSQL's text form (e.g. '-12.3400'); trailing zeros are kept in rows and
//                  ignored in keys (1.50 and 1.5 are the same key, as they are equal in PostgreSQL)
//   text         → string (TEXT and VARCHAR(n); order = UTF-8 byte order, PostgreSQL's "C" collation)
//   bool         → boolean (false < true)
//   timestamp    → number, microseconds since 1970-01-01 00:00:00 (TIMESTAMP WITHOUT TIME ZONE)
//   bytea        → Buffer
// NULL → null, and sorts after every non-NULL value (PostgreSQL's default NULLS LAST for ascending order).
export type ColumnType = 'int4' | 'int8' | 'float4' | 'float8' | 'numeric' | 'text' | 'bool' | 'timestamp' | 'bytea';
export type SqlValue = null | number | string | boolean | Buffer;
export const COLUMN_TYPES: readonly ColumnType[] = ['int4', 'int8', 'float4', 'float8', 'numeric', 'text', 'bool', 'timestamp', 'bytea'];

export class CodecError extends Error {
  constructor(readonly code: 'BadValue' | 'Corrupt' | 'OutOfRange', message: string) {
    super(message);
  }
}
