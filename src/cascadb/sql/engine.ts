// The SQL engine: parse (libpg-query, PostgreSQL's own grammar) → plan → execute over the KVS. It answers
// the PostgreSQL front door (SqlBackend, text values) and the HTTPS JSON API (JSON values) alike.
import { randomBytes } from 'node:crypto';
import { loadModule, parseSync } from 'libpg-query';
import type { KvStore, KvWrite } from '../../kvs/index.js';
import type { Logger, Metrics } from '../../observe/index.js';
import { Catalog, type ColumnDesc, type IndexDesc, type TableDesc } from '../catalog/index.js';
import { CodecError, type SqlValue } from '../codec/index.js';
import { PgError, type FieldDesc, type Prepared, type Result, type Session, type SqlBackend, type TextRow } from '../server/backend.js';
import { names, str, type Compiled, type Node, type ScopeColumn } from './expr.js';
import { Planner, runSubqueries, type ExecCtx, type PlanNode, type PlannerCtx, type Row } from './plan.js';
import { catalogFunctions, catalogRelation, catalogQuery, SETTINGS } from './pg-catalog.js';
import { indexEntry, rowKey, rowValue, tableRange, TxView, WRITE_CHUNK } from './storage.js';
import { applyNumericTypmod, castValue, fromText, resolveTypeName, toJson, toText, typeOid, TYPE_SIZE, type SqlType } from './types.js';

/** One executed statement, before its values are formatted for the wire or for JSON. */
export interface StatementResult {
  columns: ScopeColumn[] | null;
  rows: AsyncIterable<Row> | Iterable<Row>;
  tag: (n: number) => string;
}

interface Compiled1 {
  /** Runs the statement; params already converted to their types. */
  run(session: Session, params: SqlValue[]): Promise<StatementResult>;
  columns: ScopeColumn[] | null;
  paramTypes: SqlType[];
  catalogVersion: number;
}

interface SessionState {
  tx: TxView;
  failed: boolean;
}

const CACHE_LIMIT = 500;
/** SQL text held by the parse cache at most (characters). */
const PARSE_CACHE_CHARS = 16 * 1024 * 1024;

export interface EngineOptions {
  kv: KvStore;
  log: Logger;
  metrics?: Metrics;
}

let wasmReady: Promise<void> | undefined;

export class Engine {
  readonly catalog: Catalog;
  private readonly cache = new Map<string, Compiled1>();
  private readonly statements?: ReturnType<Metrics['counter']>;

  constructor(private readonly o: EngineOptions) {
    this.catalog = new Catalog(o.kv);
    this.statements = o.metrics?.counter('cascadb_statements_total', 'SQL statements executed, by kind and outcome', ['kind', 'outcome']);
  }

  async start(): Promise<void> {
    wasmReady ??= loadModule();
    await wasmReady;
    await this.catalog.refresh(true);
  }

  private state(session: Session): SessionState {
    let st = session.state.cascadb as SessionState | undefined;
    if (!st) session.state.cascadb = st = { tx: new TxView(this.o.kv), failed: false };
    return st;
  }

  private readonly parsed = new Map<string, Node[]>();
  private parsedChars = 0;

  /** Parses SQL (memoised by text: the planner never mutates the tree). */
  parse(sql: string): Node[] {
    const hit = this.parsed.get(sql);
    if (hit) return hit;
    try {
      const stmts = (parseSync(sql).stmts ?? []).map((s: Node) => s.stmt ?? {});
      // Long statements are cached too (a multi-row INSERT with parameters is sent again and again), within a size budget.
      if (sql.length <= PARSE_CACHE_CHARS / 8) {
        while (this.parsed.size > 0 && (this.parsed.size >= CACHE_LIMIT || this.parsedChars + sql.length > PARSE_CACHE_CHARS)) {
          const oldest = this.parsed.keys().next().value!;
          this.parsedChars -= oldest.length;
          this.parsed.delete(oldest);
        }
        this.parsed.set(sql, stmts);
        this.parsedChars += sql.length;
      }
      return stmts;
    } catch (err) {
      const e = err as Error & { sqlDetails?: { cursorPosition?: number } };
      throw new PgError('42601', e.message.replace(/^syntax error/, 'syntax error'), { position: e.sqlDetails?.cursorPosition !== undefined ? e.sqlDetails.cursorPosition + 1 : undefined });
    }
  }

  /** Compiles (and caches) one statement. */
  compileStatement(stmt: Node, sql: string, declared: number[] = []): Compiled1 {
    const key = `${declared.join(',')}|${sql}`;
    const hit = this.cache.get(key);
    if (hit && hit.catalogVersion === this.catalog.version) return hit;
    const c = this.build(stmt, declared);
    if (c.catalogVersion >= 0) {
      if (this.cache.size >= CACHE_LIMIT) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(key, c);
    }
    return c;
  }

  /** Compiles against a recent dictionary; a relation not known yet may be another CascaDB process's new table. */
  async compileFresh(stmt: Node, sql: string, declared: number[] = []): Promise<Compiled1> {
    await this.catalog.refresh();
    try {
      return this.compileStatement(stmt, sql, declared);
    } catch (err) {
      if (!(err instanceof PgError) || err.code !== '42P01') throw err;
      await this.catalog.refresh(true);
      return this.compileStatement(stmt, sql, declared);
    }
  }

  private plannerCtx(paramTypes: SqlType[]): PlannerCtx {
    return { catalog: this.catalog, paramTypes, subplans: [], virtual: (schema, name) => catalogRelation(this.catalog, schema, name), functions: catalogFunctions(this.catalog) };
  }

