// Differential testing of CascaDB against PostgreSQL (PGlite): generated schemas, data and queries, and the
// comparison of the two engines' answers. The generator draws from fast-check (fc.gen), so a run is reproduced
// from its seed; values come from small domains so that joins, duplicates, NULLs, negative numbers, empty
// strings, strings that prefix one another and integer boundaries all happen.
import fc from 'fast-check';

// ------------------------------------------------------------------ random choices

/** The generator's source of choices: fast-check's gen() in the property, so runs replay from a seed. */
export interface Rand {
  /** An integer in [min, max]; shrinks towards min. */
  int(min: number, max: number): number;
  pick<T>(xs: readonly T[]): T;
  /** true with probability p; shrinks towards false. */
  chance(p: number): boolean;
}

export function randFromGen(g: fc.GeneratorValue): Rand {
  const int = (min: number, max: number) => (max <= min ? min : g(fc.integer, { min, max }));
  return {
    int,
    pick: <T>(xs: readonly T[]) => xs[int(0, xs.length - 1)]!,
    chance: (p: number) => int(0, 999) >= Math.round((1 - p) * 1000),
  };
}

// ------------------------------------------------------------------ types and values

export type ColType = 'integer' | 'bigint' | 'double precision' | 'numeric(10,2)' | 'text' | 'varchar(12)' | 'boolean' | 'timestamp' | 'bytea';
export const COL_TYPES: readonly ColType[] = ['integer', 'bigint', 'double precision', 'numeric(10,2)', 'text', 'varchar(12)', 'boolean', 'timestamp', 'bytea'];

/** A value: its SQL literal, its parameter forms for PGlite and for CascaDB's JSON API, and a canonical key. */
export interface Val {
  sql: string;
  pg: unknown;
  cdb: unknown;
  key: string;
}

export const NULL_VAL: Val = { sql: 'NULL', pg: null, cdb: null, key: 'NULL' };

const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;

function intVal(n: number): Val {
  return { sql: String(n), pg: String(n), cdb: n, key: String(n) };
}

function floatVal(x: number | 'NaN' | 'Infinity' | '-Infinity'): Val {
  if (typeof x === 'string') return { sql: quote(x), pg: x, cdb: x, key: x };
  return { sql: String(x), pg: String(x), cdb: x, key: String(x) };
}

function numericVal(s: string): Val {
  // The key is the value at scale 2, as numeric(10,2) stores it.
  return { sql: s, pg: s, cdb: s, key: Number(s).toFixed(2) };
}

function textVal(s: string): Val {
  return { sql: quote(s), pg: s, cdb: s, key: s };
}

function tsVal(s: string): Val {
  return { sql: quote(s), pg: s, cdb: s, key: s };
}

function byteaVal(hex: string): Val {
  return { sql: quote(`\\x${hex}`), pg: Uint8Array.from(Buffer.from(hex, 'hex')), cdb: `\\x${hex}`, key: hex };
}

function boolVal(b: boolean): Val {
  return { sql: String(b), pg: String(b), cdb: b, key: String(b) };
}

const TEXTS = ['a', 'ab', 'b', '', 'abc', 'é', 'B', 'aé', 'a b', '_', "o'k", 'ba'];

/** Each type's small domain, simple values first (they are what shrinking goes to). */
export const DOMAIN: Record<ColType, readonly Val[]> = {
  integer: [0, 1, -1, 2, 3, -2, 4, 5, -5, -3, 2147483647, -2147483648, 2147483646, 100].map(intVal),
  bigint: [0, 1, -1, 2, 3, -2, 5, -5, 2147483648, -2147483649, 1099511627776, -1099511627776].map(intVal),
  'double precision': ([0, 1.5, -1.5, 0.1, 0.25, 2.5, 3, -3, 1e10, 1e-5, 'NaN', 'Infinity', '-Infinity'] as const).map(floatVal),
  'numeric(10,2)': ['0', '1.50', '-1.50', '0.10', '2.5', '3', '-0.01', '12345678.99', '100.00', '0.05', '-7.25'].map(numericVal),
  text: TEXTS.map(textVal),
  'varchar(12)': [...TEXTS, 'abcdefghijkl'].map(textVal),
  boolean: [false, true].map(boolVal),
  timestamp: ['2020-01-01 00:00:00', '2020-01-01 00:00:00.5', '1999-12-31 23:59:59.999999', '2020-02-29 12:00:00', '1970-01-01 00:00:00', '1969-12-31 23:59:59.25', '2038-01-19 03:14:08', '1900-06-15 08:30:00'].map(tsVal),
  bytea: ['', '00', '0001', '01', 'ff', '00ff', '61'].map(byteaVal),
};

export const isIntType = (t: ColType) => t === 'integer' || t === 'bigint';
export const isNumType = (t: ColType) => isIntType(t) || t === 'double precision' || t === 'numeric(10,2)';
export const isTextType = (t: ColType) => t === 'text' || t === 'varchar(12)';
/** Types with min/max (PostgreSQL has no min(boolean)). */
const hasMinMax = (t: ColType) => t !== 'boolean';
/** Join and IN-subquery compatibility: the same type, or both text types. */
const sameFamily = (a: ColType, b: ColType) => a === b || (isTextType(a) && isTextType(b));

// ------------------------------------------------------------------ schemas

export interface Column {
  name: string;
  type: ColType;
  notNull: boolean;
  unique: boolean;
}

export interface Table {
  name: string;
  cols: Column[];
  /** Primary key column positions, in key order. */
  pk: number[];
  /** A multi-column UNIQUE constraint, if any (positions). */
  uniqueSet?: number[];
  /** CREATE INDEX column lists (positions). */
  indexes: number[][];
  rows: Val[][];
}

export interface Schema {
  tables: Table[];
}

const COL_NAMES = ['a', 'b', 'c', 'd', 'e', 'f'];

function genValue(r: Rand, col: Column, nullP = 0.15): Val {
  if (!col.notNull && r.chance(nullP)) return NULL_VAL;
  return r.pick(DOMAIN[col.type]);
}

