// `securegrid audit --report FILE|DIR`: the metrology authority's independent check of billing reports against
// the signed readings in the store. Prints PASS or each discrepancy; exit 0 = PASS, 1 = discrepancies, 2 = usage/IO.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { audit, AuditError, readReportFile } from '../apps/billing/index.js';
import { parseFlags, usage, UsageError, type FlagSpec } from './args.js';
import { openStore, STORE_FLAGS } from './ingest.js';
import { BLOB_FLAGS, metrologyPublicKey, openBlobStore, TRUST_FLAGS } from './billing.js';

const SPEC: Record<string, FlagSpec> = {
  report: { type: 'string', help: "a report JSON file, or a directory of them ('securegrid billing --out DIR')" },
  json: { type: 'boolean', default: false, help: 'print one JSON result per report instead of text' },
  ...TRUST_FLAGS,
  ...STORE_FLAGS,
  ...BLOB_FLAGS,
};

const SUMMARY = `Audit billing reports independently: recompute each report's hash, re-read the signed readings from the
store, verify their Merkle proofs and batch signatures with the metrology public key, and re-derive the
estimates and amounts under the tariff file. Prints PASS, or every discrepancy (missing or unsigned reading
used, duplicate counted, altered value, reading omitted, wrong tariff, hash mismatch, wrong amount).`;

async function reportFiles(path: string): Promise<string[]> {
  let s;
  try {
    s = await stat(path);
  } catch (err) {
    throw new UsageError(`cannot read --report ${path}: ${(err as Error).message}`);
  }
  if (!s.isDirectory()) return [path];
  return (await readdir(path)).filter((n) => n.endsWith('.json')).sort().map((n) => join(path, n));
}

export async function runAudit(argv: string[]): Promise<number> {
  const f = parseFlags(argv, SPEC);
  if (f.help) return (console.log(usage('audit', SUMMARY, SPEC)), 0);
  if (typeof f.report !== 'string') throw new UsageError('--report FILE (or DIR) is required');
  const source = String(f.source);
  if (source !== 'sql' && source !== 'kv') throw new UsageError(`--source must be 'sql' or 'kv', got '${source}'`);
  const files = await reportFiles(resolve(f.report));
  if (files.length === 0) throw new UsageError(`no report files (*.json) in ${f.report}`);
  let tariffs: unknown;
  try {
    tariffs = JSON.parse(await readFile(String(f.tariffs), 'utf8'));
  } catch (err) {
    console.error(`securegrid audit: cannot read the tariff file ${f.tariffs}: ${(err as Error).message}`);
    return 2;
  }
  const key = await metrologyPublicKey(f);
  const store = await openStore(f);
  let failed = 0;
  try {
    const blobs = source === 'kv' ? await openBlobStore(f, store) : undefined;
    try {
      for (const file of files) {
        const r = await audit(await readReportFile(file), { sql: store.sql, ...(blobs ? { kv: blobs.kv } : {}), source, metrologyPublicKey: key, tariffs });
        if (!r.pass) failed++;
        if (f.json) {
          console.log(JSON.stringify({ file, ...r }));
          continue;
        }
        if (r.pass) console.log(`PASS ${r.customer} ${r.period}: ${r.checked.readings} signed readings re-verified, none missing or duplicated, hash ${r.hash.recomputed.slice(0, 16)}… (${file})`);
        else {
          console.log(`FAIL ${r.customer} ${r.period}: ${r.discrepancies.length} discrepancies (${file})`);
          for (const d of r.discrepancies) console.log(`  ${d.code}: ${d.message}`);
        }
      }
    } finally {
      await blobs?.close();
    }
  } catch (err) {
    if (err instanceof AuditError) {
      console.error(`securegrid audit: ${err.code}: ${err.message}`);
      return 2;
    }
    throw err;
  } finally {
    await store.close();
  }
  if (files.length > 1 && !f.json) console.log(failed === 0 ? `PASS: all ${files.length} reports` : `FAIL: ${failed} of ${files.length} reports`);
  return failed === 0 ? 0 : 1;
}
