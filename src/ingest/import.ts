// `securegrid import`: historical readings from a utility's MDM export (CSV), signed in operator-imported
// metrology batches (batch.source = 'import', same Merkle scheme and metrology key) and stored with the same
// multi-row path as live readings. The file is streamed line by line; memory stays bounded by one batch.
//
// Columns (a header row names them, in any order):
//   required  meter_id        integer 0…99999999
//             timestamp       ISO 8601 with a zone (Z or ±hh:mm), on a 15-minute boundary: the END of the interval
//             energy_wh       the cumulative active-energy register at `timestamp`, integer Wh          — or —
//             interval_wh     the energy of the 15 minutes ending at `timestamp`, Wh (may be fractional); without
//                             energy_wh the register is built per meter: the meter's last stored register before
//                             the file's first row for it (0 if none) plus the running sum, rounded to Wh. That needs
//                             each meter's rows in time order. With both columns, energy_wh is stored.
//   optional  v1 v2 v3 (V) i1 i2 i3 (A) a1 a2 a3 (degrees) p_w q_var pf thd freq demand_w status
//             missing → 0, except pf → 1, freq → 60 (the Brazilian grid), and demand_w and p_w → interval_wh × 4
//             (the interval's average power) when interval_wh is given.
import { createReadStream, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { freshRandom, type MetrologyKey } from '../crypto/index.js';
import type { PhasorReport } from '../protocol/index.js';
import { signBatch, storeBatch, type BatchReading } from './batch.js';
import { IngestError } from './errors.js';
import { rangeViolation } from './reading.js';
import { insertRows } from './schema.js';
import type { SqlClient } from './sql.js';

export interface ImportOptions {
  sql: SqlClient;
  metrologyKey: MetrologyKey;
  /** Count and skip bad lines instead of stopping at the first. */
  skipBad?: boolean;
  /** Create meters missing from the directory under the placeholder customer PLACEHOLDER_CUSTOMER. */
  createMeters?: boolean;
  /** Readings per metrology batch (default 4096). */
  batchSize?: number;
  onProgress?: (p: ImportProgress) => void;
}

export interface ImportProgress {
  lines: number;
  stored: number;
  bytesRead: number;
  bytesTotal: number;
}

export interface ImportResult {
  /** Data lines read (header excluded). */
  rows: number;
  stored: number;
  /** Readings already in the store ((meter_id, ts) taken), or repeated in the file. */
  duplicates: number;
  /** Lines skipped with --skip-bad (the first 100 are listed in `errors`). */
  skipped: number;
  errors: Array<{ line: number; message: string }>;
  batches: string[];
  metersCreated: number[];
}

export const PLACEHOLDER_CUSTOMER = 'imported-unassigned';

const OPTIONAL = ['v1', 'v2', 'v3', 'i1', 'i2', 'i3', 'a1', 'a2', 'a3', 'p_w', 'q_var', 'pf', 'thd', 'freq', 'demand_w', 'status'] as const;
const KNOWN = new Set<string>(['meter_id', 'timestamp', 'energy_wh', 'interval_wh', ...OPTIONAL]);

class LineError extends Error {}

/** One CSV line (RFC 4180 quoting, no line breaks inside fields). */
export function splitCsvLine(line: string): string[] {
  if (!line.includes('"')) return line.split(',').map((s) => s.trim());
  const out: string[] = [];
  let cur = '';
  let q = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (q) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') q = false;
      else cur += c;
    } else if (c === '"') q = true;
    else if (c === ',') {
      out.push(cur.trim());
      cur = '';
    } else cur += c;
  }
  if (q) throw new LineError('unterminated quoted field');
  out.push(cur.trim());
  return out;
}

const TS_RE = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i;

function parseTs(s: string): number {
  if (!TS_RE.test(s)) throw new LineError(`timestamp ${JSON.stringify(s)} is not ISO 8601 with a zone (e.g. 2024-03-01T00:15:00Z or 2024-03-01T00:15:00-03:00)`);
  const t = Date.parse(s.replace(' ', 'T'));
  if (Number.isNaN(t)) throw new LineError(`timestamp ${JSON.stringify(s)} is not a valid time`);
  if (t % 900_000 !== 0) throw new LineError(`timestamp ${s} is not on a 15-minute boundary`);
  return t;
}