export function genSchema(r: Rand, prefix = 't'): Schema {
  // A palette of types shared by the tables, so that equal-typed join columns are common.
  const palette: ColType[] = [];
  const n = r.int(2, 5);
  const pool = [...COL_TYPES];
  while (palette.length < n) {
    const t = r.pick(pool);
    pool.splice(pool.indexOf(t), 1);
    // bytea is optional: half the time it is not drawn.
    if (t === 'bytea' && r.chance(0.5)) continue;
    palette.push(t);
    if (pool.length === 0) break;
  }
  if (palette.length === 0) palette.push('integer');
  const tables: Table[] = [];
  const count = r.int(1, 3);
  for (let ti = 0; ti < count; ti++) {
    const ncols = r.int(2, 6);
    const cols: Column[] = [];
    for (let i = 0; i < ncols; i++) cols.push({ name: COL_NAMES[i]!, type: r.pick(palette), notNull: false, unique: false });
    // Primary key: one or two columns, in any order; sometimes none (CascaDB keys such rows by a hidden row id).
    const first = r.int(0, ncols - 1);
    const pk = r.chance(0.12) ? [] : [first];
    if (pk.length && ncols >= 3 && r.chance(0.35)) {
      const second = r.int(0, ncols - 2);
      pk.push(second >= first ? second + 1 : second);
    }
    for (const i of pk) cols[i]!.notNull = true;
    const others = cols.map((_, i) => i).filter((i) => !pk.includes(i));
    for (const i of others) if (r.chance(0.2)) cols[i]!.notNull = true;
    if (others.length && r.chance(0.3)) cols[r.pick(others)]!.unique = true;
    let uniqueSet: number[] | undefined;
    if (others.length >= 2 && r.chance(0.1)) uniqueSet = [others[0]!, others[1]!];
    const indexes: number[][] = [];
    if (r.chance(0.45)) {
      const i = r.int(0, ncols - 1);
      const idx = [i];
      if (r.chance(0.3)) {
        const j = r.int(0, ncols - 1);
        if (j !== i) idx.push(j);
      }
      indexes.push(idx);
    }
    // Rows: duplicates of the primary key and of unique values are dropped, so that the load succeeds.
    const want = r.chance(0.1) ? 0 : r.int(1, 60);
    const rows: Val[][] = [];
    const seenPk = new Set<string>();
    const uniqueCols = cols.map((c, i) => (c.unique ? i : -1)).filter((i) => i >= 0);
    const seenUnique = uniqueCols.map(() => new Set<string>());
    const seenSet = new Set<string>();
    for (let k = 0; k < want; k++) {
      const row = cols.map((c) => genValue(r, c));
      const pkKey = pk.map((i) => row[i]!.key).join('|');
      if (pk.length && seenPk.has(pkKey)) continue;
      if (uniqueCols.some((c, u) => row[c] !== NULL_VAL && seenUnique[u]!.has(row[c]!.key))) continue;
      const setKey = uniqueSet && uniqueSet.every((i) => row[i] !== NULL_VAL) ? uniqueSet.map((i) => row[i]!.key).join('|') : undefined;
      if (setKey !== undefined && seenSet.has(setKey)) continue;
      seenPk.add(pkKey);
      uniqueCols.forEach((c, u) => row[c] !== NULL_VAL && seenUnique[u]!.add(row[c]!.key));
      if (setKey !== undefined) seenSet.add(setKey);
      rows.push(row);
    }
    tables.push({ name: `${prefix}${ti}`, cols, pk, uniqueSet, indexes, rows });
  }
  return { tables };
}

export function createTableSql(t: Table): string {
  const parts = t.cols.map((c) => `${c.name} ${c.type}${c.notNull && !t.pk.includes(t.cols.indexOf(c)) ? ' NOT NULL' : ''}${c.unique ? ' UNIQUE' : ''}`);
  if (t.pk.length) parts.push(`PRIMARY KEY (${t.pk.map((i) => t.cols[i]!.name).join(', ')})`);
  if (t.uniqueSet) parts.push(`UNIQUE (${t.uniqueSet.map((i) => t.cols[i]!.name).join(', ')})`);
  return `CREATE TABLE ${t.name} (${parts.join(', ')})`;
}

export function insertSql(t: Table, rows: Val[][]): string {
  return `INSERT INTO ${t.name} VALUES ${rows.map((row) => `(${row.map((v) => v.sql).join(', ')})`).join(', ')}`;
}

/** CREATE TABLE, CREATE INDEX and multi-row INSERTs (in chunks of random size) for a schema. */
export function setupSql(r: Rand, s: Schema): string[] {
  const out: string[] = [];
  for (const t of s.tables) {
    out.push(createTableSql(t));
    t.indexes.forEach((idx, k) => out.push(`CREATE INDEX ${t.name}_i${k} ON ${t.name} (${idx.map((i) => t.cols[i]!.name).join(', ')})`));
    for (let i = 0; i < t.rows.length; ) {
      const n = r.int(1, 25);
      out.push(insertSql(t, t.rows.slice(i, i + n)));
      i += n;
    }
  }
  return out;
}

export function teardownSql(s: Schema): string[] {
  return s.tables.map((t) => `DROP TABLE IF EXISTS ${t.name}`);
}

// ------------------------------------------------------------------ queries

/** One statement to run on both engines and how to compare its answers. */
export interface Stmt {
  sql: string;
  params: Val[];
  /** Output positions (0-based) of ORDER BY keys, when every key is an output column; null: no ORDER BY. */
  orderKeys: number[] | null;
  /** An ORDER BY whose keys are not all output columns (rows compared as a multiset, or by count with LIMIT). */
  opaqueOrder?: boolean;
  /** The ORDER BY keys determine the order completely (they cover a unique key of the output). */
  total?: boolean;
  limited?: boolean;
  /** May raise an evaluation error (integer overflow) on rows that the other engine need not evaluate. */
  risky?: boolean;
}

/** A unit of the generated workload: one SELECT, or a DML statement followed by a full SELECT, or a transaction. */
export type Item = Stmt[];

interface Ref {
  /** SQL reference: a bare name or alias.name. */
  sql: string;
  type: ColType;
  col: Column;
  table: Table;
  alias: string;
}

class QueryGen {
  params: Val[] = [];
  risky = false;
  /** No integer arithmetic that can overflow (DML's WHERE: an error on one side only would fork the states). */
  noOverflow = false;
  useParams: boolean;

  constructor(private readonly r: Rand, readonly s: Schema) {
    this.useParams = r.chance(0.2);
  }

  lit(type: ColType, allowNull = false): string {
    const r = this.r;
    if (allowNull && r.chance(0.08)) return 'NULL';
    const v = r.pick(DOMAIN[type]);
    if (this.useParams && r.chance(0.5)) {
      this.params.push(v);
      return `$${this.params.length}`;
    }
    return v.sql;
  }

  /** A literal to compare a column with: usually of its type, sometimes of another numeric type or range. */
  cmpLit(type: ColType, allowNull = false): string {
    const r = this.r;
    if (r.chance(0.12)) {
      if (type === 'integer') return r.pick(['3000000000', '-3000000000', '2147483648', '2.5', '-0.5', '1.0']);
      if (type === 'bigint') return r.pick(['2.5', '1.0', '-2147483649.5', '1e3']);
      if (type === 'double precision') return r.pick(['3', '-2', '2147483648', '0.1::real']);
      if (type === 'numeric(10,2)') return r.pick(['3', '-2', '1.5::float8', '2147483648', '0.1']);
    }
    return this.lit(type, allowNull);
  }

  refs(t: Table, alias: string | null): Ref[] {
    return t.cols.map((c) => ({ sql: alias ? `${alias}.${c.name}` : c.name, type: c.type, col: c, table: t, alias: alias ?? t.name }));
  }

