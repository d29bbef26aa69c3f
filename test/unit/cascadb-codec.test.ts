import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Decimal } from 'decimal.js';
import {
  COLUMN_TYPES,
  CodecError,
  compareValues,
  debugKey,
  decodeKey,
  decodeRow,
  encodeKey,
  encodeKeyValue,
  encodeRow,
  keyPrefix,
  normalizeNumeric,
  prefixEnd,
} from '../../src/cascadb/codec/index.js';
import type { ColumnType, SqlValue } from '../../src/cascadb/codec/index.js';
import type { PGlite } from '@electric-sql/pglite';

const MAX = Number.MAX_SAFE_INTEGER;
// CODEC_RUNS=20000 for a longer fuzz.
const RUNS = Number(process.env.CODEC_RUNS ?? 300);
const P = keyPrefix(42, 0);

// ---------- generators ----------

const digitRun = (max: number) => fc.string({ unit: fc.constantFrom('0', '0', '0', '1', '5', '9', '3', '7'), maxLength: max });
/** Decimal strings in PostgreSQL's text form and looser spellings: signs, leading/trailing zeros, tiny and huge. */
const numericArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom('', '-', '+'), digitRun(35), fc.option(digitRun(35), { nil: undefined })).filter(([, i, f]) => i.length > 0 || (f !== undefined && f.length > 0)).map(([s, i, f]) => (f === undefined ? s + i : `${s}${i}.${f}`)) },
  { weight: 1, arbitrary: fc.integer({ min: -9999, max: 9999 }).map(String) },
  { weight: 1, arbitrary: fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 60 }), fc.integer({ min: 1, max: 999 })).map(([n, z, d]) => `${n ? '-' : ''}0.${'0'.repeat(z)}${d}`) },
  { weight: 1, arbitrary: fc.tuple(fc.boolean(), fc.boolean(), fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 1, max: 99999 })).map(([n, big, z, d]) => `${n ? '-' : ''}${big ? `${d}${'0'.repeat(z)}` : `0.${'0'.repeat(z)}${d}`}`) },
  { weight: 1, arbitrary: fc.constantFrom('0', '-0', '0.000', '-0.0', '.0', '0.', '1', '1.0', '1.50', '-1.5', '10', '100', '99.99', '0.01', '0.1', '-0.1') },
);
const textArb: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.string({ unit: fc.constantFrom('a', 'b', '\0', '\x01', '\x7f', 'é', '\uffff', '\ue000', '\u{10000}', '\u{1F600}', '\u{10FFFF}'), maxLength: 6 }),
);
const byteaArb: fc.Arbitrary<Buffer> = fc.oneof(fc.uint8Array({ maxLength: 12 }), fc.uint8Array({ min: 0, max: 2, maxLength: 5 }), fc.array(fc.constantFrom(0, 1, 0xfe, 0xff), { maxLength: 5 }).map((a) => Uint8Array.from(a))).map((u) => Buffer.from(u));
const int8Arb = fc.oneof(fc.maxSafeInteger(), fc.integer(), fc.integer({ min: -300, max: 300 }), fc.constantFrom(MAX, -MAX, MAX - 1, -MAX + 1, 2 ** 32, -(2 ** 32), 2 ** 32 - 1, -(2 ** 32) + 1, 2 ** 31, -(2 ** 31), 0, -0));

const arbs: Record<ColumnType, fc.Arbitrary<SqlValue>> = {
  int4: fc.oneof(fc.integer(), fc.integer({ min: -300, max: 300 }), fc.constantFrom(2 ** 31 - 1, -(2 ** 31), 0, -1, -0)),
  int8: int8Arb,
  timestamp: fc.oneof(int8Arb, fc.integer({ min: -2208988800000000, max: 4102444800000000 })),
  float4: fc.oneof(fc.float(), fc.constantFrom(NaN, Infinity, -Infinity, 0, -0, 3.4028234663852886e38, -1.401298464324817e-45)),
  float8: fc.oneof(fc.double(), fc.integer({ min: -5, max: 5 }), fc.constantFrom(NaN, Infinity, -Infinity, 0, -0, Number.MIN_VALUE, -Number.MAX_VALUE)),
  numeric: numericArb,
  text: textArb,
  bool: fc.boolean(),
  bytea: byteaArb,
};
const withNull = (t: ColumnType) => fc.option(arbs[t], { nil: null, freq: 6 });
const typeArb = fc.constantFrom(...COLUMN_TYPES);

