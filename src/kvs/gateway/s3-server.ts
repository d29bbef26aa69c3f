// The S3 front door (fastify over HTTPS). Handlers authenticate (SigV4), validate at the edge, call one
// ObjectLayer method and map its S3Error codes to S3's XML errors. No storage logic lives here.
import { createHash } from 'node:crypto';
import { freshRandom } from '../../crypto/index.js';
import { isIP } from 'node:net';
import { crc32 } from 'node:zlib';
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger, Metrics } from '../../observe/index.js';
import { decodeBatchRequest, encodeBatchResponse, encodeScanResponse, BatchCodecError } from '../client/batch-codec.js';
import type { Accounts } from './accounts.js';
import { decodeAwsChunked, ChunkedError } from './chunked.js';
import type { ObjectMeta, UploadPartRecord } from './meta-store.js';
import type { ObjectLayer } from './object-layer.js';
import {
  S3Error,
  errorXml,
  parseCompleteMultipartUpload,
  parseCreateBucketConfiguration,
  parseDeleteObjects,
  s3Error,
  xml,
  xmlDocument,
} from './s3-xml.js';
import { SigV4Error, verifyRequest } from './sigv4.js';
import { parsePolicy } from '../erasure/index.js';

export interface S3ServerOptions {
  objects: ObjectLayer;
  accounts: Accounts;
  log: Logger;
  metrics: Metrics;
  /** Without TLS only when the host is a loopback address (the caller checks and says so). */
  tls?: { cert: string; key: string };
  maxObjectSize: number;
  /** Largest body for XML requests and the batch extension. */
  maxRequestBody?: number;
}

const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const MAX_KEY_BYTES = 1024;
const MAX_META_BYTES = 2048;

type Auth = { tenant: string; accessKeyId: string; payloadHash: string; chunk?: ReturnType<typeof chunkMode>; signing?: import('./sigv4.js').ChunkSigningContext };

function chunkMode(hash: string): 'unsigned-trailer' | 'signed' | 'signed-trailer' | undefined {
  if (hash === 'STREAMING-UNSIGNED-PAYLOAD-TRAILER') return 'unsigned-trailer';
  if (hash === 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD') return 'signed';
  if (hash === 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER') return 'signed-trailer';
  return undefined;
}

function checkBucketName(name: string): void {
  if (!BUCKET_RE.test(name) || name.includes('..') || isIP(name) !== 0 || name.startsWith('xn--') || name.endsWith('-s3alias')) {
    throw s3Error('InvalidBucketName', 'The specified bucket is not valid.', { BucketName: name });
  }
}

function checkKey(key: string): void {
  if (key.length === 0) throw s3Error('InvalidArgument', 'Object key must not be empty');
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw s3Error('KeyTooLongError');
  if (key.includes('\0')) throw s3Error('InvalidArgument', 'Object key must not contain NUL');
  if (/\p{Surrogate}/u.test(key)) throw s3Error('InvalidArgument', 'Object key must be valid UTF-8');
}

let lastHttpDate = { sec: NaN, text: '' };

function httpDate(ms: number): string {
  // Objects written in the same second share the text (toUTCString is slow enough to show per request).
  const sec = Math.floor(ms / 1000);
  if (sec !== lastHttpDate.sec) lastHttpDate = { sec, text: new Date(sec * 1000).toUTCString() };
  return lastHttpDate.text;
}

function isoDate(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, '.000Z');
}

function userMetaFrom(headers: IncomingMessage['headers']): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  let size = 0;
  for (const [k, v] of Object.entries(headers)) {
    if (!k.startsWith('x-amz-meta-') || v === undefined) continue;
    const val = Array.isArray(v) ? v.join(',') : v;
    out[k.slice(11)] = val;
    size += k.length - 11 + val.length;
  }
  if (size > MAX_META_BYTES) throw s3Error('MetadataTooLarge', `Your metadata headers exceed the maximum allowed metadata size of ${MAX_META_BYTES} bytes.`);
  return Object.keys(out).length ? out : undefined;
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/** Parses `bytes=a-b`, `bytes=a-`, `bytes=-n`; undefined = whole object (absent or unparseable, as S3 does). */
function parseRange(h: string | undefined, size: number): { start: number; end: number } | undefined {
  if (!h) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(h.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) throw s3Error('InvalidRange', 'The requested range is not satisfiable', { ActualObjectSize: String(size) });
    return { start: Math.max(0, size - n), end: size };
  }
  const start = Number(m[1]);
  const last = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || (m[2] !== '' && Number(m[2]) < start)) {
    if (m[2] !== '' && Number(m[2]) < start) return undefined;
    throw s3Error('InvalidRange', 'The requested range is not satisfiable', { ActualObjectSize: String(size) });
  }
  return { start, end: last + 1 };
}

