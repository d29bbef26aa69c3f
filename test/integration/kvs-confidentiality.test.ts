// Confidentiality: storage nodes never hold plaintext. A random canary goes into object contents, object keys,
// bucket names, x-amz-meta- metadata and content types, under every policy, through a single PUT, a multi-stripe
// PUT, a multipart upload (completed and left open), a copy and a batch put; then every file in every storage
// node's data directory is searched as raw bytes for the canary (UTF-8, upper case, UTF-16LE/BE, hex, base64 and
// base64url at every alignment). A control file proves the scan would find it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { KvsClient } from '../../src/kvs/index.js';
import { startTestKvs, type TestKvs } from '../helpers/kvs.js';

const CANARY = `sgcanary${randomBytes(8).toString('hex')}`;
const POLICIES = { rep: 'replicate:3', ec: 'ec:6+2', hyb: 'hybrid:1+6/8' } as const;

let kvs: TestKvs;
let client: KvsClient;

before(async () => {
  kvs = await startTestKvs({ nodes: 9, remote: true, gateway: { minPartSize: 64 * 1024 } });
  client = new KvsClient({ url: kvs.gw.url, accessKeyId: kvs.accessKeyId, secretAccessKey: kvs.secretAccessKey, ca: kvs.gw.tls?.cert });
});

after(async () => {
  await client?.close().catch(() => undefined);
  await kvs?.close();
});

/** `s` base64-encoded at each of the three byte alignments, keeping only the characters `s` alone determines. */
function base64Forms(s: Buffer): string[] {
  const out: string[] = [];
  for (let o = 0; o < 3; o++) {
    const enc = Buffer.concat([Buffer.alloc(o), s]).toString('base64');
    out.push(enc.slice(Math.ceil((o * 8) / 6), Math.floor(((o + s.length) * 8) / 6)));
  }
  return out;
}