// ---------- an independent model of value order ----------

function refCompare(type: ColumnType, a: SqlValue, b: SqlValue): number {
  if (a === null || b === null) return a === b ? 0 : a === null ? 1 : -1;
  switch (type) {
    case 'numeric':
      return new Decimal(a as string).cmp(new Decimal(b as string));
    case 'text':
      return Math.sign(Buffer.compare(Buffer.from(a as string, 'utf8'), Buffer.from(b as string, 'utf8')));
    case 'bytea':
      return Math.sign(Buffer.compare(a as Buffer, b as Buffer));
    case 'bool':
      return Number(a) - Number(b);
    default: {
      const x = a as number;
      const y = b as number;
      if (Number.isNaN(x) || Number.isNaN(y)) return Number(Number.isNaN(x)) - Number(Number.isNaN(y));
      return x < y ? -1 : x > y ? 1 : 0;
    }
  }
}

function refCompareRow(types: readonly ColumnType[], a: readonly SqlValue[], b: readonly SqlValue[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const c = refCompare(types[i]!, a[i]!, b[i]!);
    if (c !== 0) return c;
  }
  return Math.sign(a.length - b.length);
}

/** What a key gives back: numerics normalized, -0 as 0. */
function keyForm(type: ColumnType, v: SqlValue): SqlValue {
  if (v === null) return null;
  if (type === 'numeric') return new Decimal(v as string).isZero() ? '0' : normalizeNumeric(v as string);
  if (typeof v === 'number' && v === 0) return 0;
  return v;
}

/** What a row gives back: integers and timestamps lose the sign of zero; floats keep -0, as PostgreSQL does. */
function rowForm(v: SqlValue, type?: ColumnType): SqlValue {
  if (type === 'float4' || type === 'float8') return v;
  return typeof v === 'number' && v === 0 ? 0 : v;
}

const sign = (n: number) => (n < 0 ? -1 : n > 0 ? 1 : 0);

/** Two rows of one schema, the second often sharing a leading run of the first (so later columns decide). */
const rowPairArb = fc
  .array(typeArb, { minLength: 1, maxLength: 5 })
  .chain((types) => fc.tuple(fc.constant(types), fc.tuple(...types.map(withNull)), fc.tuple(...types.map(withNull)), fc.nat({ max: types.length })))
  .map(([types, a, b, shared]) => [types, a, b.map((v, i) => (i < shared ? a[i]! : v))] as const);

function assertCorrupt(fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => e instanceof CodecError && e.code === 'Corrupt');
}

// ---------- keys ----------

