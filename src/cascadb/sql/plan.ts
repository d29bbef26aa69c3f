// SELECT: planning (access paths, joins, aggregation, ordering) and execution as streams of rows.
// The planner picks, per table: primary-key point get, primary-key prefix or range scan (the paper's
// wildcard), secondary-index scan, or a full scan with a filter; per join: merge join when both sides arrive
// ordered on the join key (the paper's proposal), hash join on equality otherwise, nested loops as the last
// resort. EXPLAIN prints the tree.
import type { Catalog, IndexDesc, TableDesc } from '../catalog/index.js';
import { encodeKey, encodeKeyValue, keyPrefix, prefixEnd, type SqlValue } from '../codec/index.js';
import { PgError } from '../server/backend.js';
import {
  compareAny,
  compile,
  conjuncts,
  constant,
  containsAggregate,
  fingerprint,
  likePrefix,
  memberKey,
  names,
  parseArrayText,
  resolveColumn,
  str,
  type AggContext,
  type Compiled,
  type CompileEnv,
  type EvalCtx,
  type Node,
  type Scope,
  type ScopeColumn,
} from './expr.js';
import { decodeRowValue, indexTypes, pkTypes, rowKeyFromIndex, type TxView } from './storage.js';
import { Decimal, castValue, divScale, isNumericType, numericResult, numericScale, numericText, type SqlType } from './types.js';

export type Row = SqlValue[];

export interface ExecCtx {
  tx: TxView;
  ev: EvalCtx;
}

export interface VirtualTable {
  cols: ScopeColumn[];
  rows: (ev: EvalCtx) => Row[] | Promise<Row[]>;
  /**
   * A catalog relation of things CascaDB does not have (pg_policy, pg_trigger, …): no rows, and every column a
   * query names (as alias.column) exists, NULL of unknown type (it takes the type it is compared with, text
   * in a select list). A query that needs a row of it returns no rows.
   */
  stub?: boolean;
}

export interface PlannerCtx {
  catalog: Catalog;
  paramTypes: SqlType[];
  /** Subqueries; uncorrelated ones run once before the statement, correlated ones per row (ApplyNode). */
  subplans: Array<{ plan: PlanNode; type: SqlType; correlated?: boolean }>;
  /** pg_catalog and information_schema relations, computed from the data dictionary. */
  virtual: (schema: string | undefined, name: string) => VirtualTable | undefined;
  /** Catalog functions (pg_get_indexdef, format_type, regclass casts, …). */
  functions?: CompileEnv['catalogFunction'];
}

export abstract class PlanNode {
  abstract readonly scope: Scope;
  /** Scope columns the output is sorted by, ascending. */
  ordering: number[] = [];
  abstract rows(ctx: ExecCtx): AsyncGenerator<Row>;
  abstract describe(): string;
  children(): PlanNode[] {
    return [];
  }
  explain(depth = 0): string[] {
    const pad = depth === 0 ? '' : `${' '.repeat(depth * 6 - 4)}->  `;
    return [`${pad}${this.describe()}`, ...this.children().flatMap((c) => c.explain(depth + 1))];
  }
}

const NO_ROW: Row = [];

class ResultNode extends PlanNode {
  readonly scope: Scope = { cols: [] };
  async *rows(): AsyncGenerator<Row> {
    yield NO_ROW;
  }
  describe(): string {
    return 'Result';
  }
}

class VirtualScan extends PlanNode {
  constructor(readonly scope: Scope, private readonly name: string, private readonly table: VirtualTable, private readonly filter?: Compiled) {
    super();
  }
  async *rows(ctx: ExecCtx): AsyncGenerator<Row> {
    for (const r of await this.table.rows(ctx.ev)) if (!this.filter || this.filter.eval(r, ctx.ev) === true) yield r;
  }
  describe(): string {
    return `Catalog Scan on ${this.name}`;
  }
}

/** No rows (a query over a stub catalog relation). */
class EmptyNode extends PlanNode {
  constructor(readonly scope: Scope, private readonly why: string) {
    super();
  }
  async *rows(): AsyncGenerator<Row> {
    yield* [];
  }
  describe(): string {
    return `Result (no rows: ${this.why})`;
  }
}

/**
 * Runs correlated subqueries for each row of its input: with the row pushed on the outer-row stack, each
 * subquery's result goes to its slot, then the row passes up to the node that evaluates the expressions (a
 * filter or a projection, which read the slots before asking for the next row).
 */
class ApplyNode extends PlanNode {
  constructor(private readonly child: PlanNode, private readonly subs: Array<{ slot: number; plan: PlanNode }>) {
    super();
    this.ordering = child.ordering;
  }
  get scope(): Scope {
    return this.child.scope;
  }
  override children(): PlanNode[] {
    return [this.child, ...this.subs.map((s) => s.plan)];
  }
  describe(): string {
    return `SubPlan per row (${this.subs.length} correlated subquer${this.subs.length > 1 ? 'ies' : 'y'})`;
  }
  async *rows(ctx: ExecCtx): AsyncGenerator<Row> {
    const outer = (ctx.ev.outer ??= []);
    for await (const r of this.child.rows(ctx)) {
      outer.push(r);
      try {
        for (const s of this.subs) {
          const values: SqlValue[] = [];
          let hasNull = false;
          for await (const x of s.plan.rows(ctx)) {
            const v = x[0] ?? null;
            if (v === null) hasNull = true;
            values.push(v);
          }
          ctx.ev.subqueries[s.slot] = { values, hasNull };
        }
      } finally {
        outer.pop();
      }
      yield r;
    }
  }
}

/** UNION ALL: the rows of each input in turn, converted to the common column types. */
class AppendNode extends PlanNode {
  constructor(readonly scope: Scope, private readonly inputs: Array<{ plan: PlanNode; types: SqlType[] }>) {
    super();
  }
  override children(): PlanNode[] {
    return this.inputs.map((i) => i.plan);
  }
  describe(): string {
    return 'Append';
  }
  async *rows(ctx: ExecCtx): AsyncGenerator<Row> {
    const to = this.scope.cols.map((c) => c.type);
    for (const { plan, types } of this.inputs) {
      const same = types.every((t, i) => t === to[i] || t === 'unknown');
      for await (const r of plan.rows(ctx)) yield same ? r : r.map((v, i) => castValue(v, types[i]!, to[i]!));
    }
  }
}

// ------------------------------------------------------------------ table access

interface Bound {
  c: Compiled;
  incl: boolean;
}

interface Access {
  kind: 'point' | 'range' | 'full';
  index: IndexDesc;
  eq: Compiled[];
  lo?: Bound;
  hi?: Bound;
  /** LIKE 'prefix%' on the next column. */
  like?: Compiled;
  /** Conditions used, for EXPLAIN. */
  conds: string[];
}

function colType(t: TableDesc, i: number): SqlType {
  return t.columns[i]!.type;
}

class TableScan extends PlanNode {
  constructor(
    readonly scope: Scope,
    readonly table: TableDesc,
    readonly alias: string,
    readonly access: Access,
    readonly filter?: Compiled,
    readonly filterText?: string,
  ) {
    super();
    const idxCols = access.index.id === 0 ? access.index.columns : [...access.index.columns, ...table.primary.columns];
    this.ordering = idxCols;
  }

  describe(): string {
    const a = this.access;
    const on = `${this.table.name}${this.alias !== this.table.name ? ` ${this.alias}` : ''}`;
    const idxName = a.index.id === 0 ? `${this.table.name}_pkey` : a.index.name;
    const cond = a.conds.length ? ` (${a.conds.join(' AND ')})` : '';
    const f = this.filter ? `  Filter: ${this.filterText ?? 'yes'}` : '';
    if (a.kind === 'point') return `Point Get on ${on} using ${idxName}${cond}${f}`;
    if (a.kind === 'full') return `Full Scan on ${on}${f}`;
    if (a.index.id === 0) return `${a.lo || a.hi || a.like ? 'Range' : 'Prefix'} Scan on ${on} using ${idxName}${cond}${f}`;
    return `Index Scan using ${idxName} on ${on}${cond}${f}`;
  }

  /** Bound values at run time, converted to the column types; undefined when a bound is NULL (no row can match). */
  private values(ctx: ExecCtx): { eq: SqlValue[]; lo?: SqlValue; hi?: SqlValue; like?: string } | undefined {
    const cols = this.access.index.columns;
    const conv = (c: Compiled, col: number) => {
      const v = c.eval(NO_ROW, ctx.ev);
      return v === null ? null : castValue(v, c.type, colType(this.table, col));
    };
    const eq = this.access.eq.map((c, i) => conv(c, cols[i]!));
    if (eq.some((v) => v === null)) return undefined;
    const next = cols[eq.length]!;
    const out: { eq: SqlValue[]; lo?: SqlValue; hi?: SqlValue; like?: string } = { eq };
    if (this.access.lo) {
      out.lo = conv(this.access.lo.c, next);
      if (out.lo === null) return undefined;
    }
    if (this.access.hi) {
      out.hi = conv(this.access.hi.c, next);
      if (out.hi === null) return undefined;
    }
    if (this.access.like) {
      const p = this.access.like.eval(NO_ROW, ctx.ev);
      if (p === null) return undefined;
      out.like = likePrefix(String(p)).prefix;
    }
    return out;
  }

