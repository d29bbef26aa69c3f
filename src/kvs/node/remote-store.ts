import { Pool, type Dispatcher } from 'undici';
import {
  NodeRequestError, NodeUnavailableError,
  type FragmentEntry, type FragmentStore, type ListResult, type NodeStatus,
} from './fragment-store.js';
import {
  MAX_BODY_BYTES, MAX_VALUE_BYTES, boundProblem, decodeValues, encodeEntries, encodeKeys, entryWireSize,
  keyProblem, limitProblem, rangeProblem,
} from './wire.js';

/**
 * HTTP client for a node started by `securegrid kvs node` (undici Pool, keep-alive). Network errors,
 * timeouts and 5xx become NodeUnavailableError. `token`, when set, is sent as `Authorization: Bearer`.
 *
 * Same contract as LocalFragmentStore: invalid input is rejected locally with NodeRequestError
 * ('NodeBadRequest') before any request; a 401 from the node is NodeRequestError('NodeUnauthorized').
 * put() of one entry is one `PUT /v1/f/:key`; more entries are one `POST /v1/batch/put` (one LMDB
 * transaction) — except that a call whose wire size exceeds the node's 80 MiB body limit is split into
 * several requests, each atomic on its own. status().id is this store's id; status().nodeId is the id
 * the node reports for itself.
 */
export class RemoteFragmentStore implements FragmentStore {
  readonly id: string;
  private readonly pool: Pool;
  private readonly base: string;
  private readonly auth: string | undefined;
  private readonly timeoutMs: number;
  private closed = false;

  constructor(opts: { url: string; token?: string; timeoutMs?: number; id?: string }) {
    const url = new URL(opts.url);
    this.id = opts.id ?? opts.url;
    this.base = url.pathname.replace(/\/+$/, '');
    this.auth = opts.token ? `Bearer ${opts.token}` : undefined;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.pool = new Pool(url.origin, {
      connections: 16,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 60_000,
      connectTimeout: this.timeoutMs,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
    });
  }

  async put(entries: FragmentEntry[]): Promise<void> {
    this.checkOpen();
    for (const e of entries) {
      this.checkKey(e.key);
      if (!(e.value instanceof Uint8Array)) this.bad('value must be a Buffer');
      if (e.value.length > MAX_VALUE_BYTES) this.bad(`value of ${e.value.length} bytes exceeds ${MAX_VALUE_BYTES}`);
    }
    if (entries.length === 0) return;
    if (entries.length === 1) {
      const e = entries[0]!;
      await this.call('PUT', this.fragmentPath(e.key), e.value, [204]);
      return;
    }
    for (const chunk of chunksUnderBodyLimit(entries)) {
      await this.call('POST', `${this.base}/v1/batch/put`, encodeEntries(chunk), [204]);
    }
  }

  async get(key: string, range?: { start: number; end: number }): Promise<Buffer | undefined> {
    this.checkOpen();
    this.checkKey(key);
    const rp = rangeProblem(range);
    if (rp) this.bad(rp);
    const empty = range !== undefined && range.end <= range.start;
    // An empty range still has to tell "absent" from "present": ask for one byte and drop it.
    const headers = range ? { range: `bytes=${range.start}-${empty ? range.start : range.end - 1}` } : undefined;
    const res = await this.call('GET', this.fragmentPath(key), undefined, [200, 206, 404, 416], headers);
    if (res.status === 404) return undefined;
    if (!range) return res.body;
    if (empty || res.status === 416) return Buffer.alloc(0);
    if (res.status === 206) return res.body;
    // 200: the node ignored the Range header; slice here.
    const s = Math.min(range.start, res.body.length);
    return res.body.subarray(s, Math.min(Math.max(range.end, s), res.body.length));
  }

  async getMany(keys: string[]): Promise<(Buffer | undefined)[]> {
    this.checkOpen();
    for (const k of keys) this.checkKey(k);
    if (keys.length === 0) return [];
    const res = await this.call('POST', `${this.base}/v1/batch/get`, encodeKeys(keys), [200]);
    try {
      return decodeValues(res.body, keys.length);
    } catch (err) {
      throw new NodeUnavailableError(this.id, err);
    }
  }

  async delete(keys: string[]): Promise<void> {
    this.checkOpen();
    for (const k of keys) this.checkKey(k);
    if (keys.length === 0) return;
    if (keys.length === 1) {
      await this.call('DELETE', this.fragmentPath(keys[0]!), undefined, [204]);
      return;
    }
    await this.call('POST', `${this.base}/v1/batch/delete`, encodeKeys(keys), [204]);
  }