describe('key order equals value order', () => {
  for (const type of COLUMN_TYPES) {
    test(type, () => {
      fc.assert(
        fc.property(withNull(type), withNull(type), (a, b) => {
          const c = compareValues(type, a, b);
          assert.equal(c, refCompare(type, a, b), 'compareValues agrees with the model');
          assert.equal(sign(Buffer.compare(encodeKeyValue(type, a), encodeKeyValue(type, b))), c);
          assert.equal(sign(Buffer.compare(encodeKey(P, [type], [a]), encodeKey(P, [type], [b]))), c);
          assert.equal(compareValues(type, b, a), sign(-c));
        }),
        { numRuns: RUNS },
      );
    });
  }

  test('composite keys of mixed types, NULLs last, lexicographic over columns', () => {
    fc.assert(
      fc.property(rowPairArb, ([types, a, b]) => {
        const want = refCompareRow(types, a, b);
        assert.equal(sign(Buffer.compare(encodeKey(P, types, a), encodeKey(P, types, b))), want);
      }),
      { numRuns: RUNS * 2 },
    );
  });

  test('sorting many keys sorts the values', () => {
    fc.assert(
      fc.property(
        fc.array(typeArb, { minLength: 1, maxLength: 3 }).chain((types) => fc.tuple(fc.constant(types), fc.array(fc.tuple(...types.map(withNull)), { minLength: 2, maxLength: 30 }))),
        ([types, rows]) => {
          const byKey = rows.map((r) => ({ r, k: encodeKey(P, types, r) })).sort((x, y) => Buffer.compare(x.k, y.k));
          for (let i = 1; i < byKey.length; i++) assert.ok(refCompareRow(types, byKey[i - 1]!.r, byKey[i]!.r) <= 0);
        },
      ),
      { numRuns: 100 },
    );
  });

  const ordered: Record<ColumnType, SqlValue[][]> = {
    // Each inner list holds equal values; the lists are in ascending order; NULL comes last.
    int4: [[-(2 ** 31)], [-(2 ** 31) + 1], [-256], [-1], [0, -0], [1], [255], [256], [2 ** 31 - 1], [null]],
    int8: [[-MAX], [-MAX + 1], [-(2 ** 32) - 1], [-(2 ** 32)], [-(2 ** 31) - 1], [-1], [0, -0], [1], [2 ** 32 - 1], [2 ** 32], [MAX - 1], [MAX], [null]],
    timestamp: [[-MAX], [-2208988800000000], [-1], [0], [1], [1732600800000000], [MAX], [null]],
    float4: [[-Infinity], [-3.4028234663852886e38], [-1.5], [-1.401298464324817e-45], [0, -0], [1.401298464324817e-45], [0.5], [1], [3.4028234663852886e38], [Infinity], [NaN], [null]],
    float8: [[-Infinity], [-Number.MAX_VALUE], [-1], [-Number.MIN_VALUE], [0, -0], [Number.MIN_VALUE], [0.1], [1], [2 ** 53], [Number.MAX_VALUE], [Infinity], [NaN], [null]],
    numeric: [
      ['-1' + '0'.repeat(70000)],
      ['-1' + '0'.repeat(300)],
      ['-1' + '0'.repeat(237)],
      ['-123456789012345678901234567890.5'],
      ['-100', '-100.000', '-0100'],
      ['-99.99'],
      ['-10.01'],
      ['-10'],
      ['-1.5', '-1.50'],
      ['-1.01'],
      ['-1'],
      ['-0.5'],
      ['-0.1'],
      ['-0.01'],
      ['-0.000001'],
      ['-0.000000000000000000000000000001'],
      ['-0.' + '0'.repeat(240) + '1'],
      ['-0.' + '0'.repeat(16000) + '1'],
      ['0', '-0', '0.000', '-0.0', '.0', '0.', '+0', '000'],
      ['0.' + '0'.repeat(16000) + '1'],
      ['0.' + '0'.repeat(240) + '1'],
      ['0.000000000000000000000000000001'],
      ['0.0000010'],
      ['0.000001000001'],
      ['0.01'],
      ['0.1', '.1', '+.10'],
      ['0.5'],
      ['1', '1.0', '01'],
      ['1.01'],
      ['1.5', '1.50'],
      ['9'],
      ['10', '10.0'],
      ['10.01'],
      ['99.99'],
      ['100'],
      ['101'],
      ['123456789012345678901234567890'],
      ['123456789012345678901234567890.5'],
      ['1' + '0'.repeat(200)],
      ['1' + '0'.repeat(237)],
      ['1' + '0'.repeat(238)],
      ['1' + '0'.repeat(300)],
      ['1' + '0'.repeat(70000)],
      [null],
    ],
    text: [[''], ['\0'], ['\0\0'], ['\0a'], ['\x01'], ['a'], ['a\0'], ['a\0\0'], ['a\0b'], ['a\x01'], ['ab'], ['b'], ['\x7f'], ['é'], ['\ud7ff'], ['\ue000'], ['\uffff'], ['\u{10000}'], ['\u{1F600}'], ['\u{10FFFF}'], [null]],
    bool: [[false], [true], [null]],
    bytea: [[Buffer.alloc(0)], [Buffer.from([0])], [Buffer.from([0, 0])], [Buffer.from([0, 1])], [Buffer.from([0, 0xff])], [Buffer.from([1])], [Buffer.from([0xff])], [Buffer.from([0xff, 0])], [Buffer.from([0xff, 0xff])], [null]],
  };

  for (const type of COLUMN_TYPES) {
    test(`hand-picked ${type} values in order`, () => {
      const groups = ordered[type];
      for (let i = 0; i < groups.length; i++) {
        for (const a of groups[i]!) {
          for (let j = 0; j < groups.length; j++) {
            for (const b of groups[j]!) {
              const want = sign(i - j);
              assert.equal(compareValues(type, a, b), want, `compareValues(${String(a)}, ${String(b)})`);
              assert.equal(sign(Buffer.compare(encodeKeyValue(type, a), encodeKeyValue(type, b))), want, `keys of ${String(a)}, ${String(b)}`);
            }
          }
          const { values, end } = decodeKey(encodeKeyValue(type, a), 0, [type]);
          assert.deepEqual(values, [keyForm(type, a)]);
          assert.equal(end, encodeKeyValue(type, a).length);
        }
      }
    });
  }
});