  private build(stmt: Node, declared: number[]): Compiled1 {
    const paramTypes: SqlType[] = declared.map(oidToType);
    const version = this.catalog.version;
    const kind = Object.keys(stmt)[0] ?? 'Empty';
    const s = stmt[kind] as Node;
    const pctx = this.plannerCtx(paramTypes);
    const planner = new Planner(pctx);
    const exec = async (session: Session, params: SqlValue[], fn: (ctx: ExecCtx) => Promise<StatementResult>) => {
      const ctx: ExecCtx = { tx: this.state(session).tx, ev: { params, subqueries: [], now: Date.now() * 1000, session } };
      await runSubqueries(pctx, ctx);
      return fn(ctx);
    };
    switch (kind) {
      case 'SelectStmt': {
        const special = catalogQuery(this.catalog, s);
        if (special) return { ...special, paramTypes, catalogVersion: -1 };
        const { plan, columns } = planner.planSelect(s);
        return {
          columns,
          paramTypes,
          catalogVersion: version,
          run: (session, params) => exec(session, params, async (ctx) => ({ columns, rows: plan.rows(ctx), tag: (n) => `SELECT ${n}` })),
        };
      }
      case 'InsertStmt':
        return this.buildInsert(s, planner, pctx, paramTypes, version, exec);
      case 'UpdateStmt':
        return this.buildUpdate(s, planner, paramTypes, version, exec);
      case 'DeleteStmt':
        return this.buildDelete(s, planner, paramTypes, version, exec);
      case 'ExplainStmt': {
        const inner = s.query as Node;
        const ik = Object.keys(inner)[0]!;
        let plan: PlanNode;
        if (ik === 'SelectStmt') plan = planner.planSelect(inner.SelectStmt).plan;
        else if (ik === 'UpdateStmt' || ik === 'DeleteStmt') plan = planner.planTable(inner[ik].relation, inner[ik].whereClause).plan;
        else throw new PgError('0A000', `EXPLAIN of ${ik.replace('Stmt', '')} is not supported`);
        const lines = [...(ik === 'SelectStmt' ? [] : [`${ik === 'UpdateStmt' ? 'Update' : 'Delete'} on ${inner[ik].relation.relname}`]), ...plan.explain(ik === 'SelectStmt' ? 0 : 1)];
        const columns: ScopeColumn[] = [{ name: 'QUERY PLAN', type: 'text' }];
        return { columns, paramTypes, catalogVersion: version, run: async () => ({ columns, rows: lines.map((l) => [l]), tag: () => 'EXPLAIN' }) };
      }
      default:
        // Utility statements (DDL, transactions, SET): run each time, never cached.
        return { columns: utilityColumns(kind, s), paramTypes, catalogVersion: -1, run: (session) => this.utility(session, kind, s) };
    }
  }

  // ------------------------------------------------------------------ DML

  private buildInsert(s: Node, planner: Planner, pctx: PlannerCtx, paramTypes: SqlType[], version: number, exec: (session: Session, params: SqlValue[], fn: (ctx: ExecCtx) => Promise<StatementResult>) => Promise<StatementResult>): Compiled1 {
    const t = this.table(s.relation);
    const visible = t.columns.map((c, i) => ({ c, i })).filter((x) => !x.c.hidden);
    let targets: number[];
    if (s.cols?.length) {
      targets = (s.cols as Node[]).map((c) => {
        const name = c.ResTarget.name as string;
        const i = t.columns.findIndex((x) => x.name === name && !x.hidden);
        if (i < 0) throw new PgError('42703', `column "${name}" of relation "${t.name}" does not exist`);
        return i;
      });
      if (new Set(targets).size !== targets.length) throw new PgError('42701', 'column specified more than once');
    } else targets = visible.map((x) => x.i);
    if (s.onConflictClause && s.onConflictClause.action !== 'ONCONFLICT_NOTHING') throw new PgError('0A000', 'ON CONFLICT DO UPDATE is not supported yet; use ON CONFLICT DO NOTHING');
    const doNothing = !!s.onConflictClause;
    const defaults = this.defaults(t, planner);
    const sel = s.selectStmt?.SelectStmt as Node | undefined;
    let source: (ctx: ExecCtx) => AsyncIterable<Row>;
    let sourceTypes: SqlType[];
    /** VALUES lists: the table rows, built in a plain loop (no generator step per row). */
    let valueRows: ((ctx: ExecCtx, each: (row: Row) => void) => void) | undefined;
    if (!sel) {
      // INSERT … DEFAULT VALUES
      source = async function* () {
        yield [];
      };
      sourceTypes = [];
      targets = [];
    } else if (sel.valuesLists && !sel.fromClause) {
      const rows: Array<Array<Compiled | 'default'>> = (sel.valuesLists as Node[]).map((l) => {
        const items = l.List.items as Node[];
        if (items.length > targets.length) throw new PgError('42601', 'INSERT has more expressions than target columns');
        if (items.length < targets.length) throw new PgError('42601', 'INSERT has more target columns than expressions');
        return items.map((x, j) => {
          if (x.SetToDefault) return 'default';
          const c = planner.expr(x, { cols: [] });
          const col = t.columns[targets[j]!]!;
          if (c.type === 'unknown' && c.param !== undefined) {
            if (paramTypes[c.param] === 'unknown' || paramTypes[c.param] === undefined) paramTypes[c.param] = col.type;
            return { ...c, type: paramTypes[c.param]! };
          }
          return c;
        });
      });
      sourceTypes = targets.map((i) => t.columns[i]!.type);
      source = async function* () {};
      const colTypes = t.columns.map((c) => c.type);
      const tg = targets;
      const untargeted = t.columns.map((_, i) => i).filter((i) => !tg.includes(i));
      valueRows = (ctx, each) => {
        const params = ctx.ev.params;
        const n = colTypes.length;
        for (const cells of rows) {
          const row: Row = new Array(n);
          for (let j = 0; j < cells.length; j++) {
            const c = cells[j]!;
            const col = tg[j]!;
            const to = colTypes[col]!;
            if (c === 'default') row[col] = defaults[col]!(ctx);
            // A bare parameter already has its type (convertParams): no evaluation, no cast.
            else if (c.param !== undefined && c.type === to) row[col] = params[c.param]!;
            else row[col] = castOrThrow(c.eval([], ctx.ev), c.type, to);
          }
          for (const i of untargeted) row[i] = defaults[i]!(ctx);
          each(row);
        }
      };
    } else {
      const { plan, columns } = planner.planSelect(sel);
      if (columns.length > targets.length) throw new PgError('42601', 'INSERT has more expressions than target columns');
      targets = targets.slice(0, columns.length);
      sourceTypes = columns.map((c) => c.type);
      source = (ctx) => plan.rows(ctx);
    }
    const returning = this.returning(s, t, planner);
    const tgt = targets;
    return {
      columns: returning?.columns ?? null,
      paramTypes,
      catalogVersion: version,
      run: (session, params) =>
        exec(session, params, async (ctx) => {
          const out: Row[] = [];
          let count = 0;
          let chunk: Row[] = [];
          const flush = async () => {
            count += await this.writeInserts(t, chunk, doNothing, ctx, returning ? out : undefined);
            chunk = [];
          };
          const check = rowChecker(t);
          const built: Row[] = [];
          let building = false;
          try {
            if (valueRows) {
              // The rows of one statement's VALUES lists are built together, then written in chunks.
              building = true;
              valueRows(ctx, (row) => built.push(check(row)));
              building = false;
              for (let i = 0; i < built.length; i += 5000) {
                chunk = built.length <= 5000 ? built : built.slice(i, i + 5000);
                await flush();
              }
            } else {
              for await (const src of source(ctx)) {
                const row: Row = new Array(t.columns.length).fill(DEFAULT);
                for (let j = 0; j < tgt.length; j++) row[tgt[j]!] = src[j] === DEFAULT ? DEFAULT : castOrThrow(src[j]!, sourceTypes[j]!, t.columns[tgt[j]!]!.type);
                for (let i = 0; i < row.length; i++) if (row[i] === DEFAULT) row[i] = defaults[i]!(ctx);
                chunk.push(check(row));
                if (chunk.length >= 5000) await flush();
              }
            }
          } catch (err) {
            // PostgreSQL inserts row by row: a key conflict among the rows before the failing one is what it reports.
            const before = building ? built : chunk;
            if (before.length) await this.writeInserts(t, before, doNothing, ctx, undefined, true);
            throw err;
          }
          if (chunk.length) await flush();
          void pctx;
          return {
            columns: returning?.columns ?? null,
            rows: returning ? out.map((r) => returning.exprs.map((e) => e.eval(r, ctx.ev))) : [],
            tag: () => `INSERT 0 ${count}`,
          };
        }),
    };
  }