  async *rows(ctx: ExecCtx): AsyncGenerator<Row> {
    const t = this.table;
    const idx = this.access.index;
    const f = this.filter;
    if (this.access.kind === 'full') {
      const start = keyPrefix(t.id, 0);
      for await (const e of ctx.tx.scan(start, prefixEnd(start))) {
        const row = decodeRowValue(t, e.value);
        if (!f || f.eval(row, ctx.ev) === true) yield row;
      }
      return;
    }
    const v = this.values(ctx);
    if (!v) return;
    const types = idx.id === 0 ? pkTypes(t) : indexTypes(t, idx);
    const base = encodeKey(keyPrefix(t.id, idx.id), types.slice(0, v.eq.length), v.eq);
    if (this.access.kind === 'point') {
      const got = await ctx.tx.get(base);
      if (got) {
        const row = decodeRowValue(t, got);
        if (!f || f.eval(row, ctx.ev) === true) yield row;
      }
      return;
    }
    const nextType = types[v.eq.length]!;
    let start = base;
    let end = prefixEnd(base);
    if (v.lo !== undefined) {
      const k = Buffer.concat([base, encodeKeyValue(nextType, v.lo)]);
      start = this.access.lo!.incl ? k : prefixEnd(k);
    }
    if (v.hi !== undefined) {
      const k = Buffer.concat([base, encodeKeyValue(nextType, v.hi)]);
      end = this.access.hi!.incl ? prefixEnd(k) : k;
    }
    if (v.like !== undefined) {
      // A text key is its escaped bytes then a 2-byte terminator: every value starting with the prefix shares them.
      const k = encodeKeyValue('text', v.like);
      const open = Buffer.concat([base, k.subarray(0, k.length - 2)]);
      start = open;
      end = prefixEnd(open);
    }
    if (Buffer.compare(start, end) >= 0) return;
    if (idx.id === 0) {
      for await (const e of ctx.tx.scan(start, end)) {
        const row = decodeRowValue(t, e.value);
        if (!f || f.eval(row, ctx.ev) === true) yield row;
      }
      return;
    }
    // Secondary index: entries → row keys → rows, fetched in batches.
    let batch: Buffer[] = [];
    const flush = async function* (this: TableScan): AsyncGenerator<Row> {
      const got = await ctx.tx.getMany(batch);
      batch = [];
      for (const g of got) {
        if (!g) continue;
        const row = decodeRowValue(t, g);
        if (!f || f.eval(row, ctx.ev) === true) yield row;
      }
    };
    for await (const e of ctx.tx.scan(start, end)) {
      batch.push(rowKeyFromIndex(t, idx, e));
      if (batch.length >= 256) yield* flush.call(this);
    }
    if (batch.length) yield* flush.call(this);
  }
}

class FilterNode extends PlanNode {
  constructor(private readonly child: PlanNode, private readonly pred: Compiled, private readonly text: string) {
    super();
    this.ordering = child.ordering;
  }
  get scope(): Scope {
    return this.child.scope;
  }
  override children(): PlanNode[] {
    return [this.child];
  }
  describe(): string {
    return `Filter: ${this.text}`;
  }
  async *rows(ctx: ExecCtx): AsyncGenerator<Row> {
    for await (const r of this.child.rows(ctx)) if (this.pred.eval(r, ctx.ev) === true) yield r;
  }
}

// ------------------------------------------------------------------ joins

type JoinKind = 'inner' | 'left';

function nullRow(n: number): Row {
  return new Array(n).fill(null);
}

class NestedLoopJoin extends PlanNode {
  readonly scope: Scope;
  constructor(private readonly left: PlanNode, private readonly right: PlanNode, private readonly kind: JoinKind, private readonly pred?: Compiled) {
    super();
    this.scope = { cols: [...left.scope.cols, ...right.scope.cols] };
    this.ordering = left.ordering;
  }
  override children(): PlanNode[] {
    return [this.left, this.right];
  }
  describe(): string {
    return `Nested Loop${this.kind === 'left' ? ' Left Join' : ''}`;
  }
  async *rows(ctx: ExecCtx): AsyncGenerator<Row> {
    const inner: Row[] = [];
    for await (const r of this.right.rows(ctx)) inner.push(r);
    const rn = this.right.scope.cols.length;
    for await (const l of this.left.rows(ctx)) {
      let matched = false;
      for (const r of inner) {
        const row = [...l, ...r];
        if (!this.pred || this.pred.eval(row, ctx.ev) === true) {
          matched = true;
          yield row;
        }
      }
      if (!matched && this.kind === 'left') yield [...l, ...nullRow(rn)];
    }
  }
}

class HashJoin extends PlanNode {
  readonly scope: Scope;
  constructor(
    private readonly left: PlanNode,
    private readonly right: PlanNode,
    private readonly kind: JoinKind,
    private readonly lkeys: Compiled[],
    private readonly rkeys: Compiled[],
    private readonly text: string,
    private readonly residual?: Compiled,
  ) {
    super();
    this.scope = { cols: [...left.scope.cols, ...right.scope.cols] };
    this.ordering = left.ordering;
  }
  override children(): PlanNode[] {
    return [this.left, this.right];
  }
  describe(): string {
    return `Hash${this.kind === 'left' ? ' Left' : ''} Join (${this.text})`;
  }
  private key(keys: Compiled[], row: Row, ctx: ExecCtx): string | undefined {
    let k = '';
    for (const c of keys) {
      const v = c.eval(row, ctx.ev);
      if (v === null) return undefined;
      k += `${memberKey(v, c.type)}\u0000`;
    }
    return k;
  }
  async *rows(ctx: ExecCtx): AsyncGenerator<Row> {
    const table = new Map<string, Row[]>();
    for await (const r of this.right.rows(ctx)) {
      const k = this.key(this.rkeys, r, ctx);
      if (k === undefined) continue;
      let l = table.get(k);
      if (!l) table.set(k, (l = []));
      l.push(r);
    }
    const rn = this.right.scope.cols.length;
    for await (const l of this.left.rows(ctx)) {
      const k = this.key(this.lkeys, l, ctx);
      let matched = false;
      for (const r of (k !== undefined && table.get(k)) || []) {
        const row = [...l, ...r];
        if (!this.residual || this.residual.eval(row, ctx.ev) === true) {
          matched = true;
          yield row;
        }
      }
      if (!matched && this.kind === 'left') yield [...l, ...nullRow(rn)];
    }
  }
}

class MergeJoin extends PlanNode {
  readonly scope: Scope;
  constructor(
    private readonly left: PlanNode,
    private readonly right: PlanNode,
    private readonly kind: JoinKind,
    private readonly lcol: number,
    private readonly rcol: number,
    private readonly text: string,
    private readonly residual?: Compiled,
  ) {
    super();
    this.scope = { cols: [...left.scope.cols, ...right.scope.cols] };
    this.ordering = left.ordering;
  }
  override children(): PlanNode[] {
    return [this.left, this.right];
  }
  describe(): string {
    return `Merge${this.kind === 'left' ? ' Left' : ''} Join (${this.text})`;
  }
  async *rows(ctx: ExecCtx): AsyncGenerator<Row> {
    const lt = this.left.scope.cols[this.lcol]!.type;
    const rt = this.right.scope.cols[this.rcol]!.type;
    const rn = this.right.scope.cols.length;
    const rit = this.right.rows(ctx)[Symbol.asyncIterator]();
    let rnext = await rit.next();
    let group: Row[] = [];
    let groupKey: SqlValue = null;
    for await (const l of this.left.rows(ctx)) {
      const lk = l[this.lcol]!;
      if (lk === null) {
        if (this.kind === 'left') yield [...l, ...nullRow(rn)];
        continue;
      }
      if (groupKey === null || compareAny(lt, lk, rt, groupKey) !== 0) {
        // Advance the right side to the first key ≥ lk and gather its equal run.
        group = [];
        groupKey = null;
        while (!rnext.done) {
          const rk = rnext.value[this.rcol]!;
          if (rk === null) {
            rnext = await rit.next();
            continue;
          }
          const c = compareAny(rt, rk, lt, lk);
          if (c < 0) {
            rnext = await rit.next();
            continue;
          }
          if (c > 0) break;
          groupKey = rk;
          group.push(rnext.value);
          rnext = await rit.next();
        }
        if (groupKey === null) groupKey = null;
      }
      let matched = false;
      if (groupKey !== null && compareAny(lt, lk, rt, groupKey) === 0) {
        for (const r of group) {
          const row = [...l, ...r];
          if (!this.residual || this.residual.eval(row, ctx.ev) === true) {
            matched = true;
            yield row;
          }
        }
      }
      if (!matched && this.kind === 'left') yield [...l, ...nullRow(rn)];
    }
  }
}

// ------------------------------------------------------------------ aggregation, projection, ordering