describe('key round trip and prefixes', () => {
  test('decodeKey(encodeKey(x)) gives x back (numerics normalized)', () => {
    fc.assert(
      fc.property(fc.array(typeArb, { minLength: 0, maxLength: 6 }).chain((types) => fc.tuple(fc.constant(types), fc.tuple(...types.map(withNull)))), ([types, values]) => {
        const key = encodeKey(P, types, values);
        assert.deepEqual(key.subarray(0, 6), P);
        const { values: got, end } = decodeKey(key, 6, types);
        assert.equal(end, key.length);
        assert.deepEqual(
          got,
          values.map((v, i) => keyForm(types[i]!, v)),
        );
      }),
      { numRuns: RUNS * 2 },
    );
  });

  test('a key of the first n columns is a byte prefix of the full key; prefixEnd bounds it', () => {
    fc.assert(
      fc.property(rowPairArb, fc.nat(), ([types, a, b], cut) => {
        const full = encodeKey(P, types, a);
        const n = cut % (types.length + 1);
        const part = encodeKey(P, types.slice(0, n), a.slice(0, n));
        assert.deepEqual(full.subarray(0, part.length), part);
        assert.deepEqual(encodeKey(P, types, a.slice(0, n)), part);
        assert.deepEqual(decodeKey(full, 6, types.slice(0, n)).end, part.length);
        const end = prefixEnd(part);
        assert.ok(Buffer.compare(full, end) < 0, 'prefixEnd is above every key with the prefix');
        const other = encodeKey(P, types, b);
        if (other.subarray(0, part.length).equals(part)) assert.ok(Buffer.compare(other, end) < 0);
        else if (Buffer.compare(other, part) > 0) assert.ok(Buffer.compare(end, other) <= 0, 'and no greater than a key above them all');
        else assert.ok(Buffer.compare(other, part) < 0);
      }),
      { numRuns: RUNS },
    );
  });

  test('prefixEnd over arbitrary bytes', () => {
    const small = fc.uint8Array({ maxLength: 5 }).map((u) => Buffer.from(u.map((x) => (x < 128 ? x : 0xff))));
    fc.assert(
      fc.property(small, small, (p, k) => {
        const end = prefixEnd(p);
        if (end.length === 0) {
          assert.ok(p.every((x) => x === 0xff), 'only an all-0xFF prefix has no upper bound');
          return;
        }
        if (k.subarray(0, p.length).equals(p)) assert.ok(Buffer.compare(k, end) < 0);
        else if (Buffer.compare(k, p) > 0) assert.ok(Buffer.compare(end, k) <= 0);
      }),
      { numRuns: RUNS * 3 },
    );
    assert.deepEqual(prefixEnd(Buffer.from([1, 2, 0xff, 0xff])), Buffer.from([1, 3]));
    assert.deepEqual(prefixEnd(Buffer.from([0xff, 0xff])), Buffer.alloc(0));
    assert.deepEqual(prefixEnd(keyPrefix(7, 0)), keyPrefix(7, 1));
    assert.deepEqual(prefixEnd(keyPrefix(7, 0xffff)), keyPrefix(8, 0).subarray(0, 4));
  });

  test('keyPrefix layout and limits', () => {
    assert.deepEqual(keyPrefix(42, 0), Buffer.from([0, 0, 0, 42, 0, 0]));
    assert.deepEqual(keyPrefix(0xffffffff, 0xffff), Buffer.alloc(6, 0xff));
    assert.ok(Buffer.compare(keyPrefix(1, 0xffff), keyPrefix(2, 0)) < 0);
    for (const [t, i] of [
      [-1, 0],
      [2 ** 32, 0],
      [0, 65536],
      [0, -1],
    ] as const) {
      assert.throws(() => keyPrefix(t, i), (e: unknown) => e instanceof CodecError && e.code === 'OutOfRange');
    }
    assert.throws(() => keyPrefix(1.5, 0), (e: unknown) => e instanceof CodecError && e.code === 'BadValue');
  });

  test('debugKey', () => {
    const key = encodeKey(keyPrefix(42, 0), ['text', 'timestamp'], ['meter-7', 1732600800000000]);
    assert.equal(debugKey(key, ['text', 'timestamp']), "/t42/i0/'meter-7'/1732600800000000");
    assert.equal(debugKey(key), `/t42/i0/${encodeKeyValue('text', 'meter-7').toString('hex')}/${encodeKeyValue('timestamp', 1732600800000000).toString('hex')}`);
    const all = encodeKey(keyPrefix(1, 3), ['int4', 'float8', 'numeric', 'bool', 'bytea', 'text', 'int8'], [-5, NaN, '-012.50', true, Buffer.from([0, 255]), "it's\n", null]);
    assert.equal(debugKey(all, ['int4', 'float8', 'numeric', 'bool', 'bytea', 'text', 'int8']), "/t1/i3/-5/NaN/-12.5/true/'\\x00ff'/'it\\'s\\x0a'/NULL");
    assert.equal(debugKey(all).split('/').length, 1 + 2 + 7);
    assert.match(debugKey(Buffer.concat([key, Buffer.from([0x99])]), ['text', 'timestamp']), /\/\+99$/);
    assert.match(debugKey(key.subarray(0, key.length - 1), ['text', 'timestamp']), /^\/t42\/i0\/'meter-7'\/\?12/);
    assert.equal(debugKey(Buffer.from([1, 2])), '/0102');
  });
});