  /** Checks keys and writes one batch of new rows; returns how many were inserted. A dry run only checks. */
  private async writeInserts(t: TableDesc, rows: Row[], doNothing: boolean, ctx: ExecCtx, inserted?: Row[], dryRun = false): Promise<number> {
    const count = rows.length;
    const keys: Buffer[] = new Array(count);
    const hexes: string[] = new Array(count);
    for (let j = 0; j < count; j++) {
      keys[j] = rowKey(t, rows[j]!);
      hexes[j] = keys[j]!.toString('hex');
    }
    // Conflicts need only whether a key is taken: existence, not the stored row (nothing is read or decrypted).
    const existing = await ctx.tx.hasMany(keys, hexes);
    const uniques = t.indexes.filter((i) => i.unique);
    const uniqueEntries = uniques.map((idx) => rows.map((r) => indexEntry(t, idx, r)));
    const uniqueExisting = await Promise.all(uniqueEntries.map((es, u) => ctx.tx.hasMany(es.map((e, j) => (uniques[u]!.columns.some((c) => rows[j]![c] === null) ? Buffer.alloc(0) : e.key)))));
    const seen = new Set<string>();
    const seenUnique = uniques.map(() => new Set<string>());
    const ops: KvWrite[] = [];
    const opHexes: string[] = [];
    const indexes = t.indexes;
    let n = 0;
    for (let j = 0; j < count; j++) {
      const r = rows[j]!;
      const k = hexes[j]!;
      let conflict: string | undefined;
      if (existing[j] || seen.has(k)) conflict = `${t.name}_pkey`;
      for (let u = 0; !conflict && u < uniques.length; u++) {
        const idx = uniques[u]!;
        if (idx.columns.some((c) => r[c] === null)) continue;
        const ek = uniqueEntries[u]![j]!.key.toString('hex');
        if (uniqueExisting[u]![j] || seenUnique[u]!.has(ek)) conflict = idx.name;
      }
      if (conflict) {
        if (doNothing) continue;
        const idx = conflict === `${t.name}_pkey` ? t.primary : uniques.find((i) => i.name === conflict)!;
        throw duplicateKey(t, idx, r);
      }
      seen.add(k);
      for (let u = 0; u < uniques.length; u++) seenUnique[u]!.add(uniqueEntries[u]![j]!.key.toString('hex'));
      if (dryRun) rowValue(t, r); // its value checks still apply, in row order
      else {
        ops.push({ op: 'put', key: keys[j]!, value: rowValue(t, r) });
        opHexes.push(k);
        for (const idx of indexes) {
          const e = indexEntry(t, idx, r);
          ops.push({ op: 'put', key: e.key, value: e.value });
          opHexes.push(e.key.toString('hex'));
        }
      }
      inserted?.push(r);
      n++;
    }
    if (!dryRun) await ctx.tx.write(ops, opHexes);
    return n;
  }

