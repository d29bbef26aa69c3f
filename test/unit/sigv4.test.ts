import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import fc from 'fast-check';
import { SignatureV4 } from '@smithy/signature-v4';
import { S3Client, GetObjectCommand, PutObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import {
  EMPTY_SHA256,
  SigV4Error,
  type SignedRequest,
  canonicalQuery,
  canonicalUri,
  deriveSigningKey,
  presignUrl,
  signRequest,
  uriEncode,
  verifyRequest,
} from '../../src/kvs/gateway/sigv4.js';

const AKID = 'AKIAIOSFODNN7EXAMPLE';
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const DOC_NOW = new Date('2013-05-24T00:00:00Z');
const lookup = async (id: string): Promise<string | undefined> => (id === AKID ? SECRET : undefined);

function toKey(secret: string | ArrayBuffer | ArrayBufferView): string | Uint8Array {
  if (typeof secret === 'string') return secret;
  if (secret instanceof ArrayBuffer) return new Uint8Array(secret);
  return new Uint8Array(secret.buffer, secret.byteOffset, secret.byteLength);
}

/** node:crypto-backed Checksum for @smithy/signature-v4. */
class Sha256 {
  private h;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', toKey(secret));
  }
  update(data: Uint8Array): void {
    this.h.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.h.digest());
  }
  reset(): void {}
}

/** What the S3 SDK does to a key: every segment through encodeURIComponent, plus !'()*. */
function sdkEncodePath(path: string): string {
  return path
    .split('/')
    .map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))
    .join('/');
}

function wireQuery(query: Record<string, string | string[]>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(query)) {
    for (const one of Array.isArray(v) ? v : [v]) parts.push(`${uriEncode(k)}=${uriEncode(one)}`);
  }
  return parts.join('&');
}

