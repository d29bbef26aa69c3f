// `securegrid ingest`: the authentication service, and its operator tools (keys, provision, close-day).
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { startCascadb, type Cascadb } from '../cascadb/index.js';
import { loadOrCreateTls } from '../kvs/gateway/tls.js';
import { EmbeddedKvStore, KvsClient, parsePolicy, RemoteKvStore, type KvStore } from '../kvs/index.js';
import { freshRandom, parseSuite, SUITES } from '../crypto/index.js';
import {
  closeDay,
  FileIngestKeys,
  initIngestKeys,
  parseDirectory,
  PgSqlClient,
  EngineSqlClient,
  provisionDirectory,
  publicIngestKeys,
  startIngest,
  ensureSchema,
  type SqlClient,
} from '../ingest/index.js';
import { intFlag, parseFlags, usage, UsageError, type FlagSpec } from './args.js';

export const STORE_FLAGS: Record<string, FlagSpec> = {
  cascadb: { type: 'string', help: 'postgres://user:password@host:port/securegrid of a CascaDB server (shared by N instances)' },
  'cascadb-ca': { type: 'string', help: 'PEM file of the CascaDB server certificate (TLS is then required)' },
  embedded: { type: 'boolean', default: false, help: 'run CascaDB with an embedded KVS in this process (one process per data dir)' },
  data: { type: 'string', default: './.sg-data/ingest-db', help: 'data directory for --embedded' },
  'pg-port': { type: 'string', default: '0', help: 'with --embedded: the PostgreSQL port it also serves (0 = any free port)' },
  user: { type: 'string', help: 'with --embedded: a login for that port (default: none usable, a random one)' },
  password: { type: 'string', help: 'its password' },
};

const KVS_FLAGS: Record<string, FlagSpec> = {
  kvs: { type: 'string', help: 'URL of a KVS gateway for day blobs (default with --embedded: the embedded KVS)' },
  'kvs-key': { type: 'string', help: 'API key id for the KVS' },
  'kvs-secret': { type: 'string', help: 'API key secret for the KVS' },
  'kvs-ca': { type: 'string', help: 'PEM file of the KVS gateway certificate' },
  'kvs-bucket': { type: 'string', default: 'measurements', help: 'bucket for day blobs' },
};

const RUN: Record<string, FlagSpec> = {
  broker: { type: 'string', default: 'mqtt://127.0.0.1:1883', help: 'MQTT broker URL' },
  'broker-user': { type: 'string', help: 'MQTT username' },
  'broker-password': { type: 'string', help: 'MQTT password' },
  ...STORE_FLAGS,
  keys: { type: 'string', default: './.sg-data/ingest-keys', help: "key directory ('securegrid ingest keys init')" },
  instance: { type: 'string', help: 'instance id (default: ingest-<random>)' },
  'http-host': { type: 'string', default: '127.0.0.1', help: 'operator API address' },
  'http-port': { type: 'string', default: '6580', help: 'operator API port (0 = any free port, -1 = none)' },
  'api-token': { type: 'string', help: 'bearer token for the operator API (or SECUREGRID_API_TOKEN; ≥ 16 characters)' },
  'insecure-http': { type: 'boolean', default: false, help: 'serve the operator API over plain HTTP (loopback only)' },
  'batch-max': { type: 'string', default: '4096', help: 'readings per metrology batch' },
  'batch-ms': { type: 'string', default: '250', help: 'longest a reading waits for its batch, ms' },
};

export interface OpenedStore {
  sql: SqlClient;
  db?: Cascadb;
  where: string;
  close(): Promise<void>;
}