  private buildUpdate(s: Node, planner: Planner, paramTypes: SqlType[], version: number, exec: (session: Session, params: SqlValue[], fn: (ctx: ExecCtx) => Promise<StatementResult>) => Promise<StatementResult>): Compiled1 {
    if (s.fromClause?.length) throw new PgError('0A000', 'UPDATE … FROM is not supported');
    const { plan, table: t } = planner.planTable(s.relation, s.whereClause);
    const scope = plan.scope;
    const sets = (s.targetList as Node[]).map((x) => {
      const rt = x.ResTarget;
      if (rt.indirection?.length) throw new PgError('0A000', 'UPDATE of array elements or fields is not supported');
      const i = t.columns.findIndex((c) => c.name === rt.name && !c.hidden);
      if (i < 0) throw new PgError('42703', `column "${rt.name}" of relation "${t.name}" does not exist`);
      if (rt.val.SetToDefault) return { i, c: undefined as Compiled | undefined };
      let c = planner.expr(rt.val, scope);
      if (c.type === 'unknown' && c.param !== undefined) {
        if (paramTypes[c.param] === 'unknown' || paramTypes[c.param] === undefined) paramTypes[c.param] = t.columns[i]!.type;
        c = { ...c, type: paramTypes[c.param]! };
      }
      return { i, c };
    });
    const defaults = this.defaults(t, planner);
    const returning = this.returning(s, t, planner);
    return {
      columns: returning?.columns ?? null,
      paramTypes,
      catalogVersion: version,
      run: (session, params) =>
        exec(session, params, async (ctx) => {
          const old: Row[] = [];
          for await (const r of plan.rows(ctx)) old.push(r);
          const ops: KvWrite[] = [];
          const updated: Row[] = [];
          const pkName = `${t.name}_pkey`;
          const newKeys = new Set<string>();
          const removed = new Set<string>();
          for (const r of old) {
            const nr = [...r];
            for (const st of sets) nr[st.i] = st.c ? castOrThrow(st.c.eval(r, ctx.ev), st.c.type, t.columns[st.i]!.type) : defaults[st.i]!(ctx);
            this.checkRow(t, nr);
            const ok = rowKey(t, r);
            const nk = rowKey(t, nr);
            if (!ok.equals(nk)) {
              removed.add(ok.toString('hex'));
              ops.push({ op: 'delete', key: ok });
            }
            if (newKeys.has(nk.toString('hex'))) throw duplicateKey(t, t.primary, nr);
            newKeys.add(nk.toString('hex'));
            ops.push({ op: 'put', key: nk, value: rowValue(t, nr) });
            for (const idx of t.indexes) {
              const oe = indexEntry(t, idx, r);
              const ne = indexEntry(t, idx, nr);
              if (!oe.key.equals(ne.key) || !oe.value.equals(ne.value)) {
                ops.push({ op: 'delete', key: oe.key });
                removed.add(oe.key.toString('hex'));
                ops.push({ op: 'put', key: ne.key, value: ne.value });
              }
            }
            updated.push(nr);
          }
          // Moved primary keys and changed unique values must not collide with rows that stay.
          const moved = updated.filter((nr, j) => !rowKey(t, nr).equals(rowKey(t, old[j]!)));
          if (moved.length) {
            const got = await ctx.tx.getMany(moved.map((r) => rowKey(t, r)));
            got.forEach((g, j) => {
              if (g && !removed.has(rowKey(t, moved[j]!).toString('hex'))) throw duplicateKey(t, t.primary, moved[j]!);
            });
          }
          for (const idx of t.indexes.filter((i) => i.unique)) {
            const changed = updated.filter((nr, j) => !indexEntry(t, idx, nr).key.equals(indexEntry(t, idx, old[j]!).key) && idx.columns.every((c) => nr[c] !== null));
            const keys = changed.map((r) => indexEntry(t, idx, r).key);
            const dup = new Set<string>();
            for (const k of keys) {
              if (dup.has(k.toString('hex'))) throw duplicateKey(t, idx, changed[keys.indexOf(k)]!);
              dup.add(k.toString('hex'));
            }
            const got = await ctx.tx.getMany(keys);
            got.forEach((g, j) => {
              if (g && !removed.has(keys[j]!.toString('hex'))) throw duplicateKey(t, idx, changed[j]!);
            });
          }
          void pkName;
          await ctx.tx.write(ops);
          return {
            columns: returning?.columns ?? null,
            rows: returning ? updated.map((r) => returning.exprs.map((e) => e.eval(r, ctx.ev))) : [],
            tag: () => `UPDATE ${updated.length}`,
          };
        }),
    };
  }

  private buildDelete(s: Node, planner: Planner, paramTypes: SqlType[], version: number, exec: (session: Session, params: SqlValue[], fn: (ctx: ExecCtx) => Promise<StatementResult>) => Promise<StatementResult>): Compiled1 {
    if (s.usingClause?.length) throw new PgError('0A000', 'DELETE … USING is not supported');
    const { plan, table: t } = planner.planTable(s.relation, s.whereClause);
    const returning = this.returning(s, t, planner);
    return {
      columns: returning?.columns ?? null,
      paramTypes,
      catalogVersion: version,
      run: (session, params) =>
        exec(session, params, async (ctx) => {
          const rows: Row[] = [];
          for await (const r of plan.rows(ctx)) rows.push(r);
          const ops: KvWrite[] = [];
          for (const r of rows) {
            ops.push({ op: 'delete', key: rowKey(t, r) });
            for (const idx of t.indexes) ops.push({ op: 'delete', key: indexEntry(t, idx, r).key });
          }
          await ctx.tx.write(ops);
          return {
            columns: returning?.columns ?? null,
            rows: returning ? rows.map((r) => returning.exprs.map((e) => e.eval(r, ctx.ev))) : [],
            tag: () => `DELETE ${rows.length}`,
          };
        }),
    };
  }

  private returning(s: Node, t: TableDesc, planner: Planner): { columns: ScopeColumn[]; exprs: Compiled[] } | undefined {
    const list = (s.returningClause?.exprs ?? s.returningList) as Node[] | undefined;
    if (!list?.length) return undefined;
    const scope = { cols: t.columns.map((c, i) => ({ rel: t.name, name: c.name, type: c.type, pgType: c.pgType, typmod: c.typmod, hidden: c.hidden, tableOid: t.id, attnum: i + 1 })) };
    const columns: ScopeColumn[] = [];
    const exprs: Compiled[] = [];
    for (const x of list) {
      const v = x.ResTarget.val as Node;
      if (v.ColumnRef?.fields.some((f: Node) => f.A_Star)) {
        scope.cols.forEach((c, i) => {
          if (c.hidden) return;
          columns.push(c);
          exprs.push({ type: c.type, column: i, eval: (r) => r[i]! });
        });
        continue;
      }
      const c = planner.expr(v, scope);
      const src = c.column !== undefined ? scope.cols[c.column] : undefined;
      columns.push({ name: x.ResTarget.name ?? (v.ColumnRef ? str(v.ColumnRef.fields.at(-1)) : '?column?'), type: c.type === 'unknown' ? 'text' : c.type, pgType: src?.pgType, typmod: src?.typmod, tableOid: src?.tableOid, attnum: src?.attnum });
      exprs.push(c);
    }
    return { columns, exprs };
  }

  /** Per column: a function giving its default for a new row. */
  private defaults(t: TableDesc, planner: Planner): Array<(ctx: ExecCtx) => SqlValue> {
    return t.columns.map((c) => {
      if (c.hidden) return () => rowId();
      if (!c.default) return () => null;
      const e = planner.expr(c.default as Node, { cols: [] });
      return (ctx) => castOrThrow(e.eval([], ctx.ev), e.type, c.type);
    });
  }