async function expectCode(p: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof SigV4Error, `expected SigV4Error, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

function smithySigner(secret = SECRET, region = 'us-east-1'): SignatureV4 {
  return new SignatureV4({
    service: 's3',
    region,
    credentials: { accessKeyId: AKID, secretAccessKey: secret },
    sha256: Sha256,
    uriEscapePath: false, // S3: the path is already encoded, not double-encoded
  });
}

interface Spec {
  method: string;
  key: string; // decoded path, e.g. '/bucket/a b'
  query?: Record<string, string | string[]>;
  headers?: Record<string, string>;
  payloadHash?: string;
}

const NOW = new Date('2026-03-01T12:00:00Z');
const HOST = 'gateway.example:9000';

/** Signs with @smithy/signature-v4 and returns the request as the gateway would see it. */
async function smithySign(spec: Spec, opts: { secret?: string; rawPath?: string } = {}): Promise<SignedRequest> {
  const rawPath = opts.rawPath ?? sdkEncodePath(spec.key);
  const headers: Record<string, string> = {
    host: HOST,
    'x-amz-content-sha256': spec.payloadHash ?? EMPTY_SHA256,
    ...spec.headers,
  };
  const signed = await smithySigner(opts.secret).sign(
    { method: spec.method, protocol: 'http:', hostname: 'gateway.example', port: 9000, path: rawPath, query: spec.query ?? {}, headers },
    { signingDate: NOW },
  );
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(signed.headers as Record<string, string>)) out[k.toLowerCase()] = v;
  return { method: spec.method, rawPath, rawQuery: wireQuery(spec.query ?? {}), headers: out };
}

describe('AWS documentation examples (AKIAIOSFODNN7EXAMPLE, 20130524)', () => {
  const host = 'examplebucket.s3.amazonaws.com';

  test('GET Object with Range → f0e8bdb8…', async () => {
    const req: SignedRequest = {
      method: 'GET',
      rawPath: '/test.txt',
      rawQuery: '',
      headers: {
        host,
        range: 'bytes=0-9',
        'x-amz-content-sha256': EMPTY_SHA256,
        'x-amz-date': '20130524T000000Z',
        authorization:
          'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
      },
    };
    const auth = await verifyRequest(req, lookup, DOC_NOW);
    assert.deepEqual(auth, { accessKeyId: AKID, payloadHash: EMPTY_SHA256, presigned: false });
    // and our signer produces the same signature
    const h = signRequest({
      method: 'GET',
      url: new URL(`https://${host}/test.txt`),
      headers: { Range: 'bytes=0-9' },
      payloadHash: EMPTY_SHA256,
      accessKeyId: AKID,
      secretAccessKey: SECRET,
      now: DOC_NOW,
    });
    assert.match(h.authorization!, /SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41$/);
    assert.equal(h['x-amz-date'], '20130524T000000Z');
  });

  test('PUT Object test$file.text (Date and x-amz-date, storage class) → 98ad7217…', async () => {
    const body = 'Welcome to Amazon S3.';
    const hash = createHash('sha256').update(body).digest('hex');
    assert.equal(hash, '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072');
    const req: SignedRequest = {
      method: 'PUT',
      rawPath: '/test%24file.text',
      rawQuery: '',
      headers: {
        host,
        date: 'Fri, 24 May 2013 00:00:00 GMT',
        'x-amz-date': '20130524T000000Z',
        'x-amz-storage-class': 'REDUCED_REDUNDANCY',
        'x-amz-content-sha256': hash,
        authorization:
          'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd',
      },
    };
    const auth = await verifyRequest(req, lookup, DOC_NOW);
    assert.equal(auth.payloadHash, hash);
    // the '$' sent unencoded normalises to the same canonical URI
    await verifyRequest({ ...req, rawPath: '/test$file.text' }, lookup, DOC_NOW);
  });

  test('GET Bucket lifecycle (?lifecycle) → fea454ca…', async () => {
    await verifyRequest(
      {
        method: 'GET',
        rawPath: '/',
        rawQuery: 'lifecycle',
        headers: {
          host,
          'x-amz-date': '20130524T000000Z',
          'x-amz-content-sha256': EMPTY_SHA256,
          authorization:
            'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543',
        },
      },
      lookup,
      DOC_NOW,
    );
  });

  test('GET Bucket (list objects, ?max-keys=2&prefix=J) → 34b48302…', async () => {
    const req: SignedRequest = {
      method: 'GET',
      rawPath: '/',
      rawQuery: 'max-keys=2&prefix=J',
      headers: {
        host,
        'x-amz-date': '20130524T000000Z',
        'x-amz-content-sha256': EMPTY_SHA256,
        authorization:
          'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7',
      },
    };
    await verifyRequest(req, lookup, DOC_NOW);
    // parameter order on the wire does not matter
    await verifyRequest({ ...req, rawQuery: 'prefix=J&max-keys=2' }, lookup, DOC_NOW);
  });

  test('presigned GET test.txt, 86400 s → aeeed9bb…', async () => {
    const rawQuery =
      'X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404';
    const req: SignedRequest = { method: 'GET', rawPath: '/test.txt', rawQuery, headers: { host } };
    const auth = await verifyRequest(req, lookup, new Date('2013-05-24T12:00:00Z'));
    assert.deepEqual(auth, { accessKeyId: AKID, payloadHash: 'UNSIGNED-PAYLOAD', presigned: true });
    const url = presignUrl({ method: 'GET', url: new URL(`https://${host}/test.txt`), accessKeyId: AKID, secretAccessKey: SECRET, expiresIn: 86400, now: DOC_NOW });
    assert.equal(url.href, `https://${host}/test.txt?${rawQuery}`);
    await expectCode(verifyRequest(req, lookup, new Date('2013-05-25T00:00:01Z')), 'AccessDenied', /^Request has expired$/);
    await verifyRequest(req, lookup, new Date('2013-05-25T00:00:00Z')); // the last valid second
  });

  test('chunked upload seed signature → 4f232c43…, with chunkSigning context', async () => {
    const req: SignedRequest = {
      method: 'PUT',
      rawPath: '/examplebucket/chunkObject.txt',
      rawQuery: '',
      headers: {
        host: 's3.amazonaws.com',
        'x-amz-date': '20130524T000000Z',
        'x-amz-storage-class': 'REDUCED_REDUNDANCY',
        'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
        'content-encoding': 'aws-chunked',
        'x-amz-decoded-content-length': '66560',
        'content-length': '66824',
        authorization:
          'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9',
      },
    };
    const auth = await verifyRequest(req, lookup, DOC_NOW);
    assert.equal(auth.payloadHash, 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD');
    assert.ok(auth.chunkSigning);
    assert.equal(auth.chunkSigning.seedSignature, '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9');
    assert.equal(auth.chunkSigning.amzDate, '20130524T000000Z');
    assert.equal(auth.chunkSigning.scope, '20130524/us-east-1/s3/aws4_request');
    assert.deepEqual(auth.chunkSigning.signingKey, deriveSigningKey(SECRET, '20130524', 'us-east-1'));
  });
});

