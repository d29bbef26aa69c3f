// Expressions: libpg-query AST nodes compiled once into closures over a row (an array of values).
// Three-valued logic, PostgreSQL's numeric rules (integer overflow errors, numeric via decimal.js with
// PostgreSQL's display scales), C-collation text order, LIKE, IN, CASE, casts and the common functions.
import { compareValues, type SqlValue } from '../codec/index.js';
import { PgError } from '../server/backend.js';
import {
  Decimal,
  castValue,
  checkInt,
  divScale,
  fromText,
  isNumericType,
  numericResult,
  numericScale,
  numericText,
  resolveTypeName,
  toText,
  type SqlType,
} from './types.js';

export type Node = Record<string, any>;

export interface ScopeColumn {
  /** The table alias (or name) the column belongs to; undefined for computed columns. */
  rel?: string;
  name: string;
  type: SqlType;
  pgType?: string;
  typmod?: number;
  hidden?: boolean;
  tableOid?: number;
  attnum?: number;
}

export interface Scope {
  cols: ScopeColumn[];
  /** The column order of an unqualified * when it is not cols' order (a join USING puts its columns first). */
  star?: number[];
}

export interface EvalCtx {
  params: SqlValue[];
  /** Results of uncorrelated subqueries, evaluated before the statement runs. */
  subqueries: SubqueryResult[];
  now: number;
  /** The rows of the enclosing queries, innermost last, while a correlated subquery runs for them. */
  outer?: SqlValue[][];
  /** The session (user name, settings) for current_user, current_setting() and the catalog. */
  session?: { user: string; params: Record<string, string> };
}

export interface SubqueryResult {
  values: SqlValue[];
  hasNull: boolean;
  set?: Set<string>;
}

export interface Compiled {
  type: SqlType;
  eval: (row: SqlValue[], ctx: EvalCtx) => SqlValue;
  /** A constant value (no columns, parameters or subqueries), when known at compile time. */
  constant?: { value: SqlValue };
  /** A bare column reference: its index in the scope. */
  column?: number;
  /** A parameter reference ($n → n-1). */
  param?: number;
  pgType?: string;
  typmod?: number;
}

/** Aggregation context: how expressions over grouped rows resolve. */
export interface AggContext {
  groupKeys: string[]; // fingerprints of GROUP BY expressions (output slots 0..n-1)
  aggregates: AggSpec[]; // output slots n.. in order
  inputScope: Scope;
  groupTypes: SqlType[];
}

export interface AggSpec {
  fingerprint: string;
  func: 'count' | 'sum' | 'avg' | 'min' | 'max';
  star: boolean;
  distinct: boolean;
  arg?: Compiled;
  /** FILTER (WHERE …): only rows for which it is true are aggregated. */
  filter?: Compiled;
  type: SqlType;
}

export interface CompileEnv {
  paramTypes: SqlType[];
  /** Planning of subqueries is the planner's job: it registers them and returns their slot and result type. */
  subquery: (select: Node, scope: Scope) => { slot: number; type: SqlType };
  agg?: AggContext;
  /** Scopes of the enclosing queries, innermost first: a subquery's names that are not its own resolve there. */
  outer?: Scope[];
  /** Told when a name resolved in outer[level]. */
  onOuter?: (level: number) => void;
  /** Catalog functions (pg_get_indexdef, format_type, …) and casts to regclass/regtype, from pg-catalog.ts. */
  catalogFunction?: (name: string, args: Compiled[]) => Compiled | undefined;
}

const AGG_FUNCS = new Set(['count', 'sum', 'avg', 'min', 'max']);

export function str(n: Node | undefined): string {
  return n?.String?.sval ?? n?.sval ?? '';
}

export function names(list: Node[] | undefined): string[] {
  return (list ?? []).map(str);
}

/** A location-free fingerprint of an AST node, to recognise GROUP BY expressions in the target list. */
export function fingerprint(n: unknown): string {
  return JSON.stringify(n, (k, v) => (k === 'location' ? undefined : v));
}

export function isAggregateCall(n: Node): boolean {
  return !!n.FuncCall && AGG_FUNCS.has(names(n.FuncCall.funcname).at(-1)!.toLowerCase()) && !n.FuncCall.over;
}

export function containsAggregate(n: unknown): boolean {
  if (!n || typeof n !== 'object') return false;
  if (Array.isArray(n)) return n.some(containsAggregate);
  const o = n as Node;
  if (o.SubLink) return false;
  if (isAggregateCall(o)) return true;
  return Object.values(o).some(containsAggregate);
}

export function constValue(n: Node): { value: SqlValue; type: SqlType } {
  const c = n.A_Const;
  if (c.isnull) return { value: null, type: 'unknown' };
  if (c.ival !== undefined) {
    const v = c.ival.ival ?? 0;
    return { value: v, type: Math.abs(v) > 2147483647 ? 'int8' : 'int4' };
  }
  if (c.fval !== undefined) {
    const t = String(c.fval.fval);
    // An integer literal too long for int4 arrives as fval (-2147483648 too, negated by the grammar); PostgreSQL
    // types it by its value: int4 if it fits, else int8, else numeric.
    if (/^-?\d+$/.test(t) && Math.abs(Number(t)) <= Number.MAX_SAFE_INTEGER) {
      const v = Number(t);
      return { value: v, type: v >= -2147483648 && v <= 2147483647 ? 'int4' : 'int8' };
    }
    return { value: numericText(new Decimal(t), /e/i.test(t) ? undefined : numericScale(t)), type: 'numeric' };
  }
  if (c.sval !== undefined) return { value: c.sval.sval ?? '', type: 'unknown' };
  if (c.boolval !== undefined) return { value: !!c.boolval.boolval, type: 'bool' };
  if (c.bsval !== undefined) throw new PgError('0A000', 'bit-string literals are not supported');
  throw new PgError('0A000', 'unsupported constant');
}

function hasWide(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0xd800) return true;
  return false;
}