  /** Types, lengths, numeric precision and NOT NULL of a row about to be stored. */
  private checkRow(t: TableDesc, row: Row): Row {
    return rowChecker(t)(row);
  }

  private table(rv: Node): TableDesc {
    if (rv.schemaname && rv.schemaname !== 'public') throw new PgError('3F000', `schema "${rv.schemaname}" does not exist`);
    const t = this.catalog.find(rv.relname);
    if (!t) throw new PgError('42P01', `relation "${rv.relname}" does not exist`);
    return t;
  }

  // ------------------------------------------------------------------ utility statements

  private async utility(session: Session, kind: string, s: Node): Promise<StatementResult> {
    const st = this.state(session);
    const none = (tag: string): StatementResult => ({ columns: null, rows: [], tag: () => tag });
    switch (kind) {
      case 'TransactionStmt':
        switch (s.kind) {
          case 'TRANS_STMT_BEGIN':
          case 'TRANS_STMT_START':
            if (st.tx.inTransaction) return none('BEGIN'); // PostgreSQL warns and carries on
            st.tx.begin();
            session.txStatus = 'T';
            return none('BEGIN');
          case 'TRANS_STMT_COMMIT': {
            if (st.failed) {
              st.tx.rollback();
              st.failed = false;
              session.txStatus = 'I';
              return none('ROLLBACK');
            }
            try {
              await st.tx.commit();
            } finally {
              session.txStatus = 'I';
            }
            return none('COMMIT');
          }
          case 'TRANS_STMT_ROLLBACK':
            st.tx.rollback();
            st.failed = false;
            session.txStatus = 'I';
            return none('ROLLBACK');
          default:
            throw new PgError('0A000', `${String(s.kind).replace('TRANS_STMT_', '')} is not supported (BEGIN, COMMIT and ROLLBACK are)`);
        }
      case 'CreateStmt':
        return none(await this.createTable(s));
      case 'DropStmt':
        return none(await this.drop(s));
      case 'IndexStmt':
        return none(await this.createIndex(s, st.tx));
      case 'VariableSetStmt':
        if (s.kind === 'VAR_SET_VALUE' && s.name) session.params[s.name] = (s.args ?? []).map((a: Node) => (a.A_Const ? String(a.A_Const.sval?.sval ?? a.A_Const.ival?.ival ?? a.A_Const.fval?.fval ?? '') : '')).join(', ');
        return none(s.kind === 'VAR_RESET' || s.kind === 'VAR_RESET_ALL' ? 'RESET' : 'SET');
      case 'VariableShowStmt': {
        const name = String(s.name).toLowerCase();
        const known: Record<string, string> = { server_version: '16.0', server_encoding: 'UTF8', client_encoding: 'UTF8', datestyle: 'ISO, MDY', timezone: 'UTC', standard_conforming_strings: 'on', transaction_isolation: 'read committed', integer_datetimes: 'on', max_identifier_length: '63' };
        const v = session.params[name] ?? known[name] ?? SETTINGS[name];
        if (v === undefined) throw new PgError('42704', `unrecognized configuration parameter "${s.name}"`);
        return { columns: [{ name, type: 'text' }], rows: [[v]], tag: () => 'SHOW' };
      }
      case 'DiscardStmt':
        return none('DISCARD ALL');
      case 'DeallocateStmt':
        return none('DEALLOCATE');
      case 'Empty':
        return none('');
      default:
        throw new PgError('0A000', `CascaDB does not support ${kind.replace(/Stmt$/, '').replace(/([a-z])([A-Z])/g, '$1 $2').toUpperCase()} statements yet`);
    }
  }

  private async createTable(s: Node): Promise<string> {
    const rv = s.relation;
    if (rv.schemaname && rv.schemaname !== 'public') throw new PgError('3F000', `schema "${rv.schemaname}" does not exist`);
    if (rv.relpersistence === 't') throw new PgError('0A000', 'temporary tables are not supported');
    if (s.inhRelations?.length || s.partspec) throw new PgError('0A000', 'inheritance and partitioning are not supported');
    await this.catalog.refresh(true);
    if (this.catalog.find(rv.relname)) {
      if (s.if_not_exists) return 'CREATE TABLE';
      throw new PgError('42P07', `relation "${rv.relname}" already exists`);
    }
    const columns: ColumnDesc[] = [];
    let pk: string[] | undefined;
    const uniques: string[][] = [];
    for (const el of s.tableElts ?? []) {
      if (el.ColumnDef) {
        const cd = el.ColumnDef;
        const typmods = (cd.typeName.typmods ?? []).map((m: Node) => m.A_Const?.ival?.ival ?? 0);
        if (cd.typeName.arrayBounds?.length) throw new PgError('0A000', 'array columns are not supported');
        const { type, pgType, typmod } = resolveTypeName(names(cd.typeName.names), typmods);
        if (columns.some((c) => c.name === cd.colname)) throw new PgError('42701', `column "${cd.colname}" specified more than once`);
        const col: ColumnDesc = { name: cd.colname, type, pgType, typmod, notNull: false, default: null };
        for (const c of cd.constraints ?? []) {
          const k = c.Constraint;
          switch (k.contype) {
            case 'CONSTR_PRIMARY':
              if (pk) throw new PgError('42P16', `multiple primary keys for table "${rv.relname}" are not allowed`);
              pk = [cd.colname];
              break;
            case 'CONSTR_NOTNULL':
              col.notNull = true;
              break;
            case 'CONSTR_NULL':
              break;
            case 'CONSTR_UNIQUE':
              uniques.push([cd.colname]);
              break;
            case 'CONSTR_DEFAULT':
              col.default = k.raw_expr;
              col.defaultText = deparse(k.raw_expr);
              break;
            default:
              throw new PgError('0A000', `constraint ${String(k.contype).replace('CONSTR_', '')} is not supported`);
          }
        }
        columns.push(col);
      } else if (el.Constraint) {
        const k = el.Constraint;
        const keys = names(k.keys);
        if (k.contype === 'CONSTR_PRIMARY') {
          if (pk) throw new PgError('42P16', `multiple primary keys for table "${rv.relname}" are not allowed`);
          pk = keys;
        } else if (k.contype === 'CONSTR_UNIQUE') uniques.push(keys);
        else throw new PgError('0A000', `table constraint ${String(k.contype).replace('CONSTR_', '')} is not supported`);
      } else throw new PgError('0A000', `${Object.keys(el)[0]} in CREATE TABLE is not supported`);
    }
    if (columns.length === 0) throw new PgError('0A000', 'tables without columns are not supported');
    const colIndex = (name: string) => {
      const i = columns.findIndex((c) => c.name === name);
      if (i < 0) throw new PgError('42703', `column "${name}" named in key does not exist`);
      return i;
    };
    let primary: IndexDesc;
    if (pk) {
      const cols = pk.map(colIndex);
      for (const i of cols) columns[i]!.notNull = true;
      primary = { id: 0, name: `${rv.relname}_pkey`, columns: cols, unique: true };
    } else {
      columns.push({ name: 'ctid', type: 'bytea', pgType: 'bytea', typmod: -1, notNull: true, default: null, hidden: true });
      primary = { id: 0, name: `${rv.relname}_pkey`, columns: [columns.length - 1], unique: true };
    }
    const indexes: IndexDesc[] = uniques.map((u, i) => ({ id: i + 1, name: `${rv.relname}_${u.join('_')}_key`, columns: u.map(colIndex), unique: true }));
    const t: TableDesc = { id: this.catalog.newTableId(), name: rv.relname, columns, primary, indexes, created: Date.now() };
    await this.catalog.save(t);
    return 'CREATE TABLE';
  }