describe('canonical forms', () => {
  test('canonical URI: decode and re-encode each segment, no double encoding', () => {
    assert.equal(canonicalUri(''), '/');
    assert.equal(canonicalUri('/'), '/');
    assert.equal(canonicalUri('/b/a b'), '/b/a%20b');
    assert.equal(canonicalUri('/b/a%20b'), '/b/a%20b');
    assert.equal(canonicalUri('/b/%7Etilde~'), '/b/~tilde~');
    assert.equal(canonicalUri('/b/a+b=c'), '/b/a%2Bb%3Dc');
    assert.equal(canonicalUri('/b/%c3%bc/ü'), '/b/%C3%BC/%C3%BC');
    assert.equal(canonicalUri('/b/a%2Fb'), '/b/a%2Fb'); // an encoded slash stays inside its segment
    assert.equal(canonicalUri('/b//x/./../'), '/b//x/./../'); // S3: no dot-segment or slash normalisation
    assert.equal(canonicalUri('/b/100%'), '/b/100%25');
  });

  test('canonical query: sorted by encoded name then value, empty values, signature excluded', () => {
    assert.equal(canonicalQuery(''), '');
    assert.equal(canonicalQuery('uploads'), 'uploads=');
    assert.equal(canonicalQuery('b=2&a=&a=1&c'), 'a=&a=1&b=2&c=');
    assert.equal(canonicalQuery('prefix=a%20b&x=%7e*'), 'prefix=a%20b&x=~%2A');
    assert.equal(canonicalQuery('X-Amz-Signature=abc&a=1', 'X-Amz-Signature'), 'a=1');
    // 'Z' (0x5A) sorts before 'a' (0x61): byte order, not locale order
    assert.equal(canonicalQuery('a=1&Z=2'), 'Z=2&a=1');
  });

  test('signing keys are cached per (secret, date, region)', () => {
    const a = deriveSigningKey(SECRET, '20260301', 'us-east-1');
    assert.equal(deriveSigningKey(SECRET, '20260301', 'us-east-1'), a);
    assert.notDeepEqual(deriveSigningKey(SECRET, '20260302', 'us-east-1'), a);
    assert.notDeepEqual(deriveSigningKey(SECRET, '20260301', 'eu-west-1'), a);
    assert.notDeepEqual(deriveSigningKey(`${SECRET}x`, '20260301', 'us-east-1'), a);
  });
});

