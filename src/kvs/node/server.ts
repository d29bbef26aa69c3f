// `securegrid kvs node --data DIR --port P`: serves a LocalFragmentStore over HTTP (fastify), with /metrics.
//
// Routes (HTTP/1.1 keep-alive; values are raw bytes, never base64 or JSON; keys are percent-encoded in paths):
//   PUT    /v1/f/:key          body = the value (application/octet-stream)           → 204
//   GET    /v1/f/:key          whole value → 200; `Range: bytes=a-b | a- | -n` → 206 with Content-Range,
//                              416 when a >= size; unparsable or multi-range headers are ignored (→ 200);
//                              absent → 404
//   DELETE /v1/f/:key          → 204 (also when absent)
//   POST   /v1/batch/put       body = wire `entries` (see wire.ts), one LMDB transaction → 204
//   POST   /v1/batch/get       body = wire `keys` → 200, body = wire `values` (one per key, in order)
//   POST   /v1/batch/delete    body = wire `keys`, one LMDB transaction → 204
//   GET    /v1/list?prefix=&after=&limit=   → 200 JSON ListResult
//   GET    /health             → 200 JSON NodeStatus (503 with ok:false when the store fails); no token needed
//   GET    /metrics            → Prometheus text; no token needed
// Errors: 400 (bad key, malformed wire body, bad query), 401 (token), 404, 413 (body over 80 MiB),
// 500 (storage failure); error bodies are JSON { code, message } and never echo a value.
// Every write is acknowledged only after LMDB has committed and synced it (see local-store.ts).
import { randomBytes, createHash, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fastify, type FastifyReply, type FastifyRequest } from 'fastify';
import { logger, Metrics } from '../../observe/index.js';
import { NodeRequestError, NodeUnavailableError } from './fragment-store.js';
import { LocalFragmentStore } from './local-store.js';
import { MAX_BODY_BYTES, WireError, decodeEntries, decodeKeys, encodeValues, keyProblem } from './wire.js';

export interface NodeServerOptions {
  dataDir: string;
  port: number; // 0 = pick a free port
  host?: string; // default 127.0.0.1
  token?: string; // when set, every request but /metrics and /health needs `Authorization: Bearer <token>`
  id?: string;
}

export interface NodeServer {
  url: string; // e.g. http://127.0.0.1:9101
  close(): Promise<void>;
}

const log = logger('kvs-node');

class HttpError extends Error {
  constructor(readonly statusCode: number, readonly code: string, message: string) {
    super(message);
  }
}

/** The node's stable id: `<dataDir>/node-id`, created with a random value on first start. */
function nodeIdFor(dataDir: string): string {
  const file = join(dataDir, 'node-id');
  const read = (): string | undefined => {
    try {
      const id = readFileSync(file, 'utf8').trim();
      return id || undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  };
  const existing = read();
  if (existing) return existing;
  const id = `node-${randomBytes(8).toString('hex')}`;
  try {
    writeFileSync(file, `${id}\n`, { flag: 'wx' }); // 'wx': a concurrent first start keeps one id
    return id;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return read() ?? id;
  }
}

function tokenMatcher(token: string): (header: string | undefined) => boolean {
  const want = createHash('sha256').update(`Bearer ${token}`).digest();
  return (header) => header !== undefined && timingSafeEqual(createHash('sha256').update(header).digest(), want);
}

/** Parses a single `bytes=` range against `size`: [start, endExclusive], 'unsatisfiable', or undefined to ignore it. */
export function parseRange(header: string, size: number): [number, number] | 'unsatisfiable' | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (!Number.isSafeInteger(n)) return undefined;
    if (n === 0 || size === 0) return 'unsatisfiable';
    return [Math.max(0, size - n), size];
  }
  const a = Number(m[1]);
  const b = m[2] === '' ? Infinity : Number(m[2]);
  if (!Number.isSafeInteger(a) || (b !== Infinity && !Number.isSafeInteger(b)) || b < a) return undefined;
  if (a >= size) return 'unsatisfiable';
  return [a, Math.min(b + 1, size)];
}