describe('numerics', () => {
  test('normalizeNumeric', () => {
    const cases: [string, string][] = [
      ['0012.500', '12.5'],
      ['-0.0', '0'],
      ['0', '0'],
      ['-0', '0'],
      ['+0.000', '0'],
      ['.5', '0.5'],
      ['-.5', '-0.5'],
      ['5.', '5'],
      ['+7', '7'],
      ['100', '100'],
      ['100.00', '100'],
      ['-0.000001000', '-0.000001'],
      ['123456789012345678901234567890.50', '123456789012345678901234567890.5'],
      ['000000000000000000000000000000.000000000000000000000000000001', '0.000000000000000000000000000001'],
    ];
    for (const [i, o] of cases) assert.equal(normalizeNumeric(i), o, i);
    fc.assert(
      fc.property(numericArb, (s) => {
        const n = normalizeNumeric(s);
        assert.ok(new Decimal(n).eq(new Decimal(s)), `${s} → ${n}`);
        assert.equal(normalizeNumeric(n), n);
        assert.doesNotMatch(n, /^-?0\d|\.\d*0$|\.$|^-0$|^\+/);
      }),
      { numRuns: RUNS },
    );
  });

  test('strings that are not decimal numbers are rejected', () => {
    for (const s of ['', '-', '+', '.', '-.', '1e5', '1E-30', 'NaN', 'Infinity', '-Infinity', ' 1', '1 ', '1.2.3', '0x10', '1,5', '--1', '+-1', '١٢', '1_000']) {
      for (const fn of [() => normalizeNumeric(s), () => encodeKeyValue('numeric', s), () => encodeRow(['numeric'], [s]), () => compareValues('numeric', s, '1')]) {
        assert.throws(fn, (e: unknown) => e instanceof CodecError && e.code === 'BadValue' && /numeric/.test(e.message), JSON.stringify(s));
      }
    }
    // PostgreSQL's limits: 131072 digits before the point, 16383 after.
    assert.equal(normalizeNumeric('9'.repeat(131072)).length, 131072);
    assert.equal(normalizeNumeric('0.' + '9'.repeat(16383)).length, 16385);
    assert.throws(() => normalizeNumeric('1' + '0'.repeat(131072)), (e: unknown) => e instanceof CodecError && e.code === 'OutOfRange');
    assert.throws(() => encodeKeyValue('numeric', '0.' + '0'.repeat(16383) + '1'), (e: unknown) => e instanceof CodecError && e.code === 'OutOfRange');
    const big = '-' + '9'.repeat(131072) + '.' + '9'.repeat(16383);
    assert.deepEqual(decodeKey(encodeKeyValue('numeric', big), 0, ['numeric']).values, [big]);
  });
});

// ---------- rows ----------