  private async drop(s: Node): Promise<string> {
    await this.catalog.refresh(true);
    const type = s.removeType as string;
    if (type !== 'OBJECT_TABLE' && type !== 'OBJECT_INDEX') throw new PgError('0A000', `DROP ${type.replace('OBJECT_', '')} is not supported`);
    for (const obj of s.objects as Node[]) {
      const parts = names(obj.List?.items ?? [obj]);
      const name = parts.at(-1)!;
      if (type === 'OBJECT_TABLE') {
        const t = this.catalog.find(name);
        if (!t) {
          if (s.missing_ok) continue;
          throw new PgError('42P01', `table "${name}" does not exist`);
        }
        // The table disappears at once; its rows and index entries are removed after.
        await this.catalog.remove(name);
        for (const idx of [t.primary, ...t.indexes]) await this.deleteRange(tableRange(t, idx.id));
      } else {
        const found = this.catalog.findIndex(name);
        if (!found) {
          if (s.missing_ok) continue;
          throw new PgError('42704', `index "${name}" does not exist`);
        }
        if (found.index.id === 0) throw new PgError('2BP01', `cannot drop index ${name} because constraint ${name} on table ${found.table.name} requires it`);
        const t = { ...found.table, indexes: found.table.indexes.filter((i) => i.id !== found.index.id) };
        await this.catalog.save(t);
        await this.deleteRange(tableRange(found.table, found.index.id));
      }
    }
    return type === 'OBJECT_TABLE' ? 'DROP TABLE' : 'DROP INDEX';
  }

  private async deleteRange(r: { start: Buffer; end: Buffer }): Promise<void> {
    let batch: KvWrite[] = [];
    for await (const e of this.o.kv.scan(r.start, r.end)) {
      batch.push({ op: 'delete', key: e.key });
      if (batch.length >= WRITE_CHUNK) {
        await this.o.kv.write(batch);
        batch = [];
      }
    }
    if (batch.length) await this.o.kv.write(batch);
  }

  private async createIndex(s: Node, tx: TxView): Promise<string> {
    await this.catalog.refresh(true);
    const t = this.table(s.relation);
    const cols = (s.indexParams as Node[]).map((p) => {
      const e = p.IndexElem;
      if (!e.name) throw new PgError('0A000', 'expression indexes are not supported');
      if (e.ordering && e.ordering !== 'SORTBY_DEFAULT' && e.ordering !== 'SORTBY_ASC') throw new PgError('0A000', 'descending index columns are not supported');
      const i = t.columns.findIndex((c) => c.name === e.name && !c.hidden);
      if (i < 0) throw new PgError('42703', `column "${e.name}" does not exist`);
      return i;
    });
    if (s.whereClause) throw new PgError('0A000', 'partial indexes are not supported');
    const name = s.idxname ?? `${t.name}_${cols.map((i) => t.columns[i]!.name).join('_')}_idx`;
    if (this.catalog.findIndex(name) || this.catalog.find(name)) {
      if (s.if_not_exists) return 'CREATE INDEX';
      throw new PgError('42P07', `relation "${name}" already exists`);
    }
    const idx: IndexDesc = { id: Math.max(0, ...t.indexes.map((i) => i.id)) + 1, name, columns: cols, unique: !!s.unique };
    // Build the entries from the rows as they are now.
    const ops: KvWrite[] = [];
    const seen = new Set<string>();
    const range = tableRange(t, 0);
    const next = { ...t, indexes: [...t.indexes, idx] };
    for await (const e of tx.scan(range.start, range.end)) {
      const row = (await import('./storage.js')).decodeRowValue(t, e.value);
      const ie = indexEntry(next, idx, row);
      if (idx.unique && idx.columns.every((c) => row[c] !== null)) {
        const k = ie.key.toString('hex');
        if (seen.has(k)) throw new PgError('23505', `could not create unique index "${name}"`, { detail: `Key (${idx.columns.map((c) => t.columns[c]!.name).join(', ')})=(${idx.columns.map((c) => toText(t.columns[c]!.type, row[c]!)).join(', ')}) is duplicated.` });
        seen.add(k);
      }
      ops.push({ op: 'put', key: ie.key, value: ie.value });
    }
    for (let i = 0; i < ops.length; i += WRITE_CHUNK) await this.o.kv.write(ops.slice(i, i + WRITE_CHUNK));
    await this.catalog.save(next);
    return 'CREATE INDEX';
  }

  // ------------------------------------------------------------------ running statements

