// The operator API: HTTPS (or plain HTTP on loopback only, when asked), bearer token. Handlers validate the
// path, call one service function and map its error codes to statuses.
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { sha256 } from '../crypto/index.js';
import type { MeterCommand, MeterResponse } from '../protocol/index.js';
import { IngestError } from './errors.js';
import type { IngestStats } from './service.js';
import type { Metrics } from '../observe/index.js';

export interface OperatorApiOptions {
  host?: string;
  /** 0 = any free port. */
  port: number;
  /** Bearer token every /v1 request must carry. */
  token: string;
  tls?: { cert: string; key: string };
  /** Plain HTTP instead of HTTPS: refused unless host is a loopback address. */
  insecureHttp?: boolean;
  service: {
    readonly instanceId: string;
    readonly metrics: Metrics;
    stats(): IngestStats;
    command(serial: number, kind: MeterCommand['kind'], timeoutMs?: number): Promise<MeterResponse>;
  };
}

export interface OperatorApi {
  url: string;
  close(): Promise<void>;
}

const STATUS: Record<string, number> = { 'bad-input': 400, 'unknown-meter': 404, 'no-session': 409, timeout: 504, closed: 503 };
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

function sameSecret(a: string, b: string): boolean {
  // Compare digests so the time taken says nothing about the token's prefix or length.
  const x = sha256(Buffer.from(a));
  const y = sha256(Buffer.from(b));
  let d = 0;
  for (let i = 0; i < x.length; i++) d |= x[i]! ^ y[i]!;
  return d === 0;
}

export async function startOperatorApi(o: OperatorApiOptions): Promise<OperatorApi> {
  const host = o.host ?? '127.0.0.1';
  if (!o.token || o.token.length < 16) throw new IngestError('bad-input', 'the operator API token must be at least 16 characters');
  if (!o.tls && !(o.insecureHttp && LOOPBACK.has(host))) {
    throw new IngestError('bad-input', 'the operator API needs TLS (a certificate), or plain HTTP explicitly allowed on a loopback address only');
  }
  const app = Fastify({ logger: false, ...(o.tls ? { https: { cert: o.tls.cert, key: o.tls.key } } : {}) });
  const authorized = (req: FastifyRequest, reply: FastifyReply): boolean => {
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    if (m && sameSecret(m[1]!.trim(), o.token)) return true;
    reply.code(401).header('www-authenticate', 'Bearer').send({ error: { code: 'unauthorized', message: 'send Authorization: Bearer <operator token>' } });
    return false;
  };
  app.get('/health', async () => ({ ok: true, instance: o.service.instanceId }));
  app.get('/metrics', async (_req, reply) => {
    const m = await o.service.metrics.text();
    reply.header('content-type', m.contentType).send(m.body);
  });
  app.get('/v1/stats', async (req, reply) => {
    if (!authorized(req, reply)) return reply;
    return o.service.stats();
  });
  app.post<{ Params: { serial: string; action: string }; Querystring: { timeoutMs?: string } }>('/v1/meters/:serial/:action', async (req, reply) => {
    if (!authorized(req, reply)) return reply;
    const { serial, action } = req.params;
    if (!/^\d{1,8}$/.test(serial)) return reply.code(400).send({ error: { code: 'bad-input', message: 'the meter serial is 1–8 decimal digits' } });
    if (action !== 'disconnect' && action !== 'reconnect' && action !== 'read') {
      return reply.code(404).send({ error: { code: 'bad-input', message: 'actions are disconnect, reconnect and read' } });
    }
    const t = req.query.timeoutMs === undefined ? undefined : Number(req.query.timeoutMs);
    if (t !== undefined && !(Number.isInteger(t) && t >= 100 && t <= 120_000)) return reply.code(400).send({ error: { code: 'bad-input', message: 'timeoutMs must be an integer 100…120000' } });
    try {
      const response = await o.service.command(Number(serial), action, t);
      return { serial: Number(serial), response };
    } catch (err) {
      const code = err instanceof IngestError ? err.code : 'internal';
      return reply.code(STATUS[code] ?? 500).send({ error: { code, message: err instanceof IngestError ? err.message : 'internal error; see the service log' } });
    }
  });
  const url = (await app.listen({ host, port: o.port })).replace('[::1]', 'localhost');
  return { url, close: () => app.close() };
}