  /** A column, biased towards primary-key and indexed columns (so that point, range and index paths are planned). */
  pickRef(refs: Ref[]): Ref {
    const r = this.r;
    if (r.chance(0.5)) {
      const keyed = refs.filter((x) => {
        const i = x.table.cols.indexOf(x.col);
        return x.table.pk[0] === i || x.table.indexes.some((idx) => idx[0] === i) || x.col.unique;
      });
      if (keyed.length) return r.pick(keyed);
    }
    return r.pick(refs);
  }

  /** A numeric expression over a column, of the column's family. */
  arith(ref: Ref): string {
    const r = this.r;
    switch (ref.type) {
      case 'integer': {
        if (this.noOverflow) return r.pick([`${ref.sql} / 2`, `${ref.sql} % 3`]);
        const e = r.pick([`${ref.sql} + 1`, `${ref.sql} - 2`, `${ref.sql} * 2`, `${ref.sql} / 2`, `${ref.sql} % 3`, `-${ref.sql}`]);
        if (!e.includes('/') && !e.includes('%')) this.risky = true;
        return e;
      }
      case 'bigint':
        return r.pick([`${ref.sql} + 1`, `${ref.sql} - 3`, `${ref.sql} * 2`, `${ref.sql} / 3`, `${ref.sql} % 2`]);
      case 'double precision':
        return r.pick([`${ref.sql} * 2`, `${ref.sql} + 0.5`, `${ref.sql} / 4`, `-${ref.sql}`]);
      default:
        return r.pick([`${ref.sql} * 2`, `${ref.sql} + 1`, `${ref.sql} / 3`, `-${ref.sql}`, `${ref.sql} - 0.5`]);
    }
  }

  pred(refs: Ref[], depth = 0): string {
    const r = this.r;
    if (depth < 2 && r.chance(0.3)) {
      const k = r.int(0, 2);
      if (k === 0) return `(${this.pred(refs, depth + 1)} AND ${this.pred(refs, depth + 1)})`;
      if (k === 1) return `(${this.pred(refs, depth + 1)} OR ${this.pred(refs, depth + 1)})`;
      return `NOT (${this.pred(refs, depth + 1)})`;
    }
    const ref = this.pickRef(refs);
    const c = ref.sql;
    const t = ref.type;
    const op = () => r.pick(['=', '<>', '<', '<=', '>', '>=']);
    const kind = r.int(0, 9);
    switch (kind) {
      case 0:
        return `${c} IS ${r.chance(0.5) ? 'NOT ' : ''}NULL`;
      case 1: {
        const n = r.int(1, 4);
        const items = Array.from({ length: n }, () => this.cmpLit(t, true));
        return `${c} ${r.chance(0.25) ? 'NOT ' : ''}IN (${items.join(', ')})`;
      }
      case 2:
        if (t === 'boolean') break;
        return `${c} ${r.chance(0.2) ? 'NOT ' : ''}BETWEEN ${r.chance(0.1) ? 'SYMMETRIC ' : ''}${this.cmpLit(t)} AND ${this.cmpLit(t)}`;
      case 3:
        if (isTextType(t)) {
          const pat = r.pick(['a%', 'ab%', 'b%', '%b', 'a_', '_', '%', '', 'é%', 'a%b', '%a%']);
          const neg = r.chance(0.15) ? 'NOT ' : '';
          if (this.useParams && r.chance(0.5)) {
            this.params.push(textVal(pat));
            return `${c} ${neg}LIKE $${this.params.length}`;
          }
          return `${c} ${neg}${r.chance(0.1) ? 'ILIKE' : 'LIKE'} ${quote(pat)}`;
        }
        if (isNumType(t)) return `${this.arith(ref)} ${op()} ${this.lit(t === 'integer' ? 'integer' : t)}`;
        break;
      case 4: {
        // Column against another column of the same family.
        const other = refs.filter((x) => x !== ref && (sameFamily(x.type, t) || (isNumType(x.type) && isNumType(t))));
        if (other.length) return `${c} ${op()} ${r.pick(other).sql}`;
        break;
      }
      case 5:
        if (t === 'boolean') return r.pick([() => c, () => `NOT ${c}`, () => `${c} IS TRUE`, () => `${c} IS NOT FALSE`, () => `${c} = ${this.lit(t)}`])();
        return `${c} IS ${r.chance(0.5) ? 'NOT ' : ''}DISTINCT FROM ${this.lit(t, true)}`;
      case 6:
        if (t === 'boolean') break;
        return `coalesce(${c}, ${this.lit(t)}) ${op()} ${this.lit(t)}`;
    }
    return `${c} ${op()} ${this.cmpLit(t)}`;
  }

  /** A WHERE clause on primary-key or index columns: point gets, prefixes, ranges. */
  keyPred(refs: Ref[]): string {
    const r = this.r;
    const t = refs[0]!.table;
    const keyCols = t.pk.length && (r.chance(0.7) || t.indexes.length === 0) ? t.pk : t.indexes.length ? r.pick(t.indexes) : [0];
    const parts: string[] = [];
    const eqN = r.int(0, keyCols.length);
    for (let k = 0; k < keyCols.length; k++) {
      const ref = refs[keyCols[k]!]!;
      if (k < eqN) {
        parts.push(`${ref.sql} = ${this.cmpLit(ref.type)}`);
        continue;
      }
      const kind = r.int(0, 4);
      if (kind === 0) parts.push(`${ref.sql} ${r.pick(['<', '<=', '>', '>='])} ${this.cmpLit(ref.type)}`);
      else if (kind === 1) parts.push(`${ref.sql} > ${this.cmpLit(ref.type)} AND ${ref.sql} <= ${this.cmpLit(ref.type)}`);
      else if (kind === 2 && ref.type !== 'boolean') parts.push(`${ref.sql} BETWEEN ${this.cmpLit(ref.type)} AND ${this.cmpLit(ref.type)}`);
      else if (kind === 3 && isTextType(ref.type)) parts.push(`${ref.sql} LIKE ${quote(r.pick(['a%', 'ab%', 'é%', 'b%', 'o%']))}`);
      else parts.push(`${ref.sql} IN (${this.lit(ref.type)}, ${this.lit(ref.type)})`);
      break;
    }
    if (parts.length === 0) parts.push(`${refs[keyCols[0]!]!.sql} = ${this.lit(refs[keyCols[0]!]!.type)}`);
    if (r.chance(0.3)) parts.push(this.pred(refs, 1));
    return parts.join(' AND ');
  }

