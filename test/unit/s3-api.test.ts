// Every S3 operation the KVS offers, driven by the official AWS SDK against a real gateway over HTTPS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type S3ServiceException,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { Agent, request } from 'node:https';
import { KvsClient } from '../../src/kvs/index.js';
import { signRequest } from '../../src/kvs/gateway/sigv4.js';
import { sdkClient, startTestKvs, type TestKvs } from '../helpers/kvs.js';

let kvs: TestKvs;
let s3: S3Client;

before(async () => {
  kvs = await startTestKvs({ nodes: 9, gateway: { maxObjectSize: 32 * 1024 * 1024, minPartSize: 5 * 1024 * 1024 } });
  s3 = kvs.s3;
});
after(async () => {
  await kvs?.close();
});

async function body(r: { Body?: unknown }): Promise<Buffer> {
  const b = r.Body as { transformToByteArray(): Promise<Uint8Array> };
  return Buffer.from(await b.transformToByteArray());
}

async function s3err(p: Promise<unknown>): Promise<S3ServiceException> {
  try {
    await p;
  } catch (err) {
    return err as S3ServiceException;
  }
  assert.fail('expected an S3 error');
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('buckets: create, list, head-by-list, delete, errors', async () => {
  await s3.send(new CreateBucketCommand({ Bucket: 'alpha' }));
  await s3.send(new CreateBucketCommand({ Bucket: 'beta' }));
  const e1 = await s3err(s3.send(new CreateBucketCommand({ Bucket: 'alpha' })));
  assert.equal(e1.name, 'BucketAlreadyOwnedByYou');
  const e2 = await s3err(s3.send(new CreateBucketCommand({ Bucket: 'Bad_Name' })));
  assert.equal(e2.name, 'InvalidBucketName');
  const list = await s3.send(new ListBucketsCommand({}));
  const names = (list.Buckets ?? []).map((b) => b.Name);
  assert.ok(names.includes('alpha') && names.includes('beta'));
  await s3.send(new PutObjectCommand({ Bucket: 'beta', Key: 'x', Body: 'y' }));
  const e3 = await s3err(s3.send(new DeleteBucketCommand({ Bucket: 'beta' })));
  assert.equal(e3.name, 'BucketNotEmpty');
  await s3.send(new DeleteObjectCommand({ Bucket: 'beta', Key: 'x' }));
  await s3.send(new DeleteBucketCommand({ Bucket: 'beta' }));
  const e4 = await s3err(s3.send(new DeleteBucketCommand({ Bucket: 'beta' })));
  assert.equal(e4.name, 'NoSuchBucket');
});

test('put, get, head, range, overwrite, delete under every policy', async () => {
  for (const [bucket, policy] of [['pol-rep', 'replicate:3'], ['pol-ec', 'ec:6+2'], ['pol-hyb', 'hybrid:1+6/8']] as const) {
    const c = new KvsClient({ url: kvs.gw.url, accessKeyId: kvs.accessKeyId, secretAccessKey: kvs.secretAccessKey, ca: kvs.gw.tls?.cert });
    await c.createBucket(bucket, { policy });
    await c.close();
    for (const size of [0, 1, 1000, 65536, 65537, 1024 * 1024 + 3, 3 * 1024 * 1024]) {
      const data = randomBytes(size);
      const key = `obj-${size}`;
      const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data, ContentType: 'application/x-test', Metadata: { meter: 'm-1' } }));
      assert.equal(put.ETag, `"${createHash('md5').update(data).digest('hex')}"`);
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      assert.equal(sha(await body(got)), sha(data), `${policy} ${size}`);
      assert.equal(got.ContentType, 'application/x-test');
      assert.equal(got.Metadata?.meter, 'm-1');
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      assert.equal(head.ContentLength, size);
      if (size > 10) {
        for (const [a, b] of [[0, 0], [1, 9], [size - 5, size - 1], [Math.floor(size / 2), size - 1], [65530, 65546]]) {
          if (b >= size || a > b) continue;
          const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${a}-${b}` }));
          assert.deepEqual(await body(r), data.subarray(a, b + 1), `${policy} ${size} range ${a}-${b}`);
          assert.equal(r.ContentRange, `bytes ${a}-${b}/${size}`);
        }
        const suffix = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: 'bytes=-7' }));
        assert.deepEqual(await body(suffix), data.subarray(size - 7));
      }
    }
    const again = randomBytes(5000);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'obj-1000', Body: again }));
    assert.deepEqual(await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'obj-1000' }))), again);
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'obj-1000' }));
    const e = await s3err(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'obj-1000' })));
    assert.equal(e.name, 'NoSuchKey');
    const r416 = await s3err(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'obj-1', Range: 'bytes=5-9' })));
    assert.equal(r416.$metadata.httpStatusCode, 416);
  }
});

test('streaming upload (aws-chunked with a CRC32 trailer) round-trips', async () => {
  await s3.send(new CreateBucketCommand({ Bucket: 'streams' }));
  const parts = Array.from({ length: 5 }, () => randomBytes(100_000));
  const data = Buffer.concat(parts);
  await s3.send(new PutObjectCommand({ Bucket: 'streams', Key: 's', Body: Readable.from(parts), ContentLength: data.length }));
  assert.deepEqual(await body(await s3.send(new GetObjectCommand({ Bucket: 'streams', Key: 's' }))), data);
});

test('ListObjectsV2: byte order, prefix, delimiter, start-after, continuation, max-keys', async () => {
  await s3.send(new CreateBucketCommand({ Bucket: 'listing' }));
  const keys = ['a', 'a/1', 'a/2', 'a/b/c', 'b', 'b0', 'b/x', 'Z', 'é', 'z', '~', 'a b', 'a+b', 'ab', 'a\u00a0', '0012', '12'];
  for (const k of keys) await s3.send(new PutObjectCommand({ Bucket: 'listing', Key: k, Body: k }));
  const byteOrder = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  const all: string[] = [];
  let token: string | undefined;
  do {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: 'listing', MaxKeys: 4, ContinuationToken: token }));
    assert.ok((r.KeyCount ?? 0) <= 4);
    all.push(...(r.Contents ?? []).map((c) => c.Key!));
    token = r.NextContinuationToken;
  } while (token);
  assert.deepEqual(all, byteOrder);
  const pre = await s3.send(new ListObjectsV2Command({ Bucket: 'listing', Prefix: 'a/' }));
  assert.deepEqual((pre.Contents ?? []).map((c) => c.Key), ['a/1', 'a/2', 'a/b/c']);
  const del = await s3.send(new ListObjectsV2Command({ Bucket: 'listing', Delimiter: '/' }));
  assert.deepEqual((del.CommonPrefixes ?? []).map((p) => p.Prefix), ['a/', 'b/']);
  assert.ok(!(del.Contents ?? []).some((c) => c.Key!.includes('/')));
  // Paging through a delimiter listing never repeats a common prefix.
  const seen: string[] = [];
  token = undefined;
  do {
    const r: import('@aws-sdk/client-s3').ListObjectsV2CommandOutput = await s3.send(new ListObjectsV2Command({ Bucket: 'listing', Delimiter: '/', MaxKeys: 1, ContinuationToken: token }));
    seen.push(...(r.Contents ?? []).map((c) => c.Key!), ...(r.CommonPrefixes ?? []).map((p) => p.Prefix!));
    token = r.NextContinuationToken;
  } while (token);
  assert.equal(new Set(seen).size, seen.length);
  assert.equal(seen.length, (del.Contents ?? []).length + 2);
  const sa = await s3.send(new ListObjectsV2Command({ Bucket: 'listing', StartAfter: 'b' }));
  assert.deepEqual((sa.Contents ?? []).map((c) => c.Key), byteOrder.filter((k) => Buffer.compare(Buffer.from(k), Buffer.from('b')) > 0));
  const none = await s3.send(new ListObjectsV2Command({ Bucket: 'listing', MaxKeys: 0 }));
  assert.equal(none.KeyCount, 0);
});

test('CopyObject copies and re-encodes under another storage class', async () => {
  await s3.send(new CreateBucketCommand({ Bucket: 'copies' }));
  const data = randomBytes(200_000);
  await s3.send(new PutObjectCommand({ Bucket: 'copies', Key: 'src', Body: data }));
  await s3.send(new CopyObjectCommand({ Bucket: 'copies', Key: 'dst', CopySource: 'copies/src' }));
  assert.deepEqual(await body(await s3.send(new GetObjectCommand({ Bucket: 'copies', Key: 'dst' }))), data);
  const before = kvs.gw.objects.head(kvs.tenant, 'copies', 'src');
  assert.equal(before.policy, 'replicate:3');
  await s3.send(new CopyObjectCommand({ Bucket: 'copies', Key: 'src', CopySource: 'copies/src', StorageClass: 'GLACIER' }));
  const afterMeta = kvs.gw.objects.head(kvs.tenant, 'copies', 'src');
  assert.equal(afterMeta.policy, 'ec:6+2');
  assert.notEqual(afterMeta.id, before.id);
  assert.deepEqual(await body(await s3.send(new GetObjectCommand({ Bucket: 'copies', Key: 'src' }))), data);
  const head = await s3.send(new HeadObjectCommand({ Bucket: 'copies', Key: 'src' }));
  assert.equal(head.StorageClass, 'GLACIER');
  const same = await s3err(s3.send(new CopyObjectCommand({ Bucket: 'copies', Key: 'src', CopySource: 'copies/src' })));
  assert.equal(same.name, 'InvalidRequest');
  const bad = await s3err(s3.send(new PutObjectCommand({ Bucket: 'copies', Key: 'k', Body: 'x', StorageClass: 'NOPE' as 'STANDARD' })));
  assert.equal(bad.name, 'InvalidStorageClass');
});

test('DeleteObjects removes many at once', async () => {
  await s3.send(new CreateBucketCommand({ Bucket: 'bulk' }));
  for (let i = 0; i < 10; i++) await s3.send(new PutObjectCommand({ Bucket: 'bulk', Key: `k${i}`, Body: 'v' }));
  const r = await s3.send(new DeleteObjectsCommand({ Bucket: 'bulk', Delete: { Objects: Array.from({ length: 7 }, (_, i) => ({ Key: `k${i}` })).concat([{ Key: 'missing' }]) } }));
  assert.equal(r.Deleted?.length, 8);
  const left = await s3.send(new ListObjectsV2Command({ Bucket: 'bulk' }));
  assert.deepEqual((left.Contents ?? []).map((c) => c.Key), ['k7', 'k8', 'k9']);
});

test('multipart upload: create, upload parts, list, complete, abort', async () => {
  await s3.send(new CreateBucketCommand({ Bucket: 'multi' }));
  const parts = [randomBytes(5 * 1024 * 1024), randomBytes(5 * 1024 * 1024 + 17), randomBytes(12345)];
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'multi', Key: 'big', StorageClass: 'STANDARD_IA' }));
  assert.ok(UploadId);
  const etags: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    const r = await s3.send(new UploadPartCommand({ Bucket: 'multi', Key: 'big', UploadId, PartNumber: i + 1, Body: parts[i] }));
    etags.push(r.ETag!);
  }
  const lp = await s3.send(new ListPartsCommand({ Bucket: 'multi', Key: 'big', UploadId }));
  assert.deepEqual((lp.Parts ?? []).map((p) => [p.PartNumber, p.Size]), parts.map((p, i) => [i + 1, p.length]));
  const bad = await s3err(
    s3.send(new CompleteMultipartUploadCommand({ Bucket: 'multi', Key: 'big', UploadId, MultipartUpload: { Parts: [{ PartNumber: 2, ETag: etags[1] }, { PartNumber: 1, ETag: etags[0] }] } })),
  );
  assert.equal(bad.name, 'InvalidPartOrder');
  const done = await s3.send(
    new CompleteMultipartUploadCommand({ Bucket: 'multi', Key: 'big', UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ PartNumber: i + 1, ETag })) } }),
  );
  const md5s = Buffer.concat(parts.map((p) => createHash('md5').update(p).digest()));
  assert.equal(done.ETag, `"${createHash('md5').update(md5s).digest('hex')}-3"`);
  const all = Buffer.concat(parts);
  const got = await body(await s3.send(new GetObjectCommand({ Bucket: 'multi', Key: 'big' })));
  assert.equal(sha(got), sha(all));
  const cross = await body(await s3.send(new GetObjectCommand({ Bucket: 'multi', Key: 'big', Range: `bytes=${5 * 1024 * 1024 - 10}-${5 * 1024 * 1024 + 10}` })));
  assert.deepEqual(cross, all.subarray(5 * 1024 * 1024 - 10, 5 * 1024 * 1024 + 11));
  assert.equal(kvs.gw.objects.head(kvs.tenant, 'multi', 'big').policy, 'hybrid:1+6/8');
  // Abort: the upload disappears.
  const u2 = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'multi', Key: 'dropped' }));
  await s3.send(new UploadPartCommand({ Bucket: 'multi', Key: 'dropped', UploadId: u2.UploadId, PartNumber: 1, Body: randomBytes(1000) }));
  await s3.send(new AbortMultipartUploadCommand({ Bucket: 'multi', Key: 'dropped', UploadId: u2.UploadId }));
  const gone = await s3err(s3.send(new ListPartsCommand({ Bucket: 'multi', Key: 'dropped', UploadId: u2.UploadId })));
  assert.equal(gone.name, 'NoSuchUpload');
  const small = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'multi', Key: 'small' }));
  const p1 = await s3.send(new UploadPartCommand({ Bucket: 'multi', Key: 'small', UploadId: small.UploadId, PartNumber: 1, Body: randomBytes(100) }));
  const p2 = await s3.send(new UploadPartCommand({ Bucket: 'multi', Key: 'small', UploadId: small.UploadId, PartNumber: 2, Body: randomBytes(100) }));
  const tooSmall = await s3err(
    s3.send(new CompleteMultipartUploadCommand({ Bucket: 'multi', Key: 'small', UploadId: small.UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag }, { PartNumber: 2, ETag: p2.ETag }] } })),
  );
  assert.equal(tooSmall.name, 'EntityTooSmall');
});

function httpsGet(url: string, ca: string | undefined, method = 'GET', data?: Buffer): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent: new Agent({ ca }) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

test('presigned URLs for GET and PUT', async () => {
  await s3.send(new CreateBucketCommand({ Bucket: 'presign' }));
  const data = randomBytes(3000);
  const putUrl = await getSignedUrl(s3, new PutObjectCommand({ Bucket: 'presign', Key: 'p k' }), { expiresIn: 60 });
  const put = await httpsGet(putUrl, kvs.gw.tls?.cert, 'PUT', data);
  assert.equal(put.status, 200, put.body.toString());
  const getUrl = await getSignedUrl(s3, new GetObjectCommand({ Bucket: 'presign', Key: 'p k' }), { expiresIn: 60 });
  const got = await httpsGet(getUrl, kvs.gw.tls?.cert);
  assert.equal(got.status, 200);
  assert.deepEqual(got.body, data);
  const tampered = await httpsGet(getUrl.replace('p%20k', 'other'), kvs.gw.tls?.cert);
  assert.equal(tampered.status, 403);
  assert.match(tampered.body.toString(), /SignatureDoesNotMatch/);
});

test('authentication and tenancy errors', async () => {
  await s3.send(new CreateBucketCommand({ Bucket: 'private-a' }));
  await s3.send(new PutObjectCommand({ Bucket: 'private-a', Key: 'secret', Body: 'readings' }));
  const other = await kvs.client('tenant-b');
  const denied = await s3err(other.send(new GetObjectCommand({ Bucket: 'private-a', Key: 'secret' })));
  assert.equal(denied.name, 'AccessDenied');
  const taken = await s3err(other.send(new CreateBucketCommand({ Bucket: 'private-a' })));
  assert.equal(taken.name, 'BucketAlreadyExists');
  const theirs = await other.send(new ListBucketsCommand({}));
  assert.ok(!(theirs.Buckets ?? []).some((b) => b.Name === 'private-a'));
  const wrongSecret = sdkClient(kvs.gw.url, kvs.accessKeyId, 'x'.repeat(40), kvs.gw.tls?.cert);
  const sig = await s3err(wrongSecret.send(new ListBucketsCommand({})));
  assert.equal(sig.name, 'SignatureDoesNotMatch');
  const unknown = sdkClient(kvs.gw.url, 'SGAAAAAAAAAAAAAAAAAA', 'x'.repeat(40), kvs.gw.tls?.cert);
  const ik = await s3err(unknown.send(new ListBucketsCommand({})));
  assert.equal(ik.name, 'InvalidAccessKeyId');
  wrongSecret.destroy();
  unknown.destroy();
  const nb = await s3err(s3.send(new GetObjectCommand({ Bucket: 'no-such-bucket', Key: 'k' })));
  assert.equal(nb.name, 'NoSuchBucket');
});

test('bad input: oversize object, malformed XML, anonymous request; the service keeps running', async () => {
  await s3.send(new CreateBucketCommand({ Bucket: 'limits' }));
  const big = await s3err(s3.send(new PutObjectCommand({ Bucket: 'limits', Key: 'big', Body: Buffer.alloc(33 * 1024 * 1024) })));
  assert.equal(big.name, 'EntityTooLarge');
  const e = await s3err(s3.send(new GetObjectCommand({ Bucket: 'limits', Key: 'big' })));
  assert.equal(e.name, 'NoSuchKey', 'nothing half-written is visible');
  const anon = await httpsGet(`${kvs.gw.url}/limits/x`, kvs.gw.tls?.cert);
  assert.equal(anon.status, 403);
  // A signed request with a malformed body: use the batch client's signer on a Delete with broken XML.
  const c = new KvsClient({ url: kvs.gw.url, accessKeyId: kvs.accessKeyId, secretAccessKey: kvs.secretAccessKey, ca: kvs.gw.tls?.cert });
  const bad = await c.batch('limits', []).then(() => 'ok', (err: Error & { code: string }) => err.code);
  assert.equal(bad, 'ok');
  await c.close();
  const list = await s3.send(new ListBucketsCommand({}));
  assert.ok((list.Buckets ?? []).length > 0);
});

test('batch extension: many puts, gets and deletes in one signed request', async () => {
  const c = new KvsClient({ url: kvs.gw.url, accessKeyId: kvs.accessKeyId, secretAccessKey: kvs.secretAccessKey, ca: kvs.gw.tls?.cert });
  await c.createBucket('rows');
  const puts = Array.from({ length: 500 }, (_, i) => ({ op: 'put' as const, key: `t1/${String(i).padStart(5, '0')}`, value: Buffer.from(`row ${i}`) }));
  const r = await c.batch('rows', puts);
  assert.ok(r.every((x) => x.ok));
  const gets = await c.batch('rows', [{ op: 'get', key: 't1/00042' }, { op: 'get', key: 'missing' }, { op: 'delete', key: 't1/00001' }]);
  assert.deepEqual(gets[0], { ok: true, value: Buffer.from('row 42') });
  assert.equal(gets[1]!.ok, false);
  assert.equal(await c.get('rows', 't1/00001'), undefined);
  const page = await c.list('rows', { prefix: 't1/', maxKeys: 3 });
  assert.deepEqual(page.keys.map((k) => k.key), ['t1/00000', 't1/00002', 't1/00003']);
  // Visible to the SDK too.
  assert.equal((await body(await s3.send(new GetObjectCommand({ Bucket: 'rows', Key: 't1/00499' })))).toString(), 'row 499');
  await c.close();
});

test('upload integrity: wrong Content-MD5, CRC32 or payload SHA-256 is refused and nothing becomes visible', async () => {
  await s3.send(new CreateBucketCommand({ Bucket: 'integrity' }));
  const data = randomBytes(10_000);
  const md5 = await s3err(s3.send(new PutObjectCommand({ Bucket: 'integrity', Key: 'a', Body: data, ContentMD5: createHash('md5').update('other').digest('base64') })));
  assert.equal(md5.name, 'BadDigest');
  const crc = await s3err(s3.send(new PutObjectCommand({ Bucket: 'integrity', Key: 'b', Body: data, ChecksumCRC32: 'AAAAAA==' })));
  assert.equal(crc.name, 'BadDigest');
  const url = new URL(`${kvs.gw.url}/integrity/c`);
  const headers: Record<string, string> = { host: url.host, 'content-length': String(data.length) };
  const signed = signRequest({ method: 'PUT', url, headers, payloadHash: createHash('sha256').update('not the body').digest('hex'), accessKeyId: kvs.accessKeyId, secretAccessKey: kvs.secretAccessKey });
  const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(url, { method: 'PUT', headers: { ...headers, ...signed }, agent: new Agent({ ca: kvs.gw.tls?.cert }) }, (r) => {
      let b = '';
      r.on('data', (c) => (b += c));
      r.on('end', () => resolve({ status: r.statusCode ?? 0, body: b }));
    });
    req.on('error', reject);
    req.end(data);
  });
  assert.equal(res.status, 400);
  assert.match(res.body, /XAmzContentSHA256Mismatch/);
  for (const k of ['a', 'b', 'c']) assert.equal((await s3err(s3.send(new HeadObjectCommand({ Bucket: 'integrity', Key: k })))).$metadata.httpStatusCode, 404);
});
