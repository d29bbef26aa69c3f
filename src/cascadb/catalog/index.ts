// cascadb/catalog: the data dictionary (paper, Fig. 8), kept in the KVS itself under table id 0, so that every
// CascaDB process over the same KVS sees the same tables. Descriptors are JSON; table ids are random.
import { randomInt } from 'node:crypto';
import type { KvStore } from '../../kvs/index.js';
import { encodeKey, keyPrefix, prefixEnd, type ColumnType } from '../codec/index.js';
import { PgError } from '../server/backend.js';

export interface ColumnDesc {
  name: string;
  type: ColumnType;
  /** PostgreSQL's type name as declared: int4, int8, float4, float8, numeric, text, varchar, bool, timestamp, bytea. */
  pgType: string;
  /** varchar(n) → n; numeric(p,s) → (p << 16) | s; else -1. */
  typmod: number;
  notNull: boolean;
  /** The DEFAULT expression, as libpg-query JSON, or null. */
  default: unknown;
  /** The SQL text of the default, for \d. */
  defaultText?: string;
  /** A hidden row id for tables without a primary key: not shown by SELECT *. */
  hidden?: boolean;
}

export interface IndexDesc {
  /** 0 is the primary key; secondary indexes are numbered from 1. */
  id: number;
  name: string;
  columns: number[];
  unique: boolean;
}

export interface TableDesc {
  id: number;
  name: string;
  columns: ColumnDesc[];
  /** The primary key (id 0) and the secondary indexes. */
  primary: IndexDesc;
  indexes: IndexDesc[];
  created: number;
}

const CATALOG_TABLE = 0;
const TABLES = 0;
const REFRESH_MS = 1000;

function catalogKey(name: string): Buffer {
  return encodeKey(keyPrefix(CATALOG_TABLE, TABLES), ['text'], [name]);
}

export class Catalog {
  private tables = new Map<string, TableDesc>();
  private loadedAt = 0;
  /** Bumped whenever the dictionary changes, so cached plans are re-made. */
  version = 0;

  constructor(private readonly kv: KvStore) {}

  /** Reloads the dictionary when another process may have changed it since (at most once a second). */
  async refresh(force = false): Promise<void> {
    if (!force && Date.now() - this.loadedAt < REFRESH_MS) return;
    const next = new Map<string, TableDesc>();
    const start = keyPrefix(CATALOG_TABLE, TABLES);
    for await (const e of this.kv.scan(start, prefixEnd(start))) {
      const t = JSON.parse(e.value.toString('utf8')) as TableDesc;
      next.set(t.name, t);
    }
    const before = JSON.stringify([...this.tables.values()]);
    this.tables = next;
    this.loadedAt = Date.now();
    if (JSON.stringify([...next.values()]) !== before) this.version++;
  }

  list(): TableDesc[] {
    return [...this.tables.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  find(name: string): TableDesc | undefined {
    return this.tables.get(name);
  }

  /** The table, re-reading the dictionary once if it is not known yet (another process may have made it). */
  async get(name: string): Promise<TableDesc> {
    let t = this.tables.get(name);
    if (!t) {
      await this.refresh(true);
      t = this.tables.get(name);
    }
    if (!t) throw new PgError('42P01', `relation "${name}" does not exist`);
    return t;
  }

  findIndex(name: string): { table: TableDesc; index: IndexDesc } | undefined {
    for (const t of this.tables.values()) {
      if (`${t.name}_pkey` === name) return { table: t, index: t.primary };
      const i = t.indexes.find((x) => x.name === name);
      if (i) return { table: t, index: i };
    }
    return undefined;
  }

  newTableId(): number {
    const used = new Set([...this.tables.values()].map((t) => t.id));
    let id: number;
    do id = randomInt(1000, 2 ** 31 - 1);
    while (used.has(id));
    return id;
  }

  /** Writes a descriptor (create or alter) in the same atomic batch as `extra` writes. */
  async save(t: TableDesc, extra: Parameters<KvStore['write']>[0] = []): Promise<void> {
    await this.kv.write([{ op: 'put', key: catalogKey(t.name), value: Buffer.from(JSON.stringify(t)) }, ...extra]);
    this.tables.set(t.name, t);
    this.version++;
  }

  async remove(name: string, extra: Parameters<KvStore['write']>[0] = []): Promise<void> {
    await this.kv.write([{ op: 'delete', key: catalogKey(name) }, ...extra]);
    this.tables.delete(name);
    this.version++;
  }

  /** A stable OID for pg_catalog views: table ids are below 2^31, indexes get their own range. */
  static tableOid(t: TableDesc): number {
    return t.id;
  }
}