  /** A select-list expression over a column; its output is that column only when plain. */
  selectExpr(ref: Ref): { sql: string; plain: boolean } {
    const r = this.r;
    if (r.chance(0.7)) return { sql: ref.sql, plain: true };
    const t = ref.type;
    // Options are built lazily: building one may draw parameters.
    // coalesce over numeric(10,2) with a literal of scale 2: DISTINCT would otherwise keep either of 3 and 3.00.
    const fill = () => (t === 'numeric(10,2)' ? Number(r.pick(DOMAIN[t]).key).toFixed(2) : this.lit(t));
    const opts: Array<() => string> = [() => `${ref.sql}::text`, () => `${ref.sql} IS NULL`, () => `coalesce(${ref.sql}, ${fill()})`];
    if (isNumType(t)) opts.push(() => this.arith(ref), () => this.arith(ref));
    if (isTextType(t)) opts.push(() => `upper(${ref.sql})`, () => `length(${ref.sql})`, () => `${ref.sql} || 'x'`, () => `lower(${ref.sql})`);
    if (t === 'boolean') opts.push(() => `NOT ${ref.sql}`);
    opts.push(() => `CASE WHEN ${this.pred([ref])} THEN 1 ELSE 0 END`);
    const sql = r.pick(opts)();
    return { sql: r.chance(0.3) ? `${sql} AS x${r.int(0, 99)}` : sql, plain: false };
  }

  /** ORDER BY over output positions; returns the clause and the keys. */
  orderBy(width: number, uniqueSets: number[][], requireTotal = false): { sql: string; keys: number[]; total: boolean } | undefined {
    const r = this.r;
    if (!requireTotal && !r.chance(0.5)) return undefined;
    const keys: number[] = [];
    const n = r.int(1, Math.min(3, width));
    for (let k = 0; k < n; k++) {
      const p = r.int(0, width - 1);
      if (!keys.includes(p)) keys.push(p);
    }
    if (requireTotal || r.chance(0.5)) {
      const u = uniqueSets.length ? r.pick(uniqueSets) : [];
      for (const p of u) if (!keys.includes(p)) keys.push(p);
    }
    const total = uniqueSets.some((u) => u.every((p) => keys.includes(p)));
    const sql = keys.map((p) => `${p + 1}${r.chance(0.3) ? ' DESC' : ''}${r.chance(0.15) ? r.pick([' NULLS FIRST', ' NULLS LAST']) : ''}`).join(', ');
    return { sql: ` ORDER BY ${sql}`, keys, total };
  }

  limit(): string {
    const r = this.r;
    if (!r.chance(0.35)) return '';
    let l = r.chance(0.85) ? ` LIMIT ${r.int(0, 10)}` : '';
    if (l && this.useParams && r.chance(0.3)) {
      this.params.push(intVal(r.int(0, 10)));
      l = ` LIMIT $${this.params.length}`;
    }
    const o = r.chance(0.4) ? ` OFFSET ${r.int(0, 6)}` : '';
    return l + o || ' LIMIT 3';
  }

  stmt(sql: string, order: { keys: number[]; total: boolean } | undefined, limited: boolean, opaqueOrder = false): Stmt {
    const s: Stmt = { sql, params: this.params, orderKeys: order ? order.keys : null, total: order?.total ?? false, limited, risky: this.risky, opaqueOrder };
    this.params = [];
    this.risky = false;
    return s;
  }

  // ---------------------------------------------------------------- query kinds

  simpleSelect(): Stmt {
    const r = this.r;
    const t = r.pick(this.s.tables);
    const refs = this.refs(t, r.chance(0.25) ? 'q' : null);
    // An alias, or a subquery in FROM.
    const from = refs[0]!.alias !== 'q' ? t.name : r.chance(0.5) ? `${t.name} q` : `(SELECT * FROM ${t.name}${r.chance(0.5) ? ` WHERE ${this.pred(this.refs(t, null), 1)}` : ''}) q`;
    const where = r.chance(0.85) ? ` WHERE ${r.chance(0.5) ? this.keyPred(refs) : this.pred(refs)}` : '';
    let select: string;
    let out: Array<number | undefined>; // output position → table column (plain outputs)
    if (r.chance(0.3)) {
      select = '*';
      out = t.cols.map((_, i) => i);
    } else {
      const n = r.int(1, t.cols.length + 1);
      const items: string[] = [];
      out = [];
      for (let k = 0; k < n; k++) {
        const i = r.int(0, t.cols.length - 1);
        const e = this.selectExpr(refs[i]!);
        items.push(e.sql);
        out.push(e.plain ? i : undefined);
      }
      select = items.join(', ');
    }
    const pkOut = t.pk.map((i) => out.indexOf(i));
    const unique = t.pk.length && pkOut.every((p) => p >= 0) ? [pkOut] : [];
    let order = this.orderBy(out.length, unique);
    let opaque = false;
    let orderSql = order?.sql ?? '';
    if (!order && r.chance(0.1)) {
      // ORDER BY an expression that is not in the select list.
      orderSql = ` ORDER BY ${refs[r.int(0, refs.length - 1)]!.sql}${r.chance(0.5) ? ' DESC' : ''}`;
      opaque = true;
      order = undefined;
    }
    const lim = order || opaque || r.chance(0.1) ? this.limit() : '';
    return this.stmt(`SELECT ${select} FROM ${from}${where}${orderSql}${lim}`, order, lim !== '', opaque);
  }

  distinctSelect(): Stmt {
    const r = this.r;
    const t = r.pick(this.s.tables);
    const refs = this.refs(t, null);
    const n = r.int(1, Math.min(3, t.cols.length));
    const items: string[] = [];
    for (let k = 0; k < n; k++) items.push(this.selectExpr(r.pick(refs)).sql.replace(/ AS x\d+$/, ''));
    const where = r.chance(0.5) ? ` WHERE ${this.pred(refs)}` : '';
    const all = items.map((_, i) => i);
    const order = this.orderBy(items.length, [all]);
    const lim = order ? this.limit() : '';
    return this.stmt(`SELECT DISTINCT ${items.join(', ')} FROM ${t.name}${where}${order?.sql ?? ''}${lim}`, order, lim !== '');
  }

  aggregate(refs: Ref[], from: string, where: string): Stmt {
    const r = this.r;
    const groups: string[] = [];
    const ng = r.chance(0.25) ? 0 : r.int(1, 2);
    for (let k = 0; k < ng; k++) {
      const g = r.pick(refs);
      // Sometimes an expression of the column.
      let e = g.sql;
      if (r.chance(0.15)) {
        if (isIntType(g.type)) e = `${g.sql} % 2`;
        else if (isTextType(g.type)) e = r.pick([`length(${g.sql})`, `upper(${g.sql})`]);
        else if (g.type !== 'bytea') e = `${g.sql} IS NULL`;
      }
      if (!groups.includes(e)) groups.push(e);
    }
    const aggs: string[] = [];
    const na = r.int(1, 4);
    for (let k = 0; k < na; k++) aggs.push(this.aggCall(refs));
    const items = [...groups, ...aggs];
    const byPosition = r.chance(0.3);
    const groupBy = groups.length ? ` GROUP BY ${groups.map((g, i) => (byPosition ? String(i + 1) : g)).join(', ')}` : '';
    let having = '';
    if (r.chance(0.3)) {
      const h = r.pick([() => 'count(*) > 1', () => 'count(*) >= 2', () => `${this.aggCall(refs, true)} > 0`, () => 'count(*) < 3'])();
      having = ` HAVING ${h}`;
    }
    const unique = [groups.map((_, i) => i)];
    const order = groups.length ? this.orderBy(items.length, unique) : undefined;
    const lim = order ? this.limit() : '';
    return this.stmt(`SELECT ${items.join(', ')} FROM ${from}${where}${groupBy}${having}${order?.sql ?? ''}${lim}`, order, lim !== '');
  }

