// A typed client for securegrid's own services (CascaDB, ingest, the demo): SigV4-signed HTTPS to the gateway,
// keep-alive, and the batch extension. Any S3 client works against the gateway too; this one is small and fast.
import { createHash } from 'node:crypto';
import { Pool } from 'undici';
import { XMLParser } from 'fast-xml-parser';
import { signRequest } from '../gateway/sigv4.js';
import { decodeBatchResponse, decodeScanResponse, encodeBatchRequest, type WireOp, type WireResult } from './batch-codec.js';
import { fromName, toName, type KvEntry, type KvStore, type KvWrite } from './kv-store.js';

export { encodeBatchRequest, decodeBatchRequest, encodeBatchResponse, decodeBatchResponse, MAX_BATCH_OPS } from './batch-codec.js';
export { encodeScanResponse, decodeScanResponse } from './batch-codec.js';
export type { WireOp, WireResult } from './batch-codec.js';
export { toName, fromName } from './kv-store.js';
export type { KvStore, KvWrite, KvEntry } from './kv-store.js';

export interface KvsClientOptions {
  url: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** PEM of the gateway's certificate (or its CA) to trust; needed for the self-signed default. */
  ca?: string;
  connections?: number;
}

export class KvsError extends Error {
  constructor(readonly code: string, message: string, readonly status: number) {
    super(message);
  }
}

const parser = new XMLParser({ ignoreAttributes: true, parseTagValue: false, processEntities: true, isArray: (name) => name === 'Contents' || name === 'CommonPrefixes' || name === 'Bucket' });

function encodeKey(key: string): string {
  return key.split('/').map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)).join('/');
}

export class KvsClient {
  private readonly pool: Pool;
  private readonly base: URL;

  constructor(private readonly o: KvsClientOptions) {
    this.base = new URL(o.url);
    this.pool = new Pool(this.base.origin, {
      connections: o.connections ?? 16,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connect: o.ca ? { ca: o.ca, servername: this.base.hostname === '127.0.0.1' ? undefined : this.base.hostname } : {},
    });
  }

  private async request(method: string, path: string, query: string, body?: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
    const url = new URL(this.base.origin + path + (query ? `?${query}` : ''));
    // Over TLS, large bodies go as UNSIGNED-PAYLOAD (as the AWS SDKs do for streams): TLS protects them in transit.
    const payloadHash = body && body.length > 64 * 1024 && url.protocol === 'https:' ? 'UNSIGNED-PAYLOAD' : createHash('sha256').update(body ?? Buffer.alloc(0)).digest('hex');
    const all: Record<string, string> = { host: url.host, ...headers };
    if (body) all['content-length'] = String(body.length);
    const signed = signRequest({ method, url, headers: all, payloadHash, accessKeyId: this.o.accessKeyId, secretAccessKey: this.o.secretAccessKey });
    const res = await this.pool.request({ method: method as 'GET', path: url.pathname + url.search, headers: { ...all, ...signed }, body });
    const buf = Buffer.from(await res.body.arrayBuffer());
    if (res.statusCode >= 300) {
      let code = `HTTP${res.statusCode}`;
      let message = buf.toString('utf8').slice(0, 300);
      try {
        const e = parser.parse(buf.toString('utf8')).Error;
        if (e?.Code) {
          code = e.Code;
          message = e.Message ?? code;
        }
      } catch {
        // not XML: keep the raw text
      }
      throw new KvsError(code, message, res.statusCode);
    }
    return { status: res.statusCode, headers: res.headers, body: buf };
  }

  async createBucket(bucket: string, opts: { policy?: string } = {}): Promise<void> {
    try {
      await this.request('PUT', `/${bucket}`, '', undefined, opts.policy ? { 'x-securegrid-policy': opts.policy } : {});
    } catch (err) {
      if (!(err instanceof KvsError && err.code === 'BucketAlreadyOwnedByYou')) throw err;
    }
  }

  async put(bucket: string, key: string, value: Buffer, opts: { storageClass?: string; contentType?: string } = {}): Promise<{ etag: string }> {
    const h: Record<string, string> = {};
    if (opts.storageClass) h['x-amz-storage-class'] = opts.storageClass;
    if (opts.contentType) h['content-type'] = opts.contentType;
    const r = await this.request('PUT', `/${bucket}/${encodeKey(key)}`, '', value, h);
    return { etag: String(r.headers.etag ?? '') };
  }