  async list(opts: { prefix?: string; after?: string; limit?: number } = {}): Promise<ListResult> {
    this.checkOpen();
    const problem = boundProblem('prefix', opts.prefix) ?? boundProblem('after', opts.after) ?? limitProblem(opts.limit);
    if (problem) this.bad(problem);
    const q = new URLSearchParams();
    if (opts.prefix) q.set('prefix', opts.prefix);
    if (opts.after) q.set('after', opts.after);
    if (opts.limit !== undefined) q.set('limit', String(opts.limit));
    const qs = q.toString();
    const res = await this.call('GET', `${this.base}/v1/list${qs ? `?${qs}` : ''}`, undefined, [200]);
    return this.json<ListResult>(res.body);
  }

  async status(): Promise<NodeStatus> {
    this.checkOpen();
    const res = await this.call('GET', `${this.base}/health`, undefined, [200]);
    const st = this.json<NodeStatus>(res.body);
    return { id: this.id, ok: st.ok, entries: st.entries, bytes: st.bytes, nodeId: st.id };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.close().catch(() => this.pool.destroy());
  }

  private fragmentPath(key: string): string {
    return `${this.base}/v1/f/${encodeURIComponent(key)}`;
  }

  private checkOpen(): void {
    if (this.closed) throw new NodeUnavailableError(this.id, new Error('store is closed'));
  }

  private checkKey(key: string): void {
    const p = keyProblem(key);
    if (p) this.bad(p);
  }

  private bad(message: string): never {
    throw new NodeRequestError(this.id, 'NodeBadRequest', message);
  }

  private json<T>(body: Buffer): T {
    try {
      return JSON.parse(body.toString('utf8')) as T;
    } catch (err) {
      throw new NodeUnavailableError(this.id, err);
    }
  }

  /**
   * One request; resolves with the status and the whole body when the status is in `ok`. Transport errors,
   * timeouts, 5xx and unexpected statuses → NodeUnavailableError; 400/413 → NodeBadRequest; 401/403 →
   * NodeUnauthorized. A request that dies on a reused keep-alive socket (the node closed it, or restarted)
   * is retried once: every request here is idempotent.
   */
  private async call(
    method: Dispatcher.HttpMethod, path: string, body: Buffer | undefined, ok: number[],
    extraHeaders?: Record<string, string>,
  ): Promise<{ status: number; body: Buffer }> {
    const headers: Record<string, string> = { ...extraHeaders };
    if (this.auth) headers.authorization = this.auth;
    if (body) headers['content-type'] = 'application/octet-stream';
    for (let attempt = 0; ; attempt++) {
      let status: number;
      let data: Buffer;
      try {
        const res = await this.pool.request({
          method, path, headers, body: body ?? null,
          headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs,
        });
        status = res.statusCode;
        data = Buffer.from(await res.body.arrayBuffer());
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (attempt === 0 && !this.closed && (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET')) continue;
        throw new NodeUnavailableError(this.id, err);
      }
      if (ok.includes(status)) return { status, body: data };
      throw this.statusError(status, data);
    }
  }

  private statusError(status: number, body: Buffer): Error {
    let message = `HTTP ${status}`;
    try {
      const j = JSON.parse(body.toString('utf8')) as { message?: unknown };
      if (typeof j.message === 'string') message = `${message}: ${j.message}`;
    } catch {
      // not JSON: keep the status line only
    }
    if (status === 401 || status === 403) return new NodeRequestError(this.id, 'NodeUnauthorized', message);
    if (status === 400 || status === 413 || status === 416) return new NodeRequestError(this.id, 'NodeBadRequest', message);
    return new NodeUnavailableError(this.id, new Error(message));
  }
}

/** Splits entries into runs whose encoded size stays under the node's body limit (usually one run). */
function* chunksUnderBodyLimit(entries: FragmentEntry[]): Generator<FragmentEntry[]> {
  let chunk: FragmentEntry[] = [];
  let size = 4;
  for (const e of entries) {
    const n = entryWireSize(e);
    if (chunk.length > 0 && size + n > MAX_BODY_BYTES) {
      yield chunk;
      chunk = [];
      size = 4;
    }
    chunk.push(e);
    size += n;
  }
  if (chunk.length > 0) yield chunk;
}