describe('round trips with @smithy/signature-v4', () => {
  const keys = [
    '/bucket/plain.txt',
    '/bucket/with space/and  two',
    '/bucket/ünïcödé/日本語/🙂',
    '/bucket/a+b=c&d',
    '/bucket/~tilde*star!bang',
    "/bucket/(parens)'quote'",
    '/bucket/%percent%25',
    '/bucket/trailing/',
    '/bucket',
    '/',
  ];
  for (const key of keys) {
    test(`header form verifies: ${key}`, async () => {
      const req = await smithySign({ method: 'PUT', key, payloadHash: createHash('sha256').update('x').digest('hex') });
      const auth = await verifyRequest(req, lookup, NOW);
      assert.equal(auth.accessKeyId, AKID);
      assert.equal(auth.presigned, false);
    });
  }

  test('keys encoded differently on the wire (%20 vs %7E vs ~) still verify', async () => {
    const req = await smithySign({ method: 'GET', key: '/bucket/a b~c' });
    assert.equal(req.rawPath, '/bucket/a%20b~c');
    await verifyRequest({ ...req, rawPath: '/bucket/a%20b%7Ec' }, lookup, NOW);
    await verifyRequest({ ...req, rawPath: '/bucket/a%20b%7ec' }, lookup, NOW);
  });

  test('a client that signs its raw, partly unencoded path (no re-encoding of !*) verifies', async () => {
    const rawPath = '/bucket/a!b*c';
    const req = await smithySign({ method: 'GET', key: '' }, { rawPath });
    await verifyRequest(req, lookup, NOW);
  });

  test('queries with empty values, repeated names, unicode; headers with repeated/odd whitespace values', async () => {
    const req = await smithySign({
      method: 'GET',
      key: '/bucket',
      query: { 'list-type': '2', prefix: 'a b/ü+', delimiter: '/', 'continuation-token': '', 'start-after': '~*!', tag: ['z', 'a'] },
      headers: {
        'x-amz-meta-list': 'v1,v2,v3',
        'x-amz-meta-spaced': '  two   spaces\tand tab  ',
        'x-amz-meta-empty': '',
        range: 'bytes=0-99',
        'content-type': 'text/plain; charset=utf-8',
      },
    });
    await verifyRequest(req, lookup, NOW);
    // the empty value may come as 'name' or 'name='
    await verifyRequest({ ...req, rawQuery: req.rawQuery.replace('continuation-token=', 'continuation-token') }, lookup, NOW);
  });

  test('property: random keys, query values and header values verify', async () => {
    const segment = fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }).filter((s) => !s.includes('/') && wellFormed(s));
    const value = fc.string({ unit: 'binary', maxLength: 12 }).filter(wellFormed);
    const headerValue = fc.string({ unit: fc.constantFrom('a', 'B', ' ', '\t', ',', '=', ';', '"', '0'), maxLength: 16 });
    await fc.assert(
      fc.asyncProperty(fc.array(segment, { minLength: 1, maxLength: 4 }), value, headerValue, async (segs, qv, hv) => {
        const req = await smithySign({
          method: 'PUT',
          key: `/bucket/${segs.join('/')}`,
          query: { q: qv, 'x-id': 'PutObject' },
          headers: { 'x-amz-meta-h': hv },
          payloadHash: 'UNSIGNED-PAYLOAD',
        });
        const auth = await verifyRequest(req, lookup, NOW);
        assert.equal(auth.payloadHash, 'UNSIGNED-PAYLOAD');
      }),
      { numRuns: 150 },
    );
  });

  test('presigned with @smithy presign verifies (and with the body hash header)', async () => {
    for (const key of ['/bucket/a b+c~ü', '/bucket/x']) {
      const rawPath = sdkEncodePath(key);
      const pre = await smithySigner().presign(
        {
          method: 'GET',
          protocol: 'http:',
          hostname: 'gateway.example',
          port: 9000,
          path: rawPath,
          query: { 'response-content-type': 'text/plain', empty: '' },
          headers: { host: HOST, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
        },
        { signingDate: NOW, expiresIn: 600, unhoistableHeaders: new Set(['x-amz-content-sha256']) },
      );
      const req: SignedRequest = {
        method: 'GET',
        rawPath,
        rawQuery: wireQuery(pre.query as Record<string, string>),
        headers: { host: HOST, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
      };
      const auth = await verifyRequest(req, lookup, new Date(NOW.getTime() + 599_000));
      assert.equal(auth.presigned, true);
      assert.equal(auth.payloadHash, 'UNSIGNED-PAYLOAD');
      await expectCode(verifyRequest(req, lookup, new Date(NOW.getTime() + 601_000)), 'AccessDenied', /expired/);
    }
  });

  test('URLs from @aws-sdk/s3-request-presigner getSignedUrl verify', async () => {
    const client = new S3Client({
      region: 'eu-central-1',
      endpoint: 'http://127.0.0.1:9000',
      forcePathStyle: true,
      credentials: { accessKeyId: AKID, secretAccessKey: SECRET },
    });
    try {
      const commands = [
        new GetObjectCommand({ Bucket: 'bucket', Key: 'dir/ü b+c~*!.txt', Range: 'bytes=0-1' }),
        new PutObjectCommand({ Bucket: 'bucket', Key: "it's (1).bin" }),
        new ListObjectsV2Command({ Bucket: 'bucket', Prefix: 'a b', Delimiter: '/' }),
      ];
      for (const cmd of commands) {
        const href = await getSignedUrl(client, cmd as never, { expiresIn: 300 });
        const m = /^http:\/\/([^/]+)([^?]*)\?(.*)$/.exec(href)!;
        const headers: Record<string, string> = { host: m[1]! };
        if (cmd instanceof GetObjectCommand) headers['range'] = 'bytes=0-1';
        const auth = await verifyRequest({ method: cmd instanceof PutObjectCommand ? 'PUT' : 'GET', rawPath: m[2]!, rawQuery: m[3]!, headers }, lookup);
        assert.equal(auth.presigned, true);
        assert.equal(auth.payloadHash, 'UNSIGNED-PAYLOAD');
      }
    } finally {
      client.destroy();
    }
  });

  test('signRequest output verifies and equals @smithy’s signature for the same inputs', async () => {
    const cases: Spec[] = [
      { method: 'GET', key: '/bucket/a b/ü+~*!', query: { 'list-type': '2', prefix: 'x y', empty: '' } },
      { method: 'PUT', key: '/bucket/k', headers: { 'content-type': 'application/octet-stream', 'x-amz-meta-a': ' b  c ' }, payloadHash: createHash('sha256').update('body').digest('hex') },
      { method: 'DELETE', key: '/bucket/k', query: { versionId: 'v1' }, payloadHash: 'UNSIGNED-PAYLOAD' },
    ];
    for (const spec of cases) {
      const url = new URL(`http://${HOST}${sdkEncodePath(spec.key)}`);
      const q = wireQuery(spec.query ?? {});
      if (q) url.search = q;
      const payloadHash = spec.payloadHash ?? EMPTY_SHA256;
      const ours = signRequest({ method: spec.method, url, headers: spec.headers ?? {}, payloadHash, accessKeyId: AKID, secretAccessKey: SECRET, now: NOW });
      const theirs = await smithySign({ ...spec, payloadHash });
      assert.equal(ours.authorization, theirs.headers['authorization']);
      const headers: Record<string, string> = { host: url.host, ...lower(spec.headers ?? {}), ...ours };
      await verifyRequest({ method: spec.method, rawPath: url.pathname, rawQuery: url.search.slice(1), headers }, lookup, NOW);
    }
  });

  test('presignUrl output verifies and equals @smithy presign for the same inputs', async () => {
    const url = new URL(`http://${HOST}${sdkEncodePath('/bucket/a b/ü+~')}?versionId=v%201`);
    const ours = presignUrl({ method: 'GET', url, accessKeyId: AKID, secretAccessKey: SECRET, expiresIn: 3600, region: 'eu-west-1', now: NOW });
    const theirs = await new SignatureV4({ service: 's3', region: 'eu-west-1', credentials: { accessKeyId: AKID, secretAccessKey: SECRET }, sha256: Sha256, uriEscapePath: false }).presign(
      {
        method: 'GET',
        protocol: 'http:',
        hostname: 'gateway.example',
        port: 9000,
        path: url.pathname,
        query: { versionId: 'v 1' },
        headers: { host: HOST, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
      },
      { signingDate: NOW, expiresIn: 3600, unhoistableHeaders: new Set(['x-amz-content-sha256']), unsignableHeaders: new Set(['x-amz-content-sha256']) },
    );
    assert.equal(ours.searchParams.get('X-Amz-Signature'), (theirs.query as Record<string, string>)['X-Amz-Signature']);
    assert.equal(ours.searchParams.get('versionId'), 'v 1');
    const auth = await verifyRequest({ method: 'GET', rawPath: ours.pathname, rawQuery: ours.search.slice(1), headers: { host: ours.host } }, lookup, NOW);
    assert.equal(auth.presigned, true);
    assert.throws(() => presignUrl({ method: 'GET', url, accessKeyId: AKID, secretAccessKey: SECRET, expiresIn: 604801 }), RangeError);
    assert.throws(() => presignUrl({ method: 'GET', url, accessKeyId: AKID, secretAccessKey: SECRET, expiresIn: 0 }), RangeError);
  });
});

function wellFormed(s: string): boolean {
  return Buffer.from(s, 'utf8').toString('utf8') === s;
}

function lower(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
}

describe('rejections', () => {
  const spec: Spec = {
    method: 'PUT',
    key: '/bucket/dir/obj.txt',
    query: { partNumber: '1', uploadId: 'abc' },
    headers: { 'x-amz-meta-color': 'blue', 'content-type': 'text/plain' },
    payloadHash: createHash('sha256').update('data').digest('hex'),
  };

  test('tampering with method, path, query, a signed header, the payload hash or the date → SignatureDoesNotMatch', async () => {
    const req = await smithySign(spec);
    await verifyRequest(req, lookup, NOW); // baseline
    const h = req.headers;
    const tampered: Array<[string, SignedRequest]> = [
      ['method', { ...req, method: 'POST' }],
      ['path', { ...req, rawPath: '/bucket/dir/obj.txT' }],
      ['path segment split', { ...req, rawPath: '/bucket/dir%2Fobj.txt' }],
      ['query value', { ...req, rawQuery: req.rawQuery.replace('partNumber=1', 'partNumber=2') }],
      ['query added', { ...req, rawQuery: `${req.rawQuery}&versionId=x` }],
      ['query removed', { ...req, rawQuery: req.rawQuery.replace(/&?uploadId=abc/, '') }],
      ['signed header', { ...req, headers: { ...h, 'x-amz-meta-color': 'red' } }],
      ['signed header removed', { ...req, headers: { ...h, 'content-type': undefined } }],
      ['host', { ...req, headers: { ...h, host: 'evil.example:9000' } }],
      ['payload hash', { ...req, headers: { ...h, 'x-amz-content-sha256': createHash('sha256').update('other').digest('hex') } }],
      ['payload hash → UNSIGNED', { ...req, headers: { ...h, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } }],
      ['date', { ...req, headers: { ...h, 'x-amz-date': '20260301T120001Z' } }],
    ];
    for (const [what, r] of tampered) {
      await expectCode(verifyRequest(r, lookup, NOW), 'SignatureDoesNotMatch', /signature we calculated does not match/).catch((e: unknown) => {
        throw new Error(`tampered ${what}: ${(e as Error).message}`);
      });
    }
    // headers that are not signed and not x-amz-* may change freely
    await verifyRequest({ ...req, headers: { ...h, 'user-agent': 'other', accept: '*/*' } }, lookup, NOW);
  });

  test('wrong secret → SignatureDoesNotMatch; unknown key → InvalidAccessKeyId', async () => {
    const req = await smithySign(spec, { secret: `${SECRET}X` });
    await expectCode(verifyRequest(req, lookup, NOW), 'SignatureDoesNotMatch');
    await expectCode(verifyRequest(req, async () => undefined, NOW), 'InvalidAccessKeyId');
  });

  test('malformed Authorization headers → AuthorizationHeaderMalformed', async () => {
    const req = await smithySign(spec);
    const good = req.headers['authorization']!;
    const sig = /Signature=([0-9a-f]{64})/.exec(good)![1]!;
    const cred = `${AKID}/20260301/us-east-1/s3/aws4_request`;
    const bad = [
      'AWS4-HMAC-SHA256',
      'AWS4-HMAC-SHA256 garbage',
      `AWS4-HMAC-SHA256 Credential=${cred}, Signature=${sig}`,
      `AWS4-HMAC-SHA256 Credential=${cred}, SignedHeaders=host, Signature=${sig}, Extra=1`,
      `AWS4-HMAC-SHA256 Credential=${cred}, SignedHeaders=host, Signature=${sig.slice(1)}`,
      `AWS4-HMAC-SHA256 Credential=${cred}, SignedHeaders=host, Signature=${sig.toUpperCase()}`,
      `AWS4-HMAC-SHA256 Credential=${AKID}/20260301/us-east-1/s3, SignedHeaders=host, Signature=${sig}`,
      `AWS4-HMAC-SHA256 Credential=${AKID}/20260301/us-east-1/s3/aws5_request, SignedHeaders=host, Signature=${sig}`,
      `AWS4-HMAC-SHA256 Credential=${AKID}/20260302/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=${sig}`,
      `AWS4-HMAC-SHA256 Credential=${cred}, SignedHeaders=x-amz-date;x-amz-content-sha256, Signature=${sig}`, // host unsigned
      `AWS4-HMAC-SHA256 Credential=${cred}, SignedHeaders=Host;x-amz-date, Signature=${sig}`,
      `AWS4-HMAC-SHA256 Credential=${cred}, SignedHeaders=host;;x-amz-date, Signature=${sig}`,
      'Bearer abc',
    ];
    for (const authorization of bad) {
      await expectCode(verifyRequest({ ...req, headers: { ...req.headers, authorization } }, lookup, NOW), 'AuthorizationHeaderMalformed').catch(
        (e: unknown) => {
          throw new Error(`${authorization}: ${(e as Error).message}`);
        },
      );
    }
    const { 'x-amz-content-sha256': _omit, ...noHash } = req.headers;
    await expectCode(verifyRequest({ ...req, headers: noHash }, lookup, NOW), 'AuthorizationHeaderMalformed', /x-amz-content-sha256/);
    await expectCode(verifyRequest({ ...req, headers: { ...req.headers, 'x-amz-content-sha256': 'STREAMING-FOO' } }, lookup, NOW), 'AuthorizationHeaderMalformed');
  });

  test('other header-form failures', async () => {
    const req = await smithySign(spec);
    const h = req.headers;
    await expectCode(verifyRequest({ ...req, headers: { ...h, authorization: undefined } }, lookup, NOW), 'AccessDenied');
    await expectCode(verifyRequest({ ...req, headers: { ...h, authorization: 'AWS AKID:c2lnbmF0dXJl' } }, lookup, NOW), 'AccessDenied', /not supported/);
    await expectCode(
      verifyRequest({ ...req, headers: { ...h, authorization: h['authorization']!.replace('/s3/', '/ec2/') } }, lookup, NOW),
      'AccessDenied',
    );
    await expectCode(verifyRequest(req, lookup, new Date(NOW.getTime() + 15 * 60_000 + 1000)), 'RequestTimeTooSkewed');
    await expectCode(verifyRequest(req, lookup, new Date(NOW.getTime() - 15 * 60_000 - 1000)), 'RequestTimeTooSkewed');
    await verifyRequest(req, lookup, new Date(NOW.getTime() + 14 * 60_000)); // within the window
    await expectCode(verifyRequest({ ...req, headers: { ...h, 'x-amz-date': 'yesterday' } }, lookup, NOW), 'AccessDenied', /valid Date/);
    await expectCode(verifyRequest({ ...req, headers: { ...h, 'x-amz-date': '20260231T120000Z' } }, lookup, NOW), 'AccessDenied', /valid Date/);
    // an x-amz-* header that was not signed would change S3 semantics (copy source, ACL, …)
    await expectCode(verifyRequest({ ...req, headers: { ...h, 'x-amz-copy-source': '/other/key' } }, lookup, NOW), 'AccessDenied', /not signed/);
    // both mechanisms at once
    await expectCode(verifyRequest({ ...req, rawQuery: `${req.rawQuery}&X-Amz-Algorithm=AWS4-HMAC-SHA256` }, lookup, NOW), 'AuthorizationQueryParametersError');
  });

  test('presigned failures', async () => {
    const url = presignUrl({ method: 'GET', url: new URL(`http://${HOST}/bucket/k?versionId=1`), accessKeyId: AKID, secretAccessKey: SECRET, expiresIn: 60, now: NOW });
    const base: SignedRequest = { method: 'GET', rawPath: url.pathname, rawQuery: url.search.slice(1), headers: { host: HOST } };
    await verifyRequest(base, lookup, NOW);
    const q = base.rawQuery;
    const cases: Array<[string, string, string]> = [
      ['tampered query', q.replace('versionId=1', 'versionId=2'), 'SignatureDoesNotMatch'],
      ['tampered expiry', q.replace('X-Amz-Expires=60', 'X-Amz-Expires=600'), 'SignatureDoesNotMatch'],
      ['tampered date', q.replace('X-Amz-Date=20260301T120000Z', 'X-Amz-Date=20260301T120001Z'), 'SignatureDoesNotMatch'],
      ['missing signature', q.replace(/&X-Amz-Signature=[0-9a-f]+/, ''), 'AuthorizationQueryParametersError'],
      ['bad algorithm', q.replace('AWS4-HMAC-SHA256', 'AWS4-HMAC-SHA1'), 'AuthorizationQueryParametersError'],
      ['expires too long', q.replace('X-Amz-Expires=60', 'X-Amz-Expires=604801'), 'AuthorizationQueryParametersError'],
      ['expires zero', q.replace('X-Amz-Expires=60', 'X-Amz-Expires=0'), 'AuthorizationQueryParametersError'],
      ['expires not a number', q.replace('X-Amz-Expires=60', 'X-Amz-Expires=6e1'), 'AuthorizationQueryParametersError'],
      ['bad date', q.replace('X-Amz-Date=20260301T120000Z', 'X-Amz-Date=2026-03-01'), 'AuthorizationQueryParametersError'],
      ['bad credential', q.replace('%2Faws4_request', ''), 'AuthorizationQueryParametersError'],
      ['duplicate parameter', `${q}&X-Amz-Expires=60`, 'AuthorizationQueryParametersError'],
      ['host not signed', q.replace('X-Amz-SignedHeaders=host', 'X-Amz-SignedHeaders=range'), 'AuthorizationQueryParametersError'],
    ];
    for (const [what, rawQuery, code] of cases) {
      await expectCode(verifyRequest({ ...base, rawQuery }, lookup, NOW), code).catch((e: unknown) => {
        throw new Error(`${what}: ${(e as Error).message}`);
      });
    }
    await expectCode(verifyRequest({ ...base, method: 'PUT' }, lookup, NOW), 'SignatureDoesNotMatch');
    await expectCode(verifyRequest({ ...base, rawPath: '/bucket/K' }, lookup, NOW), 'SignatureDoesNotMatch');
    await expectCode(verifyRequest(base, async () => undefined, NOW), 'InvalidAccessKeyId');
    await expectCode(verifyRequest(base, async () => 'wrong', NOW), 'SignatureDoesNotMatch');
    await expectCode(verifyRequest(base, lookup, new Date(NOW.getTime() + 61_000)), 'AccessDenied', /^Request has expired$/);
    await expectCode(verifyRequest(base, lookup, new Date(NOW.getTime() - 16 * 60_000)), 'AccessDenied', /not valid yet/);
    // a payload hash header the signer did not use changes the canonical request
    await expectCode(verifyRequest({ ...base, headers: { host: HOST, 'x-amz-content-sha256': EMPTY_SHA256 } }, lookup, NOW), 'SignatureDoesNotMatch');
  });
});