/** The SQL store from --cascadb URL or --embedded --data DIR. */
export async function openStore(f: Record<string, string | boolean | undefined>): Promise<OpenedStore> {
  if (typeof f.cascadb === 'string') {
    const ca = typeof f['cascadb-ca'] === 'string' ? readFileSync(f['cascadb-ca'], 'utf8') : undefined;
    const sql = new PgSqlClient({ url: f.cascadb, ca });
    const u = new URL(f.cascadb);
    return { sql, where: `${u.protocol}//${u.username}@${u.host}${u.pathname}${ca ? ' (TLS)' : ''}`, close: () => sql.close() };
  }
  if (!f.embedded) throw new UsageError('give --cascadb postgres://user:password@host:port/securegrid (a CascaDB server) or --embedded --data DIR');
  const data = resolve(String(f.data));
  const db = await startCascadb({
    embedded: { dataDir: data },
    pgPort: intFlag(f['pg-port'], 'pg-port', 0, 65535),
    httpPort: -1,
    user: typeof f.user === 'string' ? f.user : 'ingest',
    password: typeof f.password === 'string' ? f.password : freshRandom(24).toString('base64url'),
    tlsDir: join(data, 'tls'),
  });
  const sql = new EngineSqlClient(db.engine);
  return { sql, db, where: `embedded CascaDB in ${data} (PostgreSQL port ${db.pgPort})`, close: () => db.close() };
}

async function openKv(f: Record<string, string | boolean | undefined>, store: OpenedStore): Promise<{ kv: KvStore; close(): Promise<void> }> {
  const bucket = String(f['kvs-bucket']);
  if (typeof f.kvs === 'string') {
    if (typeof f['kvs-key'] !== 'string' || typeof f['kvs-secret'] !== 'string') throw new UsageError('--kvs needs --kvs-key and --kvs-secret');
    const client = new KvsClient({ url: f.kvs, accessKeyId: f['kvs-key'], secretAccessKey: f['kvs-secret'], ca: typeof f['kvs-ca'] === 'string' ? readFileSync(f['kvs-ca'], 'utf8') : undefined });
    await client.createBucket(bucket);
    return { kv: new RemoteKvStore(client, bucket), close: () => client.close() };
  }
  const gw = store.db?.gateway;
  if (!gw) throw new UsageError('day blobs need a KVS: --kvs URL --kvs-key ID --kvs-secret S, or --embedded');
  try {
    await gw.objects.createBucket('cascadb', bucket, parsePolicy('replicate:3'));
  } catch (err) {
    if ((err as { code?: string }).code !== 'BucketAlreadyOwnedByYou') throw err;
  }
  return { kv: new EmbeddedKvStore(gw.objects, 'cascadb', bucket), close: async () => undefined };
}

const waitForSignal = () =>
  new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });

async function runKeys(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const spec: Record<string, FlagSpec> = {
    data: { type: 'string', default: './.sg-data/ingest-keys', help: 'key directory' },
    ...(sub === 'init' ? { suites: { type: 'string', default: 'x25519-ed25519-aes256gcm,p256-aes128gcm', help: `collector suites to create (${SUITES.join(', ')}); RSA keygen is slow` } } : {}),
  };
  const f = parseFlags(rest, spec);
  if (f.help || (sub !== 'init' && sub !== 'public')) {
    console.log(usage('ingest keys init|public', 'init: create the collector identities, metrology, cookie and session keys (existing keys are kept). public: print the public keys as JSON.', spec));
    return f.help ? 0 : 2;
  }
  const dir = resolve(String(f.data));
  if (sub === 'init') {
    const suites = String(f.suites).split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
      try {
        return parseSuite(s);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
    });
    const pub = await initIngestKeys(dir, suites);
    console.error(`ingest keys in ${dir} (private keys sealed; root key ${process.env.SECUREGRID_ROOT_KEY ? 'from SECUREGRID_ROOT_KEY' : `in ${join(dir, 'root.key')}`})`);
    console.log(JSON.stringify(pub, null, 2));
    return 0;
  }
  console.log(JSON.stringify(await publicIngestKeys(dir), null, 2));
  return 0;
}

async function runProvision(argv: string[]): Promise<number> {
  const spec: Record<string, FlagSpec> = { directory: { type: 'string', help: 'registration directory: JSON lines (or a JSON array) of meter entries' }, ...STORE_FLAGS };
  const f = parseFlags(argv, spec);
  if (f.help) return (console.log(usage('ingest provision', 'Load customers and meters (with their public keys) from a registration directory. Idempotent.', spec)), 0);
  if (typeof f.directory !== 'string') throw new UsageError('--directory FILE is required');
  const entries = parseDirectory(await readFile(f.directory, 'utf8'), f.directory);
  const store = await openStore(f);
  try {
    await ensureSchema(store.sql);
    const r = await provisionDirectory(store.sql, entries);
    console.log(`provisioned ${entries.length} directory entries into ${store.where}: ${r.customers} new customers, ${r.meters} new meters`);
  } finally {
    await store.close();
  }
  return 0;
}

