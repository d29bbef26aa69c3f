// cascadb/: CascaDB, SQL over the Secure KVS (paper, section "SQL-to-KVS converter – cascaDB"). Front doors:
// the PostgreSQL wire protocol (psql, drivers, ORMs) and POST /v1/sql over HTTPS (JSON, as in the paper).
// Several CascaDB processes may share one KVS: the data dictionary lives in the KVS.
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { EmbeddedKvStore, KvsClient, localNodeSpecs, RemoteKvStore, startGateway, type Gateway, type KvStore } from '../kvs/index.js';
import { loadOrCreateTls } from '../kvs/gateway/tls.js';
import { logger, Metrics } from '../observe/index.js';
import { PgError, type ScramVerifier, type Session, type UserStore } from './server/backend.js';
import { scramVerifier, startPgServer, type PgServer } from './server/pgwire.js';
import { createHash, createHmac, pbkdf2Sync, timingSafeEqual } from 'node:crypto';
import { Engine, EngineBackend, runJson } from './sql/engine.js';

export { Engine, EngineBackend, runJson } from './sql/engine.js';
export { PgError } from './server/backend.js';

export interface CascadbOptions {
  /** A KVS gateway to use (several CascaDB processes can share it) … */
  kvs?: { url: string; accessKeyId: string; secretAccessKey: string; ca?: string; bucket?: string };
  /** … or an embedded KVS (gateway + 9 local storage nodes) under this directory. */
  embedded?: { dataDir: string; nodes?: number; policy?: string };
  /** An already open KvStore (tests). */
  store?: KvStore;
  host?: string;
  pgPort?: number; // default 6432; 0 = any free port
  httpPort?: number; // default 6480; 0 = any free port; -1 = no HTTP
  user: string;
  password: string;
  /** TLS identity directory (self-signed at first start), or given PEM files. */
  tlsDir?: string;
  certFile?: string;
  keyFile?: string;
  /** Refuse PostgreSQL connections without TLS. */
  requireTls?: boolean;
}

export interface Cascadb {
  engine: Engine;
  pgPort: number;
  httpUrl?: string;
  tlsCert?: string;
  gateway?: Gateway;
  close(): Promise<void>;
}

class StaticUsers implements UserStore {
  private readonly users = new Map<string, ScramVerifier>();
  add(user: string, password: string): void {
    this.users.set(user, scramVerifier(password));
  }
  async verifier(user: string): Promise<ScramVerifier | undefined> {
    return this.users.get(user);
  }
}

let sessionIds = 1_000_000;

