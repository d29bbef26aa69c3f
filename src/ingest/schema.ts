// The tables the ingest path writes (docs/meter-pipeline.md, "Ingest"), the registration directory loader,
// and the one multi-row INSERT path every writer uses.
import type { SqlClient, SqlParam, SqlQueryable } from './sql.js';
import { IngestError } from './errors.js';

export const SCHEMA: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS customer (customer_id TEXT PRIMARY KEY, class TEXT, tariff TEXT, supply_kv REAL, region TEXT, contracted_kw REAL)`,
  `CREATE TABLE IF NOT EXISTS meter (meter_id BIGINT PRIMARY KEY, customer_id TEXT, suite TEXT, public_key BYTEA, aggregator_id TEXT, installed_at TIMESTAMP)`,
  `CREATE TABLE IF NOT EXISTS reading (meter_id BIGINT, ts TIMESTAMP, v1 REAL, v2 REAL, v3 REAL, i1 REAL, i2 REAL, i3 REAL, a1 REAL, a2 REAL, a3 REAL, p_w REAL, q_var REAL, pf REAL, thd REAL, freq REAL, demand_w REAL, energy_wh BIGINT, status INTEGER, counter BIGINT, batch_id TEXT, leaf INTEGER, proof BYTEA, PRIMARY KEY (meter_id, ts))`,
  `CREATE TABLE IF NOT EXISTS batch (batch_id TEXT PRIMARY KEY, created_at TIMESTAMP, source TEXT, instance TEXT, key_id TEXT, count INTEGER, merkle_root BYTEA, signature BYTEA)`,
  `CREATE TABLE IF NOT EXISTS meter_session (session_id BYTEA PRIMARY KEY, meter_id BIGINT, sealed BYTEA, created_at TIMESTAMP)`,
  // Operator commands find a meter's latest session by meter id.
  `CREATE INDEX IF NOT EXISTS meter_session_meter ON meter_session (meter_id)`,
];

/** Creates the ingest tables if absent (safe to run from every instance at start). */
export async function ensureSchema(sql: SqlClient): Promise<void> {
  for (const ddl of SCHEMA) {
    try {
      await sql.query(ddl);
    } catch (err) {
      // Two instances starting at once: the loser of the race sees 42P07 (already exists), which is the goal.
      if ((err as { code?: string }).code !== '42P07') throw err;
    }
  }
}

/** The PostgreSQL protocol carries at most 65,535 bind parameters per statement. */
export const MAX_PARAMS = 65_535;
/** Rows per INSERT come from a few fixed sizes, so CascaDB's statement cache holds a handful of texts. */
const CHUNKS = [1024, 256, 64, 16, 4, 1];

function valuesList(rows: number, width: number): string {
  const out: string[] = new Array(rows);
  let p = 1;
  for (let r = 0; r < rows; r++) {
    const cells: string[] = new Array(width);
    for (let c = 0; c < width; c++) cells[c] = `$${p++}`;
    out[r] = `(${cells.join(',')})`;
  }
  return out.join(',');
}

const textCache = new Map<string, string>();

/**
 * INSERT INTO table (columns) VALUES … [ON CONFLICT DO NOTHING], many rows per statement (≤ 65,535 parameters);
 * returns the rows inserted (with onConflictNothing, the others already existed).
 */
export async function insertRows(q: SqlQueryable, table: string, columns: readonly string[], rows: readonly SqlParam[][], onConflictNothing: boolean): Promise<number> {
  const width = columns.length;
  const maxRows = Math.floor(MAX_PARAMS / width);
  let inserted = 0;
  let i = 0;
  while (i < rows.length) {
    const left = rows.length - i;
    const n = Math.min(CHUNKS.find((c) => c <= left && c <= maxRows) ?? 1, left);
    const key = `${table}|${columns.join(',')}|${n}|${onConflictNothing}`;
    let text = textCache.get(key);
    if (!text) {
      text = `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${valuesList(n, width)}${onConflictNothing ? ' ON CONFLICT DO NOTHING' : ''}`;
      textCache.set(key, text);
    }
    const params: SqlParam[] = [];
    for (let r = i; r < i + n; r++) {
      const row = rows[r]!;
      if (row.length !== width) throw new IngestError('internal', `row ${r} of ${table} has ${row.length} values for ${width} columns`);
      for (const v of row) params.push(v);
    }
    inserted += (await q.query(text, params)).rowCount;
    i += n;
  }
  return inserted;
}

/** One line of a registration directory (JSON lines, as the simulator writes it). */
export interface DirectoryEntry {
  customer_id: string;
  class: string;
  tariff: string;
  supply_kv: number;
  region: string;
  contracted_kw: number;
  meter_id: number;
  suite: string;
  /** The meter identity public key: SPKI DER, as base64 (or a Buffer when built in process). */
  public_key: string | Buffer;
  aggregator_id: string;
  /** ISO time; default now. */
  installed_at?: string;
}

const STR_FIELDS = ['customer_id', 'class', 'tariff', 'region', 'suite', 'aggregator_id'] as const;

/** Checks one directory entry; throws IngestError('bad-input') naming the field. */
export function checkDirectoryEntry(e: unknown, where: string): DirectoryEntry {
  const o = e as Record<string, unknown> | null;
  if (typeof o !== 'object' || o === null) throw new IngestError('bad-input', `${where}: a directory entry must be a JSON object`);
  for (const f of STR_FIELDS) if (typeof o[f] !== 'string' || (o[f] as string).length === 0) throw new IngestError('bad-input', `${where}: ${f} must be a non-empty string`);
  for (const f of ['supply_kv', 'contracted_kw'] as const) if (typeof o[f] !== 'number' || !Number.isFinite(o[f])) throw new IngestError('bad-input', `${where}: ${f} must be a number`);
  const id = o.meter_id;
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 99_999_999) throw new IngestError('bad-input', `${where}: meter_id must be an integer 0…99999999`);
  const pk = o.public_key;
  if (!(Buffer.isBuffer(pk) || (typeof pk === 'string' && /^[A-Za-z0-9+/=]+$/.test(pk) && pk.length > 16))) throw new IngestError('bad-input', `${where}: public_key must be base64 SPKI DER`);
  if (o.installed_at !== undefined && (typeof o.installed_at !== 'string' || Number.isNaN(Date.parse(o.installed_at)))) throw new IngestError('bad-input', `${where}: installed_at must be an ISO time`);
  return o as unknown as DirectoryEntry;
}

/**
 * Loads customers and meters from a registration directory (idempotent: rows already present are kept as
 * they are — re-keying a meter is a deliberate operator act, not a side effect of re-provisioning).
 */
export async function provisionDirectory(sql: SqlClient, entries: readonly DirectoryEntry[]): Promise<{ customers: number; meters: number }> {
  const customers = new Map<string, SqlParam[]>();
  const meters = new Map<number, SqlParam[]>();
  const now = new Date();
  entries.forEach((e, i) => {
    checkDirectoryEntry(e, `entry ${i + 1}`);
    customers.set(e.customer_id, [e.customer_id, e.class, e.tariff, e.supply_kv, e.region, e.contracted_kw]);
    const key = Buffer.isBuffer(e.public_key) ? e.public_key : Buffer.from(e.public_key, 'base64');
    meters.set(e.meter_id, [e.meter_id, e.customer_id, e.suite, key, e.aggregator_id, e.installed_at ? new Date(e.installed_at) : now]);
  });
  return sql.transaction(async (tx) => ({
    customers: await insertRows(tx, 'customer', ['customer_id', 'class', 'tariff', 'supply_kv', 'region', 'contracted_kw'], [...customers.values()], true),
    meters: await insertRows(tx, 'meter', ['meter_id', 'customer_id', 'suite', 'public_key', 'aggregator_id', 'installed_at'], [...meters.values()], true),
  }));
}

/** Parses a registration directory file: JSON lines (one entry per line), one JSON array, or CSV with a header. */
export function parseDirectory(text: string, file = 'directory'): DirectoryEntry[] {
  const t = text.trim();
  if (t.startsWith('meter_id,') || t.startsWith('customer_id,')) return parseDirectoryCsv(t, file);
  if (t.startsWith('[')) {
    let arr: unknown;
    try {
      arr = JSON.parse(t);
    } catch (err) {
      throw new IngestError('bad-input', `${file}: not valid JSON (${(err as Error).message})`);
    }
    if (!Array.isArray(arr)) throw new IngestError('bad-input', `${file}: expected a JSON array`);
    return arr.map((e, i) => checkDirectoryEntry(e, `${file}: entry ${i + 1}`));
  }
  const out: DirectoryEntry[] = [];
  t.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      throw new IngestError('bad-input', `${file}: line ${i + 1} is not valid JSON`);
    }
    out.push(checkDirectoryEntry(v, `${file}: line ${i + 1}`));
  });
  return out;
}

const NUMERIC = new Set(['supply_kv', 'contracted_kw', 'meter_id']);

/** The simulator's CSV directory: a header naming the DirectoryEntry fields, no quoted fields. */
function parseDirectoryCsv(t: string, file: string): DirectoryEntry[] {
  const [head, ...lines] = t.split('\n');
  const cols = head!.split(',').map((c) => c.trim());
  const out: DirectoryEntry[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const f = line.split(',').map((c) => c.trim());
    if (f.length !== cols.length) throw new IngestError('bad-input', `${file}: line ${i + 2} has ${f.length} fields, the header ${cols.length}`);
    const o: Record<string, unknown> = {};
    cols.forEach((c, j) => (o[c] = NUMERIC.has(c) ? Number(f[j]) : f[j] === '' ? undefined : f[j]));
    out.push(checkDirectoryEntry(o, `${file}: line ${i + 2}`));
  });
  return out;
}