class AggregateNode extends PlanNode {
  readonly scope: Scope;
  constructor(private readonly child: PlanNode, private readonly groups: Compiled[], private readonly agg: AggContext) {
    super();
    this.scope = { cols: [...groups.map((g, i) => ({ name: `group${i}`, type: g.type, pgType: g.pgType, typmod: g.typmod })), ...agg.aggregates.map((a) => ({ name: a.func, type: a.type }))] };
  }
  override children(): PlanNode[] {
    return [this.child];
  }
  describe(): string {
    return this.groups.length ? `HashAggregate (${this.groups.length} group key${this.groups.length > 1 ? 's' : ''})` : 'Aggregate';
  }
  async *rows(ctx: ExecCtx): AsyncGenerator<Row> {
    type State = { keys: Row; acc: unknown[]; seen: Array<Set<string> | undefined> };
    const groups = new Map<string, State>();
    const specs = this.agg.aggregates;
    const init = (keys: Row): State => ({
      keys,
      acc: specs.map((s) => (s.func === 'count' ? 0 : s.func === 'avg' ? { sum: null, n: 0 } : null)),
      seen: specs.map((s) => (s.distinct ? new Set<string>() : undefined)),
    });
    for await (const r of this.child.rows(ctx)) {
      const keys = this.groups.map((g) => g.eval(r, ctx.ev));
      const k = keys.map((v, i) => (v === null ? '\u0001' : memberKey(v, this.groups[i]!.type))).join('\u0000');
      let st = groups.get(k);
      if (!st) groups.set(k, (st = init(keys)));
      for (let i = 0; i < specs.length; i++) {
        const s = specs[i]!;
        if (s.filter && s.filter.eval(r, ctx.ev) !== true) continue;
        if (s.star) {
          (st.acc[i] as number)++;
          continue;
        }
        const v = s.arg!.eval(r, ctx.ev);
        if (v === null) continue;
        if (s.distinct) {
          const mk = memberKey(v, s.arg!.type);
          if (st.seen[i]!.has(mk)) continue;
          st.seen[i]!.add(mk);
        }
        st.acc[i] = step(s.func, s.arg!.type, st.acc[i], v);
      }
    }
    if (groups.size === 0 && this.groups.length === 0) groups.set('', init([]));
    for (const st of groups.values()) yield [...st.keys, ...specs.map((s, i) => finish(s.func, s.arg?.type ?? 'int8', s.type, st.acc[i]))];
  }
}

function step(func: string, type: SqlType, acc: unknown, v: SqlValue): unknown {
  switch (func) {
    case 'count':
      return (acc as number) + 1;
    case 'sum': {
      const s = addValue(type, acc as SqlValue | ExactSum | null, v);
      return type === 'float4' ? Math.fround(s as number) : s; // sum(real) adds in single precision; avg(real) does not
    }
    case 'avg': {
      const a = acc as { sum: SqlValue | ExactSum | null; n: number };
      return { sum: addValue(type, a.sum, v), n: a.n + 1 };
    }
    case 'min':
      return acc === null || compareAny(type, v, type, acc as SqlValue) < 0 ? v : acc;
    case 'max':
      return acc === null || compareAny(type, v, type, acc as SqlValue) > 0 ? v : acc;
  }
  return acc;
}

/** Exact sums keep the largest display scale seen, as PostgreSQL's numeric addition does. */
interface ExactSum {
  d: Decimal;
  scale: number;
}

function addValue(type: SqlType, acc: SqlValue | ExactSum | null, v: SqlValue): SqlValue | ExactSum {
  if (type === 'float4' || type === 'float8') return (acc === null ? 0 : (acc as number)) + (v as number);
  const a = (acc as ExactSum | null) ?? { d: new Decimal(0), scale: 0 };
  const scale = typeof v === 'string' ? numericScale(v) : 0;
  return { d: a.d.plus(new Decimal(v as string | number)), scale: Math.max(a.scale, scale) };
}

function finish(func: string, argType: SqlType, outType: SqlType, acc: unknown): SqlValue {
  switch (func) {
    case 'count':
      return acc as number;
    case 'sum': {
      if (acc === null) return null;
      if (outType === 'float8' || outType === 'float4') return acc as number;
      const { d, scale } = acc as ExactSum;
      if (outType === 'int8') {
        if (d.abs().gt(Number.MAX_SAFE_INTEGER)) throw new PgError('22003', 'bigint out of range');
        return d.toNumber();
      }
      return numericText(d, scale);
    }
    case 'avg': {
      const a = acc as { sum: SqlValue | ExactSum | null; n: number };
      if (a.n === 0 || a.sum === null) return null;
      if (outType === 'float8') return (a.sum as number) / a.n;
      const { d: sum, scale: sumScale } = a.sum as ExactSum;
      const n = new Decimal(a.n);
      const scale = divScale(sum, n, argType === 'numeric' ? sumScale : 0, 0);
      return numericText(sum.div(n).toDecimalPlaces(scale, Decimal.ROUND_HALF_UP), scale);
    }
    default:
      return acc as SqlValue;
  }
}


class ProjectNode extends PlanNode {
  readonly scope: Scope;
  constructor(private readonly child: PlanNode, private readonly exprs: Compiled[], cols: ScopeColumn[]) {
    super();
    this.scope = { cols };
    // Output stays ordered by a child ordering column only when it is projected unchanged.
    const out: number[] = [];
    for (const c of child.ordering) {
      const i = exprs.findIndex((e) => e.column === c);
      if (i < 0) break;
      out.push(i);
    }
    this.ordering = out;
  }
  override children(): PlanNode[] {
    return [this.child];
  }
  describe(): string {
    return 'Project';
  }
  async *rows(ctx: ExecCtx): AsyncGenerator<Row> {
    const ex = this.exprs;
    for await (const r of this.child.rows(ctx)) {
      const out = new Array(ex.length);
      for (let i = 0; i < ex.length; i++) out[i] = ex[i]!.eval(r, ctx.ev);
      yield out;
    }
  }
  override explain(depth = 0): string[] {
    return this.children()[0]!.explain(depth);
  }
}

interface SortKey {
  c: Compiled;
  desc: boolean;
  nullsFirst: boolean;
}

class SortNode extends PlanNode {
  constructor(private readonly child: PlanNode, private readonly keys: SortKey[], private readonly text: string) {
    super();
  }
  get scope(): Scope {
    return this.child.scope;
  }
  override children(): PlanNode[] {
    return [this.child];
  }
  describe(): string {
    return `Sort (${this.text})`;
  }
  async *rows(ctx: ExecCtx): AsyncGenerator<Row> {
    const all: Array<{ r: Row; k: SqlValue[] }> = [];
    for await (const r of this.child.rows(ctx)) all.push({ r, k: this.keys.map((k) => k.c.eval(r, ctx.ev)) });
    const keys = this.keys;
    all.sort((a, b) => {
      for (let i = 0; i < keys.length; i++) {
        const x = a.k[i]!;
        const y = b.k[i]!;
        const key = keys[i]!;
        if (x === null || y === null) {
          if (x === y) continue;
          return (x === null) === key.nullsFirst ? -1 : 1;
        }
        const c = compareAny(key.c.type, x, key.c.type, y);
        if (c !== 0) return key.desc ? -c : c;
      }
      return 0;
    });
    for (const e of all) yield e.r;
  }
}

class DistinctNode extends PlanNode {
  constructor(private readonly child: PlanNode, private readonly width: number) {
    super();
    this.ordering = child.ordering;
  }
  get scope(): Scope {
    return this.child.scope;
  }
  override children(): PlanNode[] {
    return [this.child];
  }
  describe(): string {
    return 'Distinct';
  }
  async *rows(ctx: ExecCtx): AsyncGenerator<Row> {
    const seen = new Set<string>();
    const types = this.scope.cols.map((c) => c.type);
    for await (const r of this.child.rows(ctx)) {
      const k = r
        .slice(0, this.width)
        .map((v, i) => (v === null ? '\u0001' : memberKey(v, types[i]!)))
        .join('\u0000');
      if (seen.has(k)) continue;
      seen.add(k);
      yield r;
    }
  }
}

class LimitNode extends PlanNode {
  constructor(private readonly child: PlanNode, private readonly limit?: Compiled, private readonly offset?: Compiled) {
    super();
    this.ordering = child.ordering;
  }
  get scope(): Scope {
    return this.child.scope;
  }
  override children(): PlanNode[] {
    return [this.child];
  }
  describe(): string {
    return 'Limit';
  }
  async *rows(ctx: ExecCtx): AsyncGenerator<Row> {
    const num = (c: Compiled | undefined, what: string) => {
      if (!c) return undefined;
      const v = c.eval(NO_ROW, ctx.ev);
      if (v === null) return undefined;
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0) throw new PgError('2201W', `${what} must not be negative`);
      return Math.floor(n);
    };
    const limit = num(this.limit, 'LIMIT');
    let skip = num(this.offset, 'OFFSET') ?? 0;
    if (limit === 0) return;
    let n = 0;
    for await (const r of this.child.rows(ctx)) {
      if (skip > 0) {
        skip--;
        continue;
      }
      yield r;
      if (limit !== undefined && ++n >= limit) return;
    }
  }
}

/** Drops trailing helper columns (sort keys not in the select list). */
class TrimNode extends PlanNode {
  readonly scope: Scope;
  constructor(private readonly child: PlanNode, width: number) {
    super();
    this.scope = { cols: child.scope.cols.slice(0, width) };
    this.ordering = child.ordering.filter((c) => c < width);
  }
  override children(): PlanNode[] {
    return [this.child];
  }
  describe(): string {
    return 'Trim';
  }
  async *rows(ctx: ExecCtx): AsyncGenerator<Row> {
    const w = this.scope.cols.length;
    for await (const r of this.child.rows(ctx)) yield r.length === w ? r : r.slice(0, w);
  }
  override explain(depth = 0): string[] {
    return this.child.explain(depth);
  }
}

