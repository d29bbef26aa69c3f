// `securegrid cascadb`: SQL over the Secure KVS, on the PostgreSQL protocol and POST /v1/sql.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startCascadb } from '../cascadb/index.js';
import { intFlag, parseFlags, usage, UsageError, type FlagSpec } from './args.js';

const SPEC: Record<string, FlagSpec> = {
  kvs: { type: 'string', help: 'URL of a KVS gateway (shared by several CascaDB processes)' },
  'kvs-key': { type: 'string', help: 'API key id for the KVS' },
  'kvs-secret': { type: 'string', help: 'API key secret for the KVS' },
  'kvs-ca': { type: 'string', help: 'PEM file of the KVS gateway certificate to trust' },
  bucket: { type: 'string', default: 'cascadb', help: 'KVS bucket holding the database' },
  embedded: { type: 'boolean', default: false, help: 'run an embedded KVS in this process (quick start)' },
  data: { type: 'string', default: './.sg-data/cascadb', help: 'data directory (embedded KVS, TLS identity)' },
  host: { type: 'string', default: '127.0.0.1', help: 'address to listen on' },
  'pg-port': { type: 'string', default: '6432', help: 'PostgreSQL protocol port (0 = any free port)' },
  'http-port': { type: 'string', default: '6480', help: 'HTTPS JSON port for POST /v1/sql (0 = any free port)' },
  user: { type: 'string', help: 'the first login (or SECUREGRID_USER)' },
  password: { type: 'string', help: 'its password (or SECUREGRID_PASSWORD)' },
  cert: { type: 'string', help: 'PEM certificate (default: self-signed in the data directory)' },
  key: { type: 'string', help: 'PEM private key for --cert' },
  'require-tls': { type: 'boolean', default: false, help: 'refuse PostgreSQL connections without TLS' },
};

export async function runCascadb(argv: string[]): Promise<number> {
  const f = parseFlags(argv, SPEC);
  if (f.help) return (console.log(usage('cascadb', 'CascaDB: a PostgreSQL-compatible SQL front end over the Secure KVS.', SPEC)), 0);
  if (typeof f.user !== 'string' || typeof f.password !== 'string') throw new UsageError('--user and --password (or SECUREGRID_USER and SECUREGRID_PASSWORD) are required: they are the first login');
  const data = resolve(String(f.data));
  let kvs;
  if (typeof f.kvs === 'string') {
    if (typeof f['kvs-key'] !== 'string' || typeof f['kvs-secret'] !== 'string') throw new UsageError('--kvs needs --kvs-key and --kvs-secret (an API key from `securegrid kvs keys create`)');
    kvs = { url: f.kvs, accessKeyId: f['kvs-key'], secretAccessKey: f['kvs-secret'], ca: typeof f['kvs-ca'] === 'string' ? readFileSync(f['kvs-ca'], 'utf8') : undefined, bucket: String(f.bucket) };
  } else if (!f.embedded) throw new UsageError('give --kvs URL (a KVS gateway) or --embedded (a KVS in this process)');
  const db = await startCascadb({
    kvs,
    embedded: kvs ? undefined : { dataDir: data },
    host: String(f.host),
    pgPort: intFlag(f['pg-port'], 'pg-port', 0, 65535),
    httpPort: intFlag(f['http-port'], 'http-port', 0, 65535),
    user: f.user,
    password: f.password,
    tlsDir: join(data, 'tls'),
    certFile: f.cert as string | undefined,
    keyFile: f.key as string | undefined,
    requireTls: Boolean(f['require-tls']),
  });
  console.log(`securegrid cascadb listening on postgresql://${f.user}@${f.host}:${db.pgPort}/securegrid (TLS available) and ${db.httpUrl}/v1/sql`);
  console.log(`try: psql "host=${f.host} port=${db.pgPort} user=${f.user} sslmode=require"`);
  await new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  await db.close();
  return 0;
}
