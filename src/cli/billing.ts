// `securegrid billing`: the distribution company's billing run — every customer's signed readings verified,
// completeness checked, billed under the tariff file, one JSON report (with its hash) and one Markdown page each.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createPublicKey } from 'node:crypto';
import { resolve } from 'node:path';
import { billPeriod, BillingError, loadTariffs, progressPrinter, writeIndex, writeReport, type BillingReport } from '../apps/billing/index.js';
import { publicIngestKeys } from '../ingest/index.js';
import { EmbeddedKvStore, KvsClient, parsePolicy, RemoteKvStore, type KvStore } from '../kvs/index.js';
import { intFlag, parseFlags, usage, UsageError, type FlagSpec } from './args.js';
import { openStore, STORE_FLAGS, type OpenedStore } from './ingest.js';

export const BLOB_FLAGS: Record<string, FlagSpec> = {
  source: { type: 'string', default: 'sql', help: "where readings come from: 'sql' (CascaDB rows) or 'kv' (the KVS day blobs of 'ingest close-day')" },
  kvs: { type: 'string', help: 'URL of a KVS gateway holding the day blobs (default with --embedded: the embedded KVS)' },
  'kvs-key': { type: 'string', help: 'API key id for the KVS' },
  'kvs-secret': { type: 'string', help: 'API key secret for the KVS' },
  'kvs-ca': { type: 'string', help: 'PEM file of the KVS gateway certificate' },
  'kvs-bucket': { type: 'string', default: 'measurements', help: 'bucket of the day blobs' },
};

export const TRUST_FLAGS: Record<string, FlagSpec> = {
  tariffs: { type: 'string', default: './tariffs.json', help: 'tariff file (securegrid-tariffs/1; see src/apps/billing/FORMAT.md)' },
  'metrology-key': { type: 'string', help: "the metrology public key: PEM, base64 SPKI DER, or the JSON of 'ingest keys public'" },
  keys: { type: 'string', default: './.sg-data/ingest-keys', help: 'or: an ingest key directory to take the metrology public key from' },
};

/** The KVS holding day blobs: a gateway URL, or the embedded one of --embedded. */
export async function openBlobStore(f: Record<string, string | boolean | undefined>, store: OpenedStore): Promise<{ kv: KvStore; close(): Promise<void> }> {
  const bucket = String(f['kvs-bucket']);
  if (typeof f.kvs === 'string') {
    if (typeof f['kvs-key'] !== 'string' || typeof f['kvs-secret'] !== 'string') throw new UsageError('--kvs needs --kvs-key and --kvs-secret');
    const client = new KvsClient({ url: f.kvs, accessKeyId: f['kvs-key'], secretAccessKey: f['kvs-secret'], ca: typeof f['kvs-ca'] === 'string' ? readFileSync(f['kvs-ca'], 'utf8') : undefined });
    return { kv: new RemoteKvStore(client, bucket), close: () => client.close() };
  }
  const gw = store.db?.gateway;
  if (!gw) throw new UsageError("--source kv needs the KVS: --kvs URL --kvs-key ID --kvs-secret S, or --embedded");
  try {
    await gw.objects.createBucket('cascadb', bucket, parsePolicy('replicate:3'));
  } catch (err) {
    if ((err as { code?: string }).code !== 'BucketAlreadyOwnedByYou') throw err;
  }
  return { kv: new EmbeddedKvStore(gw.objects, 'cascadb', bucket), close: async () => undefined };
}

/** The metrology public key (SPKI DER) from --metrology-key FILE or the ingest key directory. */
export async function metrologyPublicKey(f: Record<string, string | boolean | undefined>): Promise<Buffer> {
  if (typeof f['metrology-key'] === 'string') {
    let text: string;
    try {
      text = (await readFile(f['metrology-key'], 'utf8')).trim();
    } catch (err) {
      throw new UsageError(`cannot read --metrology-key ${f['metrology-key']}: ${(err as Error).message}`);
    }
    try {
      if (text.startsWith('{')) return Buffer.from(String((JSON.parse(text) as { metrology?: { publicKey?: string } }).metrology?.publicKey ?? ''), 'base64');
      if (text.startsWith('-----BEGIN')) return createPublicKey(text).export({ type: 'spki', format: 'der' });
      return Buffer.from(text, 'base64');
    } catch (err) {
      throw new UsageError(`--metrology-key ${f['metrology-key']} is not a PEM public key, base64 SPKI DER, or 'ingest keys public' JSON: ${(err as Error).message}`);
    }
  }
  const pub = await publicIngestKeys(resolve(String(f.keys)));
  if (!pub.metrology) throw new UsageError(`no metrology key in ${f.keys}; give --metrology-key FILE`);
  return Buffer.from(pub.metrology.publicKey, 'base64');
}