// ------------------------------------------------------------------ the planner

interface FromItem {
  plan: PlanNode;
  rels: Set<string>;
}

function columnRefs(n: unknown, out: string[][] = []): string[][] {
  if (!n || typeof n !== 'object') return out;
  if (Array.isArray(n)) {
    for (const x of n) columnRefs(x, out);
    return out;
  }
  const o = n as Node;
  if (o.SubLink) {
    columnRefs(o.SubLink.testexpr, out);
    return out;
  }
  if (o.ColumnRef) {
    if (!o.ColumnRef.fields.some((f: Node) => f.A_Star)) out.push(names(o.ColumnRef.fields));
    return out;
  }
  for (const v of Object.values(o)) columnRefs(v, out);
  return out;
}

/** Whether every column a node references resolves in the scope. */
function refersOnlyTo(n: Node, scope: Scope): boolean {
  for (const f of columnRefs(n)) {
    try {
      resolveColumn(scope, f);
    } catch {
      return false;
    }
  }
  return true;
}

/** The * order of a join: its inputs' * orders, a USING's columns first (PostgreSQL's order for SELECT *). */
function withStar(out: FromItem, left: FromItem, right: FromItem, using: string[]): FromItem {
  const ls = left.plan.scope.star;
  const rs = right.plan.scope.star;
  if (!using.length && !ls && !rs) return out;
  const cols = out.plan.scope.cols;
  const ln = left.plan.scope.cols.length;
  const order = [...(ls ?? left.plan.scope.cols.map((_, i) => i)), ...(rs ?? right.plan.scope.cols.map((_, i) => i)).map((i) => i + ln)];
  const first = using.map((c) => order.find((i) => cols[i]!.name === c && !cols[i]!.hidden)!).filter((i) => i !== undefined);
  out.plan.scope.star = [...first, ...order.filter((i) => !first.includes(i))];
  return out;
}

function exprText(n: Node): string {
  if (n.ColumnRef) return names(n.ColumnRef.fields).join('.');
  if (n.A_Const) {
    const c = n.A_Const;
    if (c.isnull) return 'NULL';
    if (c.sval) return `'${c.sval.sval ?? ''}'`;
    if (c.ival) return String(c.ival.ival ?? 0);
    if (c.fval) return String(c.fval.fval);
    if (c.boolval) return String(!!c.boolval.boolval);
  }
  if (n.ParamRef) return `$${n.ParamRef.number}`;
  if (n.A_Expr && n.A_Expr.kind === 'AEXPR_OP' && n.A_Expr.lexpr) return `${exprText(n.A_Expr.lexpr)} ${names(n.A_Expr.name).at(-1)} ${exprText(n.A_Expr.rexpr)}`;
  if (n.A_Expr && n.A_Expr.kind === 'AEXPR_LIKE') return `${exprText(n.A_Expr.lexpr)} LIKE ${exprText(n.A_Expr.rexpr)}`;
  if (n.A_Expr && n.A_Expr.kind === 'AEXPR_IN') return `${exprText(n.A_Expr.lexpr)} IN (…)`;
  if (n.A_Expr && n.A_Expr.kind?.includes('BETWEEN')) return `${exprText(n.A_Expr.lexpr)} BETWEEN …`;
  if (n.BoolExpr) return `(${(n.BoolExpr.args as Node[]).map(exprText).join(n.BoolExpr.boolop === 'AND_EXPR' ? ' AND ' : n.BoolExpr.boolop === 'OR_EXPR' ? ' OR ' : ' NOT ')})`;
  if (n.NullTest) return `${exprText(n.NullTest.arg)} IS ${n.NullTest.nulltesttype === 'IS_NULL' ? '' : 'NOT '}NULL`;
  if (n.FuncCall) return `${names(n.FuncCall.funcname).join('.')}(…)`;
  if (n.TypeCast) return `${exprText(n.TypeCast.arg)}::${names(n.TypeCast.typeName.names).at(-1)}`;
  if (n.SubLink) return '(subquery)';
  return '…';
}

export class Planner {
  /** WHERE conjuncts already applied by a table scan or used as join keys. */
  private readonly used = new WeakSet<Node>();

  /** Correlated subqueries compiled since the last ApplyNode was placed. */
  private pending: Array<{ slot: number; plan: PlanNode }> = [];
  /** Whether this (sub)query names a column of an enclosing query. */
  private correlated = false;

  /**
   * @param outer scopes of the enclosing queries, innermost first (for a subquery)
   * @param root the statement, for the columns queries name of stub catalog relations
   */
  constructor(private readonly p: PlannerCtx, private readonly outer: Scope[] = [], private readonly parent?: Planner, private root?: Node) {}

  private env(): CompileEnv {
    return {
      paramTypes: this.p.paramTypes,
      outer: this.outer,
      onOuter: (level) => this.referOuter(level),
      catalogFunction: this.p.functions,
      subquery: (select, scope) => {
        // A subquery sees the columns of the query it is in (scope) and of the enclosing ones.
        const sub = new Planner(this.p, [scope, ...this.outer], this, this.root);
        const { plan, columns } = sub.planSelect(select.SelectStmt ?? select);
        if (columns.length !== 1) throw new PgError('42601', 'subquery must return only one column');
        const slot = this.p.subplans.length;
        this.p.subplans.push({ plan, type: columns[0]!.type, correlated: sub.correlated });
        if (sub.correlated) this.pending.push({ slot, plan });
        return { slot, type: columns[0]!.type };
      },
    };
  }

  /** A name of this query resolved in the scope of the enclosing query `level` levels up. */
  private referOuter(level: number): void {
    this.correlated = true;
    if (level > 0) this.parent?.referOuter(level - 1);
  }

  /** Puts the correlated subqueries compiled so far below the node about to evaluate them. */
  private applyPending(plan: PlanNode): PlanNode {
    if (this.pending.length === 0) return plan;
    const subs = this.pending;
    this.pending = [];
    return new ApplyNode(plan, subs);
  }

  private noPending(where: string): void {
    if (this.pending.length) throw new PgError('0A000', `correlated subqueries are not supported in ${where} (they are in the select list and WHERE)`);
  }

  /** Whether a condition holds a subquery that names columns of an enclosing query (it then runs per row, above the scans). */
  private hasCorrelatedSubquery(n: Node): boolean {
    let found = false;
    const visit = (x: unknown): void => {
      if (found || !x || typeof x !== 'object') return;
      if (Array.isArray(x)) return x.forEach(visit);
      const o = x as Node;
      if (!o.SubLink) return Object.values(o).forEach(visit);
      visit(o.SubLink.testexpr);
      try {
        new Planner({ ...this.p, paramTypes: [...this.p.paramTypes], subplans: [] }, [], undefined, this.root).planSelect(o.SubLink.subselect.SelectStmt ?? o.SubLink.subselect);
      } catch (err) {
        const code = (err as PgError).code;
        if (code === '42703' || code === '42P01') found = true;
      }
    };
    visit(n);
    return found;
  }