  /** Runs one statement with the session's transaction rules. */
  async runStatement(session: Session, stmt: Node, sql: string, params: Array<SqlValue | string>, declared: number[] = []): Promise<StatementResult> {
    const st = this.state(session);
    const kind = Object.keys(stmt)[0] ?? 'Empty';
    if (st.failed && !(kind === 'TransactionStmt' && ['TRANS_STMT_COMMIT', 'TRANS_STMT_ROLLBACK'].includes(stmt.TransactionStmt.kind))) {
      throw new PgError('25P02', 'current transaction is aborted, commands ignored until end of transaction block');
    }
    try {
      const c = await this.compileFresh(stmt, sql, declared);
      const values = convertParams(params, c.paramTypes);
      const r = await c.run(session, values);
      this.statements?.inc({ kind, outcome: 'ok' });
      return r;
    } catch (err) {
      this.statements?.inc({ kind, outcome: 'error' });
      if (st.tx.inTransaction) {
        st.failed = true;
        session.txStatus = 'E';
      }
      throw toPgError(err);
    }
  }

  /** Drains a result's rows under the session's failure rules (errors while streaming fail the transaction too). */
  async *guard(session: Session, rows: AsyncIterable<Row> | Iterable<Row>): AsyncGenerator<Row> {
    try {
      yield* rows as AsyncIterable<Row>;
    } catch (err) {
      const st = this.state(session);
      if (st.tx.inTransaction) {
        st.failed = true;
        session.txStatus = 'E';
      }
      throw toPgError(err);
    }
  }

  async closeSession(session: Session): Promise<void> {
    this.state(session).tx.rollback();
  }
}

const DEFAULT = Symbol('default') as unknown as SqlValue;

const checkers = new WeakMap<TableDesc, (row: Row) => Row>();

/**
 * Per table descriptor (replaced, never changed, when the dictionary changes): a function checking a row about
 * to be stored — varchar lengths, numeric precision, float4 rounding, then NOT NULL — that visits only the
 * columns with something to check.
 */
function rowChecker(t: TableDesc): (row: Row) => Row {
  let f = checkers.get(t);
  if (f) return f;
  const fix: Array<{ i: number; kind: 'varchar' | 'numeric' | 'float4'; typmod: number }> = [];
  const notNull: number[] = [];
  t.columns.forEach((c, i) => {
    if (c.pgType === 'varchar' && c.typmod >= 0) fix.push({ i, kind: 'varchar', typmod: c.typmod });
    else if (c.type === 'numeric' && c.typmod >= 0) fix.push({ i, kind: 'numeric', typmod: c.typmod });
    else if (c.type === 'float4') fix.push({ i, kind: 'float4', typmod: -1 });
    if (c.notNull) notNull.push(i);
  });
  f = (row) => {
    for (const x of fix) {
      const v = row[x.i]!;
      if (v === null) continue;
      if (x.kind === 'float4') {
        if (typeof v === 'number') row[x.i] = Math.fround(v);
      } else if (x.kind === 'numeric') row[x.i] = applyNumericTypmod(v as string, x.typmod);
      // UTF-16 length bounds the code points from above: count them only when it might be too long.
      else if ((v as string).length > x.typmod && [...(v as string)].length > x.typmod) throw new PgError('22001', `value too long for type character varying(${x.typmod})`);
    }
    // Then NOT NULL (after every column's length and precision, as PostgreSQL coerces the row first).
    for (const i of notNull) {
      if (row[i] === null) throw new PgError('23502', `null value in column "${t.columns[i]!.name}" of relation "${t.name}" violates not-null constraint`, { detail: 'Failing row contains a null in that column.' });
    }
    return row;
  };
  checkers.set(t, f);
  return f;
}

/** The hidden row id of a table without a primary key: 12 random bytes, unique across processes. */
function rowId(): Buffer {
  return randomBytes(12);
}

function castOrThrow(v: SqlValue, from: SqlType, to: SqlType): SqlValue {
  if (v === null || from === to) return v;
  if (from === 'text' && to !== 'text') {
    throw new PgError('42804', `column is of type ${to} but expression is of type text`, { hint: 'You will need to rewrite or cast the expression.' });
  }
  return castValue(v, from, to);
}

function duplicateKey(t: TableDesc, idx: IndexDesc, row: Row): PgError {
  const cols = idx.columns.map((c) => t.columns[c]!);
  const name = idx.id === 0 ? `${t.name}_pkey` : idx.name;
  return new PgError('23505', `duplicate key value violates unique constraint "${name}"`, {
    detail: `Key (${cols.map((c) => c.name).join(', ')})=(${idx.columns.map((c) => toText(t.columns[c]!.type, row[c]!)).join(', ')}) already exists.`,
  });
}

export function toPgError(err: unknown): PgError {
  if (err instanceof PgError) return err;
  if (err instanceof CodecError) return new PgError(err.code === 'OutOfRange' ? '22003' : '22P02', err.message);
  const code = (err as { code?: string }).code;
  if (code === 'ServiceUnavailable' || code === 'NodeUnavailable') return new PgError('58030', `storage unavailable: ${(err as Error).message}`);
  return new PgError('XX000', `internal error: ${(err as Error).message ?? String(err)}`);
}

function oidToType(oid: number): SqlType {
  switch (oid) {
    case 16: return 'bool';
    case 17: return 'bytea';
    case 20: return 'int8';
    case 21:
    case 23: return 'int4';
    case 700: return 'float4';
    case 701: return 'float8';
    case 1700: return 'numeric';
    case 1114:
    case 1184: return 'timestamp';
    case 25:
    case 1043: return 'text';
    default: return 'unknown';
  }
}

function convertParams(params: Array<SqlValue | string>, types: SqlType[]): SqlValue[] {
  if (params.length > types.length) throw new PgError('08P01', `bind message supplies ${params.length} parameters, but prepared statement requires ${types.length}`);
  return types.map((t, i) => {
    const v = params[i];
    if (v === undefined) throw new PgError('08P01', `bind message supplies ${params.length} parameters, but prepared statement requires ${types.length}`);
    if (v === null) return null;
    if (typeof v === 'string') return t === 'unknown' ? v : fromText(t, v);
    if (typeof v === 'number' && (t === 'numeric')) return String(v);
    if (typeof v === 'number' && t === 'text') return String(v);
    if (typeof v === 'number' && t === 'timestamp') return v;
    return v;
  });
}