async function readAll(body: AsyncIterable<Buffer>, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += c.length;
    if (n > limit) throw s3Error('EntityTooLarge', `request body over ${limit} bytes`);
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

function metaHeaders(reply: FastifyReply, m: ObjectMeta): void {
  reply.header('etag', m.etag);
  reply.header('last-modified', httpDate(m.lastModified));
  reply.header('accept-ranges', 'bytes');
  reply.header('content-type', m.contentType ?? 'binary/octet-stream');
  if (m.storageClass !== 'STANDARD') reply.header('x-amz-storage-class', m.storageClass);
  reply.header('x-amz-server-side-encryption', 'AES256');
  if (m.userMeta) for (const [k, v] of Object.entries(m.userMeta)) reply.header(`x-amz-meta-${k}`, v);
  if (m.parts.length > 1) reply.header('x-amz-mp-parts-count', String(m.parts.length));
}

function conditional(req: FastifyRequest, m: ObjectMeta): 304 | 412 | undefined {
  const ifMatch = header(req, 'if-match');
  const ifNone = header(req, 'if-none-match');
  const ifMod = header(req, 'if-modified-since');
  const ifUnmod = header(req, 'if-unmodified-since');
  const etagIn = (list: string) => list.split(',').map((s) => s.trim()).some((e) => e === '*' || e === m.etag || `"${e}"` === m.etag);
  if (ifMatch && !etagIn(ifMatch)) return 412;
  if (!ifMatch && ifUnmod && Math.floor(m.lastModified / 1000) > Date.parse(ifUnmod) / 1000) return 412;
  if (ifNone && etagIn(ifNone)) return 304;
  if (!ifNone && ifMod && Math.floor(m.lastModified / 1000) <= Date.parse(ifMod) / 1000) return 304;
  return undefined;
}

export async function createS3Server(o: S3ServerOptions): Promise<FastifyInstance> {
  const maxBody = o.maxRequestBody ?? 64 * 1024 * 1024;
  const app = Fastify({
    ...(o.tls ? { https: { key: o.tls.key, cert: o.tls.cert } } : {}),
    logger: false,
    bodyLimit: maxBody,
    routerOptions: { maxParamLength: 2048 },
    keepAliveTimeout: 65_000,
    requestTimeout: 0,
    disableRequestLogging: true,
    return503OnClosing: true,
  }) as unknown as FastifyInstance;
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));

  const requests = o.metrics.counter('kvs_s3_requests_total', 'S3 requests by operation and status', ['op', 'status']);
  const latency = o.metrics.histogram('kvs_s3_request_seconds', 'S3 request latency by operation', ['op'], [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);

  app.get('/metrics', async (_req, reply) => {
    const { contentType, body } = await o.metrics.text();
    reply.header('content-type', contentType).send(body);
  });
  app.get('/health', async () => ({ ok: true }));

  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const started = process.hrtime.bigint();
    const requestId = freshRandom(8).toString('hex').toUpperCase();
    reply.header('x-amz-request-id', requestId);
    reply.header('server', 'securegrid');
    const raw = req.raw;
    const url = raw.url ?? '/';
    const qAt = url.indexOf('?');
    const rawPath = qAt >= 0 ? url.slice(0, qAt) : url;
    const rawQuery = qAt >= 0 ? url.slice(qAt + 1) : '';
    const query = new URLSearchParams(rawQuery);
    let op = 'Unknown';
    let bucket = '';
    let key = '';
    try {
      const pathDecoded = decodeURIComponent(rawPath);
      const slash = pathDecoded.indexOf('/', 1);
      bucket = slash < 0 ? pathDecoded.slice(1) : pathDecoded.slice(1, slash);
      key = slash < 0 ? '' : pathDecoded.slice(slash + 1);
      const auth = await authenticate(req, rawPath, rawQuery);
      op = await route(req, reply, auth, bucket, key, query, (name) => (op = name));
    } catch (err) {
      await drain(req);
      const e = toS3Error(err);
      if (e.status >= 500) o.log.error({ op, code: e.code, err: e.message }, 'request failed');
      else o.log.debug({ op, code: e.code }, 'request rejected');
      if (!reply.sent) {
        reply.code(e.status);
        if (req.method === 'HEAD') reply.send();
        else reply.header('content-type', 'application/xml').send(errorXml(e, rawPath, requestId));
      }
    } finally {
      requests.inc({ op, status: String(reply.statusCode) });
      latency.observe({ op }, Number(process.hrtime.bigint() - started) / 1e9);
    }
    // Returning the reply tells fastify the response (possibly a stream still flowing) is ours.
    return reply;
  };

  app.route({ method: ['GET', 'PUT', 'POST', 'DELETE', 'HEAD'], url: '/*', handler });
  app.route({ method: ['GET', 'PUT', 'POST', 'DELETE', 'HEAD'], url: '/', handler });

  async function drain(req: FastifyRequest): Promise<void> {
    const body = req.body as Readable | undefined;
    if (body && typeof body.resume === 'function' && !body.readableEnded) body.resume();
  }

  function toS3Error(err: unknown): S3Error {
    if (err instanceof S3Error) return err;
    if (err instanceof SigV4Error) {
      if (err.code === 'ExpiredToken') return s3Error('AccessDenied', err.message);
      return s3Error(err.code, err.message);
    }
    if (err instanceof ChunkedError) return s3Error(err.code, err.message);
    if (err instanceof BatchCodecError) return s3Error('InvalidRequest', err.message);
    const code = (err as { code?: string }).code;
    if (code === 'InvalidPolicy') return s3Error('InvalidArgument', (err as Error).message);
    if (err instanceof URIError) return s3Error('InvalidURI', 'Couldn\'t parse the specified URI.');
    return s3Error('InternalError', 'We encountered an internal error. Please try again.');
  }

  async function authenticate(req: FastifyRequest, rawPath: string, rawQuery: string): Promise<Auth> {
    const headers: Record<string, string | undefined> = Object.create(null) as Record<string, string | undefined>;
    // SigV4 joins repeated headers with ',' (Node's req.headers would join some with ', '); rawHeaders spares
    // the per-header arrays of headersDistinct.
    const rh = req.raw.rawHeaders;
    for (let i = 0; i + 1 < rh.length; i += 2) {
      const k = rh[i]!.toLowerCase();
      const prev = headers[k];
      headers[k] = prev === undefined ? rh[i + 1]! : `${prev},${rh[i + 1]!}`;
    }
    let tenant = '';
    const v = await verifyRequest({ method: req.method, rawPath, rawQuery, headers }, async (id) => {
      const found = await o.accounts.lookup(id);
      if (found) tenant = found.tenant;
      return found?.secret;
    });
    return { tenant, accessKeyId: v.accessKeyId, payloadHash: v.payloadHash, chunk: chunkMode(v.payloadHash), signing: v.chunkSigning };
  }

  /** The request body as plaintext pieces, with a check to run before the write commits. */
  function bodyOf(req: FastifyRequest, auth: Auth, limit: number): { body: AsyncIterable<Buffer>; check: (info: { md5: Buffer; size: number }) => Promise<void>; size?: number } {
    const stream = (req.body as Readable | undefined) ?? Readable.from([]);
    const contentMd5 = header(req, 'content-md5');
    let md5In: Buffer | undefined;
    if (contentMd5 !== undefined) {
      md5In = Buffer.from(contentMd5, 'base64');
      if (md5In.length !== 16) throw s3Error('InvalidDigest', 'The Content-MD5 you specified is not valid.');
    }
    const decodedLen = header(req, 'x-amz-decoded-content-length');
    const contentLen = header(req, 'content-length');
    const declared = auth.chunk ? decodedLen : contentLen;
    if (declared === undefined && !auth.chunk && header(req, 'transfer-encoding') === undefined) throw s3Error('MissingContentLength');
    if (declared !== undefined && Number(declared) > limit) {
      throw s3Error('EntityTooLarge', `Your proposed upload exceeds the maximum allowed object size of ${limit} bytes.`);
    }
    let body: AsyncIterable<Buffer> = stream;
    let trailers: Promise<Record<string, string>> | undefined;
    if (auth.chunk) {
      const d = decodeAwsChunked(stream, { mode: auth.chunk, signing: auth.signing, decodedLength: decodedLen !== undefined ? Number(decodedLen) : undefined });
      body = d.body;
      trailers = d.trailers;
      trailers.catch(() => undefined);
    }
    let sha: ReturnType<typeof createHash> | undefined;
    if (/^[0-9a-f]{64}$/.test(auth.payloadHash)) sha = createHash('sha256');
    // A CRC32 checksum sent as a header (the AWS SDK's default for Buffer bodies) is checked too.
    const crcHeader = header(req, 'x-amz-checksum-crc32');
    let crc = 0;
    if (sha || crcHeader !== undefined) {
      const src = body;
      const h = sha;
      body = (async function* () {
        for await (const c of src) {
          h?.update(c);
          if (crcHeader !== undefined) crc = crc32(c as Buffer, crc);
          yield c as Buffer;
        }
      })();
    }
    const announced = header(req, 'x-amz-trailer')?.toLowerCase();
    const check = async (info: { md5: Buffer; size: number }) => {
      if (trailers) {
        const got = await trailers;
        if (announced && got[announced] === undefined) {
          throw s3Error('IncompleteBody', `the trailer ${announced} announced in x-amz-trailer did not arrive`);
        }
      }
      if (crcHeader !== undefined) {
        const want = Buffer.alloc(4);
        want.writeUInt32BE(crc >>> 0, 0);
        if (want.toString('base64') !== crcHeader) throw s3Error('BadDigest', 'The CRC32 you specified did not match the calculated checksum.');
      }
      if (sha && sha.digest('hex') !== auth.payloadHash) {
        throw s3Error('XAmzContentSHA256Mismatch', 'The provided \'x-amz-content-sha256\' header does not match what was computed.');
      }
      if (md5In && !md5In.equals(info.md5)) throw s3Error('BadDigest', 'The Content-MD5 you specified did not match what we received.');
      if (declared !== undefined && Number(declared) !== info.size) throw s3Error('IncompleteBody', 'You did not provide the number of bytes specified by the Content-Length HTTP header.');
    };
    const size = declared !== undefined && /^\d{1,15}$/.test(declared) ? Number(declared) : undefined;
    return { body, check, size };
  }

  async function smallBody(req: FastifyRequest, auth: Auth): Promise<Buffer> {
    const { body, check } = bodyOf(req, auth, maxBody);
    const buf = await readAll(body, maxBody);
    await check({ md5: createHash('md5').update(buf).digest(), size: buf.length });
    return buf;
  }

  function sendXml(reply: FastifyReply, doc: string, status = 200): void {
    reply.code(status).header('content-type', 'application/xml').send(doc);
  }

  async function route(
    req: FastifyRequest,
    reply: FastifyReply,
    auth: Auth,
    bucket: string,
    key: string,
    q: URLSearchParams,
    setOp: (op: string) => void,
  ): Promise<string> {
    const objects = o.objects;
    const t = auth.tenant;
    const m = req.method;
    if (!bucket) {
      if (m !== 'GET') throw s3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.');
      setOp('ListBuckets');
      const buckets = objects.listBuckets(t);
      sendXml(
        reply,
        xmlDocument('ListAllMyBucketsResult', [
          xml('Owner', [xml('ID', t), xml('DisplayName', t)]),
          xml('Buckets', buckets.map((b) => xml('Bucket', [xml('Name', b.name), xml('CreationDate', isoDate(b.created))]))),
        ], true),
      );
      return 'ListBuckets';
    }
    const unsupported = ['acl', 'policy', 'tagging', 'cors', 'lifecycle', 'website', 'replication', 'encryption', 'object-lock', 'notification', 'logging', 'retention', 'legal-hold', 'torrent', 'restore', 'select', 'attributes', 'accelerate', 'requestPayment', 'analytics', 'inventory', 'metrics', 'ownershipControls', 'publicAccessBlock', 'intelligent-tiering', 'versions'];
    if (q.size > 0) for (const s of unsupported) if (q.has(s)) throw s3Error('NotImplemented', `securegrid does not implement the ?${s} subresource`);

    if (!key) {
      // Bucket operations.
      if (m === 'PUT') {
        setOp('CreateBucket');
        checkBucketName(bucket);
        const body = await smallBody(req, auth);
        parseCreateBucketConfiguration(body.toString('utf8'));
        const pol = header(req, 'x-securegrid-policy');
        await objects.createBucket(t, bucket, pol ? parsePolicy(pol) : undefined);
        reply.header('location', `/${bucket}`).code(200).send();
        return 'CreateBucket';
      }
      if (m === 'DELETE') {
        setOp('DeleteBucket');
        await objects.deleteBucket(t, bucket);
        reply.code(204).send();
        return 'DeleteBucket';
      }
      if (m === 'HEAD') {
        setOp('HeadBucket');
        objects.bucket(t, bucket);
        reply.header('x-amz-bucket-region', 'us-east-1').code(200).send();
        return 'HeadBucket';
      }
      if (m === 'POST' && q.has('delete')) {
        setOp('DeleteObjects');
        const body = await smallBody(req, auth);
        const { quiet, keys } = parseDeleteObjects(body.toString('utf8'));
        if (keys.length > 1000) throw s3Error('MalformedXML', 'You can delete at most 1000 objects in one request');
        objects.bucket(t, bucket);
        const errors: string[] = [];
        const good: string[] = [];
        for (const k of keys) {
          try {
            checkKey(k.key);
            good.push(k.key);
          } catch (err) {
            const e = toS3Error(err);
            errors.push(xml('Error', [xml('Key', k.key), xml('Code', e.code), xml('Message', e.message)]));
          }
        }
        await objects.deleteObjects(t, bucket, good);
        sendXml(reply, xmlDocument('DeleteResult', [...(quiet ? [] : good.map((k) => xml('Deleted', [xml('Key', k)]))), ...errors], true));
        return 'DeleteObjects';
      }
      if (m === 'POST' && q.has('sg-batch')) {
        setOp('Batch');
        const body = await smallBody(req, auth);
        const ops = decodeBatchRequest(body);
        for (const op of ops) checkKey(op.key);
        const results = await objects.batch(t, bucket, ops);
        reply.code(200).header('content-type', 'application/octet-stream').send(encodeBatchResponse(results));
        return 'Batch';
      }
      if (m !== 'GET') throw s3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.');
      if (q.has('sg-scan')) {
        setOp('Scan');
        const limit = Number(q.get('limit') ?? '512');
        if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw s3Error('InvalidArgument', 'limit must be an integer from 1 to 10000');
        const entries = await objects.scanValues(t, bucket, q.get('start') ?? '', q.get('end') ?? undefined, limit);
        reply.code(200).header('content-type', 'application/octet-stream').send(encodeScanResponse(entries));
        return 'Scan';
      }
      if (q.has('location')) {
        setOp('GetBucketLocation');
        objects.bucket(t, bucket);
        sendXml(reply, xmlDocument('LocationConstraint', [], true));
        return 'GetBucketLocation';
      }
      if (q.has('versioning')) {
        setOp('GetBucketVersioning');
        objects.bucket(t, bucket);
        sendXml(reply, xmlDocument('VersioningConfiguration', [], true));
        return 'GetBucketVersioning';
      }
      if (q.has('uploads')) {
        setOp('ListMultipartUploads');
        const ups = objects.listUploads(t, bucket);
        sendXml(
          reply,
          xmlDocument('ListMultipartUploadsResult', [
            xml('Bucket', bucket),
            xml('KeyMarker', ''),
            xml('UploadIdMarker', ''),
            xml('MaxUploads', 1000),
            xml('IsTruncated', false),
            ...ups.map((u) => xml('Upload', [xml('Key', u.key), xml('UploadId', u.uploadId), xml('Initiated', isoDate(u.initiated)), xml('StorageClass', u.storageClass)])),
          ], true),
        );
        return 'ListMultipartUploads';
      }
      return listObjects(reply, t, bucket, q, setOp);
    }

    // Object operations.
    checkKey(key);
    if (m === 'PUT' && q.has('partNumber') && q.has('uploadId')) {
      setOp('UploadPart');
      if (header(req, 'x-amz-copy-source')) throw s3Error('NotImplemented', 'UploadPartCopy is not implemented; upload the part\'s bytes instead');
      const partNumber = Number(q.get('partNumber'));
      const { body, check } = bodyOf(req, auth, o.maxObjectSize);
      const rec: UploadPartRecord = await objects.uploadPart(t, bucket, key, q.get('uploadId')!, partNumber, body, check);
      reply.header('etag', rec.etag).code(200).send();
      return 'UploadPart';
    }
    if (m === 'PUT' && header(req, 'x-amz-copy-source')) {
      setOp('CopyObject');
      const srcRaw = header(req, 'x-amz-copy-source')!;
      const src = decodeURIComponent(srcRaw.split('?')[0]!).replace(/^\//, '');
      const at = src.indexOf('/');
      if (at <= 0) throw s3Error('InvalidArgument', 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey');
      const srcBucket = src.slice(0, at);
      const srcKey = src.slice(at + 1);
      checkKey(srcKey);
      await drain(req);
      const srcMeta = objects.head(t, srcBucket, srcKey);
      const im = header(req, 'x-amz-copy-source-if-match');
      if (im && im.replace(/"/g, '') !== srcMeta.etag.replace(/"/g, '')) throw s3Error('PreconditionFailed');
      const directive = (header(req, 'x-amz-metadata-directive') ?? 'COPY').toUpperCase();
      if (directive !== 'COPY' && directive !== 'REPLACE') throw s3Error('InvalidArgument', 'Unknown metadata directive.');
      const result = await objects.copyObject(
        t,
        { bucket: srcBucket, key: srcKey },
        { bucket, key },
        {
          storageClass: header(req, 'x-amz-storage-class'),
          replaceMeta: directive === 'REPLACE' ? { contentType: header(req, 'content-type'), userMeta: userMetaFrom(req.headers) } : undefined,
        },
      );
      sendXml(reply, xmlDocument('CopyObjectResult', [xml('LastModified', isoDate(result.lastModified)), xml('ETag', result.etag)], true));
      return 'CopyObject';
    }
    if (m === 'PUT') {
      setOp('PutObject');
      const userMeta = userMetaFrom(req.headers);
      const { body, check, size } = bodyOf(req, auth, o.maxObjectSize);
      const meta = await objects.putObject(t, bucket, key, body, {
        storageClass: header(req, 'x-amz-storage-class'),
        contentType: header(req, 'content-type'),
        userMeta,
        beforeCommit: check,
        size,
      });
      reply.header('etag', meta.etag).header('x-amz-server-side-encryption', 'AES256').code(200).send();
      return 'PutObject';
    }
    if (m === 'POST' && q.has('uploads')) {
      setOp('CreateMultipartUpload');
      await drain(req);
      const uploadId = await objects.createUpload(t, bucket, key, {
        storageClass: header(req, 'x-amz-storage-class'),
        contentType: header(req, 'content-type'),
        userMeta: userMetaFrom(req.headers),
      });
      sendXml(reply, xmlDocument('InitiateMultipartUploadResult', [xml('Bucket', bucket), xml('Key', key), xml('UploadId', uploadId)], true));
      return 'CreateMultipartUpload';
    }
    if (m === 'POST' && q.has('uploadId')) {
      setOp('CompleteMultipartUpload');
      const body = await smallBody(req, auth);
      const parts = parseCompleteMultipartUpload(body.toString('utf8'));
      const meta = await objects.completeUpload(t, bucket, key, q.get('uploadId')!, parts);
      sendXml(reply, xmlDocument('CompleteMultipartUploadResult', [xml('Location', `/${bucket}/${key}`), xml('Bucket', bucket), xml('Key', key), xml('ETag', meta.etag)], true));
      return 'CompleteMultipartUpload';
    }
    if (m === 'DELETE' && q.has('uploadId')) {
      setOp('AbortMultipartUpload');
      await objects.abortUpload(t, bucket, key, q.get('uploadId')!);
      reply.code(204).send();
      return 'AbortMultipartUpload';
    }
    if (m === 'DELETE') {
      setOp('DeleteObject');
      await objects.deleteObject(t, bucket, key);
      reply.code(204).send();
      return 'DeleteObject';
    }
    if (m === 'GET' && q.has('uploadId')) {
      setOp('ListParts');
      const maxParts = q.has('max-parts') ? Number(q.get('max-parts')) : 1000;
      const marker = q.has('part-number-marker') ? Number(q.get('part-number-marker')) : 0;
      if (!Number.isInteger(maxParts) || maxParts < 0 || !Number.isInteger(marker) || marker < 0) throw s3Error('InvalidArgument', 'max-parts and part-number-marker must be non-negative integers');
      const { upload, parts, isTruncated } = objects.listParts(t, bucket, key, q.get('uploadId')!, { marker, maxParts });
      sendXml(
        reply,
        xmlDocument('ListPartsResult', [
          xml('Bucket', bucket),
          xml('Key', key),
          xml('UploadId', upload.uploadId),
          xml('PartNumberMarker', marker),
          xml('NextPartNumberMarker', parts.length ? parts[parts.length - 1]!.partNumber : marker),
          xml('MaxParts', maxParts),
          xml('IsTruncated', isTruncated),
          xml('StorageClass', upload.storageClass),
          ...parts.map((p) => xml('Part', [xml('PartNumber', p.partNumber), xml('LastModified', isoDate(p.lastModified)), xml('ETag', p.etag), xml('Size', p.layout.size)])),
        ], true),
      );
      return 'ListParts';
    }
    if (m === 'GET' || m === 'HEAD') {
      setOp(m === 'GET' ? 'GetObject' : 'HeadObject');
      const meta = objects.head(t, bucket, key);
      const cond = conditional(req, meta);
      if (cond === 412) throw s3Error('PreconditionFailed');
      metaHeaders(reply, meta);
      if (cond === 304) {
        reply.code(304).send();
        return m === 'GET' ? 'GetObject' : 'HeadObject';
      }
      const range = parseRange(header(req, 'range'), meta.size);
      const start = range?.start ?? 0;
      const end = range?.end ?? meta.size;
      reply.header('content-length', String(end - start));
      if (range) reply.header('content-range', `bytes ${start}-${end - 1}/${meta.size}`);
      reply.code(range ? 206 : 200);
      if (m === 'HEAD' || end === start) {
        reply.send();
        return m === 'GET' ? 'GetObject' : 'HeadObject';
      }
      // Read the first piece before answering, so that an unreadable object gets a proper error.
      const it = objects.read(meta, start, end)[Symbol.asyncIterator]();
      const first = await it.next();
      if (!first.done && first.value.length === end - start) {
        // The whole answer in one piece (objects of up to one stripe): one write, no stream machinery.
        void it.return?.(undefined);
        reply.send(first.value);
        return 'GetObject';
      }
      const stream = Readable.from(
        (async function* () {
          if (!first.done) yield first.value;
          while (true) {
            const n = await it.next();
            if (n.done) return;
            yield n.value;
          }
        })(),
        { objectMode: false },
      );
      stream.on('error', (err) => {
        o.log.error({ op: 'GetObject', err: err.message }, 'object read failed mid-stream; connection aborted');
        req.raw.socket.destroy();
      });
      reply.send(stream);
      return 'GetObject';
    }
    throw s3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.');
  }

  function listObjects(reply: FastifyReply, t: string, bucket: string, q: URLSearchParams, setOp: (op: string) => void): string {
    const v2 = q.get('list-type') === '2';
    setOp(v2 ? 'ListObjectsV2' : 'ListObjects');
    const prefix = q.get('prefix') ?? '';
    const delimiter = q.get('delimiter') || undefined;
    const maxKeysRaw = q.get('max-keys');
    const maxKeys = maxKeysRaw === null ? 1000 : Number(maxKeysRaw);
    if (!Number.isInteger(maxKeys) || maxKeys < 0) throw s3Error('InvalidArgument', 'max-keys must be a non-negative integer');
    const encode = q.get('encoding-type') === 'url';
    const enc = (s: string) => (encode ? encodeURIComponent(s).replace(/%2F/g, '/') : s);
    let startAfter: string | undefined;
    let afterPrefix: string | undefined;
    const token = q.get('continuation-token');
    if (v2 && token !== null) {
      try {
        const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { a: string; p?: boolean };
        if (typeof parsed.a !== 'string') throw new Error('bad token');
        if (parsed.p) afterPrefix = parsed.a;
        else startAfter = parsed.a;
      } catch {
        throw s3Error('InvalidArgument', 'The continuation token provided is incorrect');
      }
    } else if (v2) {
      startAfter = q.get('start-after') ?? undefined;
    } else {
      const marker = q.get('marker') ?? undefined;
      if (marker !== undefined && delimiter && marker.endsWith(delimiter)) afterPrefix = marker;
      else startAfter = marker;
    }
    const res = o.objects.list(t, bucket, { prefix, delimiter, startAfter, afterPrefix, maxKeys });
    const contents = res.contents.map((c) =>
      xml('Contents', [
        xml('Key', enc(c.key)),
        xml('LastModified', isoDate(c.lastModified)),
        xml('ETag', c.etag),
        xml('Size', c.size),
        xml('StorageClass', c.storageClass),
        ...(v2 && q.get('fetch-owner') !== 'true' ? [] : [xml('Owner', [xml('ID', t), xml('DisplayName', t)])]),
      ]),
    );
    const prefixes = res.commonPrefixes.map((p) => xml('CommonPrefixes', [xml('Prefix', enc(p))]));
    const common = [xml('Name', bucket), xml('Prefix', enc(prefix)), ...(delimiter ? [xml('Delimiter', enc(delimiter))] : []), xml('MaxKeys', maxKeys), ...(encode ? [xml('EncodingType', 'url')] : []), xml('IsTruncated', res.isTruncated)];
    if (v2) {
      const next = res.isTruncated && res.nextAfter !== undefined ? Buffer.from(JSON.stringify({ a: res.nextAfter, p: res.nextIsPrefix })).toString('base64url') : undefined;
      sendXml(
        reply,
        xmlDocument('ListBucketResult', [
          ...common,
          xml('KeyCount', res.contents.length + res.commonPrefixes.length),
          ...(token !== null ? [xml('ContinuationToken', token)] : []),
          ...(next ? [xml('NextContinuationToken', next)] : []),
          ...(q.get('start-after') !== null ? [xml('StartAfter', enc(q.get('start-after')!))] : []),
          ...contents,
          ...prefixes,
        ], true),
      );
      return 'ListObjectsV2';
    }
    sendXml(
      reply,
      xmlDocument('ListBucketResult', [
        ...common,
        xml('Marker', enc(q.get('marker') ?? '')),
        ...(res.isTruncated && delimiter && res.nextAfter !== undefined ? [xml('NextMarker', enc(res.nextAfter))] : []),
        ...contents,
        ...prefixes,
      ], true),
    );
    return 'ListObjects';
  }

  return app;
}