/** Text comparison in UTF-8 byte order (PostgreSQL's C collation). */
export function compareText(a: string, b: string): number {
  if (hasWide(a) || hasWide(b)) return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Compares two non-NULL values of (possibly different) numeric or same types. */
export function compareAny(ta: SqlType, a: SqlValue, tb: SqlType, b: SqlValue): number {
  if (typeof a === 'number' && typeof b === 'number') {
    if (Number.isNaN(a)) return Number.isNaN(b) ? 0 : 1;
    if (Number.isNaN(b)) return -1;
    return a < b ? -1 : a > b ? 1 : 0;
  }
  if (typeof a === 'string' && typeof b === 'string' && ta !== 'numeric' && tb !== 'numeric') return compareText(a, b);
  if (ta === 'numeric' || tb === 'numeric') {
    const fa = typeof a === 'number' && (ta === 'float4' || ta === 'float8');
    const fb = typeof b === 'number' && (tb === 'float4' || tb === 'float8');
    if (fa || fb) return compareAny('float8', Number(a), 'float8', Number(b));
    return new Decimal(a as string | number).cmp(new Decimal(b as string | number));
  }
  if (typeof a === 'boolean' && typeof b === 'boolean') return a === b ? 0 : a ? 1 : -1;
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return Buffer.compare(a, b);
  return compareValues('text', String(a), String(b));
}

function comparable(a: SqlType, b: SqlType): boolean {
  if (a === 'unknown' || b === 'unknown' || a === b) return true;
  if (isNumericType(a) && isNumericType(b)) return true;
  return false;
}

function typeName(t: SqlType): string {
  return t === 'int4' ? 'integer' : t === 'int8' ? 'bigint' : t === 'float8' ? 'double precision' : t === 'float4' ? 'real' : t === 'bool' ? 'boolean' : t === 'timestamp' ? 'timestamp without time zone' : t;
}

/** Coerces an untyped side (a string literal or a parameter) to the other side's type. */
function unify(env: CompileEnv, a: Compiled, b: Compiled): [Compiled, Compiled] {
  if (a.type === 'unknown' && b.type !== 'unknown') a = coerce(env, a, b.type);
  else if (b.type === 'unknown' && a.type !== 'unknown') b = coerce(env, b, a.type);
  return [a, b];
}

/** An expression of unknown type (literal, NULL, parameter) made into `type`. */
export function coerce(env: CompileEnv, c: Compiled, type: SqlType): Compiled {
  if (c.type !== 'unknown' || type === 'unknown') return c;
  if (c.param !== undefined) {
    if (env.paramTypes[c.param] === 'unknown' || env.paramTypes[c.param] === undefined) env.paramTypes[c.param] = type;
    const i = c.param;
    return { type: env.paramTypes[i]!, param: i, eval: (_r, ctx) => ctx.params[i]! };
  }
  if (c.constant) {
    const v = c.constant.value === null ? null : fromText(type, String(c.constant.value));
    return constant(v, type);
  }
  return { ...c, type };
}

export function constant(value: SqlValue, type: SqlType): Compiled {
  return { type, constant: { value }, eval: () => value };
}

const num = (v: SqlValue) => v as number;

function arith(op: string, l: Compiled, r: Compiled): Compiled {
  const t = numericResult(l.type, r.type);
  const le = l.eval;
  const re = r.eval;
  const lt = l.type;
  const rt = r.type;
  if (t === 'int4' || t === 'int8') {
    const f: Record<string, (a: number, b: number) => number> = {
      '+': (a, b) => a + b,
      '-': (a, b) => a - b,
      '*': (a, b) => a * b,
      '/': (a, b) => {
        if (b === 0) throw new PgError('22012', 'division by zero');
        return Math.trunc(a / b);
      },
      '%': (a, b) => {
        if (b === 0) throw new PgError('22012', 'division by zero');
        return a % b;
      },
    };
    const fn = f[op];
    if (!fn) throw new PgError('42883', `operator does not exist: ${typeName(lt)} ${op} ${typeName(rt)}`);
    return {
      type: t,
      eval: (row, ctx) => {
        const a = le(row, ctx);
        if (a === null) return null;
        const b = re(row, ctx);
        if (b === null) return null;
        return checkInt(t, fn(num(a), num(b)));
      },
    };
  }
  if (t === 'float8' || t === 'float4') {
    return {
      type: t,
      eval: (row, ctx) => {
        const a = le(row, ctx);
        if (a === null) return null;
        const b = re(row, ctx);
        if (b === null) return null;
        const x = Number(a);
        const y = Number(b);
        let v: number;
        switch (op) {
          case '+':
            v = x + y;
            break;
          case '-':
            v = x - y;
            break;
          case '*':
            v = x * y;
            break;
          case '/':
            if (y === 0) throw new PgError('22012', 'division by zero');
            v = x / y;
            break;
          case '%':
            throw new PgError('42883', 'operator does not exist: double precision % double precision');
          default:
            throw new PgError('42883', `operator does not exist: ${op}`);
        }
        if (t === 'float4') v = Math.fround(v); // real op real is computed in single precision
        if ((v === Infinity || v === -Infinity) && Number.isFinite(x) && Number.isFinite(y)) throw new PgError('22003', 'value out of range: overflow');
        if (v === 0 && x !== 0 && ((op === '*' && y !== 0) || (op === '/' && Number.isFinite(y)))) throw new PgError('22003', 'value out of range: underflow');
        return v;
      },
    };
  }
  return {
    type: 'numeric',
    eval: (row, ctx) => {
      const a = le(row, ctx);
      if (a === null) return null;
      const b = re(row, ctx);
      if (b === null) return null;
      const x = new Decimal(a as string | number);
      const y = new Decimal(b as string | number);
      const sa = typeof a === 'string' ? numericScale(a) : 0;
      const sb = typeof b === 'string' ? numericScale(b) : 0;
      switch (op) {
        case '+':
          return numericText(x.plus(y), Math.max(sa, sb));
        case '-':
          return numericText(x.minus(y), Math.max(sa, sb));
        case '*':
          return numericText(x.times(y), sa + sb);
        case '/':
          if (y.isZero()) throw new PgError('22012', 'division by zero');
          return numericText(x.div(y).toDecimalPlaces(divScale(x, y, sa, sb), Decimal.ROUND_HALF_UP), divScale(x, y, sa, sb));
        case '%':
          if (y.isZero()) throw new PgError('22012', 'division by zero');
          return numericText(x.mod(y), Math.max(sa, sb));
        default:
          throw new PgError('42883', `operator does not exist: numeric ${op} numeric`);
      }
    },
  };
}

function comparisonTest(op: string): (c: number) => boolean {
  return op === '=' ? (c) => c === 0 : op === '<>' || op === '!=' ? (c) => c !== 0 : op === '<' ? (c) => c < 0 : op === '<=' ? (c) => c <= 0 : op === '>' ? (c) => c > 0 : (c) => c >= 0;
}

function comparison(op: string, l: Compiled, r: Compiled): Compiled {
  if (!comparable(l.type, r.type)) throw new PgError('42883', `operator does not exist: ${typeName(l.type)} ${op} ${typeName(r.type)}`, { hint: 'No operator matches the given name and argument types. You might need to add explicit type casts.' });
  const le = l.eval;
  const re = r.eval;
  const lt = l.type;
  const rt = r.type;
  const test: (c: number) => boolean =
    op === '=' ? (c) => c === 0 : op === '<>' || op === '!=' ? (c) => c !== 0 : op === '<' ? (c) => c < 0 : op === '<=' ? (c) => c <= 0 : op === '>' ? (c) => c > 0 : (c) => c >= 0;
  return {
    type: 'bool',
    eval: (row, ctx) => {
      const a = le(row, ctx);
      if (a === null) return null;
      const b = re(row, ctx);
      if (b === null) return null;
      return test(compareAny(lt, a, rt, b));
    },
  };
}

/** LIKE pattern → RegExp (% any run, _ any one character, \ escapes). */
export function likeRegex(pattern: string, ci: boolean): RegExp {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '\\' && i + 1 < pattern.length) re += pattern[++i]!.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    else if (ch === '%') re += '[\\s\\S]*';
    else if (ch === '_') re += '[\\s\\S]';
    else re += ch.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`${re}$`, ci ? 'iu' : 'u');
}

