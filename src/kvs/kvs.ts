// Assembles a KVS gateway: its trusted state (LMDB), keys, the object layer over FragmentStores, the S3
// server, and the background scrubber.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { SealedFileKeyProvider, type KeyProvider } from '../crypto/index.js';
import { logger, Metrics, type Logger } from '../observe/index.js';
import { formatPolicy, parsePolicy, storageClassPolicy } from './erasure/index.js';
import { LocalFragmentStore, RemoteFragmentStore, type FragmentStore } from './node/index.js';
import { Accounts } from './gateway/accounts.js';
import { MetaStore } from './gateway/meta-store.js';
import { ObjectLayer, emptyHealReport, type HealReport } from './gateway/object-layer.js';
import { createS3Server } from './gateway/s3-server.js';
import { loadOrCreateTls, type TlsIdentity } from './gateway/tls.js';

export type NodeSpec = { kind: 'local'; dir: string; id: string } | { kind: 'remote'; url: string; token?: string };

export interface GatewayOptions {
  /** The gateway's own directory: LMDB state, sealed keys, TLS identity. */
  dataDir: string;
  nodes: NodeSpec[];
  host?: string;
  /** 0 = any free port. */
  port?: number;
  /** Plain HTTP: refused unless host is a loopback address. */
  insecureHttp?: boolean;
  certFile?: string;
  keyFile?: string;
  defaultPolicy?: string;
  maxObjectSize?: number;
  minPartSize?: number;
  /** Background scrub period; 0 disables. */
  scrubIntervalMs?: number;
  keys?: KeyProvider;
  /** Do not listen (for `kvs heal` and tests that drive the object layer directly). */
  noListen?: boolean;
}

export interface Gateway {
  url: string;
  objects: ObjectLayer;
  accounts: Accounts;
  tls?: TlsIdentity;
  metrics: Metrics;
  nodes: FragmentStore[];
  heal(onProgress?: (done: number, r: HealReport) => void): Promise<HealReport>;
  close(): Promise<void>;
}

export const DEFAULT_MAX_OBJECT_SIZE = 5 * 1024 ** 3;

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

export function openNode(spec: NodeSpec): FragmentStore {
  return spec.kind === 'local' ? new LocalFragmentStore({ id: spec.id, dir: spec.dir }) : new RemoteFragmentStore({ url: spec.url, token: spec.token });
}

/** `count` local storage nodes under <dir>/node-<i>. */
export function localNodeSpecs(dir: string, count: number): NodeSpec[] {
  return Array.from({ length: count }, (_, i) => ({ kind: 'local' as const, dir: join(dir, `node-${i}`), id: `node-${i}` }));
}

export async function startGateway(o: GatewayOptions): Promise<Gateway> {
  const log: Logger = logger('kvs-gateway');
  const host = o.host ?? '127.0.0.1';
  if (o.insecureHttp && !isLoopback(host)) {
    throw new Error(`plain HTTP is allowed only on a loopback address, not on ${host}; drop --insecure-http to serve HTTPS`);
  }
  if (o.nodes.length === 0) throw new Error('a gateway needs at least one storage node');
  mkdirSync(o.dataDir, { recursive: true });
  const keys = o.keys ?? new SealedFileKeyProvider(join(o.dataDir, 'keys'));
  const meta = new MetaStore(join(o.dataDir, 'meta'));
  const metrics = new Metrics('kvs-gateway', true);
  const nodes = o.nodes.map(openNode);
  const defaultPolicy = parsePolicy(o.defaultPolicy ?? (nodes.length >= 3 ? 'replicate:3' : `replicate:${nodes.length}`));
  await meta.settings.put('nodes', o.nodes.map((n) => (n.kind === 'local' ? n : { kind: 'remote', url: n.url })));
  const objects = new ObjectLayer({
    meta,
    nodes,
    keys,
    defaultPolicy,
    maxObjectSize: o.maxObjectSize ?? DEFAULT_MAX_OBJECT_SIZE,
    minPartSize: o.minPartSize ?? 5 * 1024 * 1024,
    storageClassPolicy,
    log,
    metrics,
  });
  const accounts = new Accounts(meta, keys);
  const nodesUp = metrics.gauge('kvs_storage_nodes_up', 'Storage nodes answering their status call');
  let tls: TlsIdentity | undefined;
  let app: FastifyInstance | undefined;
  let url = '';
  if (!o.noListen) {
    if (!o.insecureHttp) tls = loadOrCreateTls(join(o.dataDir, 'tls'), { certFile: o.certFile, keyFile: o.keyFile }, ['localhost', host]);
    app = await createS3Server({ objects, accounts, log, metrics, tls, maxObjectSize: o.maxObjectSize ?? DEFAULT_MAX_OBJECT_SIZE });
    const addr = await app.listen({ host, port: o.port ?? 0 });
    const port = new URL(addr.replace('[::1]', 'localhost')).port;
    url = `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
    log.info({ url, nodes: nodes.length, defaultPolicy: formatPolicy(defaultPolicy) }, 'kvs gateway listening');
  }

  let healing: Promise<HealReport> | undefined;
  const heal = (onProgress?: (done: number, r: HealReport) => void) => {
    healing ??= objects.healAll(onProgress).finally(() => (healing = undefined));
    return healing;
  };
  const timers: NodeJS.Timeout[] = [];
  if ((o.scrubIntervalMs ?? 0) > 0) {
    const t = setInterval(() => {
      void heal()
        .then((r) => log.info({ ...r }, 'scrub finished'))
        .catch((err) => log.error({ err: (err as Error).message }, 'scrub failed'));
    }, o.scrubIntervalMs);
    t.unref();
    timers.push(t);
  }
  // Reads that met a bad fragment queue the object; heal those soon rather than at the next full scrub.
  const q = setInterval(() => {
    void objects.healQueued().catch((err) => log.error({ err: (err as Error).message }, 'queued heal failed'));
    void Promise.all(nodes.map((n) => n.status().then((s) => s.ok, () => false))).then((up) => nodesUp.set(up.filter(Boolean).length));
  }, 5000);
  q.unref();
  timers.push(q);

  return {
    url,
    objects,
    accounts,
    tls,
    metrics,
    nodes,
    heal,
    async close() {
      for (const t of timers) clearInterval(t);
      if (app) await app.close();
      if (healing) await healing.catch(() => undefined);
      await Promise.allSettled(nodes.map((n) => n.close()));
      await meta.close();
      await keys.close();
    },
  };
}

export { emptyHealReport };