describe('rows', () => {
  test('decodeRow(encodeRow(x)) gives x back exactly (numerics as given)', () => {
    fc.assert(
      fc.property(fc.array(typeArb, { minLength: 0, maxLength: 20 }).chain((types) => fc.tuple(fc.constant(types), fc.tuple(...types.map(withNull)))), ([types, values]) => {
        const row = encodeRow(types, values);
        assert.deepEqual(decodeRow(types, row), values.map((v, i) => rowForm(v, types[i])));
      }),
      { numRuns: RUNS * 2 },
    );
  });

  test('varint edges and long values', () => {
    const ints = [0, 1, -1, 63, -64, 64, -65, 2 ** 27 - 1, 2 ** 27, -(2 ** 27), -(2 ** 27) - 1, 2 ** 31 - 1, -(2 ** 31), 2 ** 52, -(2 ** 52), MAX, -MAX, MAX - 1, -MAX + 1];
    for (const v of ints) assert.deepEqual(decodeRow(['int8'], encodeRow(['int8'], [v])), [v], String(v));
    for (const v of ints.filter((x) => Math.abs(x) <= 2 ** 31 && x !== 2 ** 31)) assert.deepEqual(decodeRow(['int4', 'timestamp'], encodeRow(['int4', 'timestamp'], [v, v])), [v, v]);
    const long = 'é'.repeat(5000) + '\u{1F600}';
    const t: ColumnType[] = ['text', 'bytea', 'numeric', 'text', 'text'];
    const v: SqlValue[] = [long, Buffer.alloc(70000, 7), '-0001234.5678000', 'x'.repeat(42), 'é'.repeat(42)];
    assert.deepEqual(decodeRow(t, encodeRow(t, v)), v);
    assert.deepEqual(encodeRow([], []), Buffer.from([1]));
    assert.deepEqual(decodeRow([], Buffer.from([1])), []);
    assert.equal(encodeRow(['int4'], [-1]).length, 1 + 1 + 1);
  });
});

// ---------- malformed input ----------