function utilityColumns(kind: string, s: Node): ScopeColumn[] | null {
  if (kind === 'VariableShowStmt') return [{ name: String(s.name).toLowerCase(), type: 'text' }];
  return null;
}

function deparse(n: Node): string {
  if (n.A_Const) {
    const c = n.A_Const;
    if (c.isnull) return 'NULL';
    if (c.sval !== undefined) return `'${String(c.sval.sval ?? '').replace(/'/g, "''")}'::text`;
    if (c.ival !== undefined) return String(c.ival.ival ?? 0);
    if (c.fval !== undefined) return String(c.fval.fval);
    if (c.boolval !== undefined) return c.boolval.boolval ? 'true' : 'false';
  }
  if (n.FuncCall) return `${names(n.FuncCall.funcname).join('.')}(${(n.FuncCall.args ?? []).map(deparse).join(', ')})`;
  if (n.TypeCast) return `${deparse(n.TypeCast.arg)}::${names(n.TypeCast.typeName.names).at(-1)}`;
  if (n.SQLValueFunction) return String(n.SQLValueFunction.op).replace('SVFOP_', '').toLowerCase();
  if (n.A_Expr && n.A_Expr.kind === 'AEXPR_OP') return `${n.A_Expr.lexpr ? `${deparse(n.A_Expr.lexpr)} ` : ''}${names(n.A_Expr.name).at(-1)} ${deparse(n.A_Expr.rexpr)}`;
  return '…';
}

// ------------------------------------------------------------------ the two front doors

export function fieldsOf(columns: ScopeColumn[]): FieldDesc[] {
  return columns.map((c) => {
    const oid = typeOid(c.type, c.pgType);
    return {
      name: c.name,
      typeOid: oid,
      typeSize: TYPE_SIZE[c.pgType ?? c.type] ?? -1,
      typeMod: c.pgType === 'varchar' && (c.typmod ?? -1) >= 0 ? c.typmod! + 4 : c.type === 'numeric' && (c.typmod ?? -1) >= 0 ? c.typmod! + 4 : -1,
      tableOid: c.tableOid ?? 0,
      columnAttr: c.attnum ?? 0,
    };
  });
}

async function* textRows(engine: Engine, session: Session, columns: ScopeColumn[], rows: AsyncIterable<Row> | Iterable<Row>): AsyncGenerator<TextRow> {
  const types = columns.map((c) => c.type);
  for await (const r of engine.guard(session, rows)) {
    const out: TextRow = new Array(types.length);
    for (let i = 0; i < types.length; i++) out[i] = toText(types[i]!, r[i]!);
    yield out;
  }
}

/** The PostgreSQL front door's view of the engine. */
export class EngineBackend implements SqlBackend {
  constructor(private readonly engine: Engine) {}

  async open(): Promise<void> {}

  async *simpleQuery(session: Session, sql: string): AsyncIterable<Result> {
    const stmts = this.engine.parse(sql);
    for (const stmt of stmts) {
      // An implicit transaction per simple Query with several statements is PostgreSQL's rule; we run each on its own.
      const r = await this.engine.runStatement(session, stmt, sqlOf(sql, stmt, stmts.length), []);
      yield this.result(session, r);
    }
  }

  async prepare(session: Session, sql: string, paramOids: number[]): Promise<Prepared> {
    const stmts = this.engine.parse(sql);
    if (stmts.length > 1) throw new PgError('42601', 'cannot insert multiple commands into a prepared statement');
    if (stmts.length === 0) return { paramOids: [], fields: null };
    void session;
    const c = await this.engine.compileFresh(stmts[0]!, sql, paramOids);
    return { paramOids: c.paramTypes.map((t, i) => (paramOids[i] && paramOids[i] !== 0 ? paramOids[i]! : typeOid(t === 'unknown' ? 'text' : t))), fields: c.columns ? fieldsOf(c.columns) : null };
  }

  async execute(session: Session, sql: string, prepared: Prepared, params: Array<string | null>): Promise<Result> {
    const stmts = this.engine.parse(sql);
    if (stmts.length === 0) return { fields: null, rows: [], tag: () => '' };
    const r = await this.engine.runStatement(session, stmts[0]!, sql, params, prepared.paramOids);
    return this.result(session, r);
  }

  private result(session: Session, r: StatementResult): Result {
    return { fields: r.columns ? fieldsOf(r.columns) : null, rows: r.columns ? textRows(this.engine, session, r.columns, r.rows) : [], tag: r.tag };
  }

  async close(session: Session): Promise<void> {
    await this.engine.closeSession(session);
  }
}

function sqlOf(sql: string, stmt: Node, count: number): string {
  return count === 1 ? sql : JSON.stringify(stmt);
}

/** POST /v1/sql: {sql, params?} → {columns, rows, rowCount} (the paper's JSON answers). */
export async function runJson(engine: Engine, session: Session, sql: string, params: unknown[] = []): Promise<{ columns: Array<{ name: string; type: string }>; rows: unknown[][]; rowCount: number; command: string }> {
  const stmts = engine.parse(sql);
  if (stmts.length === 0) return { columns: [], rows: [], rowCount: 0, command: '' };
  if (stmts.length > 1 && params.length > 0) throw new PgError('42601', 'cannot use parameters with several statements');
  let last = { columns: [] as Array<{ name: string; type: string }>, rows: [] as unknown[][], rowCount: 0, command: '' };
  for (const stmt of stmts) {
    const r = await engine.runStatement(session, stmt, sqlOf(sql, stmt, stmts.length), params.map(jsonParam));
    const rows: unknown[][] = [];
    const cols = r.columns ?? [];
    for await (const row of engine.guard(session, r.rows)) rows.push(cols.map((c, i) => toJson(c.type, row[i]!)));
    const tag = r.tag(rows.length);
    const count = Number(/(\d+)$/.exec(tag)?.[1] ?? rows.length);
    last = { columns: cols.map((c) => ({ name: c.name, type: c.pgType ?? c.type })), rows, rowCount: count, command: tag.split(' ')[0] ?? '' };
  }
  return last;
}

function jsonParam(v: unknown): SqlValue | string {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  throw new PgError('22023', 'parameters must be strings, numbers, booleans or null');
}