/** The literal prefix of a LIKE pattern (for index ranges), and whether the pattern is exactly that prefix + '%'. */
export function likePrefix(pattern: string): { prefix: string; exact: boolean } {
  let prefix = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '%' || ch === '_') return { prefix, exact: ch === '%' && i === pattern.length - 1 };
    if (ch === '\\' && i + 1 < pattern.length) prefix += pattern[++i];
    else prefix += ch;
  }
  return { prefix, exact: false };
}

function bool3(v: SqlValue): boolean | null {
  return v === null ? null : !!v;
}

export function resolveColumn(scope: Scope, fields: string[]): number {
  let rel: string | undefined;
  let name: string;
  if (fields.length === 1) name = fields[0]!;
  else if (fields.length === 2) [rel, name] = fields as [string, string];
  else if (fields.length === 3) [, rel, name] = fields as [string, string, string];
  else throw new PgError('42601', `improper qualified name: ${fields.join('.')}`);
  let found = -1;
  for (let i = 0; i < scope.cols.length; i++) {
    const c = scope.cols[i]!;
    if (c.name !== name || (rel !== undefined && c.rel !== rel)) continue;
    if (found >= 0) {
      // A join's USING column appears once: the right side's copy is hidden from unqualified names.
      if (rel === undefined && c.hidden !== scope.cols[found]!.hidden) {
        if (scope.cols[found]!.hidden) found = i;
        continue;
      }
      throw new PgError('42702', `column reference "${name}" is ambiguous`);
    }
    found = i;
  }
  if (found < 0) {
    if (rel !== undefined && !scope.cols.some((c) => c.rel === rel)) throw new PgError('42P01', `missing FROM-clause entry for table "${rel}"`);
    throw new PgError('42703', `column ${rel ? `${rel}.` : ''}${name} does not exist`);
  }
  return found;
}

/** A column of an enclosing query (a correlated subquery's outer reference), read from the outer row at run time. */
function outerColumn(env: CompileEnv, fields: string[], err: unknown): Compiled | undefined {
  const code = (err as PgError).code;
  if (code !== '42703' && code !== '42P01') return undefined;
  const outer = env.outer ?? [];
  for (let level = 0; level < outer.length; level++) {
    let i: number;
    try {
      i = resolveColumn(outer[level]!, fields);
    } catch (e) {
      if ((e as PgError).code === '42703' || (e as PgError).code === '42P01') continue;
      throw e;
    }
    env.onOuter?.(level);
    const c = outer[level]!.cols[i]!;
    return {
      type: c.type,
      pgType: c.pgType,
      typmod: c.typmod,
      eval: (_row, ctx) => {
        const rows = ctx.outer!;
        return rows[rows.length - 1 - level]![i]!;
      },
    };
  }
  return undefined;
}

function castTo(env: CompileEnv, c: Compiled, typeNode: Node): Compiled {
  const tn = names(typeNode.names).map((s) => s.toLowerCase());
  const last = tn.at(-1)!;
  // Catalog casts. CascaDB has no arrays: a cast to an array type (int2[], text[]) keeps the value.
  if (typeNode.arrayBounds?.length) return { ...c, type: c.type === 'unknown' ? 'text' : c.type, column: undefined };
  if (last === 'oid') return { ...castTo(env, c, { names: [{ String: { sval: 'int8' } }] }), pgType: 'oid' };
  if (last === 'name' || last === 'char' || last === 'bpchar') return { ...castTo(env, c, { names: [{ String: { sval: 'text' } }] }), pgType: last === 'bpchar' ? 'text' : last };
  if (last.startsWith('reg')) {
    // regclass, regtype, regnamespace: a name (or a number) → an OID, by the catalog.
    const f = env.catalogFunction?.(last, [coerce(env, c, 'text')]);
    if (!f) return { ...c, type: c.type === 'unknown' ? 'text' : c.type };
    if (c.constant && !f.constant) return { ...constant(f.eval([], { params: [], subqueries: [], now: 0 }), f.type), pgType: f.pgType };
    return f;
  }
  const typmods = (typeNode.typmods ?? []).map((m: Node) => m.A_Const?.ival?.ival ?? 0);
  const { type, pgType, typmod } = resolveTypeName(tn, typmods);
  if (c.type === 'unknown' && c.param !== undefined) {
    const p = coerce(env, c, type);
    return { ...p, pgType, typmod };
  }
  // A cast of a column to its own declared type is the column itself (as PostgreSQL folds it).
  if (c.column !== undefined && c.type === type && c.pgType === pgType && (typmod < 0 || typmod === c.typmod)) return c;
  const from = c.type;
  const e = c.eval;
  const out: Compiled = {
    type,
    pgType,
    typmod,
    eval: (row, ctx) => {
      let v = castValue(e(row, ctx), from, type);
      if (v !== null && pgType === 'varchar' && typmod >= 0 && (v as string).length > typmod) v = (v as string).slice(0, typmod);
      return v;
    },
  };
  if (c.constant) return { ...constant(out.eval([], { params: [], subqueries: [], now: 0 }), type), pgType, typmod };
  return out;
}

const RESERVED = new Set(
  ('all analyse analyze and any array as asc asymmetric both case cast check collate column constraint create current_catalog current_date current_role ' +
    'current_time current_timestamp current_user default deferrable desc distinct do else end except false fetch for foreign from grant group having in ' +
    'initially intersect into lateral leading limit localtime localtimestamp not null offset on only or order placing primary references returning select ' +
    'session_user some symmetric system_user table then to trailing true union unique user using variadic when where window with').split(' '),
);

/** quote_ident: double-quoted unless a plain lower-case identifier that is not a reserved word. */
export function quoteIdent(s: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(s) && !RESERVED.has(s) ? s : `"${s.replace(/"/g, '""')}"`;
}