  /** Plans a SELECT; the result's columns are the select list (what RowDescription describes). */
  planSelect(s: Node): { plan: PlanNode; columns: ScopeColumn[] } {
    this.root ??= s;
    if (s.op && s.op !== 'SETOP_NONE') return this.planSetOp(s);
    if (s.valuesLists) return this.planValues(s);
    if (s.withClause) throw new PgError('0A000', 'WITH (common table expressions) is not supported yet');
    if (s.lockingClause) throw new PgError('0A000', 'SELECT … FOR UPDATE is not supported');
    if (s.intoClause) throw new PgError('0A000', 'SELECT INTO is not supported');
    const empty = this.emptyResult(s);
    if (empty) return empty;
    const where = conjuncts(s.whereClause);
    let plan = this.planFrom(s.fromClause ?? [], where);
    this.noPending('FROM');
    const env = this.env();
    const scope = plan.scope;
    // Filter: conditions not consumed by table scans (re-checking consumed ones is harmless but costs; skip those).
    const rest = where.filter((c) => !this.used.has(c));
    if (rest.length) {
      const pred = this.bool(rest, scope, env);
      plan = new FilterNode(this.applyPending(plan), pred, rest.map(exprText).join(' AND '));
    }
    // Target list with * expanded.
    const targets: Array<{ node: Node; name: string }> = [];
    for (const t of s.targetList ?? []) {
      const rt = t.ResTarget;
      const v = rt.val as Node;
      if (v.ColumnRef && v.ColumnRef.fields.some((f: Node) => f.A_Star)) {
        const rel = v.ColumnRef.fields.length > 1 ? str(v.ColumnRef.fields[0]) : undefined;
        const order = rel === undefined && scope.star ? scope.star : scope.cols.map((_, i) => i);
        const cols = order.map((i) => ({ c: scope.cols[i]!, i })).filter((x) => !x.c.hidden && (rel === undefined || x.c.rel === rel));
        if (rel !== undefined && cols.length === 0 && !scope.cols.some((c) => c.rel === rel)) throw new PgError('42P01', `missing FROM-clause entry for table "${rel}"`);
        for (const { c } of cols) targets.push({ node: { ColumnRef: { fields: c.rel ? [{ String: { sval: c.rel } }, { String: { sval: c.name } }] : [{ String: { sval: c.name } }] } }, name: c.name });
        continue;
      }
      targets.push({ node: v, name: rt.name ?? columnName(v) });
    }
    if (targets.length === 0 && (s.targetList ?? []).length === 0) throw new PgError('42601', 'SELECT with no columns is not supported');
    // Aggregation.
    const groupNodes: Node[] = (s.groupClause ?? []).map((g: Node) => {
      if (g.A_Const?.ival !== undefined) {
        const k = (g.A_Const.ival.ival ?? 0) - 1;
        if (k < 0 || k >= targets.length) throw new PgError('42P10', `GROUP BY position ${k + 1} is not in select list`);
        return targets[k]!.node;
      }
      if (g.ColumnRef && g.ColumnRef.fields.length === 1) {
        const name = str(g.ColumnRef.fields[0]);
        const inScope = scope.cols.some((c) => c.name === name);
        const t = targets.find((x) => x.name === name);
        if (!inScope && t) return t.node;
      }
      if (g.GroupingSet || g.RollupExpr || g.CubeExpr) throw new PgError('0A000', 'GROUPING SETS, ROLLUP and CUBE are not supported');
      return g;
    });
    const aggregated = groupNodes.length > 0 || targets.some((t) => containsAggregate(t.node)) || containsAggregate(s.havingClause) || (s.sortClause ?? []).some((x: Node) => containsAggregate(x.SortBy.node));
    let outEnv = env;
    if (aggregated) {
      const groups = groupNodes.map((g) => compile(g, scope, env));
      const agg: AggContext = { groupKeys: groupNodes.map(fingerprint), aggregates: [], inputScope: scope, groupTypes: groups.map((g) => (g.type === 'unknown' ? 'text' : g.type)) };
      outEnv = { ...env, agg };
      // Compile everything that runs over groups first, so that every aggregate is registered.
      const having = s.havingClause ? compile(s.havingClause, scope, outEnv) : undefined;
      const projected = targets.map((t) => compile(t.node, scope, outEnv));
      const sortExprs = (s.sortClause ?? []).map((x: Node) => this.sortTarget(x.SortBy.node, targets, projected, scope, outEnv));
      this.noPending('an aggregated query');
      plan = new AggregateNode(plan, groups, agg);
      if (having) plan = new FilterNode(plan, having, exprText(s.havingClause));
      return this.finish(s, plan, targets, projected, sortExprs, plan.scope);
    }
    if (s.havingClause) throw new PgError('42803', 'HAVING needs GROUP BY or an aggregate');
    const projected = targets.map((t) => compile(t.node, scope, outEnv));
    const sortExprs = (s.sortClause ?? []).map((x: Node) => this.sortTarget(x.SortBy.node, targets, projected, scope, outEnv));
    return this.finish(s, plan, targets, projected, sortExprs, scope);
  }

  private sortTarget(n: Node, targets: Array<{ node: Node; name: string }>, projected: Compiled[], scope: Scope, env: CompileEnv): { out?: number; c?: Compiled } {
    if (n.A_Const?.ival !== undefined) {
      const k = (n.A_Const.ival.ival ?? 0) - 1;
      if (k < 0 || k >= targets.length) throw new PgError('42P10', `ORDER BY position ${k + 1} is not in select list`);
      return { out: k };
    }
    if (n.ColumnRef && n.ColumnRef.fields.length === 1) {
      const name = str(n.ColumnRef.fields[0]);
      const matches = targets.map((t, i) => ({ t, i })).filter((x) => x.t.name === name);
      if (matches.length === 1) return { out: matches[0]!.i };
      // Several output columns of that name: PostgreSQL accepts it only when they are the same expression.
      const same = (i: number, j: number) => fingerprint(targets[i]!.node) === fingerprint(targets[j]!.node) || (projected[i]!.column !== undefined && projected[i]!.column === projected[j]!.column);
      if (matches.length > 1 && matches.some((m) => !same(m.i, matches[0]!.i))) throw new PgError('42702', `ORDER BY "${name}" is ambiguous`);
    }
    const fp = fingerprint(n);
    const same = targets.findIndex((t) => fingerprint(t.node) === fp);
    if (same >= 0) return { out: same };
    return { c: compile(n, scope, env) };
  }

  private finish(
    s: Node,
    input: PlanNode,
    targets: Array<{ node: Node; name: string }>,
    projected: Compiled[],
    sorts: Array<{ out?: number; c?: Compiled }>,
    inScope: Scope,
  ): { plan: PlanNode; columns: ScopeColumn[] } {
    const distinct = !!s.distinctClause;
    if (distinct && s.distinctClause.length > 0 && Object.keys(s.distinctClause[0] ?? {}).length > 0) throw new PgError('0A000', 'DISTINCT ON is not supported');
    if (distinct && sorts.some((x) => x.c)) throw new PgError('42P10', 'for SELECT DISTINCT, ORDER BY expressions must appear in select list');
    const columns: ScopeColumn[] = targets.map((t, i) => {
      const c = projected[i]!;
      const src = c.column !== undefined && !('agg' in c) ? inScope.cols[c.column] : undefined;
      return {
        name: t.name,
        type: c.type === 'unknown' ? 'text' : c.type,
        pgType: c.pgType ?? src?.pgType,
        typmod: c.typmod ?? src?.typmod,
        tableOid: src?.tableOid,
        attnum: src?.attnum,
      };
    });
    const extra = sorts.filter((x) => x.c).map((x) => x.c!);
    const exprs = [...projected, ...extra];
    const cols = [...columns, ...extra.map((e, i) => ({ name: `sort${i}`, type: e.type }))];
    let plan: PlanNode = new ProjectNode(this.applyPending(input), exprs, cols);
    let ei = 0;
    const keys: SortKey[] = (s.sortClause ?? []).map((x: Node, i: number) => {
      const sb = x.SortBy;
      if (sb.useOp) throw new PgError('0A000', 'ORDER BY … USING is not supported');
      const t = sorts[i]!;
      const idx = t.out !== undefined ? t.out : targets.length + ei++;
      const desc = sb.sortby_dir === 'SORTBY_DESC';
      const nullsFirst = sb.sortby_nulls === 'SORTBY_NULLS_FIRST' ? true : sb.sortby_nulls === 'SORTBY_NULLS_LAST' ? false : desc;
      const type = cols[idx]!.type;
      return { c: { type, column: idx, eval: (r: Row) => r[idx]! }, desc, nullsFirst, idx };
    });
    if (distinct) plan = new DistinctNode(plan, targets.length);
    if (keys.length) {
      // Already in order? (ascending on the leading ordering columns, e.g. a primary-key scan ORDER BY its key)
      const ord = plan.ordering;
      const inOrder = keys.every((k, i) => !k.desc && !k.nullsFirst && ord[i] === (k as SortKey & { idx: number }).idx);
      if (!inOrder) plan = new SortNode(plan, keys, (s.sortClause as Node[]).map((x) => exprText(x.SortBy.node) + (x.SortBy.sortby_dir === 'SORTBY_DESC' ? ' DESC' : '')).join(', '));
    }
    if (s.limitCount || s.limitOffset) {
      const env = this.env();
      const lim = s.limitCount && !s.limitCount.A_Const?.isnull ? this.intExpr(s.limitCount, env) : undefined;
      const off = s.limitOffset ? this.intExpr(s.limitOffset, env) : undefined;
      plan = new LimitNode(plan, lim, off);
      this.noPending('LIMIT and OFFSET');
    }
    if (extra.length) plan = new TrimNode(plan, targets.length);
    return { plan, columns };
  }

  /** A SELECT that needs a row of a stub catalog relation (joined, not outer-joined) has no rows: nothing else is planned. */
  private emptyResult(s: Node): { plan: PlanNode; columns: ScopeColumn[] } | undefined {
    const stub = ((s.fromClause ?? []) as Node[]).map((f) => this.stubIn(f)).find((x) => x !== undefined);
    if (stub === undefined) return undefined;
    const targets = ((s.targetList ?? []) as Node[]).map((t) => t.ResTarget);
    if (s.groupClause?.length || s.havingClause || containsAggregate(targets.map((t) => t.val))) return undefined;
    if (targets.some((t) => t.val.ColumnRef?.fields.some((f: Node) => f.A_Star))) return undefined;
    const columns: ScopeColumn[] = targets.map((t) => ({ name: t.name ?? columnName(t.val), type: 'text' }));
    return { plan: new EmptyNode({ cols: columns }, `${stub} is empty`), columns };
  }

  /** The stub relation that makes a FROM item empty, if any. */
  private stubIn(item: Node): string | undefined {
    if (item.RangeVar) return this.virtualFor(item.RangeVar)?.stub ? item.RangeVar.relname : undefined;
    const j = item.JoinExpr;
    if (!j) return undefined;
    if (j.jointype === 'JOIN_INNER') return this.stubIn(j.larg) ?? this.stubIn(j.rarg);
    if (j.jointype === 'JOIN_LEFT') return this.stubIn(j.larg);
    if (j.jointype === 'JOIN_RIGHT') return this.stubIn(j.rarg);
    return undefined;
  }