  aggCall(refs: Ref[], numericOnly = false): string {
    const r = this.r;
    const nums = refs.filter((x) => isNumType(x.type));
    const kind = numericOnly ? r.pick(['sum', 'avg', 'count']) : r.pick(['count*', 'count', 'sum', 'avg', 'min', 'max', 'countd', 'sumd']);
    const distinct = kind.endsWith('d');
    if (kind === 'count*' || ((kind.startsWith('sum') || kind === 'avg') && nums.length === 0)) return 'count(*)';
    if (kind === 'count' || kind === 'countd') return `count(${distinct ? 'DISTINCT ' : ''}${r.pick(refs).sql})${this.aggFilter(refs)}`;
    if (kind === 'min' || kind === 'max') {
      const mm = refs.filter((x) => hasMinMax(x.type));
      if (!mm.length) return 'count(*)';
      return `${kind}(${r.pick(mm).sql})`;
    }
    const n = r.pick(nums);
    const arg = r.chance(0.15) ? `${n.sql} * 2` : n.sql;
    // Overflow of int4 * 2: PostgreSQL may stop early (an ordered GroupAggregate under LIMIT) and never see it.
    if (arg !== n.sql && n.type === 'integer') this.risky = true;
    const fn = kind.startsWith('sum') ? 'sum' : 'avg';
    return `${fn}(${distinct ? 'DISTINCT ' : ''}${arg})${this.aggFilter(refs)}`;
  }

  aggFilter(refs: Ref[]): string {
    return this.r.chance(0.1) ? ` FILTER (WHERE ${this.pred(refs, 1)})` : '';
  }

  singleAggregate(): Stmt {
    const r = this.r;
    const t = r.pick(this.s.tables);
    const refs = this.refs(t, null);
    const where = r.chance(0.6) ? ` WHERE ${r.chance(0.4) ? this.keyPred(refs) : this.pred(refs)}` : '';
    return this.aggregate(refs, t.name, where);
  }

  /** Equal-typed column pairs (left, right), primary-key-first pairs first. */
  joinPairs(l: Ref[], rr: Ref[]): Array<[Ref, Ref]> {
    const pairs: Array<[Ref, Ref]> = [];
    for (const a of l) for (const b of rr) if (a.type === b.type || (isIntType(a.type) && isIntType(b.type) && this.r.chance(0.3))) pairs.push([a, b]);
    return pairs;
  }

  join(): Stmt | undefined {
    const r = this.r;
    const tl = r.pick(this.s.tables);
    const tr = r.pick(this.s.tables);
    const L = this.refs(tl, 'l');
    const R = this.refs(tr, 'r');
    const pairs = this.joinPairs(L, R);
    const kind = r.chance(0.4) ? 'LEFT JOIN' : r.chance(0.15) ? 'comma' : 'JOIN';
    // USING (col) when both sides have a column of that name and type.
    const usable = kind === 'comma' ? [] : pairs.filter(([a, b]) => a.col.name === b.col.name && a.type === b.type);
    const using = usable.length && r.chance(0.2) ? r.pick(usable) : undefined;
    let on = '';
    if (using) {
      // no ON clause
    } else if (pairs.length === 0 || r.chance(0.05)) {
      const a = r.pick(L);
      const others = R.filter((x) => sameFamily(x.type, a.type));
      on = others.length ? `${a.sql} ${r.pick(['<', '<=', '<>'])} ${r.pick(others).sql}` : 'true';
    } else {
      // Prefer primary-key leading columns on both sides: merge joins.
      const pkPairs = pairs.filter(([a, b]) => a.table.pk[0] === a.table.cols.indexOf(a.col) && b.table.pk[0] === b.table.cols.indexOf(b.col));
      const [a, b] = pkPairs.length && r.chance(0.5) ? r.pick(pkPairs) : r.pick(pairs);
      on = r.chance(0.5) ? `${a.sql} = ${b.sql}` : `${b.sql} = ${a.sql}`;
      if (r.chance(0.2)) {
        const [c, d] = r.pick(pairs);
        on += ` AND ${c.sql} = ${d.sql}`;
      }
      if (r.chance(0.2)) on += ` AND ${this.pred(r.chance(0.5) ? L : R, 1)}`;
    }
    let from = kind === 'comma' ? `${tl.name} l, ${tr.name} r` : `${tl.name} l ${kind} ${tr.name} r ${using ? `USING (${using[0].col.name})` : `ON ${on}`}`;
    let all = [...L, ...R];
    // Keys of the output (none when a table has no primary key).
    let unique: Ref[][] = tl.pk.length && tr.pk.length ? [[...tl.pk.map((i) => L[i]!), ...tr.pk.map((i) => R[i]!)]] : [];
    if (kind !== 'comma' && this.s.tables.length > 1 && r.chance(0.15)) {
      // A third table.
      const tm = r.pick(this.s.tables);
      const M = this.refs(tm, 'm');
      const p3 = this.joinPairs(all, M);
      if (p3.length) {
        const [a, b] = r.pick(p3);
        from += ` ${r.chance(0.5) ? 'LEFT JOIN' : 'JOIN'} ${tm.name} m ON ${b.sql} = ${a.sql}`;
        all = [...all, ...M];
        unique = unique.length && tm.pk.length ? [[...unique[0]!, ...tm.pk.map((i) => M[i]!)]] : [];
      }
    }
    const conds: string[] = [];
    if (kind === 'comma') conds.push(on);
    if (r.chance(0.5)) conds.push(this.pred(all, 1));
    if (kind === 'LEFT JOIN' && r.chance(0.15)) conds.push(`r.${tr.cols[tr.pk[0] ?? 0]!.name} IS NULL`);
    const where = conds.length ? ` WHERE ${conds.join(' AND ')}` : '';
    if (r.chance(0.25)) return this.aggregate(all, from, where);
    const items: string[] = [];
    let out: Ref[] = [];
    if (all.length === L.length + R.length && r.chance(0.15)) {
      // SELECT *: with USING, the merged column comes first and the right side's copy is not shown.
      items.push('*');
      out = using ? [using[0], ...L.filter((x) => x !== using[0]), ...R.filter((x) => x !== using[1])] : [...L, ...R];
      if (using) unique = unique.map((u) => u.map((x) => (x === using[1] ? using[0] : x)));
    }
    const n = items.length ? 0 : r.int(1, 5);
    for (let k = 0; k < n; k++) {
      const ref = r.pick(all);
      items.push(ref.sql);
      out.push(ref);
    }
    if (unique.length && !items.includes('*') && r.chance(0.3)) {
      // Output every key column, so that a total order is possible.
      for (const ref of unique[0]!) if (!out.includes(ref)) {
        items.push(ref.sql);
        out.push(ref);
      }
    }
    const uniquePos = unique.map((u) => u.map((ref) => out.indexOf(ref))).filter((u) => u.every((p) => p >= 0));
    const order = this.orderBy(out.length, uniquePos);
    const lim = order ? this.limit() : '';
    return this.stmt(`SELECT ${items.join(', ')} FROM ${from}${where}${order?.sql ?? ''}${lim}`, order, lim !== '');
  }