function fn(name: string, args: Compiled[]): Compiled {
  const a = args.map((x) => x.eval);
  const one = (type: SqlType, f: (v: SqlValue) => SqlValue): Compiled => {
    if (args.length !== 1) throw new PgError('42883', `function ${name} takes one argument`);
    const e = a[0]!;
    return { type, eval: (row, ctx) => { const v = e(row, ctx); return v === null ? null : f(v); } };
  };
  switch (name) {
    case 'lower':
      return one('text', (v) => String(v).toLowerCase());
    case 'upper':
      return one('text', (v) => String(v).toUpperCase());
    case 'length':
    case 'char_length':
    case 'character_length':
      return one('int4', (v) => (Buffer.isBuffer(v) ? v.length : [...String(v)].length));
    case 'abs': {
      const t = args[0]!.type === 'unknown' ? 'numeric' : args[0]!.type;
      return one(t, (v) => (t === 'numeric' ? numericText(new Decimal(v as string).abs(), numericScale(v as string)) : t === 'int4' || t === 'int8' ? checkInt(t, Math.abs(v as number)) : Math.abs(v as number)));
    }
    case 'floor':
    case 'ceil':
    case 'ceiling': {
      const t = args[0]!.type === 'numeric' || args[0]!.type === 'unknown' ? 'numeric' : isNumericType(args[0]!.type) && args[0]!.type.startsWith('int') ? 'numeric' : 'float8';
      const up = name !== 'floor';
      return one(t, (v) => (t === 'numeric' ? numericText(new Decimal(v as string | number)[up ? 'ceil' : 'floor']()) : Math[up ? 'ceil' : 'floor'](v as number)));
    }
    case 'round': {
      const t0 = args[0]!.type;
      if (args.length === 2 || t0 === 'numeric' || t0 === 'int4' || t0 === 'int8' || t0 === 'unknown') {
        const e = a[0]!;
        const s = a[1];
        return {
          type: 'numeric',
          eval: (row, ctx) => {
            const v = e(row, ctx);
            if (v === null) return null;
            const places = s ? (s(row, ctx) as number | null) : 0;
            if (places === null) return null;
            return numericText(new Decimal(v as string | number).toDecimalPlaces(Math.max(0, places), Decimal.ROUND_HALF_UP), Math.max(0, places));
          },
        };
      }
      return one('float8', (v) => { const x = v as number; const r = Math.round(x); return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r; });
    }
    case 'coalesce':
      break;
    case 'now':
    case 'current_timestamp':
    case 'statement_timestamp':
    case 'transaction_timestamp':
      return { type: 'timestamp', eval: (_r, ctx) => ctx.now };
    case 'concat':
      return { type: 'text', eval: (row, ctx) => a.map((e) => e(row, ctx)).filter((v) => v !== null).map(String).join('') };
    case 'substr':
    case 'substring': {
      const [s, st, len] = a;
      return {
        type: 'text',
        eval: (row, ctx) => {
          const v = s!(row, ctx);
          const from = st ? (st(row, ctx) as number | null) : 1;
          const n = len ? (len(row, ctx) as number | null) : undefined;
          if (v === null || from === null || n === null) return null;
          const chars = [...String(v)];
          const start = Math.max(from - 1, 0);
          const end = n === undefined ? chars.length : Math.max(from - 1 + n, 0);
          return chars.slice(start, end).join('');
        },
      };
    }
    case 'replace':
      return { type: 'text', eval: (row, ctx) => { const [x, f, t] = a.map((e) => e(row, ctx)); return x === null || f === null || t === null ? null : String(x).split(String(f)).join(String(t)); } };
    case 'btrim':
    case 'trim':
      return one('text', (v) => String(v).trim());
    case 'version':
      return constant('PostgreSQL 16.0 (securegrid CascaDB over the Secure KVS)', 'text');
    case 'current_database':
      return constant('securegrid', 'text');
    case 'current_schema':
      return constant('public', 'text');
    case 'quote_ident':
      return one('text', (v) => quoteIdent(String(v)));
    case 'date_trunc': {
      const [unit, ts] = a;
      return {
        type: 'timestamp',
        eval: (row, ctx) => {
          const u = unit!(row, ctx);
          const v = ts!(row, ctx) as number | null;
          if (u === null || v === null) return null;
          const d = new Date(Math.floor(v / 1000));
          const U = String(u).toLowerCase();
          const parts = [d.getUTCFullYear(), U === 'year' ? 0 : d.getUTCMonth(), ['year', 'month'].includes(U) ? 1 : d.getUTCDate(), ['year', 'month', 'day'].includes(U) ? 0 : d.getUTCHours(), ['year', 'month', 'day', 'hour'].includes(U) ? 0 : d.getUTCMinutes(), ['minute', 'hour', 'day', 'month', 'year'].includes(U) ? 0 : d.getUTCSeconds()] as const;
          if (!['year', 'month', 'day', 'hour', 'minute', 'second'].includes(U)) throw new PgError('22023', `unit "${U}" not supported`);
          return Date.UTC(...parts) * 1000;
        },
      };
    }
  }
  throw new PgError('42883', `function ${name}(${args.map((x) => typeName(x.type)).join(', ')}) does not exist`);
}