function canaryForms(canary: string): Array<{ form: string; bytes: Buffer }> {
  const raw = Buffer.from(canary, 'utf8');
  const forms = [
    { form: 'utf8', bytes: raw },
    { form: 'utf8-upper', bytes: Buffer.from(canary.toUpperCase(), 'utf8') },
    { form: 'utf16le', bytes: Buffer.from(canary, 'utf16le') },
    { form: 'utf16be', bytes: Buffer.from(canary, 'utf16le').swap16() },
    { form: 'hex', bytes: Buffer.from(raw.toString('hex'), 'latin1') },
  ];
  base64Forms(raw).forEach((b, i) => {
    forms.push({ form: `base64@${i}`, bytes: Buffer.from(b, 'latin1') });
    forms.push({ form: `base64url@${i}`, bytes: Buffer.from(b.replace(/\+/g, '-').replace(/\//g, '_'), 'latin1') });
  });
  return forms;
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

interface Scan {
  files: number;
  bytes: number;
  hits: Array<{ file: string; form: string; count: number }>;
}

/** Every file under every node dir, as raw bytes, searched for every form of the canary. */
function scanNodes(dirs: string[], canary: string): Scan {
  const forms = canaryForms(canary);
  const scan: Scan = { files: 0, bytes: 0, hits: [] };
  for (const d of dirs) {
    for (const file of filesUnder(d)) {
      const buf = readFileSync(file);
      scan.files++;
      scan.bytes += buf.length;
      for (const f of forms) {
        let count = 0;
        for (let at = buf.indexOf(f.bytes); at >= 0; at = buf.indexOf(f.bytes, at + 1)) count++;
        if (count > 0) scan.hits.push({ file, form: f.form, count });
      }
    }
  }
  return scan;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function getBytes(bucket: string, key: string): Promise<Buffer> {
  const r = await kvs.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await (r.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
}

/** Readable text full of the canary, `size` bytes long. */
function canaryText(size: number, tag: string): Buffer {
  const line = Buffer.from(`{"meter":"${CANARY}","tag":"${tag}","owner":"${CANARY}","kwh":12.5}\n`);
  const out = Buffer.alloc(size);
  for (let at = 0; at < size; at += line.length) line.copy(out, at, 0, Math.min(line.length, size - at));
  return out;
}

test('no storage node file holds the canary in any form, under any policy or write path', { timeout: 90_000 }, async () => {
  const s3 = kvs.s3;
  const written = new Map<string, { bucket: string; key: string; sha: string }>();
  const remember = (bucket: string, key: string, data: Buffer) => written.set(`${bucket}/${key}`, { bucket, key, sha: sha(data) });
  let plaintextBytes = 0;
  for (const [short, policy] of Object.entries(POLICIES)) {
    const bucket = `c-${CANARY}-${short}`;
    await client.createBucket(bucket, { policy });
    const meta = { canary: CANARY, note: `owner ${CANARY} in metadata` };

    // Single PUTs: small, one stripe, and several stripes; the canary in the key, metadata and content type.
    for (const [key, data] of [
      [CANARY, Buffer.from(CANARY)],
      [`meters/${CANARY}/day-1.json`, canaryText(200_000, 'day-1')],
      [`meters/${CANARY}/month.json`, canaryText(2 * 1024 * 1024 + 777, 'month')],
    ] as const) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data, Metadata: meta, ContentType: `application/json; profile=${CANARY}` }));
      remember(bucket, key, data);
      plaintextBytes += data.length;
    }

    // A completed multipart upload (two parts) and an open one (its part is on the nodes already).
    const mpKey = `uploads/${CANARY}.bin`;
    const parts = [canaryText(70 * 1024, 'part-1'), canaryText(5000, 'part-2')];
    const up = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: mpKey, Metadata: meta }));
    const etags: string[] = [];
    for (let i = 0; i < parts.length; i++) {
      etags.push((await s3.send(new UploadPartCommand({ Bucket: bucket, Key: mpKey, UploadId: up.UploadId, PartNumber: i + 1, Body: parts[i] }))).ETag!);
    }
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: mpKey, UploadId: up.UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ PartNumber: i + 1, ETag })) } }));
    remember(bucket, mpKey, Buffer.concat(parts));
    plaintextBytes += parts[0]!.length + parts[1]!.length;
    const open = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: `open/${CANARY}`, Metadata: meta }));
    await s3.send(new UploadPartCommand({ Bucket: bucket, Key: `open/${CANARY}`, UploadId: open.UploadId, PartNumber: 1, Body: canaryText(66 * 1024, 'open') }));
    plaintextBytes += 66 * 1024;

    // A copy (re-encrypted under a new key, re-encoded under another policy).
    await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: `copy/${CANARY}`, CopySource: `${bucket}/meters/${CANARY}/day-1.json`, StorageClass: 'GLACIER' }));
    written.set(`${bucket}/copy/${CANARY}`, { ...written.get(`${bucket}/meters/${CANARY}/day-1.json`)!, key: `copy/${CANARY}` });

    // A batch put through the securegrid extension.
    const ops = Array.from({ length: 40 }, (_, i) => ({ op: 'put' as const, key: `batch/${CANARY}/${String(i).padStart(3, '0')}`, value: Buffer.from(`${CANARY} reading ${i} ${'x'.repeat(i * 50)}`) }));
    const res = await client.batch(bucket, ops);
    assert.ok(res.every((r) => r.ok));
    for (const o of ops) {
      remember(bucket, o.key, o.value);
      plaintextBytes += o.value.length;
    }
  }

  // Everything reads back (so it really is stored), with its metadata.
  for (const w of written.values()) assert.equal(sha(await getBytes(w.bucket, w.key)), w.sha, `${w.bucket}/${w.key}`);
  const head = await s3.send(new HeadObjectCommand({ Bucket: `c-${CANARY}-ec`, Key: `meters/${CANARY}/day-1.json` }));
  assert.equal(head.Metadata?.canary, CANARY);
  assert.equal(kvs.gw.objects.head(kvs.tenant, `c-${CANARY}-hyb`, `uploads/${CANARY}.bin`).parts.length, 2);

  const scan = scanNodes(kvs.nodeDirs, CANARY);
  const stored = await Promise.all(kvs.gw.nodes.map((n) => n.status()));
  const fragments = stored.reduce((a, s) => a + s.entries, 0);
  assert.ok(fragments > 0 && scan.files >= kvs.nodeDirs.length * 2 && scan.bytes > plaintextBytes, `the scan covered the stored data (${scan.files} files, ${scan.bytes} bytes)`);
  assert.deepEqual(scan.hits, [], 'no form of the canary in any node file');

  // Control: the same scan finds the canary in a plain file in a node dir, in each form it looks for.
  const controls = [
    { name: 'control-utf8.txt', bytes: Buffer.from(`plain ${CANARY} text`), form: 'utf8' },
    { name: 'control-utf16.txt', bytes: Buffer.from(`plain ${CANARY} text`, 'utf16le'), form: 'utf16le' },
    { name: 'control-b64.txt', bytes: Buffer.from(Buffer.from(`x${CANARY}`).toString('base64')), form: 'base64@1' },
  ];
  const controlPaths = controls.map((c) => join(kvs.nodeDirs[4]!, c.name));
  let control: Scan;
  try {
    controls.forEach((c, i) => writeFileSync(controlPaths[i]!, c.bytes));
    control = scanNodes(kvs.nodeDirs, CANARY);
  } finally {
    for (const p of controlPaths) rmSync(p, { force: true });
  }
  for (let i = 0; i < controls.length; i++) {
    assert.ok(control.hits.some((h) => h.file === controlPaths[i] && h.form === controls[i]!.form), `control ${controls[i]!.name} found as ${controls[i]!.form}`);
  }
  assert.ok(control.hits.every((h) => controlPaths.includes(h.file)), 'the control hits are the control files only');
  assert.deepEqual(scanNodes(kvs.nodeDirs, CANARY).hits, [], 'clean again once the control files are gone');

  // And once the nodes have shut down (whatever they write on close included).
  await Promise.all(kvs.nodeServers.map((n) => n.close()));
  const final = scanNodes(kvs.nodeDirs, CANARY);
  assert.deepEqual(final.hits, []);
  for (const d of kvs.nodeDirs) assert.ok(statSync(join(d, 'data.mdb')).size > 0);

  console.log(
    `# confidentiality: canary ${CANARY} in ${written.size} objects + 3 open uploads (${plaintextBytes} plaintext bytes, 3 policies, ` +
      `keys, metadata, content types, bucket names); ${fragments} fragments on 9 nodes; scanned ${scan.files} files, ${scan.bytes} bytes ` +
      `for ${canaryForms(CANARY).length} forms → ${scan.hits.length} hits; control: ${control.hits.length} hits ` +
      `(${control.hits.map((h) => `${h.form}×${h.count}`).join(', ')}); after removal 0; after node shutdown ${final.files} files, ${final.bytes} bytes → 0 hits`,
  );
});