async function runCloseDay(argv: string[]): Promise<number> {
  const spec: Record<string, FlagSpec> = { date: { type: 'string', help: 'the UTC day to close, yyyy-mm-dd' }, ...STORE_FLAGS, ...KVS_FLAGS };
  const f = parseFlags(argv, spec);
  if (f.help) return (console.log(usage('ingest close-day', 'Write one KVS object per meter for the day: days/<date>/<meter> with canonical readings, batch headers and proofs. Idempotent.', spec)), 0);
  if (typeof f.date !== 'string') throw new UsageError('--date yyyy-mm-dd is required');
  const store = await openStore(f);
  try {
    const kv = await openKv(f, store);
    try {
      const r = await closeDay(store.sql, kv.kv, f.date, { onProgress: (d, t) => d % 500 === 0 && console.error(`  ${d}/${t} meters`) });
      console.log(`closed ${f.date}: ${r.meters} day blobs, ${r.readings} readings (bucket ${f['kvs-bucket']}, keys days/${f.date}/<meter>)`);
    } finally {
      await kv.close();
    }
  } finally {
    await store.close();
  }
  return 0;
}

export async function runIngest(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'keys') return runKeys(rest);
  if (sub === 'provision') return runProvision(rest);
  if (sub === 'close-day') return runCloseDay(rest);
  const f = parseFlags(argv, RUN);
  if (f.help) {
    console.log(usage('ingest', 'The authentication service: MQTT uplink → sessions, decrypt, validate, signed batches → CascaDB, then acks.\nSubcommands: ingest keys init|public, ingest provision --directory FILE, ingest close-day --date D.', RUN));
    return 0;
  }
  const httpPort = Number(f['http-port']) === -1 ? -1 : intFlag(f['http-port'], 'http-port', 0, 65535);
  const token = typeof f['api-token'] === 'string' ? f['api-token'] : process.env.SECUREGRID_API_TOKEN;
  if (httpPort >= 0 && (!token || token.length < 16)) throw new UsageError('the operator API needs --api-token (or SECUREGRID_API_TOKEN) of at least 16 characters, or --http-port -1 for none');
  const keysDir = resolve(String(f.keys));
  const store = await openStore(f);
  const keys = new FileIngestKeys(keysDir);
  let tls: { cert: string; key: string } | undefined;
  if (httpPort >= 0 && !f['insecure-http']) tls = loadOrCreateTls(join(keysDir, 'tls'), undefined, ['localhost', String(f['http-host'])]);
  try {
    const ing = await startIngest({
      broker: String(f.broker),
      brokerUsername: f['broker-user'] as string | undefined,
      brokerPassword: f['broker-password'] as string | undefined,
      sql: store.sql,
      keys,
      instanceId: f.instance as string | undefined,
      batchMax: intFlag(f['batch-max'], 'batch-max', 1, 65535),
      batchMs: intFlag(f['batch-ms'], 'batch-ms', 1, 60_000),
      ...(httpPort >= 0 ? { api: { host: String(f['http-host']), port: httpPort, token: token!, tls, insecureHttp: Boolean(f['insecure-http']) } } : {}),
    });
    console.log(`securegrid ingest ${ing.instanceId} taking $share/ingest/sg/+/up from ${f.broker}, storing into ${store.where}`);
    if (ing.apiUrl) console.log(`operator API on ${ing.apiUrl} (POST /v1/meters/:serial/disconnect|reconnect|read, GET /v1/stats, /metrics, /health)${tls ? `; certificate ${join(keysDir, 'tls', 'cert.pem')}` : ''}`);
    await waitForSignal();
    await ing.close();
  } finally {
    await keys.close();
    await store.close();
  }
  return 0;
}
