// Rows and index entries as KV pairs (paper, Fig. 9, made correct for range scans), and the transaction view:
// reads see the open transaction's own writes, and COMMIT writes them to the KVS in one atomic batch.
//   row:          keyPrefix(table, 0) ‖ enc(primary key values)                → encodeRow(all columns)
//   unique index: keyPrefix(table, i) ‖ enc(index values)       (no NULLs)    → enc(primary key values)
//   other index:  keyPrefix(table, i) ‖ enc(index values) ‖ enc(pk values)   → empty
import type { KvEntry, KvStore, KvWrite } from '../../kvs/index.js';
import type { IndexDesc, TableDesc } from '../catalog/index.js';
import { decodeKey, decodeRow, encodeKey, encodeRow, keyPrefix, prefixEnd, type ColumnType, type SqlValue } from '../codec/index.js';

/** Per table descriptor (a descriptor is replaced, never changed, when the dictionary changes): what every row needs. */
const shapes = new WeakMap<TableDesc, { types: ColumnType[]; pk: ColumnType[]; rowPrefix: Buffer }>();

function shape(t: TableDesc): { types: ColumnType[]; pk: ColumnType[]; rowPrefix: Buffer } {
  let s = shapes.get(t);
  if (!s) {
    s = { types: t.columns.map((c) => c.type), pk: t.primary.columns.map((i) => t.columns[i]!.type), rowPrefix: keyPrefix(t.id, 0) };
    shapes.set(t, s);
  }
  return s;
}

export function columnTypes(t: TableDesc): ColumnType[] {
  return shape(t).types;
}

export function pkTypes(t: TableDesc): ColumnType[] {
  return shape(t).pk;
}

export function indexTypes(t: TableDesc, idx: IndexDesc): ColumnType[] {
  return idx.columns.map((i) => t.columns[i]!.type);
}

export function rowKey(t: TableDesc, row: readonly SqlValue[]): Buffer {
  const s = shape(t);
  return encodeKey(s.rowPrefix, s.pk, t.primary.columns.map((i) => row[i]!));
}

export function rowValue(t: TableDesc, row: readonly SqlValue[]): Buffer {
  return encodeRow(columnTypes(t), row);
}

export function decodeRowValue(t: TableDesc, value: Buffer): SqlValue[] {
  return decodeRow(columnTypes(t), value);
}

/** The index entry of a row: key and value. */
export function indexEntry(t: TableDesc, idx: IndexDesc, row: readonly SqlValue[]): { key: Buffer; value: Buffer } {
  const vals = idx.columns.map((i) => row[i]!);
  const pk = t.primary.columns.map((i) => row[i]!);
  const prefix = keyPrefix(t.id, idx.id);
  if (idx.unique && vals.every((v) => v !== null)) {
    return { key: encodeKey(prefix, indexTypes(t, idx), vals), value: encodeKey(Buffer.alloc(0), pkTypes(t), pk) };
  }
  return { key: encodeKey(prefix, [...indexTypes(t, idx), ...pkTypes(t)], [...vals, ...pk]), value: Buffer.alloc(0) };
}

/** The row key an index entry points at. */
export function rowKeyFromIndex(t: TableDesc, idx: IndexDesc, e: KvEntry): Buffer {
  const prefixLen = 6;
  const { end } = decodeKey(e.key, prefixLen, indexTypes(t, idx));
  const pkBytes = end === e.key.length ? e.value : e.key.subarray(end);
  return Buffer.concat([keyPrefix(t.id, 0), pkBytes]);
}

export function tableRange(t: TableDesc, indexId = 0): { start: Buffer; end: Buffer } {
  const p = keyPrefix(t.id, indexId);
  return { start: p, end: prefixEnd(p) };
}

/** An overlay entry: the key (kept, so COMMIT needs no decoding) and its value, or null for a delete. */
interface Pending {
  key: Buffer;
  value: Buffer | null;
}

/** Reads and writes of one statement or transaction. Outside a transaction, writes go straight to the KVS. */
export class TxView {
  /** hex key → pending write; undefined when not in a transaction. */
  overlay: Map<string, Pending> | undefined;

  constructor(readonly kv: KvStore) {}

  begin(): void {
    this.overlay = new Map();
  }

  get inTransaction(): boolean {
    return this.overlay !== undefined;
  }

  async get(key: Buffer): Promise<Buffer | undefined> {
    if (this.overlay) {
      const o = this.overlay.get(key.toString('hex'));
      if (o !== undefined) return o.value ?? undefined;
    }
    return this.kv.get(key);
  }