  async get(bucket: string, key: string, range?: { start: number; end: number }): Promise<Buffer | undefined> {
    try {
      const r = await this.request('GET', `/${bucket}/${encodeKey(key)}`, '', undefined, range ? { range: `bytes=${range.start}-${range.end - 1}` } : {});
      return r.body;
    } catch (err) {
      if (err instanceof KvsError && err.code === 'NoSuchKey') return undefined;
      throw err;
    }
  }

  async delete(bucket: string, key: string): Promise<void> {
    await this.request('DELETE', `/${bucket}/${encodeKey(key)}`, '');
  }

  /** One page of keys in byte order. */
  async list(bucket: string, opts: { prefix?: string; startAfter?: string; maxKeys?: number; continuationToken?: string } = {}): Promise<{ keys: Array<{ key: string; size: number; storageClass: string }>; next?: string }> {
    const q = new URLSearchParams({ 'list-type': '2' });
    if (opts.prefix) q.set('prefix', opts.prefix);
    if (opts.startAfter) q.set('start-after', opts.startAfter);
    if (opts.maxKeys !== undefined) q.set('max-keys', String(opts.maxKeys));
    if (opts.continuationToken) q.set('continuation-token', opts.continuationToken);
    const r = await this.request('GET', `/${bucket}`, q.toString().replace(/\+/g, '%20'));
    const doc = parser.parse(r.body.toString('utf8')).ListBucketResult;
    const keys = (doc.Contents ?? []).map((c: { Key: string; Size: string; StorageClass: string }) => ({ key: String(c.Key), size: Number(c.Size), storageClass: String(c.StorageClass) }));
    return { keys, next: doc.IsTruncated === 'true' ? doc.NextContinuationToken : undefined };
  }

  /** Many puts, gets and deletes in one signed request; puts and deletes become visible together. */
  async batch(bucket: string, ops: WireOp[]): Promise<WireResult[]> {
    const r = await this.request('POST', `/${bucket}`, 'sg-batch=', encodeBatchRequest(ops), { 'content-type': 'application/octet-stream' });
    return decodeBatchResponse(r.body);
  }

  /** Up to `limit` entries with start ≤ key < end (end '' = to the end of the bucket), in byte order. */
  async scan(bucket: string, start: string, end: string | undefined, limit: number): Promise<Array<{ key: string; value: Buffer }>> {
    const q = new URLSearchParams({ 'sg-scan': '', start, limit: String(limit) });
    if (end !== undefined) q.set('end', end);
    const r = await this.request('GET', `/${bucket}`, q.toString().replace(/\+/g, '%20'));
    return decodeScanResponse(r.body);
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

/** KvStore over HTTPS: several processes (CascaDB instances) can share one KVS this way. */
export class RemoteKvStore implements KvStore {
  constructor(private readonly client: KvsClient, private readonly bucket: string) {}

  async get(key: Buffer): Promise<Buffer | undefined> {
    return (await this.getMany([key]))[0];
  }

  async getMany(keys: Buffer[]): Promise<(Buffer | undefined)[]> {
    if (keys.length === 0) return [];
    const res = await this.client.batch(this.bucket, keys.map((k) => ({ op: 'get' as const, key: toName(k) })));
    return res.map((r) => {
      if (r.ok) return r.value ?? Buffer.alloc(0);
      if (r.code === 'NoSuchKey') return undefined;
      throw new KvsError(r.code, r.message, 500);
    });
  }

  async write(ops: KvWrite[]): Promise<void> {
    if (ops.length === 0) return;
    const res = await this.client.batch(
      this.bucket,
      ops.map((o) => (o.op === 'put' ? { op: 'put' as const, key: toName(o.key), value: o.value } : { op: 'delete' as const, key: toName(o.key) })),
    );
    const bad = res.find((r) => !r.ok);
    if (bad && !bad.ok) throw new KvsError(bad.code, bad.message, 500);
  }

  async *scan(start: Buffer, end?: Buffer, opts: { pageSize?: number } = {}): AsyncGenerator<KvEntry> {
    const page = opts.pageSize ?? 512;
    let from = toName(start);
    const to = end ? toName(end) : undefined;
    while (true) {
      const got = await this.client.scan(this.bucket, from, to, page);
      for (const e of got) yield { key: fromName(e.key), value: e.value };
      if (got.length < page) return;
      from = `${got[got.length - 1]!.key}\0`;
    }
  }

  async close(): Promise<void> {}
}