export function compile(n: Node, scope: Scope, env: CompileEnv): Compiled {
  // Aggregated context: GROUP BY expressions and aggregate calls resolve to slots of the grouped row.
  if (env.agg) {
    const fp = fingerprint(n);
    const g = env.agg.groupKeys.indexOf(fp);
    if (g >= 0) return { type: env.agg.groupTypes[g]!, column: g, eval: (row) => row[g]! };
    if (isAggregateCall(n)) {
      const slot = env.agg.aggregates.findIndex((x) => x.fingerprint === fp);
      const idx = env.agg.groupKeys.length + (slot >= 0 ? slot : registerAggregate(n, env));
      const spec = env.agg.aggregates[idx - env.agg.groupKeys.length]!;
      return { type: spec.type, eval: (row) => row[idx]! };
    }
    if (n.ColumnRef && !n.ColumnRef.fields.some((f: Node) => f.A_Star)) {
      let col: number;
      try {
        col = resolveColumn(env.agg.inputScope, names(n.ColumnRef.fields));
      } catch (err) {
        const o = outerColumn(env, names(n.ColumnRef.fields), err);
        if (o) return o;
        throw err;
      }
      const c = env.agg.inputScope.cols[col]!;
      throw new PgError('42803', `column "${c.rel ? `${c.rel}.` : ''}${c.name}" must appear in the GROUP BY clause or be used in an aggregate function`);
    }
  }
  if (n.A_Const) {
    const { value, type } = constValue(n);
    return constant(value, type);
  }
  if (n.ColumnRef) {
    if (n.ColumnRef.fields.some((f: Node) => f.A_Star)) throw new PgError('42601', '* is only allowed in a select list');
    let i: number;
    try {
      i = resolveColumn(scope, names(n.ColumnRef.fields));
    } catch (err) {
      const o = outerColumn(env, names(n.ColumnRef.fields), err);
      if (o) return o;
      throw err;
    }
    const c = scope.cols[i]!;
    return { type: c.type, column: i, pgType: c.pgType, typmod: c.typmod, eval: (row) => row[i]! };
  }
  if (n.ParamRef) {
    const i = n.ParamRef.number - 1;
    if (i < 0 || i > 65535) throw new PgError('42P02', `there is no parameter $${i + 1}`);
    while (env.paramTypes.length <= i) env.paramTypes.push('unknown');
    const t = env.paramTypes[i]!;
    return { type: t, param: i, eval: (_r, ctx) => ctx.params[i]! };
  }
  if (n.TypeCast) return castTo(env, compile(n.TypeCast.arg, scope, env), n.TypeCast.typeName);
  if (n.BoolExpr) {
    const args = n.BoolExpr.args.map((x: Node) => coerce(env, compile(x, scope, env), 'bool')) as Compiled[];
    for (const a of args) if (a.type !== 'bool') throw new PgError('42804', `argument of ${n.BoolExpr.boolop.replace('_EXPR', '')} must be type boolean, not type ${typeName(a.type)}`);
    const ev = args.map((a) => a.eval);
    if (n.BoolExpr.boolop === 'NOT_EXPR') {
      const e = ev[0]!;
      return { type: 'bool', eval: (row, ctx) => { const v = bool3(e(row, ctx)); return v === null ? null : !v; } };
    }
    const isAnd = n.BoolExpr.boolop === 'AND_EXPR';
    return {
      type: 'bool',
      eval: (row, ctx) => {
        let sawNull = false;
        for (const e of ev) {
          const v = bool3(e(row, ctx));
          if (v === null) sawNull = true;
          else if (v !== isAnd) return v;
        }
        return sawNull ? null : isAnd;
      },
    };
  }
  if (n.NullTest) {
    const e = compile(n.NullTest.arg, scope, env).eval;
    const isNull = n.NullTest.nulltesttype === 'IS_NULL';
    return { type: 'bool', eval: (row, ctx) => (e(row, ctx) === null) === isNull };
  }
  if (n.BooleanTest) {
    const e = compile(n.BooleanTest.arg, scope, env).eval;
    const k = n.BooleanTest.booltesttype as string;
    return {
      type: 'bool',
      eval: (row, ctx) => {
        const v = bool3(e(row, ctx));
        switch (k) {
          case 'IS_TRUE': return v === true;
          case 'IS_NOT_TRUE': return v !== true;
          case 'IS_FALSE': return v === false;
          case 'IS_NOT_FALSE': return v !== false;
          case 'IS_UNKNOWN': return v === null;
          default: return v !== null;
        }
      },
    };
  }
  if (n.A_Expr) return compileAExpr(n.A_Expr, scope, env);
  if (n.FuncCall) {
    const fname = names(n.FuncCall.funcname).at(-1)!.toLowerCase();
    if (AGG_FUNCS.has(fname)) throw new PgError('42803', `aggregate functions are not allowed here`);
    const args = (n.FuncCall.args ?? []).map((x: Node) => compile(x, scope, env)) as Compiled[];
    const typed = args.map((x) => (x.type === 'unknown' && x.constant ? coerce(env, x, fname === 'date_trunc' ? 'text' : 'text') : x));
    return env.catalogFunction?.(fname, typed) ?? fn(fname, typed);
  }
  if (n.CollateClause) return compile(n.CollateClause.arg, scope, env); // CascaDB compares text in the C collation only
  if (n.SQLValueFunction) {
    const op = n.SQLValueFunction.op as string;
    if (op.startsWith('SVFOP_CURRENT_TIMESTAMP') || op.startsWith('SVFOP_LOCALTIMESTAMP')) return { type: 'timestamp', eval: (_r, ctx) => ctx.now };
    if (op === 'SVFOP_CURRENT_USER' || op === 'SVFOP_SESSION_USER' || op === 'SVFOP_USER' || op === 'SVFOP_CURRENT_ROLE') return { type: 'text', pgType: 'name', eval: (_r, ctx) => ctx.session?.user ?? 'securegrid' };
    if (op === 'SVFOP_CURRENT_SCHEMA') return constant('public', 'text');
    if (op === 'SVFOP_CURRENT_CATALOG') return constant('securegrid', 'text');
    throw new PgError('0A000', `${op.replace('SVFOP_', '').toLowerCase()} is not supported`);
  }
  if (n.CoalesceExpr) {
    let args = n.CoalesceExpr.args.map((x: Node) => compile(x, scope, env)) as Compiled[];
    const t = commonType(args, 'COALESCE');
    // The declared type survives when every typed argument has it (coalesce(varchar, 'x') is varchar).
    const typed = args.filter((a) => a.type !== 'unknown');
    const pgType = typed.length && typed.every((a) => a.pgType === typed[0]!.pgType) ? typed[0]!.pgType : undefined;
    args = args.map((a) => coerce(env, a, t));
    const ev = args.map((a) => toType(a, t));
    return { type: t, pgType, eval: (row, ctx) => { for (const e of ev) { const v = e(row, ctx); if (v !== null) return v; } return null; } };
  }
  if (n.MinMaxExpr) {
    let args = n.MinMaxExpr.args.map((x: Node) => compile(x, scope, env)) as Compiled[];
    const greatest = n.MinMaxExpr.op === 'IS_GREATEST';
    const t = commonType(args, greatest ? 'GREATEST' : 'LEAST');
    args = args.map((a) => coerce(env, a, t));
    const ev = args.map((a) => toType(a, t));
    return {
      type: t,
      eval: (row, ctx) => {
        let best: SqlValue = null;
        for (const e of ev) {
          const v = e(row, ctx);
          if (v === null) continue;
          if (best === null || (greatest ? compareAny(t, v, t, best) > 0 : compareAny(t, v, t, best) < 0)) best = v;
        }
        return best;
      },
    };
  }
  if (n.CaseExpr) {
    const arg = n.CaseExpr.arg ? compile(n.CaseExpr.arg, scope, env) : undefined;
    const whens = n.CaseExpr.args.map((w: Node) => {
      let cond: Compiled;
      if (arg) {
        const [l, r] = unify(env, arg, compile(w.CaseWhen.expr, scope, env));
        cond = comparison('=', l, r);
      } else cond = coerce(env, compile(w.CaseWhen.expr, scope, env), 'bool');
      return { cond, result: compile(w.CaseWhen.result, scope, env) };
    }) as Array<{ cond: Compiled; result: Compiled }>;
    const def = n.CaseExpr.defresult ? compile(n.CaseExpr.defresult, scope, env) : constant(null, 'unknown');
    const results = [...whens.map((w) => w.result), def];
    let t: SqlType = results.find((r) => r.type !== 'unknown')?.type ?? 'text';
    for (const r of results) if (r.type !== 'unknown' && r.type !== t && isNumericType(r.type) && isNumericType(t)) t = numericResult(t, r.type);
    const ws = whens.map((w) => ({ c: w.cond.eval, r: coerce(env, w.result, t), rt: w.result.type }));
    const d = coerce(env, def, t);
    const conv = (v: SqlValue, from: SqlType) => (v === null || from === t || from === 'unknown' ? v : castValue(v, from, t));
    return {
      type: t,
      eval: (row, ctx) => {
        for (const w of ws) if (w.c(row, ctx) === true) return conv(w.r.eval(row, ctx), w.rt);
        return conv(d.eval(row, ctx), def.type);
      },
    };
  }
  if (n.SubLink) return compileSubLink(n.SubLink, scope, env);
  if (n.NamedArgExpr) return compile(n.NamedArgExpr.arg, scope, env);
  const kind = Object.keys(n)[0] ?? 'expression';
  throw new PgError('0A000', `CascaDB does not support ${kind} expressions yet`);
}

