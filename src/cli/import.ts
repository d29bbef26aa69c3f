// `securegrid import FILE.csv`: historical MDM readings into CascaDB, in signed 'import' metrology batches.
import { resolve } from 'node:path';
import { ensureSchema, FileIngestKeys, importCsv } from '../ingest/index.js';
import { parseFlags, usage, UsageError, type FlagSpec } from './args.js';
import { openStore, STORE_FLAGS } from './ingest.js';

const SPEC: Record<string, FlagSpec> = {
  ...STORE_FLAGS,
  keys: { type: 'string', default: './.sg-data/ingest-keys', help: 'ingest key directory (the metrology key signs the batches)' },
  'skip-bad': { type: 'boolean', default: false, help: 'count and skip bad lines instead of stopping at the first' },
  'create-meters': { type: 'boolean', default: false, help: "create meters missing from the directory under customer 'imported-unassigned'" },
};

const SUMMARY = `Import historical readings (CSV with a header row) from a utility's MDM export.
Columns: meter_id, timestamp (ISO 8601 with a zone, end of a 15-minute interval), and energy_wh (the cumulative
register, Wh) or interval_wh (energy of the interval; the register is then built per meter). Optional:
v1 v2 v3 i1 i2 i3 a1 a2 a3 p_w q_var pf thd freq demand_w status.`;

export async function runImport(argv: string[]): Promise<number> {
  const file = argv[0] && !argv[0].startsWith('-') ? argv[0] : undefined;
  const f = parseFlags(file ? argv.slice(1) : argv, SPEC);
  if (f.help) return (console.log(usage('import FILE.csv', SUMMARY, SPEC)), 0);
  if (!file) throw new UsageError('usage: securegrid import FILE.csv [flags] (see --help)');
  const store = await openStore(f);
  const keys = new FileIngestKeys(resolve(String(f.keys)));
  try {
    await ensureSchema(store.sql);
    const started = Date.now();
    const res = await importCsv(resolve(file), {
      sql: store.sql,
      metrologyKey: await keys.metrologyKey(),
      skipBad: Boolean(f['skip-bad']),
      createMeters: Boolean(f['create-meters']),
      onProgress: (p) => {
        const pct = p.bytesTotal ? Math.floor((100 * p.bytesRead) / p.bytesTotal) : 100;
        process.stderr.write(`\r  ${pct}%  ${p.lines} lines, ${p.stored} readings stored`);
      },
    });
    process.stderr.write('\n');
    for (const e of res.errors) console.error(`  line ${e.line}: ${e.message}`);
    if (res.skipped > res.errors.length) console.error(`  … and ${res.skipped - res.errors.length} more bad lines`);
    const secs = (Date.now() - started) / 1000;
    console.log(`imported ${file} into ${store.where}: ${res.rows} rows, ${res.stored} stored, ${res.duplicates} already present, ${res.skipped} skipped, ${res.batches.length} signed batches, ${res.metersCreated.length} meters created (${secs.toFixed(1)} s)`);
    return 0;
  } finally {
    await keys.close();
    await store.close();
  }
}