describe('malformed bytes are Corrupt, never anything else', () => {
  const schemaWithValues = fc.array(typeArb, { minLength: 1, maxLength: 6 }).chain((types) => fc.tuple(fc.constant(types), fc.tuple(...types.map(withNull))));

  /** Decoding either fails with Corrupt or returns values whose encoding is exactly the bytes read. */
  function keyDecodesCanonically(buf: Buffer, types: readonly ColumnType[]): void {
    let got: { values: SqlValue[]; end: number };
    try {
      got = decodeKey(buf, 0, types);
    } catch (e) {
      assert.ok(e instanceof CodecError && e.code === 'Corrupt', `decodeKey threw ${String(e)}`);
      return;
    }
    assert.deepEqual(encodeKey(Buffer.alloc(0), types, got.values), buf.subarray(0, got.end));
  }

  function rowDecodesCanonically(buf: Buffer, types: readonly ColumnType[]): void {
    let got: SqlValue[];
    try {
      got = decodeRow(types, buf);
    } catch (e) {
      assert.ok(e instanceof CodecError && e.code === 'Corrupt', `decodeRow threw ${String(e)}`);
      return;
    }
    assert.deepEqual(encodeRow(types, got), buf);
  }

  test('truncated keys and rows', () => {
    fc.assert(
      fc.property(schemaWithValues, fc.nat(), ([types, values], at) => {
        const key = encodeKey(Buffer.alloc(0), types, values);
        assertCorrupt(() => decodeKey(key.subarray(0, at % key.length), 0, types));
        const row = encodeRow(types, values);
        assertCorrupt(() => decodeRow(types, row.subarray(0, at % row.length)));
        assertCorrupt(() => decodeRow(types, Buffer.concat([row, Buffer.from([0])])));
      }),
      { numRuns: RUNS },
    );
  });

  test('bit flips and byte changes', () => {
    fc.assert(
      fc.property(schemaWithValues, fc.nat(), fc.integer({ min: 1, max: 255 }), ([types, values], at, x) => {
        const key = Buffer.from(encodeKey(Buffer.alloc(0), types, values));
        key[at % key.length]! ^= x;
        keyDecodesCanonically(key, types);
        const row = Buffer.from(encodeRow(types, values));
        row[at % row.length]! ^= x;
        rowDecodesCanonically(row, types);
      }),
      { numRuns: RUNS * 2 },
    );
  });

  test('random bytes', () => {
    fc.assert(
      fc.property(fc.array(typeArb, { minLength: 1, maxLength: 4 }), fc.uint8Array({ maxLength: 40 }), (types, bytes) => {
        const buf = Buffer.from(bytes);
        keyDecodesCanonically(buf, types);
        rowDecodesCanonically(buf, types);
        rowDecodesCanonically(Buffer.concat([Buffer.from([1]), buf]), types);
      }),
      { numRuns: RUNS * 3 },
    );
    // Random bodies behind a valid marker, which is where most of the decoding happens.
    const markers: [ColumnType, number][] = [['int4', 0x10], ['int8', 0x11], ['timestamp', 0x12], ['float4', 0x13], ['float8', 0x14], ['numeric', 0x15], ['numeric', 0x17], ['text', 0x1a], ['bytea', 0x1b]];
    fc.assert(
      fc.property(fc.constantFrom(...markers), fc.uint8Array({ maxLength: 12 }), ([type, m], bytes) => keyDecodesCanonically(Buffer.concat([Buffer.from([m]), bytes]), [type])),
      { numRuns: RUNS * 3 },
    );
  });

  test('specific malformations', () => {
    const hex = (s: string) => Buffer.from(s.replace(/ /g, ''), 'hex');
    assertCorrupt(() => decodeKey(hex('10 80000000'), 0, ['int4']));
    assertCorrupt(() => decodeKey(hex('10 80000001 00000000'), 0, ['int4'])); // 2^32: beyond int4
    assertCorrupt(() => decodeKey(hex('11 80200000 00000000'), 0, ['int8'])); // 2^53
    assertCorrupt(() => decodeKey(hex('11 7fe00000 00000000'), 0, ['int8'])); // -2^53
    assertCorrupt(() => decodeKey(hex('11 00000000 00000000'), 1, ['int8'])); // wrong marker at the offset
    assertCorrupt(() => decodeKey(hex('14 7fffffffffffffff'), 0, ['float8'])); // -0
    assertCorrupt(() => decodeKey(hex('14 fff8000000000001'), 0, ['float8'])); // another NaN
    assertCorrupt(() => decodeKey(hex('1a 61 00'), 0, ['text']));
    assertCorrupt(() => decodeKey(hex('1a 61 00 02'), 0, ['text']));
    assertCorrupt(() => decodeKey(hex('1a ff 00 01'), 0, ['text'])); // not UTF-8
    assertCorrupt(() => decodeKey(hex('1a eda080 00 01'), 0, ['text'])); // a surrogate in UTF-8
    assertCorrupt(() => decodeKey(hex('17 80 01'), 0, ['numeric'])); // leading zero digit pair
    assertCorrupt(() => decodeKey(hex('17 80 03'), 0, ['numeric'])); // no last digit
    assertCorrupt(() => decodeKey(hex('17 80 ca'), 0, ['numeric'])); // digit pair 101
    assertCorrupt(() => decodeKey(hex('17 ff 7fffffffffffffff 02'), 0, ['numeric'])); // exponent too long
    assertCorrupt(() => decodeKey(hex('17 fa 7fffff 02'), 0, ['numeric'])); // exponent beyond PostgreSQL's range
    assertCorrupt(() => decodeKey(hex('17 f9 0005 02'), 0, ['numeric'])); // exponent in more bytes than it needs
    assertCorrupt(() => decodeKey(hex('15 f9 ff fa fd'), 0, ['numeric'])); // the same, negative
    assert.deepEqual(decodeKey(hex('17 f9 0105 02'), 0, ['numeric']).values, ['1' + '0'.repeat(2 * 381 - 2)]);
    assertCorrupt(() => decodeKey(hex('18'), 0, ['int4']));
    assertCorrupt(() => decodeKey(hex('10'), 5, ['int4']));
    assertCorrupt(() => decodeRow(['int4'], hex('02 00 02')));
    assertCorrupt(() => decodeRow(['int4'], hex('01 02')));
    assertCorrupt(() => decodeRow(['int4'], hex('01 00 80 00'))); // non-canonical varint
    assertCorrupt(() => decodeRow(['int4'], hex('01 00 80 80 80 80 10'))); // 2^32
    assertCorrupt(() => decodeRow(['int8'], hex('01 00 ff ff ff ff ff ff ff 7f'))); // 2^55
    assertCorrupt(() => decodeRow(['bool'], hex('01 00 02')));
    assertCorrupt(() => decodeRow(['text'], hex('01 00 05 61')));
    assertCorrupt(() => decodeRow(['text'], hex('01 00 ff ff ff ff 0f')));
    assertCorrupt(() => decodeRow(['numeric'], hex('01 00 03 31 65 35'))); // '1e5'
    assert.ok(Object.is(decodeRow(['float8'], hex('01 00 8000000000000000'))[0], -0), 'rows keep -0');
    assertCorrupt(() => decodeRow(['float4'], hex('01 00 7fefffffffffffff'))); // beyond float4
  });
});