/** The common type of COALESCE, GREATEST and LEAST arguments: numeric types widen, other types must agree. */
function commonType(args: Compiled[], what: string): SqlType {
  let t: SqlType = args.find((a) => a.type !== 'unknown')?.type ?? 'text';
  for (const a of args) {
    if (a.type === 'unknown' || a.type === t) continue;
    if (isNumericType(a.type) && isNumericType(t)) t = numericResult(t, a.type);
    else throw new PgError('42804', `${what} types ${typeName(t)} and ${typeName(a.type)} cannot be matched`);
  }
  return t;
}

/** An expression's evaluator, its values converted to type t. */
function toType(c: Compiled, t: SqlType): Compiled['eval'] {
  if (c.type === t || c.type === 'unknown') return c.eval;
  const e = c.eval;
  const from = c.type;
  return (row, ctx) => castValue(e(row, ctx), from, t);
}

function registerAggregate(n: Node, env: CompileEnv): number {
  const agg = env.agg!;
  const f = n.FuncCall;
  const func = names(f.funcname).at(-1)!.toLowerCase() as AggSpec['func'];
  const star = !!f.agg_star;
  if (containsAggregate(f.args ?? [])) throw new PgError('42803', 'aggregate function calls cannot be nested');
  // Arguments are evaluated over the input rows (no aggregation context).
  const inner: CompileEnv = { ...env, agg: undefined };
  const arg = star ? undefined : f.args?.length === 1 ? compile(f.args[0], agg.inputScope, inner) : undefined;
  if (!star && !arg) throw new PgError('42883', `function ${func} needs one argument`);
  let type: SqlType;
  const at = arg?.type === 'unknown' ? 'text' : arg?.type;
  switch (func) {
    case 'count':
      type = 'int8';
      break;
    case 'sum':
      if (!at || !isNumericType(at)) throw new PgError('42883', `function sum(${typeName(at ?? 'unknown')}) does not exist`);
      type = at === 'int4' ? 'int8' : at === 'int8' ? 'numeric' : at === 'float4' ? 'float4' : at;
      break;
    case 'avg':
      if (!at || !isNumericType(at)) throw new PgError('42883', `function avg(${typeName(at ?? 'unknown')}) does not exist`);
      type = at === 'float4' || at === 'float8' ? 'float8' : 'numeric';
      break;
    default:
      // PostgreSQL has no min(boolean) or max(boolean) (bool_and and bool_or are those).
      if (at === 'bool') throw new PgError('42883', `function ${func}(boolean) does not exist`, { hint: 'No function matches the given name and argument types. You might need to add explicit type casts.' });
      type = at ?? 'text';
  }
  const filter = f.agg_filter ? coerce(inner, compile(f.agg_filter, agg.inputScope, inner), 'bool') : undefined;
  if (filter && filter.type !== 'bool') throw new PgError('42804', `argument of FILTER must be type boolean, not type ${typeName(filter.type)}`);
  agg.aggregates.push({ fingerprint: fingerprint(n), func, star, distinct: !!f.agg_distinct, arg, filter, type });
  return agg.aggregates.length - 1;
}