  async getMany(keys: Buffer[]): Promise<(Buffer | undefined)[]> {
    if (!this.overlay || this.overlay.size === 0) return this.kv.getMany(keys);
    const out: (Buffer | undefined)[] = new Array(keys.length);
    const missing: number[] = [];
    keys.forEach((k, i) => {
      const o = this.overlay!.get(k.toString('hex'));
      if (o === undefined) missing.push(i);
      else out[i] = o.value ?? undefined;
    });
    if (missing.length) {
      const got = await this.kv.getMany(missing.map((i) => keys[i]!));
      missing.forEach((i, j) => (out[i] = got[j]));
    }
    return out;
  }

  /**
   * Which keys hold a value (the transaction's own writes first): existence only, no value is read or decrypted
   * when the store can answer from its index. `hexes[i]` is keys[i] in hex, when the caller has it already.
   */
  async hasMany(keys: Buffer[], hexes?: string[]): Promise<boolean[]> {
    const out: boolean[] = new Array(keys.length);
    const ask: number[] = [];
    const ov = this.overlay;
    for (let i = 0; i < keys.length; i++) {
      const o = ov && ov.size > 0 ? ov.get(hexes ? hexes[i]! : keys[i]!.toString('hex')) : undefined;
      if (o === undefined) ask.push(i);
      else out[i] = o.value !== null;
    }
    if (ask.length) {
      const sub = ask.length === keys.length ? keys : ask.map((i) => keys[i]!);
      const got = this.kv.hasMany ? await this.kv.hasMany(sub) : (await this.kv.getMany(sub)).map((v) => v !== undefined);
      for (let j = 0; j < ask.length; j++) out[ask[j]!] = got[j]!;
    }
    return out;
  }

  /** Entries in [start, end) in key order, the transaction's own writes merged in. */
  async *scan(start: Buffer, end: Buffer, pageSize?: number): AsyncGenerator<KvEntry> {
    const base = this.kv.scan(start, end, { pageSize });
    if (!this.overlay || this.overlay.size === 0) {
      yield* base;
      return;
    }
    const mine = [...this.overlay.values()]
      .filter((e) => Buffer.compare(e.key, start) >= 0 && Buffer.compare(e.key, end) < 0)
      .sort((a, b) => Buffer.compare(a.key, b.key));
    let i = 0;
    for await (const e of base) {
      while (i < mine.length && Buffer.compare(mine[i]!.key, e.key) < 0) {
        const m = mine[i++]!;
        if (m.value) yield { key: m.key, value: m.value };
      }
      if (i < mine.length && mine[i]!.key.equals(e.key)) {
        const m = mine[i++]!;
        if (m.value) yield { key: m.key, value: m.value };
        continue;
      }
      yield e;
    }
    while (i < mine.length) {
      const m = mine[i++]!;
      if (m.value) yield { key: m.key, value: m.value };
    }
  }

  /** Writes (into the transaction, or to the KVS); `hexes[i]`, when given, is ops[i].key in hex. */
  async write(ops: KvWrite[], hexes?: string[]): Promise<void> {
    const ov = this.overlay;
    if (ov) {
      for (let i = 0; i < ops.length; i++) {
        const o = ops[i]!;
        ov.set(hexes ? hexes[i]! : o.key.toString('hex'), { key: o.key, value: o.op === 'put' ? o.value : null });
      }
      return;
    }
    for (let i = 0; i < ops.length; i += WRITE_CHUNK) await this.kv.write(ops.length <= WRITE_CHUNK ? ops : ops.slice(i, i + WRITE_CHUNK));
  }

  /** COMMIT: the transaction's writes in one atomic batch (chunked only beyond the KVS's batch limit). */
  async commit(): Promise<void> {
    const o = this.overlay;
    this.overlay = undefined;
    if (!o || o.size === 0) return;
    const ops: KvWrite[] = new Array(o.size);
    let i = 0;
    for (const e of o.values()) ops[i++] = e.value ? { op: 'put', key: e.key, value: e.value } : { op: 'delete', key: e.key };
    for (let j = 0; j < ops.length; j += COMMIT_CHUNK) await this.kv.write(ops.length <= COMMIT_CHUNK ? ops : ops.slice(j, j + COMMIT_CHUNK));
  }

  rollback(): void {
    this.overlay = undefined;
  }
}

/** Rows per KVS batch for statements outside a transaction (a batch is atomic). */
export const WRITE_CHUNK = 20_000;
const COMMIT_CHUNK = 90_000;