  subquery(): Stmt | undefined {
    const r = this.r;
    const ta = r.pick(this.s.tables);
    const A = this.refs(ta, null);
    const cond = this.subqueryCond(A);
    if (!cond) return undefined;
    const extra = r.chance(0.3) ? ` AND ${this.pred(A, 1)}` : '';
    const order = this.orderBy(ta.cols.length, ta.pk.length ? [ta.pk] : []);
    return this.stmt(`SELECT * FROM ${ta.name} WHERE ${cond}${extra}${order?.sql ?? ''}`, order, false);
  }

  /** An uncorrelated subquery condition on columns A: IN, a comparison with min/max, EXISTS. */
  subqueryCond(A: Ref[]): string | undefined {
    const r = this.r;
    const tb = r.pick(this.s.tables);
    const B = this.refs(tb, 's');
    const kind = r.int(0, 2);
    let cond: string;
    if (kind === 0) {
      const pairs = A.flatMap((a) => B.filter((b) => sameFamily(a.type, b.type)).map((b) => [a, b] as const));
      if (!pairs.length) return undefined;
      const [a, b] = r.pick(pairs);
      const w = r.chance(0.5) ? ` WHERE ${this.pred(B, 1)}` : '';
      return `${a.sql} ${r.chance(0.3) ? 'NOT ' : ''}IN (SELECT ${b.sql} FROM ${tb.name} s${w})`;
    } else if (kind === 1) {
      const pairs = A.flatMap((a) => B.filter((b) => sameFamily(a.type, b.type) && hasMinMax(a.type)).map((b) => [a, b] as const));
      if (!pairs.length) return undefined;
      const [a, b] = r.pick(pairs);
      return `${a.sql} ${r.pick(['=', '<', '>=', '<>'])} (SELECT ${r.pick(['min', 'max'])}(${b.sql}) FROM ${tb.name} s)`;
    } else {
      cond = `${r.chance(0.3) ? 'NOT ' : ''}EXISTS (SELECT 1 FROM ${tb.name} s WHERE ${this.pred(B, 1)})`;
    }
    return cond;
  }

  fullSelect(t: Table): Stmt {
    return { sql: `SELECT * FROM ${t.name}`, params: [], orderKeys: null, limited: false };
  }

  update(t: Table): Stmt {
    const r = this.r;
    const refs = this.refs(t, null);
    const ci = r.int(0, t.cols.length - 1);
    const col = t.cols[ci]!;
    const ref = refs[ci]!;
    let value: string;
    const keyish = t.pk.includes(ci) || col.unique || t.uniqueSet?.includes(ci);
    const same = refs.filter((x) => x !== ref && x.type === col.type);
    const k = r.int(0, 5);
    if (keyish || k <= 1) value = this.lit(col.type, !col.notNull || r.chance(0.1));
    // Not a float negation: CascaDB stores -0 as 0 (a codec decision; PostgreSQL keeps -0 in a float8 column).
    else if (k === 2 && isNumType(col.type) && col.type !== 'double precision') value = this.arith(ref).replace(/^-(\w+)$/, '$1 * -1');
    else if (k === 2 && col.type === 'double precision') value = r.pick([`${ref.sql} * 2`, `${ref.sql} + 0.5`, `${ref.sql} / 4`]);
    else if (k === 2 && isTextType(col.type)) value = r.pick([`${ref.sql} || 'z'`, `upper(${ref.sql})`, `lower(${ref.sql})`]);
    else if (k === 3 && same.length) value = r.pick(same).sql;
    else if (k === 4) value = `CASE WHEN ${this.pred(refs, 1)} THEN ${this.lit(col.type)} ELSE ${ref.sql} END`;
    else if (k === 5 && hasMinMax(col.type) && r.chance(0.5)) {
      const src = this.s.tables.flatMap((x) => x.cols.filter((c) => c.type === col.type).map((c) => `(SELECT ${r.pick(['min', 'max'])}(s.${c.name}) FROM ${x.name} s)`));
      value = src.length ? r.pick(src) : this.lit(col.type, !col.notNull);
    } else value = this.lit(col.type, !col.notNull);
    // Sometimes a second column, set to a value that cannot fail (the first error would depend on the order).
    const plain = t.cols.map((c, i) => i).filter((i) => i !== ci && !t.pk.includes(i) && !t.cols[i]!.unique && !t.uniqueSet?.includes(i));
    let set2 = '';
    if (plain.length && r.chance(0.25)) {
      const c2 = t.cols[r.pick(plain)]!;
      const v2 = r.pick(DOMAIN[c2.type]);
      set2 = `, ${c2.name} = ${v2.sql}`;
    }
    // Overflow in the SET expression depends only on the rows matched, which both engines agree on; overflow in
    // the WHERE clause depends on which rows an engine evaluates it for.
    this.noOverflow = true;
    const where = r.chance(0.85) ? ` WHERE ${this.dmlWhere(refs)}` : '';
    this.noOverflow = false;
    return this.stmt(`UPDATE ${t.name} SET ${col.name} = ${value}${set2}${where}`, undefined, false);
  }

  dmlWhere(refs: Ref[]): string {
    const r = this.r;
    const k = r.int(0, 9);
    if (k < 4) return this.keyPred(refs);
    if (k < 8) return this.pred(refs);
    return this.subqueryCond(refs) ?? this.pred(refs);
  }

  delete(t: Table): Stmt {
    const r = this.r;
    const refs = this.refs(t, null);
    this.noOverflow = true;
    const where = r.chance(0.9) ? ` WHERE ${this.dmlWhere(refs)}` : '';
    this.noOverflow = false;
    return this.stmt(`DELETE FROM ${t.name}${where}`, undefined, false);
  }