const SPEC: Record<string, FlagSpec> = {
  period: { type: 'string', help: 'billing month YYYY-MM (local time of the tariff file)' },
  from: { type: 'string', help: 'or: first local date YYYY-MM-DD …' },
  to: { type: 'string', help: '… and last local date YYYY-MM-DD (inclusive)' },
  customers: { type: 'string', help: 'comma-separated customer ids, or @FILE with one per line (default: all)' },
  out: { type: 'string', default: './bills', help: 'directory for <customer>.json, <customer>.md and index.md' },
  workers: { type: 'string', help: 'worker threads (default: one per core; 0 = this thread)' },
  ...TRUST_FLAGS,
  ...STORE_FLAGS,
  ...BLOB_FLAGS,
};

const SUMMARY = `Bill every customer for a period: verify each reading's metrology signature through its Merkle proof,
check completeness (every 15-minute slot, no duplicates, register monotonic and consistent), estimate gaps by
the documented rules, price them under the tariff file, and write a report with its SHA-256 hash per customer.
Check the reports with 'securegrid audit --report DIR'.`;

async function customersFlag(v: string | boolean | undefined): Promise<string[] | undefined> {
  if (typeof v !== 'string') return undefined;
  const text = v.startsWith('@') ? await readFile(v.slice(1), 'utf8').catch((err: Error) => Promise.reject(new UsageError(`cannot read ${v}: ${err.message}`))) : v;
  return text.split(/[\s,]+/).filter(Boolean);
}

export async function runBilling(argv: string[]): Promise<number> {
  const f = parseFlags(argv, SPEC);
  if (f.help) return (console.log(usage('billing', SUMMARY, SPEC)), 0);
  const source = String(f.source);
  if (source !== 'sql' && source !== 'kv') throw new UsageError(`--source must be 'sql' or 'kv', got '${source}'`);
  if (f.period === undefined && (f.from === undefined || f.to === undefined)) throw new UsageError('give --period YYYY-MM, or --from YYYY-MM-DD --to YYYY-MM-DD');
  const workers = f.workers === undefined ? undefined : intFlag(f.workers, 'workers', 0, 256);
  const out = resolve(String(f.out));
  try {
    const tariffs = await loadTariffs(String(f.tariffs));
    const key = await metrologyPublicKey(f);
    const customers = await customersFlag(f.customers);
    const store = await openStore(f);
    try {
      const blobs = source === 'kv' ? await openBlobStore(f, store) : undefined;
      try {
        const index: Array<Pick<BillingReport, 'customer' | 'period' | 'total' | 'currency' | 'energy' | 'summary' | 'hash'>> = [];
        const run = await billPeriod({
          sql: store.sql,
          ...(blobs ? { kv: blobs.kv } : {}),
          source,
          ...(typeof f.period === 'string' ? { period: f.period } : { from: String(f.from), to: String(f.to) }),
          ...(customers ? { customers } : {}),
          tariffs,
          metrologyPublicKey: key,
          ...(workers !== undefined ? { workers } : {}),
          keepReports: false,
          onProgress: progressPrinter(),
          onReport: async (r) => {
            await writeReport(out, r);
            index.push({ customer: r.customer, period: r.period, total: r.total, currency: r.currency, energy: r.energy, summary: r.summary, hash: r.hash });
          },
        });
        index.sort((a, b) => (a.customer.id < b.customer.id ? -1 : 1));
        await writeIndex(out, index);
        const flagged = index.filter((r) => Object.keys(r.summary.findings).length > 0).length;
        const cur = index[0]?.currency ?? '';
        console.log(`billed ${run.customers} customers for ${run.period.label} from ${source === 'kv' ? 'KVS day blobs' : store.where}: ${run.readings.toLocaleString('en-US')} signed readings verified, ${run.findings} findings (${flagged} customers flagged), total ${cur} ${(run.totalCents / 100).toFixed(2)}; reports in ${out} (${run.seconds.toFixed(1)} s)`);
        return 0;
      } finally {
        await blobs?.close();
      }
    } finally {
      await store.close();
    }
  } catch (err) {
    if (err instanceof BillingError) {
      console.error(`securegrid billing: ${err.code}: ${err.message}`);
      return 2;
    }
    throw err;
  }
}