export async function startNodeServer(opts: NodeServerOptions): Promise<NodeServer> {
  const host = opts.host ?? '127.0.0.1';
  mkdirSync(opts.dataDir, { recursive: true });
  const id = opts.id ?? nodeIdFor(opts.dataDir);
  const store = new LocalFragmentStore({ id, dir: opts.dataDir });

  const metrics = new Metrics('kvs-node');
  const requests = metrics.counter('kvs_node_requests_total', 'HTTP requests by operation and status', ['op', 'status']);
  const bytesIn = metrics.counter('kvs_node_bytes_in_total', 'Fragment bytes received (request bodies)');
  const bytesOut = metrics.counter('kvs_node_bytes_out_total', 'Fragment bytes sent (response bodies)');
  const seconds = metrics.histogram('kvs_node_request_seconds', 'Request latency by operation', ['op'],
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5]);
  const entriesGauge = metrics.gauge('kvs_node_entries', 'Fragments stored');
  const bytesGauge = metrics.gauge('kvs_node_bytes', 'Approximate bytes stored');
  const authorized = opts.token ? tokenMatcher(opts.token) : undefined;

  const app = fastify({
    logger: false,
    bodyLimit: MAX_BODY_BYTES,
    keepAliveTimeout: 72_000,
    forceCloseConnections: 'idle',
    routerOptions: { maxParamLength: 1024 },
  });

  app.removeAllContentTypeParsers();
  const rawBody = (_req: FastifyRequest, body: Buffer, done: (err: Error | null, body?: Buffer) => void): void => done(null, body);
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: MAX_BODY_BYTES }, rawBody);
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_BODY_BYTES }, rawBody);

  const opOf = (req: FastifyRequest): string => (req.routeOptions.config as { op?: string }).op ?? 'other';
  const started = new WeakMap<FastifyRequest, bigint>();

  app.addHook('onRequest', async (req, reply) => {
    started.set(req, process.hrtime.bigint());
    if (!authorized) return;
    const op = opOf(req);
    if (op === 'health' || op === 'metrics') return;
    if (!authorized(req.headers.authorization)) {
      reply.header('www-authenticate', 'Bearer');
      return reply.code(401).send({ code: 'Unauthorized', message: 'a valid bearer token is required' });
    }
  });
  app.addHook('onResponse', async (req, reply) => {
    const op = opOf(req);
    requests.inc({ op, status: String(reply.statusCode) });
    const t0 = started.get(req);
    if (t0 !== undefined) seconds.observe({ op }, Number(process.hrtime.bigint() - t0) / 1e9);
  });

  app.setErrorHandler(async (err: unknown, req, reply) => {
    const e = err as { statusCode?: number; code?: string; message?: string };
    if (err instanceof HttpError || err instanceof NodeRequestError || err instanceof WireError) {
      const status = err instanceof HttpError ? err.statusCode : 400;
      return reply.code(status).send({ code: err.code, message: err.message });
    }
    if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
      // fastify's own client errors: body too large (413), bad content length, ...
      return reply.code(e.statusCode).send({ code: e.code ?? 'BadRequest', message: e.message ?? 'bad request' });
    }
    const unavailable = err instanceof NodeUnavailableError;
    log.warn({ op: opOf(req), err: { code: e.code, message: e.message } }, 'storage request failed');
    return reply.code(unavailable ? 503 : 500).send({ code: unavailable ? 'NodeUnavailable' : 'Internal', message: 'storage failure' });
  });
  app.setNotFoundHandler(async (_req, reply) => reply.code(404).send({ code: 'NotFound', message: 'no such route' }));

  const keyParam = (req: FastifyRequest): string => {
    const key = (req.params as { key?: string }).key ?? '';
    const p = keyProblem(key);
    if (p) throw new HttpError(400, 'BadKey', p);
    return key;
  };
  const bodyOf = (req: FastifyRequest): Buffer => {
    const b = req.body;
    const buf = Buffer.isBuffer(b) ? b : Buffer.alloc(0);
    bytesIn.inc(buf.length);
    return buf;
  };
  const sendBytes = (reply: FastifyReply, status: number, buf: Buffer): FastifyReply => {
    bytesOut.inc(buf.length);
    return reply.code(status).header('content-type', 'application/octet-stream').send(buf);
  };

  app.put('/v1/f/:key', { config: { op: 'put' } }, async (req, reply) => {
    const key = keyParam(req);
    await store.put([{ key, value: bodyOf(req) }]);
    return reply.code(204).send();
  });

  app.get('/v1/f/:key', { config: { op: 'get' } }, async (req, reply) => {
    const key = keyParam(req);
    const header = req.headers.range;
    let r: [number, number] | 'unsatisfiable' | undefined;
    const found = await store.read(key, header ? (size) => {
      r = parseRange(header, size);
      return r === 'unsatisfiable' ? [0, 0] : r;
    } : undefined);
    if (!found) return reply.code(404).send({ code: 'NotFound', message: 'no such fragment' });
    const { value, size } = found;
    reply.header('accept-ranges', 'bytes');
    if (r === 'unsatisfiable') {
      return reply.code(416).header('content-range', `bytes */${size}`)
        .send({ code: 'RangeNotSatisfiable', message: 'range starts beyond the fragment' });
    }
    if (r) {
      reply.header('content-range', `bytes ${r[0]}-${r[1] - 1}/${size}`);
      return sendBytes(reply, 206, value);
    }
    return sendBytes(reply, 200, value);
  });

  app.delete('/v1/f/:key', { config: { op: 'delete' } }, async (req, reply) => {
    await store.delete([keyParam(req)]);
    return reply.code(204).send();
  });

  app.post('/v1/batch/put', { config: { op: 'batch_put' } }, async (req, reply) => {
    await store.put(decodeEntries(bodyOf(req)));
    return reply.code(204).send();
  });

  app.post('/v1/batch/get', { config: { op: 'batch_get' } }, async (req, reply) => {
    const values = await store.getMany(decodeKeys(bodyOf(req)));
    return sendBytes(reply, 200, encodeValues(values));
  });

  app.post('/v1/batch/delete', { config: { op: 'batch_delete' } }, async (req, reply) => {
    await store.delete(decodeKeys(bodyOf(req)));
    return reply.code(204).send();
  });

  app.get('/v1/list', { config: { op: 'list' } }, async (req, reply) => {
    const q = req.query as Record<string, unknown>;
    const str = (name: string): string | undefined => {
      const v = q[name];
      if (v === undefined) return undefined;
      if (typeof v !== 'string') throw new HttpError(400, 'BadQuery', `${name} must be given once`);
      return v;
    };
    const limitText = str('limit');
    let limit: number | undefined;
    if (limitText !== undefined) {
      if (!/^\d{1,15}$/.test(limitText)) throw new HttpError(400, 'BadQuery', 'limit must be an integer >= 1');
      limit = Number(limitText);
    }
    const result = await store.list({ prefix: str('prefix'), after: str('after'), limit });
    return reply.code(200).send(result);
  });

  app.get('/health', { config: { op: 'health' } }, async (_req, reply) => {
    try {
      return reply.code(200).send(await store.status());
    } catch {
      return reply.code(503).send({ id, ok: false, entries: 0, bytes: 0 });
    }
  });

  app.get('/metrics', { config: { op: 'metrics' } }, async (_req, reply) => {
    try {
      const st = await store.status();
      entriesGauge.set(st.entries);
      bytesGauge.set(st.bytes);
    } catch {
      // the gauges keep their last values; /health reports the failure
    }
    const { contentType, body } = await metrics.text();
    return reply.code(200).header('content-type', contentType).send(body);
  });

  let address: string;
  try {
    await app.listen({ port: opts.port, host });
    const a = app.server.address();
    if (!a || typeof a === 'string') throw new Error('node server has no TCP address');
    address = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  } catch (err) {
    await app.close().catch(() => undefined);
    await store.close();
    throw err;
  }
  log.info({ id, url: address, dataDir: opts.dataDir, auth: Boolean(opts.token) }, 'storage node listening');

  let closing: Promise<void> | undefined;
  return {
    url: address,
    close(): Promise<void> {
      closing ??= (async () => {
        try {
          await app.close();
        } finally {
          await store.close();
        }
        log.info({ id }, 'storage node stopped');
      })();
      return closing;
    },
  };
}