  insert(t: Table): Stmt {
    const r = this.r;
    const n = r.int(1, 3);
    const rows = Array.from({ length: n }, () => t.cols.map((c) => genValue(this.r, c)));
    if (r.chance(0.1)) {
      // A NOT NULL violation.
      const nn = t.cols.map((c, i) => (c.notNull ? i : -1)).filter((i) => i >= 0);
      if (nn.length) rows[r.int(0, n - 1)]![r.pick(nn)] = NULL_VAL;
    } else if (t.rows.length && r.chance(0.2)) {
      // A copy of a loaded row: a duplicate key, unless it was deleted since.
      rows[0] = [...r.pick(t.rows)];
    }
    if (r.chance(0.15)) {
      // INSERT … SELECT from a table whose columns have the same types (itself included: duplicate keys).
      const sources = this.s.tables.filter((x) => x.cols.length === t.cols.length && x.cols.every((c, i) => c.type === t.cols[i]!.type));
      const src = r.pick(sources);
      const refs = this.refs(src, null);
      this.noOverflow = true;
      const conds = r.chance(0.7) ? [this.pred(refs)] : [];
      this.noOverflow = false;
      // Source rows come in no particular order: NULLs for NOT NULL columns are filtered out, so that the only
      // possible error (a duplicate key) does not depend on which row comes first.
      t.cols.forEach((c, i) => c.notNull && src.cols[i]!.notNull === false && conds.push(`${src.cols[i]!.name} IS NOT NULL`));
      const where = conds.length ? ` WHERE ${conds.join(' AND ')}` : '';
      return this.stmt(`INSERT INTO ${t.name} SELECT * FROM ${src.name}${where}${r.chance(0.5) ? ' ON CONFLICT DO NOTHING' : ''}`, undefined, false);
    }
    return this.stmt(`${insertSql(t, rows)}${r.chance(0.2) ? ' ON CONFLICT DO NOTHING' : ''}`, undefined, false);
  }

  dml(): Item {
    const r = this.r;
    const t = r.pick(this.s.tables);
    const one = () => {
      const k = r.int(0, 2);
      return k === 0 ? this.update(t) : k === 1 ? this.delete(t) : this.insert(t);
    };
    if (r.chance(0.2)) {
      // A transaction: reads see its own writes; then COMMIT or ROLLBACK.
      const item: Item = [{ sql: 'BEGIN', params: [], orderKeys: null }, one(), this.fullSelect(t)];
      if (r.chance(0.5)) item.push(one(), this.fullSelect(t));
      item.push({ sql: r.chance(0.5) ? 'COMMIT' : 'ROLLBACK', params: [], orderKeys: null }, this.fullSelect(t));
      return item;
    }
    return [one(), this.fullSelect(t)];
  }

  item(): Item {
    const r = this.r;
    for (;;) {
      this.params = [];
      this.risky = false;
      this.useParams = r.chance(0.2);
      const k = r.int(0, 99);
      let s: Stmt | undefined;
      if (k < 30) s = this.simpleSelect();
      else if (k < 37) s = this.distinctSelect();
      else if (k < 52) s = this.singleAggregate();
      else if (k < 72) s = this.join();
      else if (k < 80) s = this.subquery();
      else return this.dml();
      if (s) return [s];
    }
  }
}

export function genItems(r: Rand, s: Schema, n: number): Item[] {
  const g = new QueryGen(r, s);
  return Array.from({ length: n }, () => g.item());
}

// ------------------------------------------------------------------ running and comparing

export type Cell = null | boolean | number | string;

export type Outcome =
  | { ok: true; cols: Array<{ name: string; oid: number }>; rows: Cell[][]; count: number }
  | { ok: false; code: string; message: string };

const TYPE_OIDS: Record<string, number> = { bool: 16, bytea: 17, int8: 20, int2: 21, int4: 23, text: 25, float4: 700, float8: 701, varchar: 1043, timestamp: 1114, timestamptz: 1184, numeric: 1700, unknown: 705 };
const FLOAT_OIDS = new Set([700, 701]);

const ident = (x: string) => x;
/** PGlite parsers that keep every value as PostgreSQL's text output; normalisation happens here. */
export const PG_TEXT_PARSERS: Record<number, (x: string) => string> = Object.fromEntries([16, 17, 20, 21, 23, 25, 26, 700, 701, 1043, 1114, 1184, 1700, 705, 19].map((o) => [o, ident]));

function floatCell(x: unknown): Cell {
  if (typeof x === 'number') return Number.isNaN(x) ? 'NaN' : x === Infinity ? 'Infinity' : x === -Infinity ? '-Infinity' : x;
  const s = String(x);
  if (s === 'NaN' || s === 'Infinity' || s === '-Infinity') return s;
  return Number(s);
}

/** PostgreSQL text output → a cell, by type. */
export function pgCell(oid: number, v: unknown): Cell {
  if (v === null || v === undefined) return null;
  const s = String(v);
  switch (oid) {
    case 16:
      return s === 't';
    case 20:
    case 21:
    case 23:
    case 26:
      return Number(s);
    case 700:
    case 701:
      return floatCell(s);
    default:
      return s;
  }
}

/** CascaDB JSON value → a cell, by CascaDB's reported type. */
export function cdbCell(type: string, v: unknown): Cell {
  if (v === null || v === undefined) return null;
  if (type === 'float4' || type === 'float8') return floatCell(v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string') return v;
  return JSON.stringify(v);
}

export function cdbOid(type: string): number {
  return TYPE_OIDS[type] ?? -1;
}

function errOutcome(err: unknown): Outcome {
  const e = err as { code?: unknown; message?: unknown };
  return { ok: false, code: typeof e.code === 'string' ? e.code : 'NOCODE', message: String(e.message ?? err) };
}

export interface PgLike {
  query(sql: string, params?: unknown[], options?: Record<string, unknown>): Promise<{ rows: unknown[]; fields: Array<{ name: string; dataTypeID: number }>; affectedRows?: number }>;
}

export interface CdbLike {
  q(sql: string, params?: unknown[]): Promise<{ columns: Array<{ name: string; type: string }>; rows: unknown[][]; rowCount: number; command: string }>;
}

export async function runPg(pg: PgLike, sql: string, params: unknown[]): Promise<Outcome> {
  try {
    const r = await pg.query(sql, params, { rowMode: 'array', parsers: PG_TEXT_PARSERS });
    const cols = r.fields.map((f) => ({ name: f.name, oid: f.dataTypeID }));
    const rows = (r.rows as unknown[][]).map((row) => row.map((v, i) => pgCell(cols[i]!.oid, v)));
    return { ok: true, cols, rows, count: r.fields.length ? rows.length : r.affectedRows ?? 0 };
  } catch (err) {
    return errOutcome(err);
  }
}

export async function runCdb(db: CdbLike, sql: string, params: unknown[]): Promise<Outcome> {
  try {
    const r = await db.q(sql, params);
    const cols = r.columns.map((c) => ({ name: c.name, oid: cdbOid(c.type) }));
    const rows = r.rows.map((row) => row.map((v, i) => cdbCell(r.columns[i]!.type, v)));
    return { ok: true, cols, rows, count: r.columns.length ? rows.length : r.rowCount };
  } catch (err) {
    return errOutcome(err);
  }
}

const REL_TOL = 1e-9;

function cellEq(a: Cell, b: Cell, float: boolean): boolean {
  if (a === b) return true;
  if (float && typeof a === 'number' && typeof b === 'number') return Math.abs(a - b) <= REL_TOL * Math.max(Math.abs(a), Math.abs(b));
  return false;
}

function rowEq(a: Cell[], b: Cell[], floats: boolean[]): boolean {
  return a.length === b.length && a.every((x, i) => cellEq(x, b[i]!, floats[i]!));
}

/** A sort key for multiset comparison: floats rounded, so that near-equal rows sort next to each other. */
function rowKey(row: Cell[], floats: boolean[]): string {
  return JSON.stringify(row.map((c, i) => (floats[i] && typeof c === 'number' ? Number(c.toPrecision(8)) : c)));
}

/** Rows of `a` with no partner in `b` (tolerant multiset difference). */
function unmatched(a: Cell[][], b: Cell[][], floats: boolean[]): Cell[][] {
  const pool = [...b];
  const out: Cell[][] = [];
  for (const row of a) {
    const i = pool.findIndex((x) => rowEq(row, x, floats));
    if (i < 0) out.push(row);
    else pool.splice(i, 1);
  }
  return out;
}

function multisetEq(a: Cell[][], b: Cell[][], floats: boolean[]): boolean {
  if (a.length !== b.length) return false;
  const sa = [...a].sort((x, y) => cmpStr(rowKey(x, floats), rowKey(y, floats)));
  const sb = [...b].sort((x, y) => cmpStr(rowKey(x, floats), rowKey(y, floats)));
  if (sa.every((r, i) => rowEq(r, sb[i]!, floats))) return true;
  return unmatched(a, b, floats).length === 0;
}

const cmpStr = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);