  private virtualFor(rv: Node): VirtualTable | undefined {
    const name = rv.relname as string;
    const schema = rv.schemaname as string | undefined;
    return schema === 'pg_catalog' || schema === 'information_schema' || name.startsWith('pg_') ? this.p.virtual(schema, name) : undefined;
  }

  /** The columns a statement names of a stub relation (alias.column): NULL, of unknown type (like a NULL literal). */
  private stubColumns(alias: string): ScopeColumn[] {
    const found = new Set<string>();
    const visit = (x: unknown): void => {
      if (!x || typeof x !== 'object') return;
      if (Array.isArray(x)) return x.forEach(visit);
      const o = x as Node;
      if (o.ColumnRef) {
        const f = names(o.ColumnRef.fields);
        if (f.length >= 2 && f[f.length - 2] === alias && !o.ColumnRef.fields.at(-1).A_Star) found.add(f[f.length - 1]!);
        return;
      }
      Object.values(o).forEach(visit);
    };
    visit(this.root);
    return [...found].map((name) => ({ name, type: 'unknown' }));
  }

  /** UNION [ALL]: the branches appended, converted to common types; duplicates removed unless ALL; then ORDER BY and LIMIT. */
  private planSetOp(s: Node): { plan: PlanNode; columns: ScopeColumn[] } {
    if (s.op !== 'SETOP_UNION') throw new PgError('0A000', `${String(s.op).replace('SETOP_', '')} is not supported yet (UNION and UNION ALL are)`);
    if (s.withClause) throw new PgError('0A000', 'WITH (common table expressions) is not supported yet');
    const l = this.planSelect(s.larg);
    const r = this.planSelect(s.rarg);
    if (l.columns.length !== r.columns.length) throw new PgError('42601', 'each UNION query must have the same number of columns');
    // Untyped literals (NULL, 'text') take the other branch's type, as PostgreSQL resolves them.
    const untyped = (sel: Node, i: number) => {
      const v = sel.op === 'SETOP_NONE' && !sel.valuesLists ? sel.targetList?.[i]?.ResTarget?.val : undefined;
      return !!v?.A_Const && (v.A_Const.isnull || v.A_Const.sval !== undefined);
    };
    const columns: ScopeColumn[] = l.columns.map((lc, i) => {
      const rc = r.columns[i]!;
      let type: SqlType;
      if (lc.type === rc.type) type = lc.type;
      else if (untyped(s.larg, i)) type = rc.type;
      else if (untyped(s.rarg, i)) type = lc.type;
      else if (isNumericType(lc.type) && isNumericType(rc.type)) type = numericResult(lc.type, rc.type);
      else throw new PgError('42804', `UNION types ${lc.type} and ${rc.type} cannot be matched`);
      const same = lc.type === rc.type && lc.pgType === rc.pgType && lc.typmod === rc.typmod;
      return { name: lc.name, type, pgType: same ? lc.pgType : undefined, typmod: same ? lc.typmod : undefined };
    });
    let plan: PlanNode = new AppendNode({ cols: columns }, [
      { plan: l.plan, types: l.columns.map((c) => c.type) },
      { plan: r.plan, types: r.columns.map((c) => c.type) },
    ]);
    if (!s.all) plan = new DistinctNode(plan, columns.length);
    const keys: SortKey[] = ((s.sortClause ?? []) as Node[]).map((x) => {
      const sb = x.SortBy;
      const n = sb.node as Node;
      let idx = -1;
      if (n.A_Const?.ival !== undefined) {
        idx = (n.A_Const.ival.ival ?? 0) - 1;
        if (idx < 0 || idx >= columns.length) throw new PgError('42P10', `ORDER BY position ${idx + 1} is not in select list`);
      } else if (n.ColumnRef?.fields.length === 1) idx = columns.findIndex((c) => c.name === str(n.ColumnRef.fields[0]));
      if (idx < 0) throw new PgError('0A000', 'invalid UNION/INTERSECT/EXCEPT ORDER BY clause', { detail: 'Only result column names can be used, not expressions or functions.' });
      const desc = sb.sortby_dir === 'SORTBY_DESC';
      const nullsFirst = sb.sortby_nulls === 'SORTBY_NULLS_FIRST' ? true : sb.sortby_nulls === 'SORTBY_NULLS_LAST' ? false : desc;
      const i = idx;
      return { c: { type: columns[i]!.type, column: i, eval: (row: Row) => row[i]! }, desc, nullsFirst };
    });
    if (keys.length) plan = new SortNode(plan, keys, (s.sortClause as Node[]).map((x) => exprText(x.SortBy.node)).join(', '));
    if (s.limitCount || s.limitOffset) {
      const env = this.env();
      const lim = s.limitCount && !s.limitCount.A_Const?.isnull ? this.intExpr(s.limitCount, env) : undefined;
      const off = s.limitOffset ? this.intExpr(s.limitOffset, env) : undefined;
      plan = new LimitNode(plan, lim, off);
    }
    return { plan, columns };
  }

  private intExpr(n: Node, env: CompileEnv): Compiled {
    const c = compile(n, { cols: [] }, env);
    if (c.param !== undefined && (env.paramTypes[c.param] === 'unknown' || env.paramTypes[c.param] === undefined)) env.paramTypes[c.param] = 'int8';
    return c.type === 'unknown' && c.constant ? constant(Number(c.constant.value), 'int8') : c;
  }

  private bool(nodes: Node[], scope: Scope, env: CompileEnv): Compiled {
    const cs = nodes.map((n) => {
      let c = compile(n, scope, env);
      if (c.type === 'unknown' && c.param !== undefined) {
        env.paramTypes[c.param] = 'bool';
        c = { ...c, type: 'bool' };
      }
      if (c.type !== 'bool' && c.type !== 'unknown') throw new PgError('42804', `argument of WHERE must be type boolean, not type ${c.type}`);
      return c;
    });
    if (cs.length === 1) return cs[0]!;
    return {
      type: 'bool',
      eval: (row, ctx) => {
        let sawNull = false;
        for (const c of cs) {
          const v = c.eval(row, ctx);
          if (v === false) return false;
          if (v === null) sawNull = true;
        }
        return sawNull ? null : true;
      },
    };
  }

  private planValues(s: Node): { plan: PlanNode; columns: ScopeColumn[] } {
    const env = this.env();
    const rows = (s.valuesLists as Node[]).map((l) => (l.List.items as Node[]).map((x) => compile(x, { cols: [] }, env)));
    this.noPending('VALUES');
    const width = rows[0]!.length;
    if (rows.some((r) => r.length !== width)) throw new PgError('42601', 'VALUES lists must all be the same length');
    const types = Array.from({ length: width }, (_, i) => rows.map((r) => r[i]!.type).find((t) => t !== 'unknown') ?? 'text');
    const columns = types.map((t, i) => ({ name: `column${i + 1}`, type: t }));
    const node = new (class extends PlanNode {
      readonly scope: Scope = { cols: columns };
      async *rows(ctx: ExecCtx): AsyncGenerator<Row> {
        for (const r of rows) yield r.map((c, i) => castValue(c.eval(NO_ROW, ctx.ev), c.type, types[i]!));
      }
      describe(): string {
        return `Values (${rows.length} rows)`;
      }
    })();
    return { plan: node, columns };
  }

  // -------------------------------------------------------------- FROM

  private planFrom(from: Node[], where: Node[]): PlanNode {
    if (from.length === 0) return new ResultNode();
    let acc: FromItem | undefined;
    for (const item of from) {
      const next = this.planFromItem(item, where, false);
      if (!acc) {
        acc = next;
        continue;
      }
      // Comma join: WHERE equalities across the two sides become hash-join keys.
      acc = withStar(this.join(acc, next, 'inner', where.filter((c) => !this.used.has(c)), true), acc, next, []);
    }
    return acc!.plan;
  }

  private planFromItem(item: Node, where: Node[], nullable: boolean): FromItem {
    if (item.RangeVar) return this.planRangeVar(item.RangeVar, nullable ? [] : where);
    if (item.JoinExpr) {
      const j = item.JoinExpr;
      const kind: JoinKind = j.jointype === 'JOIN_INNER' ? 'inner' : j.jointype === 'JOIN_LEFT' ? 'left' : (() => {
        throw new PgError('0A000', `${String(j.jointype).replace('JOIN_', '')} JOIN is not supported yet (inner and left joins are)`);
      })();
      if (j.isNatural) throw new PgError('0A000', 'NATURAL JOIN is not supported');
      const left = this.planFromItem(j.larg, where, nullable);
      const right = this.planFromItem(j.rarg, where, nullable || kind === 'left');
      let quals: Node[] = conjuncts(j.quals);
      if (j.usingClause) {
        const cols = names(j.usingClause);
        quals = cols.map((c) => ({
          A_Expr: {
            kind: 'AEXPR_OP',
            name: [{ String: { sval: '=' } }],
            lexpr: { ColumnRef: { fields: [...this.relFor(left, c), { String: { sval: c } }] } },
            rexpr: { ColumnRef: { fields: [...this.relFor(right, c), { String: { sval: c } }] } },
          },
        }));
        // The right side's USING columns are hidden from * and from unqualified names, as PostgreSQL merges them.
        for (const col of right.plan.scope.cols) if (cols.includes(col.name)) col.hidden = true;
      }
      return withStar(this.join(left, right, kind, quals, false), left, right, j.usingClause ? names(j.usingClause) : []);
    }
    if (item.RangeSubselect) {
      const sub = this.planSelect(item.RangeSubselect.subquery.SelectStmt);
      const alias = item.RangeSubselect.alias?.aliasname;
      if (!alias) throw new PgError('42601', 'subquery in FROM must have an alias');
      const scope: Scope = { cols: sub.columns.map((c) => ({ ...c, rel: alias })) };
      const plan = new (class extends PlanNode {
        readonly scope = scope;
        rows(ctx: ExecCtx) {
          return sub.plan.rows(ctx);
        }
        describe() {
          return `Subquery Scan on ${alias}`;
        }
        override children() {
          return [sub.plan];
        }
      })();
      return { plan, rels: new Set([alias]) };
    }
    if (item.RangeFunction) return this.planRangeFunction(item.RangeFunction);
    throw new PgError('0A000', `FROM item ${Object.keys(item)[0]} is not supported`);
  }