/** Checks a password against a SCRAM-SHA-256 verifier (for HTTP Basic on the JSON door). */
function verifyScramPassword(v: ScramVerifier, password: string): boolean {
  const salted = pbkdf2Sync(password, v.salt, v.iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const stored = createHash('sha256').update(clientKey).digest();
  return stored.length === v.storedKey.length && timingSafeEqual(stored, v.storedKey);
}

export async function startCascadb(o: CascadbOptions): Promise<Cascadb> {
  const log = logger('cascadb');
  const metrics = new Metrics('cascadb', true);
  if (!o.user || !o.password) throw new Error('CascaDB needs a first login: --user and --password (or SECUREGRID_USER / SECUREGRID_PASSWORD)');
  let gateway: Gateway | undefined;
  let client: KvsClient | undefined;
  let kv: KvStore;
  if (o.store) kv = o.store;
  else if (o.kvs) {
    client = new KvsClient({ url: o.kvs.url, accessKeyId: o.kvs.accessKeyId, secretAccessKey: o.kvs.secretAccessKey, ca: o.kvs.ca, connections: 32 });
    const bucket = o.kvs.bucket ?? 'cascadb';
    await client.createBucket(bucket);
    kv = new RemoteKvStore(client, bucket);
  } else if (o.embedded) {
    gateway = await startGateway({
      dataDir: join(o.embedded.dataDir, 'kvs', 'gateway'),
      nodes: localNodeSpecs(join(o.embedded.dataDir, 'kvs', 'nodes'), o.embedded.nodes ?? 9),
      noListen: true,
      scrubIntervalMs: 600_000,
    });
    const bucket = 'cascadb';
    try {
      await gateway.objects.createBucket('cascadb', bucket, (await import('../kvs/index.js')).parsePolicy(o.embedded.policy ?? 'replicate:3'));
    } catch (err) {
      if ((err as { code?: string }).code !== 'BucketAlreadyOwnedByYou') throw err;
    }
    kv = new EmbeddedKvStore(gateway.objects, 'cascadb', bucket);
  } else throw new Error('CascaDB needs a KVS: --kvs URL (with --kvs-key and --kvs-secret) or --embedded --data DIR');

  const engine = new Engine({ kv, log, metrics });
  await engine.start();
  const users = new StaticUsers();
  users.add(o.user, o.password);
  const tls = o.tlsDir || o.certFile ? loadOrCreateTls(o.tlsDir ?? '.', { certFile: o.certFile, keyFile: o.keyFile }, ['localhost', o.host ?? '127.0.0.1']) : undefined;
  const backend = new EngineBackend(engine);
  const pg: PgServer = await startPgServer({
    backend,
    users,
    host: o.host ?? '127.0.0.1',
    port: o.pgPort ?? 6432,
    tls: tls ? { key: tls.key, cert: tls.cert } : undefined,
    requireTls: o.requireTls,
    allowCleartextOverTls: true,
    metrics,
  });
  log.info({ port: pg.port, tls: !!tls }, 'cascadb listening (PostgreSQL protocol)');

  let http: FastifyInstance | undefined;
  let httpUrl: string | undefined;
  if ((o.httpPort ?? 6480) >= 0) {
    http = Fastify({ ...(tls ? { https: { key: tls.key, cert: tls.cert } } : {}), logger: false, bodyLimit: 16 * 1024 * 1024 }) as unknown as FastifyInstance;
    const verifier = (user: string) => users.verifier(user);
    http.get('/metrics', async (_req, reply) => {
      const m = await metrics.text();
      reply.header('content-type', m.contentType).send(m.body);
    });
    http.get('/health', async () => ({ ok: true }));
    http.post('/v1/sql', async (req, reply) => {
      // HTTP Basic with the same users as the PostgreSQL door; each request is its own session.
      const auth = req.headers.authorization ?? '';
      const m = /^Basic\s+(.+)$/i.exec(auth);
      const [user, ...rest] = m ? Buffer.from(m[1]!, 'base64').toString('utf8').split(':') : [];
      const v = user ? await verifier(user) : undefined;
      if (!user || !v || !verifyScramPassword(v, rest.join(':'))) {
        reply.code(401).header('www-authenticate', 'Basic realm="cascadb"').send({ error: { code: '28P01', message: 'password authentication failed' } });
        return reply;
      }
      const body = req.body as { sql?: unknown; params?: unknown } | undefined;
      if (!body || typeof body.sql !== 'string') {
        reply.code(400).send({ error: { code: '22023', message: 'body must be JSON {"sql": "...", "params": [...]}' } });
        return reply;
      }
      if (body.params !== undefined && !Array.isArray(body.params)) {
        reply.code(400).send({ error: { code: '22023', message: 'params must be an array' } });
        return reply;
      }
      const session: Session = { id: sessionIds++, user, database: 'securegrid', params: {}, txStatus: 'I', state: {} };
      try {
        const out = await runJson(engine, session, body.sql, (body.params as unknown[]) ?? []);
        reply.send(out);
      } catch (err) {
        const e = err instanceof PgError ? err : new PgError('XX000', (err as Error).message);
        reply.code(e.code.startsWith('42') || e.code.startsWith('22') || e.code.startsWith('23') || e.code === '0A000' ? 400 : 500).send({ error: { code: e.code, message: e.message, ...e.extra } });
      } finally {
        await engine.closeSession(session);
      }
      return reply;
    });
    const addr = await http.listen({ host: o.host ?? '127.0.0.1', port: o.httpPort ?? 6480 });
    httpUrl = addr.replace('[::1]', 'localhost');
    log.info({ url: httpUrl }, 'cascadb listening (HTTPS JSON)');
  }
  return {
    engine,
    pgPort: pg.port,
    httpUrl,
    tlsCert: tls?.cert,
    gateway,
    async close() {
      await pg.close();
      if (http) await http.close();
      if (client) await client.close();
      if (gateway) await gateway.close();
    },
  };
}