const show = (rows: Cell[][], max = 12) => rows.slice(0, max).map((r) => JSON.stringify(r)).join('\n      ') + (rows.length > max ? `\n      … ${rows.length - max} more` : '');

export function describeOutcome(o: Outcome): string {
  if (!o.ok) return `ERROR ${o.code}: ${o.message}`;
  if (!o.cols.length) return `OK, ${o.count} row(s) affected`;
  return `${o.rows.length} row(s) [${o.cols.map((c) => `${c.name}:${c.oid}`).join(', ')}]\n      ${show(o.rows)}`;
}

export interface Verdict {
  /** A description of the difference, or undefined when the answers agree. */
  diff?: string;
  /** The statement's answers may legitimately differ (evaluation order): not counted. */
  skipped?: boolean;
}

/** Compares the two answers to one statement. */
export function compareOutcomes(st: Stmt, pg: Outcome, cdb: Outcome): Verdict {
  if (!pg.ok || !cdb.ok) {
    if (!pg.ok && !cdb.ok) {
      if (pg.code === cdb.code) return {};
      // An overflow on one side, another error on the other: which comes first depends on evaluation order.
      if (st.risky && (pg.code.startsWith('22') || cdb.code.startsWith('22'))) return { skipped: true };
      return { diff: `different SQLSTATE: PostgreSQL ${pg.code}, CascaDB ${cdb.code}` };
    }
    const failed = (pg.ok ? cdb : pg) as { code: string };
    if (st.risky && failed.code.startsWith('22')) return { skipped: true };
    return { diff: pg.ok ? 'CascaDB raised an error, PostgreSQL did not' : 'PostgreSQL raised an error, CascaDB did not' };
  }
  if (pg.cols.length !== cdb.cols.length) return { diff: 'different number of columns' };
  for (let i = 0; i < pg.cols.length; i++) {
    if (pg.cols[i]!.name !== cdb.cols[i]!.name) return { diff: `column ${i + 1} named ${JSON.stringify(pg.cols[i]!.name)} by PostgreSQL, ${JSON.stringify(cdb.cols[i]!.name)} by CascaDB` };
    if (pg.cols[i]!.oid !== cdb.cols[i]!.oid) return { diff: `column ${i + 1} (${pg.cols[i]!.name}) has type oid ${pg.cols[i]!.oid} in PostgreSQL, ${cdb.cols[i]!.oid} in CascaDB` };
  }
  if (!pg.cols.length) return pg.count === cdb.count ? {} : { diff: `affected rows: PostgreSQL ${pg.count}, CascaDB ${cdb.count}` };
  const floats = pg.cols.map((c) => FLOAT_OIDS.has(c.oid));
  if (pg.rows.length !== cdb.rows.length) return { diff: `row count: PostgreSQL ${pg.rows.length}, CascaDB ${cdb.rows.length}` };
  // Sort keys compare by value: numeric 3 and 3.00 tie, and either may come first.
  const numericCols = pg.cols.map((c) => c.oid === 1700);
  const byValue = (c: Cell, k: number) => (numericCols[k] && typeof c === 'string' && c.includes('.') ? c.replace(/\.?0+$/, '') || '0' : c);
  const keysOf = (rows: Cell[][]) => rows.map((r) => st.orderKeys!.map((k) => byValue(r[k]!, k)));
  const keyFloats = st.orderKeys?.map((k) => floats[k]!) ?? [];
  if (st.orderKeys && st.total) {
    // A total order: the exact sequence.
    const i = pg.rows.findIndex((r, j) => !rowEq(r, cdb.rows[j]!, floats));
    return i < 0 ? {} : { diff: `row ${i + 1} differs (ordered by a unique key): PostgreSQL ${JSON.stringify(pg.rows[i])}, CascaDB ${JSON.stringify(cdb.rows[i])}` };
  }
  if (st.orderKeys) {
    // The sequence of sort keys is determined even when ties are not.
    const a = keysOf(pg.rows);
    const b = keysOf(cdb.rows);
    const i = a.findIndex((r, j) => !rowEq(r, b[j]!, keyFloats));
    if (i >= 0) return { diff: `sort keys of row ${i + 1} differ: PostgreSQL ${JSON.stringify(a[i])}, CascaDB ${JSON.stringify(b[i])}` };
  }
  if (st.limited) return {}; // which tied rows a LIMIT keeps is not determined
  if (!multisetEq(pg.rows, cdb.rows, floats)) {
    const onlyPg = unmatched(pg.rows, cdb.rows, floats);
    const onlyCdb = unmatched(cdb.rows, pg.rows, floats);
    return { diff: `different rows (as multisets)\n    only in PostgreSQL: ${show(onlyPg, 6)}\n    only in CascaDB: ${show(onlyCdb, 6)}` };
  }
  return {};
}

/** The parameter values of a statement for each engine. */
export function paramsFor(st: Stmt): { pg: unknown[]; cdb: unknown[] } {
  return { pg: st.params.map((v) => v.pg), cdb: st.params.map((v) => v.cdb) };
}

export function formatParams(st: Stmt): string {
  return st.params.length ? `  -- params: ${JSON.stringify(st.params.map((v) => v.cdb))}` : '';
}

/** A text (or timestamp, numeric: anything given as text) parameter value. */
export function textParam(s: string): Val {
  return textVal(s);
}

export function byteaParam(hex: string): Val {
  return byteaVal(hex);
}