  /** Functions in FROM: generate_series(start, stop[, step]) over integers, unnest(array), scalar functions (one row). */
  private planRangeFunction(rf: Node): FromItem {
    const fns = (rf.functions ?? []) as Node[];
    const call = fns.length === 1 ? (fns[0]!.List?.items?.[0]?.FuncCall as Node | undefined) : undefined;
    if (!call || rf.is_rowsfrom) throw new PgError('0A000', 'only generate_series() and unnest() are supported in FROM');
    const fname = names(call.funcname).at(-1)!.toLowerCase();
    const env = this.env();
    let args = ((call.args ?? []) as Node[]).map((a) => compile(a, { cols: [] }, env));
    this.noPending('FROM');
    let type: SqlType;
    let gen: (v: SqlValue[]) => Iterable<SqlValue>;
    if (fname === 'generate_series') {
      if (args.length < 2 || args.length > 3) throw new PgError('42883', `function generate_series with ${args.length} arguments does not exist`);
      args = args.map((a) => (a.type === 'unknown' ? { ...a, type: 'int4' as SqlType, eval: (r: Row, ev: EvalCtx) => { const v = a.eval(r, ev); return v === null ? null : castValue(v, 'unknown', 'int4'); } } : a));
      if (!args.every((a) => a.type === 'int4' || a.type === 'int8')) throw new PgError('0A000', 'generate_series() is supported over integers');
      type = args.some((a) => a.type === 'int8') ? 'int8' : 'int4';
      gen = function* ([start, stop, step = 1]) {
        const [a, b, d] = [Number(start), Number(stop), Number(step)];
        if (d === 0) throw new PgError('22023', 'step size cannot equal zero');
        for (let i = a; d > 0 ? i <= b : i >= b; i += d) yield i;
      };
    } else if (fname === 'unnest') {
      // CascaDB has no array values: an array is its text form ('{a,b}', as catalog columns and ARRAY() give them).
      if (args.length !== 1) throw new PgError('0A000', 'unnest() of one array is supported');
      type = 'text';
      gen = ([v]) => parseArrayText(String(v));
    } else {
      // Any other function in FROM is one row of its value (SELECT * FROM current_schema()).
      const c = compile({ FuncCall: call }, { cols: [] }, env);
      this.noPending('FROM');
      type = c.type === 'unknown' ? 'text' : c.type;
      args = [c];
      gen = (v) => v;
    }
    const alias = (rf.alias?.aliasname as string | undefined) ?? fname;
    const colnames = names(rf.alias?.colnames);
    const scope: Scope = { cols: [{ rel: alias, name: colnames[0] ?? alias, type }] };
    if (rf.ordinality) scope.cols.push({ rel: alias, name: colnames[1] ?? 'ordinality', type: 'int8' });
    const ordinality = !!rf.ordinality;
    const plan = new (class extends PlanNode {
      readonly scope = scope;
      async *rows(ctx: ExecCtx): AsyncGenerator<Row> {
        const v = args.map((a) => a.eval(NO_ROW, ctx.ev));
        if (v.some((x) => x === null)) return;
        let n = 0;
        for (const x of gen(v)) yield ordinality ? [x, ++n] : [x];
      }
      describe(): string {
        return `Function Scan on ${fname}`;
      }
    })();
    return { plan, rels: new Set([alias]) };
  }

  private relFor(item: FromItem, col: string): Node[] {
    const c = item.plan.scope.cols.filter((x) => x.name === col && !x.hidden);
    if (c.length === 0) throw new PgError('42703', `column "${col}" specified in USING clause does not exist`);
    return c[0]!.rel ? [{ String: { sval: c[0]!.rel } }] : [];
  }

  private join(left: FromItem, right: FromItem, kind: JoinKind, quals: Node[], fromWhere: boolean): FromItem {
    const scope: Scope = { cols: [...left.plan.scope.cols, ...right.plan.scope.cols] };
    const env = this.env();
    const lkeys: Compiled[] = [];
    const rkeys: Compiled[] = [];
    const texts: string[] = [];
    const residual: Node[] = [];
    for (const q of quals) {
      const a = q.A_Expr;
      if (a && a.kind === 'AEXPR_OP' && names(a.name).at(-1) === '=' && a.lexpr && a.rexpr) {
        const lInL = refersOnlyTo(a.lexpr, left.plan.scope) && columnRefs(a.lexpr).length > 0;
        const rInR = refersOnlyTo(a.rexpr, right.plan.scope) && columnRefs(a.rexpr).length > 0;
        const lInR = refersOnlyTo(a.lexpr, right.plan.scope) && columnRefs(a.lexpr).length > 0;
        const rInL = refersOnlyTo(a.rexpr, left.plan.scope) && columnRefs(a.rexpr).length > 0;
        if ((lInL && rInR) || (lInR && rInL)) {
          const [ln, rn] = lInL && rInR ? [a.lexpr, a.rexpr] : [a.rexpr, a.lexpr];
          const lc = compile(ln, left.plan.scope, env);
          const rc = compile(rn, right.plan.scope, env);
          if ((lc.type === rc.type || (isNumericType(lc.type) && isNumericType(rc.type)))) {
            lkeys.push(lc);
            rkeys.push(rc);
            texts.push(`${exprText(ln)} = ${exprText(rn)}`);
            if (fromWhere) this.used.add(q);
            continue;
          }
        }
      }
      if (fromWhere) {
        // Other WHERE conditions stay in the WHERE filter.
        continue;
      }
      residual.push(q);
    }
    const res = residual.length ? this.bool(residual, scope, env) : undefined;
    this.noPending('JOIN … ON');
    const rels = new Set([...left.rels, ...right.rels]);
    if (lkeys.length === 0) return { plan: new NestedLoopJoin(left.plan, right.plan, kind, res), rels };
    // Merge join: both sides ordered by the (single) join column.
    if (lkeys.length === 1 && lkeys[0]!.column !== undefined && rkeys[0]!.column !== undefined && left.plan.ordering[0] === lkeys[0]!.column && right.plan.ordering[0] === rkeys[0]!.column && lkeys[0]!.type === rkeys[0]!.type) {
      return { plan: new MergeJoin(left.plan, right.plan, kind, lkeys[0]!.column, rkeys[0]!.column, texts.join(' AND '), res), rels };
    }
    return { plan: new HashJoin(left.plan, right.plan, kind, lkeys, rkeys, texts.join(' AND '), res), rels };
  }

  /** The rows of one table matching a WHERE clause, with every column (hidden ones too): for UPDATE and DELETE. */
  planTable(rv: Node, where: Node | undefined): { plan: PlanNode; table: TableDesc } {
    if (rv.schemaname && rv.schemaname !== 'public') throw new PgError('3F000', `schema "${rv.schemaname}" does not exist`);
    const t = this.p.catalog.find(rv.relname);
    if (!t) throw new PgError('42P01', `relation "${rv.relname}" does not exist`);
    const conds = conjuncts(where);
    let { plan } = this.planRangeVar(rv, conds);
    const rest = conds.filter((c) => !this.used.has(c));
    if (rest.length) {
      const pred = this.bool(rest, plan.scope, this.env());
      plan = new FilterNode(this.applyPending(plan), pred, rest.map(exprText).join(' AND '));
    }
    return { plan, table: t };
  }

  /** Compiles an expression over a scope with this planner's parameters and subqueries. */
  expr(n: Node, scope: Scope): Compiled {
    const c = compile(n, scope, this.env());
    this.noPending('this statement');
    return c;
  }