// ---------- wrong values ----------

describe('values of the wrong JS type or out of range', () => {
  test('BadValue and OutOfRange, naming the type', () => {
    const bad: [ColumnType, unknown, 'BadValue' | 'OutOfRange'][] = [
      ['int4', '1', 'BadValue'],
      ['int4', 1.5, 'BadValue'],
      ['int4', NaN, 'BadValue'],
      ['int4', 2 ** 31, 'OutOfRange'],
      ['int4', -(2 ** 31) - 1, 'OutOfRange'],
      ['int8', 0.5, 'BadValue'],
      ['int8', 1n, 'BadValue'],
      ['int8', Infinity, 'BadValue'],
      ['int8', MAX + 1, 'OutOfRange'],
      ['int8', -MAX - 1, 'OutOfRange'],
      ['timestamp', new Date(0), 'BadValue'],
      ['timestamp', 2 ** 60, 'OutOfRange'],
      ['float4', '1', 'BadValue'],
      ['float4', 1e39, 'OutOfRange'],
      ['float8', true, 'BadValue'],
      ['numeric', 12, 'BadValue'],
      ['numeric', 'abc', 'BadValue'],
      ['text', 5, 'BadValue'],
      ['text', 'a\ud800', 'BadValue'],
      ['text', Buffer.from('a'), 'BadValue'],
      ['bool', 1, 'BadValue'],
      ['bytea', 'ab', 'BadValue'],
      ['bytea', undefined, 'BadValue'],
    ];
    for (const [type, v, code] of bad) {
      const check = (e: unknown) => e instanceof CodecError && e.code === code && e.message.includes(type);
      assert.throws(() => encodeKeyValue(type, v as SqlValue), check, `key ${type} ${String(v)}`);
      assert.throws(() => encodeKey(P, ['int4', type], [1, v as SqlValue]), check);
      assert.throws(() => encodeRow([type], [v as SqlValue]), check, `row ${type} ${String(v)}`);
      assert.throws(() => compareValues(type, v as SqlValue, v as SqlValue), check);
    }
    assert.throws(() => encodeKey(P, ['int4'], [1, 2]), (e: unknown) => e instanceof CodecError && e.code === 'BadValue');
    assert.throws(() => encodeRow(['int4', 'int4'], [1]), (e: unknown) => e instanceof CodecError && e.code === 'BadValue');
  });
});

// ---------- PostgreSQL as the oracle ----------

describe('compareValues agrees with PostgreSQL (C collation)', () => {
  let db: PGlite | undefined;
  after(async () => db?.close());

  test('random pairs of each type', async () => {
    const { PGlite } = await import('@electric-sql/pglite');
    const pg = await PGlite.create();
    db = pg;
    const pgType: Partial<Record<ColumnType, string>> = { int4: 'int4', int8: 'int8', float4: 'float4', float8: 'float8', numeric: 'numeric', text: 'text', bool: 'bool', bytea: 'bytea' };
    for (const [type, sqlType] of Object.entries(pgType) as [ColumnType, string][]) {
      let arb = arbs[type];
      if (type === 'text') arb = arb.filter((s) => !(s as string).includes('\0')); // PostgreSQL text holds no NUL
      const pairs = fc.sample(fc.tuple(arb, arb), { numRuns: 300, seed: 7 });
      // Equal values half the time in spirit: pair each value with its neighbour and with itself too.
      const as = pairs.flatMap(([a, b]) => [a, a, b]);
      const bs = pairs.flatMap(([a, b]) => [b, a, a]);
      const collate = type === 'text' ? ' collate "C"' : '';
      const res = await pg.query<{ c: number }>(
        `select case when a${collate} < b then -1 when a${collate} > b then 1 else 0 end as c from unnest($1::${sqlType}[], $2::${sqlType}[]) with ordinality as t(a, b, i) order by i`,
        [as.map(toPg), bs.map(toPg)],
      );
      assert.equal(res.rows.length, as.length);
      res.rows.forEach((r, i) => assert.equal(compareValues(type, as[i]!, bs[i]!), r.c, `${type}: ${String(as[i])} vs ${String(bs[i])}`));
    }
  });
});

function toPg(v: SqlValue): unknown {
  if (typeof v === 'number' && !Number.isFinite(v)) return Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
  return v;
}