function compileSubLink(s: Node, scope: Scope, env: CompileEnv): Compiled {
  const { slot, type } = env.subquery(s.subselect, scope);
  switch (s.subLinkType) {
    case 'EXISTS_SUBLINK':
      return { type: 'bool', eval: (_r, ctx) => ctx.subqueries[slot]!.values.length > 0 };
    case 'EXPR_SUBLINK':
      return {
        type,
        eval: (_r, ctx) => {
          const v = ctx.subqueries[slot]!.values;
          if (v.length > 1) throw new PgError('21000', 'more than one row returned by a subquery used as an expression');
          return v.length ? v[0]! : null;
        },
      };
    case 'ARRAY_SUBLINK':
      // CascaDB has no array values: ARRAY(subquery) is the array's text form, '{a,b}'.
      return {
        type: 'text',
        eval: (_r, ctx) =>
          `{${ctx.subqueries[slot]!.values
            .map((v) => {
              if (v === null) return 'NULL';
              const t = toText(type, v)!;
              return t === '' || /[{},"\\\s]/.test(t) || t.toUpperCase() === 'NULL' ? `"${t.replace(/["\\]/g, '\\$&')}"` : t;
            })
            .join(',')}}`,
      };
    case 'ANY_SUBLINK': {
      const op = s.operName ? names(s.operName).at(-1) : '=';
      if (op !== '=') throw new PgError('0A000', `${op} ANY (subquery) is not supported; use IN`);
      const test = compile(s.testexpr, scope, env);
      if (!comparable(test.type, type)) throw new PgError('42883', `operator does not exist: ${typeName(test.type)} = ${typeName(type)}`);
      const t = coerce(env, test, type);
      return inSet(t, (ctx) => ctx.subqueries[slot]!, type);
    }
    default:
      throw new PgError('0A000', `${s.subLinkType} subqueries are not supported`);
  }
}

/** The elements of an array's text form ('{a,"b c",NULL}'); text that is not an array is one element. */
export function parseArrayText(text: string): Array<string | null> {
  if (!text.startsWith('{') || !text.endsWith('}')) return [text];
  const out: Array<string | null> = [];
  const body = text.slice(1, -1);
  let i = 0;
  while (i < body.length) {
    let item = '';
    let quoted = false;
    if (body[i] === '"') {
      quoted = true;
      for (i++; i < body.length && body[i] !== '"'; i++) item += body[i] === '\\' ? body[++i] : body[i];
      i++;
    } else for (; i < body.length && body[i] !== ','; i++) item += body[i];
    out.push(!quoted && item.trim().toUpperCase() === 'NULL' ? null : quoted ? item : item.trim());
    i++; // the comma
  }
  return out;
}

/** Canonical key for set membership across numeric types. */
export function memberKey(v: SqlValue, type: SqlType): string {
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : v === 0 ? '0' : String(v);
  if (type === 'numeric' || (typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v) && type !== 'text')) {
    const d = new Decimal(v as string);
    return d.isZero() ? '0' : d.toFixed();
  }
  if (Buffer.isBuffer(v)) return `x${v.toString('hex')}`;
  return typeof v === 'boolean' ? (v ? 'true' : 'false') : `s${v}`;
}

function inSet(test: Compiled, get: (ctx: EvalCtx) => SubqueryResult, type: SqlType): Compiled {
  const e = test.eval;
  const tt = test.type;
  return {
    type: 'bool',
    eval: (row, ctx) => {
      const r = get(ctx);
      // x IN (empty subquery) is false even for a NULL x.
      if (r.values.length === 0) return false;
      const v = e(row, ctx);
      if (v === null) return null;
      if (!r.set) r.set = new Set(r.values.filter((x) => x !== null).map((x) => memberKey(x, type)));
      if (r.set.has(memberKey(v, tt))) return true;
      return r.hasNull ? null : false;
    },
  };
}

function compileAExpr(a: Node, scope: Scope, env: CompileEnv): Compiled {
  const op = names(a.name).at(-1)!;
  switch (a.kind) {
    case 'AEXPR_OP': {
      if (!a.lexpr) {
        const r = compile(a.rexpr, scope, env);
        if (op === '-') {
          if (r.constant && typeof r.constant.value === 'number') return constant(-r.constant.value, r.type);
          if (r.constant && r.type === 'numeric') return constant(numericText(new Decimal(r.constant.value as string).neg(), numericScale(r.constant.value as string)), 'numeric');
          return arith('-', constant(0, 'int4'), coerce(env, r, 'numeric'));
        }
        if (op === '+') return r;
        throw new PgError('42883', `prefix operator ${op} does not exist`);
      }
      let l = compile(a.lexpr, scope, env);
      let r = compile(a.rexpr, scope, env);
      if (['=', '<>', '!=', '<', '<=', '>', '>='].includes(op)) {
        [l, r] = unify(env, l, r);
        if (l.type === 'unknown' && r.type === 'unknown') [l, r] = [coerce(env, l, 'text'), coerce(env, r, 'text')];
        const c = comparison(op, l, r);
        return foldIfConstant(c, l, r);
      }
      if (op === '||') {
        [l, r] = [coerce(env, l, 'text'), coerce(env, r, 'text')];
        const le = l.eval;
        const re = r.eval;
        const lt = l.type;
        const rt = r.type;
        return { type: 'text', eval: (row, ctx) => { const x = le(row, ctx); const y = re(row, ctx); return x === null || y === null ? null : String(castValue(x, lt, 'text')) + String(castValue(y, rt, 'text')); } };
      }
      if (['+', '-', '*', '/', '%'].includes(op)) {
        [l, r] = unify(env, l, r);
        if (l.type === 'unknown') l = coerce(env, l, 'numeric');
        if (r.type === 'unknown') r = coerce(env, r, 'numeric');
        if (!isNumericType(l.type) || !isNumericType(r.type)) throw new PgError('42883', `operator does not exist: ${typeName(l.type)} ${op} ${typeName(r.type)}`);
        return foldIfConstant(arith(op, l, r), l, r);
      }
      if (op === '~~' || op === '!~~' || op === '~~*' || op === '!~~*') return like(l, r, env, op.includes('*'), op.startsWith('!'));
      if (op === '~' || op === '!~' || op === '~*' || op === '!~*') return regexMatch(l, r, env, op.includes('*'), op.startsWith('!'));
      throw new PgError('42883', `operator does not exist: ${typeName(l.type)} ${op} ${typeName(r.type)}`);
    }
    case 'AEXPR_OP_ANY':
    case 'AEXPR_OP_ALL': {
      // x op ANY (ARRAY[…]) and x op ALL (ARRAY[…]) over a list (CascaDB has no array values).
      const any = a.kind === 'AEXPR_OP_ANY';
      const items = a.rexpr?.A_ArrayExpr?.elements as Node[] | undefined;
      if (!['=', '<>', '!=', '<', '<=', '>', '>='].includes(op)) throw new PgError('42883', `operator does not exist: ${op}`);
      if (!items) {
        // An array value is its text form ('{1,2}': how drivers send array parameters, how ARRAY() and catalog columns give them).
        const arr = coerce(env, compile(a.rexpr, scope, env), 'text');
        if (arr.type !== 'text') throw new PgError('42809', `op ${any ? 'ANY' : 'ALL'} (array) requires array on right side`);
        let test = compile(a.lexpr, scope, env);
        const t = test.type === 'unknown' ? 'text' : test.type;
        test = coerce(env, test, t);
        const te = test.eval;
        const ae = arr.eval;
        const holds = comparisonTest(op);
        return {
          type: 'bool',
          eval: (row, ctx) => {
            const text = ae(row, ctx);
            if (text === null) return null;
            const elements = parseArrayText(String(text));
            if (elements.length === 0) return !any;
            const v = te(row, ctx);
            if (v === null) return null;
            let sawNull = false;
            for (const e of elements) {
              if (e === null) sawNull = true;
              else if (holds(compareAny(t, v, t, fromText(t, e))) === any) return any;
            }
            return sawNull ? null : !any;
          },
        };
      }
      let test = compile(a.lexpr, scope, env);
      let list = items.map((x) => compile(x, scope, env));
      const t = test.type !== 'unknown' ? test.type : list.find((x) => x.type !== 'unknown')?.type ?? 'text';
      test = coerce(env, test, t);
      list = list.map((x) => coerce(env, x, t));
      const tests = list.map((x) => comparison(op, test, x).eval);
      return {
        type: 'bool',
        eval: (row, ctx) => {
          let sawNull = false;
          for (const c of tests) {
            const v = c(row, ctx);
            if (v === null) sawNull = true;
            else if (v === any) return any;
          }
          return sawNull ? null : !any;
        },
      };
    }
    case 'AEXPR_LIKE':
    case 'AEXPR_ILIKE':
      return like(compile(a.lexpr, scope, env), compile(a.rexpr, scope, env), env, a.kind === 'AEXPR_ILIKE', op.startsWith('!'));
    case 'AEXPR_IN': {
      let test = compile(a.lexpr, scope, env);
      const items = (a.rexpr.List?.items ?? a.rexpr) as Node[];
      let list = items.map((x) => compile(x, scope, env));
      const t = test.type !== 'unknown' ? test.type : list.find((x) => x.type !== 'unknown')?.type ?? 'text';
      test = coerce(env, test, t);
      list = list.map((x) => coerce(env, x, t));
      for (const x of list) if (!comparable(t, x.type)) throw new PgError('42883', `operator does not exist: ${typeName(t)} = ${typeName(x.type)}`);
      const negate = op === '<>';
      const ev = list.map((x) => [x.eval, x.type] as const);
      const te = test.eval;
      return {
        type: 'bool',
        eval: (row, ctx) => {
          const v = te(row, ctx);
          if (v === null) return null;
          let sawNull = false;
          for (const [e, et] of ev) {
            const w = e(row, ctx);
            if (w === null) sawNull = true;
            else if (compareAny(t, v, et, w) === 0) return !negate;
          }
          return sawNull ? null : negate;
        },
      };
    }
    case 'AEXPR_BETWEEN':
    case 'AEXPR_NOT_BETWEEN':
    case 'AEXPR_BETWEEN_SYM':
    case 'AEXPR_NOT_BETWEEN_SYM': {
      const [lo, hi] = a.rexpr.List.items as [Node, Node];
      let x = compile(a.lexpr, scope, env);
      let l = compile(lo, scope, env);
      let h = compile(hi, scope, env);
      [x, l] = unify(env, x, l);
      [x, h] = unify(env, x, h);
      const ge = comparison('>=', x, l).eval;
      const le = comparison('<=', x, h).eval;
      const sym = a.kind.endsWith('_SYM');
      const lge = sym ? comparison('>=', x, h).eval : undefined;
      const lle = sym ? comparison('<=', x, l).eval : undefined;
      const not = a.kind.includes('NOT');
      return {
        type: 'bool',
        eval: (row, ctx) => {
          let r = and3(ge(row, ctx), le(row, ctx));
          if (sym && r !== true) r = or3(r, and3(lge!(row, ctx), lle!(row, ctx)));
          return r === null ? null : not ? !r : r;
        },
      };
    }
    case 'AEXPR_NULLIF': {
      let [l, r] = unify(env, compile(a.lexpr, scope, env), compile(a.rexpr, scope, env));
      if (l.type === 'unknown') [l, r] = [coerce(env, l, 'text'), coerce(env, r, 'text')];
      const eq = comparison('=', l, r).eval;
      const le = l.eval;
      return { type: l.type, eval: (row, ctx) => (eq(row, ctx) === true ? null : le(row, ctx)) };
    }
    case 'AEXPR_DISTINCT':
    case 'AEXPR_NOT_DISTINCT': {
      const [l, r] = unify(env, compile(a.lexpr, scope, env), compile(a.rexpr, scope, env));
      const le = l.eval;
      const re = r.eval;
      const not = a.kind === 'AEXPR_NOT_DISTINCT';
      return {
        type: 'bool',
        eval: (row, ctx) => {
          const x = le(row, ctx);
          const y = re(row, ctx);
          const distinct = x === null || y === null ? x !== y : compareAny(l.type, x, r.type, y) !== 0;
          return not ? !distinct : distinct;
        },
      };
    }
    default:
      throw new PgError('0A000', `CascaDB does not support ${String(a.kind).replace('AEXPR_', '').toLowerCase()} expressions yet`);
  }
}

function and3(a: SqlValue, b: SqlValue): boolean | null {
  if (a === false || b === false) return false;
  if (a === null || b === null) return null;
  return true;
}

function or3(a: SqlValue, b: SqlValue): boolean | null {
  if (a === true || b === true) return true;
  if (a === null || b === null) return null;
  return false;
}

function foldIfConstant(c: Compiled, ...parts: Compiled[]): Compiled {
  if (parts.every((p) => p.constant)) return constant(c.eval([], { params: [], subqueries: [], now: 0 }), c.type);
  return c;
}

const POSIX_CLASSES: Record<string, string> = { alpha: 'a-zA-Z', digit: '0-9', alnum: 'a-zA-Z0-9', upper: 'A-Z', lower: 'a-z', space: '\\s', xdigit: '0-9A-Fa-f', word: '\\w', punct: '!-\\/:-@\\[-`{-~' };

/** A POSIX regular expression (PostgreSQL's ~ operators) as a RegExp: the common syntax is shared; [[:class:]] and \m \M \y are translated. */
export function posixRegex(pattern: string, ci: boolean): RegExp {
  const src = pattern
    .replace(/\[:(\w+):\]/g, (m, n: string) => POSIX_CLASSES[n] ?? m)
    .replace(/\\y/g, '\\b')
    .replace(/\\m/g, '\\b(?=\\w)')
    .replace(/\\M/g, '\\b(?<=\\w)');
  try {
    return new RegExp(src, ci ? 'iu' : 'u');
  } catch {
    try {
      return new RegExp(src, ci ? 'i' : '');
    } catch (err) {
      throw new PgError('2201B', `invalid regular expression: ${(err as Error).message}`);
    }
  }
}

function regexMatch(l: Compiled, r: Compiled, env: CompileEnv, ci: boolean, negate: boolean): Compiled {
  return patternMatch(l, r, env, '~', (p) => posixRegex(p, ci), negate);
}

function like(l: Compiled, r: Compiled, env: CompileEnv, ci: boolean, negate: boolean): Compiled {
  return patternMatch(l, r, env, '~~', (p) => likeRegex(p, ci), negate);
}

/** text-vs-pattern matching shared by LIKE and the regex operators; a constant pattern compiles once. */
function patternMatch(l: Compiled, r: Compiled, env: CompileEnv, opName: string, toRegex: (pattern: string) => RegExp, negate: boolean): Compiled {
  l = coerce(env, l, 'text');
  r = coerce(env, r, 'text');
  if (l.type !== 'text' || r.type !== 'text') throw new PgError('42883', `operator does not exist: ${typeName(l.type)} ${opName} ${typeName(r.type)}`);
  const le = l.eval;
  const re = r.eval;
  const fixed = r.constant && r.constant.value !== null ? toRegex(String(r.constant.value)) : undefined;
  return {
    type: 'bool',
    eval: (row, ctx) => {
      const v = le(row, ctx);
      if (v === null) return null;
      let rx = fixed;
      if (!rx) {
        const p = re(row, ctx);
        if (p === null) return null;
        rx = toRegex(String(p));
      }
      return rx.test(String(v)) !== negate;
    },
  };
}

/** Splits a WHERE clause into its AND-ed conjuncts. */
export function conjuncts(n: Node | undefined): Node[] {
  if (!n) return [];
  if (n.BoolExpr?.boolop === 'AND_EXPR') return (n.BoolExpr.args as Node[]).flatMap(conjuncts);
  return [n];
}