  private planRangeVar(rv: Node, where: Node[]): FromItem {
    const name = rv.relname as string;
    const alias = rv.alias?.aliasname ?? name;
    const schema = rv.schemaname as string | undefined;
    const virtual = this.virtualFor(rv);
    if (virtual) {
      const scope: Scope = { cols: (virtual.stub ? this.stubColumns(alias) : virtual.cols).map((c) => ({ ...c, rel: alias })) };
      const mine = where.filter((c) => refersOnlyTo(c, scope) && columnRefs(c).length > 0 && !this.hasCorrelatedSubquery(c));
      const pred = mine.length ? this.bool(mine, scope, this.env()) : undefined;
      for (const m of mine) this.used.add(m);
      return { plan: new VirtualScan(scope, name, virtual, pred), rels: new Set([alias]) };
    }
    if (schema && schema !== 'public') throw new PgError('3F000', `schema "${schema}" does not exist`);
    const t = this.p.catalog.find(name);
    if (!t) throw new PgError('42P01', `relation "${name}" does not exist`);
    const scope: Scope = {
      cols: t.columns.map((c, i) => ({ rel: alias, name: c.name, type: c.type, pgType: c.pgType, typmod: c.typmod, hidden: c.hidden, tableOid: t.id, attnum: i + 1 })),
    };
    // Conditions on this table alone: access path + filter at the scan.
    const mine = where.filter((c) => !this.used.has(c) && refersOnlyTo(c, scope) && columnRefs(c).length > 0 && !this.hasCorrelatedSubquery(c));
    const env = this.env();
    const access = this.chooseAccess(t, scope, mine, env);
    const filter = mine.length ? this.bool(mine, scope, env) : undefined;
    for (const m of mine) this.used.add(m);
    return { plan: new TableScan(scope, t, alias, access, filter, mine.map(exprText).join(' AND ')), rels: new Set([alias]) };
  }

  /** Sargable conditions: column op value, where value has no columns (constants, parameters). */
  private chooseAccess(t: TableDesc, scope: Scope, conds: Node[], env: CompileEnv): Access {
    type Cond = { col: number; op: string; v: Compiled; v2?: Compiled; text: string };
    const sarg: Cond[] = [];
    const valueOf = (n: Node, col: number): Compiled | undefined => {
      if (columnRefs(n).length > 0 || containsAggregate(n)) return undefined;
      let c: Compiled;
      try {
        c = compile(n, { cols: [] }, env);
      } catch {
        return undefined;
      }
      const ct = t.columns[col]!.type;
      if (c.type === 'unknown') {
        if (c.param !== undefined && (env.paramTypes[c.param] === 'unknown' || env.paramTypes[c.param] === undefined)) env.paramTypes[c.param] = ct;
        if (c.param !== undefined) return { ...c, type: env.paramTypes[c.param]! };
        if (c.constant) return c.constant.value === null ? c : { ...constant(castValue(c.constant.value, 'unknown', ct), ct) };
        return undefined;
      }
      if (c.type === ct) return c;
      if ((c.type === 'int4' || c.type === 'int8') && (ct === 'int4' || ct === 'int8' || ct === 'numeric' || ct === 'float8' || ct === 'float4')) {
        // An int8 value as a bound of an int4 key only when it is a constant that fits: 3000000000 is no int4 key,
        // and whether a row matches it is the filter's business.
        const v = c.constant?.value;
        if (c.type === 'int8' && ct === 'int4' && !(c.constant && (v === null || (typeof v === 'number' && v >= -2147483648 && v <= 2147483647)))) return undefined;
        return c;
      }
      return undefined;
    };
    const colOf = (n: Node): number | undefined => {
      if (!n.ColumnRef) return undefined;
      try {
        const i = resolveColumn(scope, names(n.ColumnRef.fields));
        return i;
      } catch {
        return undefined;
      }
    };
    const flip: Record<string, string> = { '<': '>', '<=': '>=', '>': '<', '>=': '<=', '=': '=' };
    for (const c of conds) {
      const a = c.A_Expr;
      if (!a) continue;
      if (a.kind === 'AEXPR_OP' && a.lexpr && ['=', '<', '<=', '>', '>='].includes(names(a.name).at(-1)!)) {
        const op = names(a.name).at(-1)!;
        let col = colOf(a.lexpr);
        let other = a.rexpr;
        let o = op;
        if (col === undefined) {
          col = colOf(a.rexpr);
          other = a.lexpr;
          o = flip[op]!;
        }
        if (col === undefined) continue;
        const v = valueOf(other, col);
        if (v) sarg.push({ col, op: o, v, text: exprText(c) });
      } else if (a.kind === 'AEXPR_BETWEEN') {
        const col = colOf(a.lexpr);
        if (col === undefined) continue;
        const [lo, hi] = a.rexpr.List.items as [Node, Node];
        const v = valueOf(lo, col);
        const v2 = valueOf(hi, col);
        if (v && v2) sarg.push({ col, op: 'between', v, v2, text: exprText(c) });
      } else if (a.kind === 'AEXPR_LIKE' && names(a.name).at(-1) === '~~') {
        const col = colOf(a.lexpr);
        if (col === undefined || t.columns[col]!.type !== 'text') continue;
        const v = valueOf(a.rexpr, col);
        if (v && (v.param !== undefined || (v.constant && likePrefix(String(v.constant.value)).prefix.length > 0))) sarg.push({ col, op: 'like', v, text: exprText(c) });
      }
    }
    const forIndex = (idx: IndexDesc): Access & { score: number } => {
      const eq: Compiled[] = [];
      const used: string[] = [];
      for (const col of idx.columns) {
        const e = sarg.find((s) => s.col === col && s.op === '=');
        if (!e) break;
        eq.push(e.v);
        used.push(e.text);
      }
      const access: Access & { score: number } = { kind: 'range', index: idx, eq, conds: used, score: eq.length * 10 };
      if (eq.length === idx.columns.length) {
        access.kind = idx.id === 0 || idx.unique ? (idx.id === 0 ? 'point' : 'range') : 'range';
        access.score += idx.id === 0 ? 100 : idx.unique ? 50 : 5;
        return access;
      }
      const next = idx.columns[eq.length]!;
      for (const s of sarg.filter((x) => x.col === next)) {
        if (s.op === '>' || s.op === '>=') {
          if (!access.lo) {
            access.lo = { c: s.v, incl: s.op === '>=' };
            used.push(s.text);
          }
        } else if (s.op === '<' || s.op === '<=') {
          if (!access.hi) {
            access.hi = { c: s.v, incl: s.op === '<=' };
            used.push(s.text);
          }
        } else if (s.op === 'between' && !access.lo && !access.hi) {
          access.lo = { c: s.v, incl: true };
          access.hi = { c: s.v2!, incl: true };
          used.push(s.text);
        } else if (s.op === 'like' && !access.lo && !access.hi && !access.like) {
          access.like = s.v;
          used.push(s.text);
        }
      }
      if (access.lo || access.hi || access.like) access.score += 3;
      if (access.score === 0) access.score = -1;
      return access;
    };
    const candidates = [forIndex(t.primary), ...t.indexes.map(forIndex)].filter((a) => a.score > 0);
    candidates.sort((a, b) => b.score - a.score || a.index.id - b.index.id);
    const best = candidates[0];
    if (!best) return { kind: 'full', index: t.primary, eq: [], conds: [] };
    return best;
  }
}

/** PostgreSQL's default column name for an expression in a select list. */
export function columnName(n: Node): string {
  return figureColname(n)[0];
}

/** PostgreSQL's FigureColname: a name and its strength (2 a column, function or keyword name; 1 a type name or "case"). */
function figureColname(n: Node): [string, number] {
  if (n.TypeCast) {
    const [inner, strength] = figureColname(n.TypeCast.arg);
    return strength <= 1 ? [names(n.TypeCast.typeName.names).at(-1)!, 1] : [inner, strength];
  }
  if (n.CaseExpr) {
    const [d, strength] = n.CaseExpr.defresult ? figureColname(n.CaseExpr.defresult) : ['?column?', 0];
    return strength <= 1 ? ['case', 1] : [d, strength];
  }
  const name = columnName2(n);
  return [name, name === '?column?' && !n.SubLink ? 0 : 2];
}

function columnName2(n: Node): string {
  if (n.ColumnRef) {
    const f = n.ColumnRef.fields as Node[];
    return str(f[f.length - 1]);
  }
  if (n.FuncCall) return names(n.FuncCall.funcname).at(-1)!;
  if (n.A_Expr?.kind === 'AEXPR_NULLIF') return 'nullif';
  if (n.CoalesceExpr) return 'coalesce';
  if (n.MinMaxExpr) return n.MinMaxExpr.op === 'IS_GREATEST' ? 'greatest' : 'least';
  if (n.SubLink) return n.SubLink.subLinkType === 'EXISTS_SUBLINK' ? 'exists' : n.SubLink.subLinkType === 'ARRAY_SUBLINK' ? 'array' : n.SubLink.subLinkType === 'EXPR_SUBLINK' ? columnName(n.SubLink.subselect.SelectStmt.targetList[0].ResTarget.val) : '?column?';
  if (n.SQLValueFunction) {
    const op = String(n.SQLValueFunction.op).replace('SVFOP_', '').toLowerCase();
    return op.startsWith('current_timestamp') ? 'current_timestamp' : op;
  }
  return '?column?';
}

/** Runs the uncorrelated subqueries a statement registered, before it runs. */
export async function runSubqueries(p: PlannerCtx, ctx: ExecCtx): Promise<void> {
  ctx.ev.subqueries = [];
  for (const s of p.subplans) {
    if (s.correlated) {
      // Run per row by an ApplyNode.
      ctx.ev.subqueries.push({ values: [], hasNull: false });
      continue;
    }
    const values: SqlValue[] = [];
    let hasNull = false;
    for await (const r of s.plan.rows(ctx)) {
      const v = r[0] ?? null;
      if (v === null) hasNull = true;
      values.push(v);
    }
    ctx.ev.subqueries.push({ values, hasNull });
  }
}

export { numericScale };