function num(s: string | undefined, name: string): number | undefined {
  if (s === undefined || s === '') return undefined;
  const v = Number(s);
  if (!Number.isFinite(v)) throw new LineError(`${name} ${JSON.stringify(s)} is not a number`);
  return v;
}

interface MeterState {
  lastTs: number;
  /** Running register (interval mode), unrounded. */
  register: number;
}

export async function importCsv(file: string, o: ImportOptions): Promise<ImportResult> {
  const bytesTotal = statSync(file).size;
  const batchSize = o.batchSize ?? 4096;
  const res: ImportResult = { rows: 0, stored: 0, duplicates: 0, skipped: 0, errors: [], batches: [], metersCreated: [] };
  const known = new Set<number>((await o.sql.query('SELECT meter_id FROM meter')).rows.map((r) => Number(r.meter_id)));
  const meters = new Map<number, MeterState>();
  const runId = freshRandom(4).toString('hex');
  let pending: BatchReading[] = [];
  let pendingKeys = new Set<string>();
  let col: Map<string, number> | undefined;
  let intervalMode = false;
  let lineNo = 0;

  const fail = (line: number, message: string) => {
    if (!o.skipBad) {
      const hint = res.stored > 0 ? ` (${res.stored} readings before it are stored; re-running after the fix is safe: stored readings are not duplicated)` : '';
      throw new IngestError('bad-input', `${file} line ${line}: ${message}; fix the line or pass --skip-bad to skip bad lines${hint}`);
    }
    res.skipped++;
    if (res.errors.length < 100) res.errors.push({ line, message });
  };

  const flush = async () => {
    if (pending.length === 0) return;
    const missing = [...new Set(pending.map((r) => r.report.serial))].filter((m) => !known.has(m));
    if (missing.length) {
      if (!o.createMeters) {
        throw new IngestError(
          'unknown-meter',
          `${file}: meters not in the directory: ${missing.slice(0, 20).join(', ')}${missing.length > 20 ? ` and ${missing.length - 20} more` : ''}; provision them ('securegrid ingest provision') or pass --create-meters to create them under customer '${PLACEHOLDER_CUSTOMER}'`,
        );
      }
      await o.sql.transaction(async (tx) => {
        await insertRows(tx, 'customer', ['customer_id', 'class', 'tariff', 'supply_kv', 'region', 'contracted_kw'], [[PLACEHOLDER_CUSTOMER, 'unknown', 'unknown', 0, 'unknown', 0]], true);
        await insertRows(tx, 'meter', ['meter_id', 'customer_id', 'suite', 'public_key', 'aggregator_id', 'installed_at'], missing.map((m) => [m, PLACEHOLDER_CUSTOMER, null, null, null, null]), true);
      });
      for (const m of missing) known.add(m);
      res.metersCreated.push(...missing);
    }
    const batchId = `import-${runId}-${res.batches.length + 1}`;
    const b = signBatch(pending, { batchId, source: 'import', instance: 'import', key: o.metrologyKey });
    const { inserted, duplicates } = await storeBatch(o.sql, b);
    res.stored += inserted;
    res.duplicates += duplicates;
    res.batches.push(batchId);
    pending = [];
    pendingKeys = new Set();
  };

  const startRegister = async (meter: number, ts: number): Promise<number> => {
    const r = await o.sql.query('SELECT energy_wh FROM reading WHERE meter_id = $1 AND ts < $2 ORDER BY ts DESC LIMIT 1', [meter, new Date(ts)]);
    return r.rows.length ? Number(r.rows[0]!.energy_wh) : 0;
  };

  const stream = createReadStream(file);
  let bytesRead = 0;
  stream.on('data', (c) => (bytesRead += c.length));
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  try {
    for await (const raw of rl) {
      lineNo++;
      const line = lineNo === 1 ? raw.replace(/^\uFEFF/, '') : raw;
      if (line.trim() === '') continue;
      if (!col) {
        const names = splitCsvLine(line).map((s) => s.toLowerCase());
        const unknown = names.filter((n) => !KNOWN.has(n));
        if (unknown.length) throw new IngestError('bad-input', `${file} line 1: unknown columns ${unknown.join(', ')}; the columns are meter_id, timestamp, energy_wh or interval_wh, and optionally ${OPTIONAL.join(', ')}`);
        col = new Map(names.map((n, i) => [n, i]));
        if (col.size !== names.length) throw new IngestError('bad-input', `${file} line 1: a column is named twice`);
        if (!col.has('meter_id') || !col.has('timestamp') || (!col.has('energy_wh') && !col.has('interval_wh'))) {
          throw new IngestError('bad-input', `${file} line 1: the header must name meter_id, timestamp and energy_wh (cumulative register) or interval_wh (energy per 15 min)`);
        }
        intervalMode = !col.has('energy_wh');
        continue;
      }
      res.rows++;
      try {
        const f = splitCsvLine(line);
        if (f.length !== col.size) throw new LineError(`${f.length} fields, the header has ${col.size}`);
        const get = (n: string) => (col!.has(n) ? f[col!.get(n)!] : undefined);
        const meterText = get('meter_id')!;
        const meter = Number(meterText);
        if (!/^\d{1,8}$/.test(meterText)) throw new LineError(`meter_id ${JSON.stringify(meterText)} is not an integer 0…99999999`);
        const ts = parseTs(get('timestamp')!);
        const interval = num(get('interval_wh'), 'interval_wh');
        if (interval !== undefined && interval < 0) throw new LineError('interval_wh must not be negative');
        let energy: number;
        let next: MeterState | undefined;
        const st = meters.get(meter);
        if (intervalMode) {
          if (interval === undefined) throw new LineError('interval_wh is empty');
          if (st && ts <= st.lastTs) throw new LineError(`meter ${meter}: rows must be in time order to build the register from interval_wh (${new Date(ts).toISOString()} after ${new Date(st.lastTs).toISOString()})`);
          const base = st ? st.register : await startRegister(meter, ts);
          const register = base + interval;
          energy = Math.round(register);
          next = { lastTs: ts, register };
        } else {
          const e = num(get('energy_wh'), 'energy_wh');
          if (e === undefined || !Number.isSafeInteger(e) || e < 0) throw new LineError(`energy_wh ${JSON.stringify(get('energy_wh'))} must be a non-negative integer (the cumulative register, Wh)`);
          energy = e;
        }
        const o1 = (n: (typeof OPTIONAL)[number], dflt: number) => num(get(n), n) ?? dflt;
        const avgW = interval !== undefined ? interval * 4 : 0;
        const status = o1('status', 0);
        if (!Number.isInteger(status) || status < 0 || status > 0xffff) throw new LineError('status must be an integer 0…65535');
        const report: PhasorReport = {
          serial: meter,
          ts,
          phases: [
            { voltageV: o1('v1', 0), currentA: o1('i1', 0), angleDeg: o1('a1', 0) },
            { voltageV: o1('v2', 0), currentA: o1('i2', 0), angleDeg: o1('a2', 0) },
            { voltageV: o1('v3', 0), currentA: o1('i3', 0), angleDeg: o1('a3', 0) },
          ],
          activePowerW: o1('p_w', avgW),
          reactivePowerVar: o1('q_var', 0),
          powerFactor: o1('pf', 1),
          thdPercent: o1('thd', 0),
          frequencyHz: o1('freq', 60),
          demandW: o1('demand_w', avgW),
          energyWh: energy,
          status,
        };
        const bad = rangeViolation(report);
        if (bad) throw new LineError(`${bad} is outside its physical range (see RANGE in src/ingest/reading.ts)`);
        if (next) meters.set(meter, next); // only a valid line moves the built register
        const key = `${meter}:${ts}`;
        if (pendingKeys.has(key)) {
          res.duplicates++;
          continue;
        }
        pendingKeys.add(key);
        pending.push({ report, counter: null });
      } catch (err) {
        if (!(err instanceof LineError)) throw err;
        fail(lineNo, err.message);
        continue;
      }
      if (pending.length >= batchSize) {
        await flush();
        o.onProgress?.({ lines: lineNo, stored: res.stored, bytesRead, bytesTotal });
      }
    }
    if (!col) throw new IngestError('bad-input', `${file} is empty: expected a header row and readings`);
    await flush();
    o.onProgress?.({ lines: lineNo, stored: res.stored, bytesRead: bytesTotal, bytesTotal });
    return res;
  } finally {
    rl.close();
    stream.destroy();
  }
}
