// Fault tolerance with real storage-node processes on loopback: 9 `securegrid kvs node` processes, a gateway in
// this process over them (HTTPS, self-signed), and the official AWS SDK as the client.
//   1. Under a concurrent write/read load, SIGKILL as many nodes as each policy tolerates: no acknowledged
//      object is lost, writes keep succeeding, and after a restart one heal repairs everything.
//   2. Bit rot inside stored fragment values (flipped in the nodes' data.mdb files): reads still return the
//      exact bytes, heal finds and rebuilds the corrupt fragments, and the nodes hold the original bytes again.
//   3. One node more than tolerated: a clear 503 (never wrong data, never a hang), and a write that cannot
//      reach its quorum leaves nothing visible.
// Needs the built CLI: run after `npm run build`.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, fsyncSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client, type S3ServiceException } from '@aws-sdk/client-s3';
import { KvsClient, startGateway, type Gateway, type HealReport, type FragmentStore } from '../../src/kvs/index.js';
import { faultTolerance, parsePolicy, policyWidth } from '../../src/kvs/erasure/index.js';
import { sdkClient } from '../helpers/kvs.js';
import { NodeCluster, type NodeProc } from '../helpers/node-procs.js';

const TENANT = 'faults';
const POLICIES = ['replicate:3', 'ec:6+2', 'hybrid:1+6/8'] as const;
/** Bound on any single S3 request: a request that takes longer counts as a hang. */
const REQUEST_TIMEOUT_MS = 20_000;

let dir: string;
let cluster: NodeCluster | undefined;
let gw: Gateway | undefined;
let s3: S3Client;
let kvs: KvsClient;
let access: { accessKeyId: string; secretAccessKey: string };

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sg-kvs-faults-'));
  cluster = await NodeCluster.start(join(dir, 'nodes'), 9);
  gw = await startGateway({
    dataDir: join(dir, 'gateway'),
    nodes: cluster.nodes.map((n) => ({ kind: 'remote' as const, url: n.url })),
    host: '127.0.0.1',
    port: 0,
    scrubIntervalMs: 0,
  });
  access = await gw.accounts.create(TENANT);
  s3 = sdkClient(gw.url, access.accessKeyId, access.secretAccessKey, gw.tls?.cert);
  kvs = new KvsClient({ url: gw.url, accessKeyId: access.accessKeyId, secretAccessKey: access.secretAccessKey, ca: gw.tls?.cert });
});

// Each test starts with every node up, even when an earlier one failed with nodes down.
beforeEach(async () => {
  await cluster?.restart(cluster.nodes);
});

after(async () => {
  try {
    s3?.destroy();
    await kvs?.close().catch(() => undefined);
    await gw?.close().catch(() => undefined);
  } finally {
    await cluster?.stopAll('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const opts = () => ({ abortSignal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });

async function getBytes(bucket: string, key: string, range?: string): Promise<Buffer> {
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: range }), opts());
  return Buffer.from(await (r.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
}

async function put(bucket: string, key: string, data: Buffer): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data }), opts());
}

async function s3err(p: Promise<unknown>): Promise<S3ServiceException> {
  try {
    await p;
  } catch (err) {
    return err as S3ServiceException;
  }
  assert.fail('expected an S3 error');
}

/** 1 KiB – 300 KiB, log-uniform (many small objects, some large ones). */
function objectSize(): number {
  return Math.floor(1024 * Math.pow(300, Math.random()));
}

function pickRandom<T>(from: readonly T[], n: number): T[] {
  const pool = [...from];
  const out: T[] = [];
  while (out.length < n) out.push(pool.splice(randomInt(pool.length), 1)[0]!);
  return out;
}

function fmtHeal(r: HealReport): string {
  return `objects=${r.objects} checked=${r.fragmentsChecked} missing=${r.missing} corrupt=${r.corrupt} rebuilt=${r.rebuilt} unrecoverable=${r.unrecoverable} unreachable=${r.unreachable}`;
}

async function metricTotal(name: string): Promise<number> {
  const m = gw!.metrics.registry.getSingleMetric(name);
  assert.ok(m, `metric ${name}`);
  return (await m.get()).values.reduce((a, v) => a + v.value, 0);
}

function store(url: string): FragmentStore {
  const s = gw!.nodes.find((n) => n.id === url);
  assert.ok(s, `no store for ${url}`);
  return s;
}

const acknowledged = new Map<string, { bucket: string; key: string; sha: string; size: number }>();

/** Reads every acknowledged object back; returns the keys that are missing or wrong. */
async function verifyAcknowledged(filter?: (bucket: string) => boolean): Promise<{ checked: number; lost: string[] }> {
  const all = [...acknowledged.values()].filter((o) => !filter || filter(o.bucket));
  const lost: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < all.length) {
        const o = all[next++]!;
        try {
          const got = await getBytes(o.bucket, o.key);
          if (sha(got) !== o.sha) lost.push(`${o.bucket}/${o.key}: wrong bytes (${got.length} of ${o.size})`);
        } catch (err) {
          lost.push(`${o.bucket}/${o.key}: ${(err as Error).name} ${(err as Error).message}`);
        }
      }
    }),
  );
  return { checked: all.length, lost };
}

for (const policyText of POLICIES) {
  test(`${policyText}: SIGKILL of ${faultTolerance(parsePolicy(policyText))} node processes mid-load loses no acknowledged object; restart + heal repairs all`, { timeout: 90_000 }, async () => {
    const policy = parsePolicy(policyText);
    const tolerated = faultTolerance(policy);
    assert.ok(tolerated >= 1);
    const bucket = `load-${policyText.replace(/[^a-z0-9]+/g, '-')}`;
    await kvs.createBucket(bucket, { policy: policyText });
    const TOTAL = 240;
    const WORKERS = 8;
    // The tolerated number of nodes die one after another while the load runs: at 25 %, 50 %, … of it.
    const killPlan = pickRandom(cluster!.nodes, tolerated);
    const killAt = killPlan.map((_, j) => Math.floor(TOTAL * 0.25 * (j + 1)));
    const kills: Array<{ node: NodeProc; acked: number; issued: number; inflight: number }> = [];
    const killing: Promise<void>[] = [];
    let issued = 0;
    let inflight = 0;
    let putFailures = 0;
    let getFailures = 0;
    let getsOk = 0;
    const wrongReads: string[] = [];
    const mine: string[] = [];
    const t0 = Date.now();

    const worker = async () => {
      while (issued < TOTAL) {
        const i = issued++;
        const key = `obj-${String(i).padStart(4, '0')}`;
        const data = randomBytes(objectSize());
        inflight++;
        try {
          await put(bucket, key, data);
          // Acknowledged: from here on the object must never be lost.
          acknowledged.set(`${bucket}/${key}`, { bucket, key, sha: sha(data), size: data.length });
          mine.push(key);
        } catch {
          putFailures++;
        } finally {
          inflight--;
        }
        while (kills.length < killPlan.length && mine.length >= killAt[kills.length]!) {
          const node = killPlan[kills.length]!;
          kills.push({ node, acked: mine.length, issued, inflight });
          killing.push(node.stop('SIGKILL'));
        }
        // Interleave reads of acknowledged objects: they may fail while nodes die, but never return wrong bytes.
        if (Math.random() < 0.5 && mine.length > 0) {
          const k = mine[randomInt(mine.length)]!;
          const want = acknowledged.get(`${bucket}/${k}`)!;
          inflight++;
          try {
            const got = await getBytes(bucket, k);
            if (sha(got) !== want.sha) wrongReads.push(k);
            else getsOk++;
          } catch {
            getFailures++;
          } finally {
            inflight--;
          }
        }
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, worker));
    await Promise.all(killing);
    const loadMs = Date.now() - t0;
    const killed = kills.map((k) => k.node);
    assert.equal(killed.length, tolerated, 'every planned kill happened during the load');
    for (const k of kills) assert.ok(k.inflight > 0 && k.issued < TOTAL, `the kill of node-${k.node.index} landed mid-load (${k.issued} issued, ${k.inflight} in flight)`);
    assert.ok(killed.every((n) => !n.running));
    assert.deepEqual(wrongReads, [], 'no read ever returned wrong bytes');

    // Every acknowledged object reads back exactly, with the nodes still down.
    const v1 = await verifyAcknowledged((b) => b === bucket);
    assert.deepEqual(v1.lost, [], `acknowledged objects lost under ${policyText}`);
    assert.equal(v1.checked, mine.length);

    // Writes still succeed with the nodes down.
    const extra = 12;
    for (let i = 0; i < extra; i++) {
      const key = `after-kill-${i}`;
      const data = randomBytes(objectSize());
      await put(bucket, key, data);
      acknowledged.set(`${bucket}/${key}`, { bucket, key, sha: sha(data), size: data.length });
      assert.equal(sha(await getBytes(bucket, key)), sha(data));
    }

    // Restart on the same ports and dirs, heal, and heal again.
    await cluster!.restart(killed);
    const h1 = await gw!.heal();
    const h2 = await gw!.heal();
    assert.ok(h1.missing > 0, `the first heal found the fragments written while nodes were down (${fmtHeal(h1)})`);
    assert.equal(h1.corrupt, 0, 'SIGKILL tore no fragment');
    assert.equal(h1.rebuilt, h1.missing + h1.corrupt, fmtHeal(h1));
    assert.equal(h1.unrecoverable, 0);
    assert.equal(h1.unreachable, 0);
    assert.equal(h2.missing, 0, `the second heal finds nothing missing (${fmtHeal(h2)})`);
    assert.equal(h2.corrupt, 0);
    assert.equal(h2.rebuilt, 0);
    assert.equal(h2.unrecoverable, 0);
    assert.equal(h2.unreachable, 0);
    const v2 = await verifyAcknowledged((b) => b === bucket);
    assert.deepEqual(v2.lost, []);

    console.log(
      `# ${policyText}: tolerates ${tolerated}; SIGKILLed ${kills.map((k) => `node-${k.node.index} at ${k.acked} acked/${k.issued} issued/${k.inflight} in flight`).join(', ')}; ` +
        `load ${TOTAL} PUTs in ${loadMs} ms: ` +
        `${mine.length} acknowledged, ${putFailures} failed (unacknowledged), GETs ${getsOk} ok / ${getFailures} failed / ${wrongReads.length} wrong; ` +
        `lost 0 of ${v1.checked}; ${extra} PUTs with nodes down ok; heal 1: ${fmtHeal(h1)}; heal 2: ${fmtHeal(h2)}`,
    );
  });
}

test('every object acknowledged under any policy is still exact after all the kills', { timeout: 60_000 }, async () => {
  const v = await verifyAcknowledged();
  assert.ok(v.checked > 0);
  assert.deepEqual(v.lost, []);
  console.log(`# all policies: ${v.checked} acknowledged objects read back exactly, 0 lost`);
});

/** Offsets of every occurrence of `needle` in `hay`. */
function occurrences(hay: Buffer, needle: Buffer): number[] {
  const out: number[] = [];
  for (let at = hay.indexOf(needle); at >= 0; at = hay.indexOf(needle, at + 1)) out.push(at);
  return out;
}

test('bit rot inside fragment values in data.mdb: reads stay exact, heal rebuilds, nodes hold the original bytes again', { timeout: 90_000 }, async () => {
  interface Target { bucket: string; key: string; url: string; fragKey: string; original: Buffer; readBeforeHeal: boolean }
  const targets: Target[] = [];
  const objects: Array<{ bucket: string; key: string; data: Buffer; readBeforeHeal: boolean }> = [];
  // Which fragments to rot: the ones a read fetches first, so the read path must notice.
  const rotIndexes: Record<string, number[]> = { 'replicate:3': [0], 'ec:6+2': [0, 7], 'hybrid:1+6/8': [0, 1] };
  for (const policyText of POLICIES) {
    const bucket = `rot-${policyText.replace(/[^a-z0-9]+/g, '-')}`;
    await kvs.createBucket(bucket, { policy: policyText });
    for (let j = 0; j < 4; j++) {
      const key = `rotten-${j}`;
      const data = randomBytes(150_000 + randomInt(100_000));
      await put(bucket, key, data);
      // Half the objects are read before the heal (the read path must detect the rot), half only by the heal.
      const readBeforeHeal = j < 2;
      objects.push({ bucket, key, data, readBeforeHeal });
      const part = gw!.objects.head(TENANT, bucket, key).parts[0]!;
      assert.equal(part.stripes.length, 1);
      for (const i of rotIndexes[policyText]!) {
        const url = part.nodes[i]!;
        // Find the fragment as the node stores it: list the object's keys on that node, read the value.
        const listed = await store(url).list({ prefix: `${part.id}.0.` });
        assert.equal(listed.keys.length, 1, 'a node holds one fragment of a stripe');
        const fragKey = listed.keys[0]!.key;
        assert.ok(fragKey.endsWith(`.${i}`));
        const original = await store(url).get(fragKey);
        assert.ok(original && original.length >= 8 * 1024, 'the fragment lives in LMDB overflow pages');
        targets.push({ bucket, key, url, fragKey, original, readBeforeHeal });
      }
    }
  }

  // Stop the nodes holding those fragments, flip bytes in the middle of each value inside data.mdb, restart.
  const affected = [...new Set(targets.map((t) => t.url))].map((u) => cluster!.byUrl(u));
  for (const n of affected) await n.stop('SIGTERM');
  let flipped = 0;
  for (const n of affected) {
    const file = join(n.dir, 'data.mdb');
    const image = readFileSync(file);
    const fd = openSync(file, 'r+');
    try {
      for (const t of targets.filter((x) => x.url === n.url)) {
        const at = occurrences(image, t.original.subarray(0, 64)).filter((o) => image.subarray(o, o + t.original.length).equals(t.original));
        assert.equal(at.length, 1, `fragment ${t.fragKey} found exactly once, contiguous, in ${file}`);
        const mid = at[0]! + Math.floor(t.original.length / 2);
        const bytes = Buffer.from(image.subarray(mid, mid + 4).map((b) => b ^ 0x5a));
        writeSync(fd, bytes, 0, bytes.length, mid);
        flipped += bytes.length;
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  await cluster!.restart(affected);
  // The nodes now serve rotten values (the node itself cannot tell).
  for (const t of targets) {
    const now = await store(t.url).get(t.fragKey);
    assert.ok(now && now.length === t.original.length && !now.equals(t.original), `${t.fragKey} is rotten on its node`);
  }

  // Reads: whole objects (fragment checksums) and ranges over the rotten middle (AES-GCM) are exact.
  let reads = 0;
  const corruptSeen0 = await metricTotal('kvs_corrupt_fragments_total');
  const degraded0 = await metricTotal('kvs_degraded_reads_total');
  for (const o of objects.filter((x) => x.readBeforeHeal)) {
    assert.equal(sha(await getBytes(o.bucket, o.key)), sha(o.data), `${o.bucket}/${o.key}`);
    const a = Math.floor(o.data.length / 2) - 5000;
    const b = a + 10_000;
    assert.deepEqual(await getBytes(o.bucket, o.key, `bytes=${a}-${b}`), o.data.subarray(a, b + 1));
    reads += 2;
  }
  const corruptSeenByReads = (await metricTotal('kvs_corrupt_fragments_total')) - corruptSeen0;
  const degradedReads = (await metricTotal('kvs_degraded_reads_total')) - degraded0;
  assert.ok(corruptSeenByReads > 0, 'the reads noticed the rotten fragments');

  const h1 = await gw!.heal();
  const h2 = await gw!.heal();
  // Rotten fragments of objects not read before the heal can only have been found by this heal; the others may
  // already have been repaired by the gateway's queue of objects whose reads met a bad fragment.
  const onlyHeal = targets.filter((t) => !t.readBeforeHeal).length;
  assert.ok(h1.corrupt >= onlyHeal && h1.corrupt <= targets.length, `heal found the rot (${fmtHeal(h1)})`);
  assert.ok(h1.rebuilt >= h1.corrupt && h1.rebuilt > 0, fmtHeal(h1));
  assert.equal(h1.missing, 0);
  assert.equal(h1.unrecoverable, 0);
  assert.equal(h2.corrupt, 0, `a second heal finds no corruption (${fmtHeal(h2)})`);
  assert.equal(h2.missing, 0);
  assert.equal(h2.rebuilt, 0);
  for (const t of targets) {
    const now = await store(t.url).get(t.fragKey);
    assert.ok(now?.equals(t.original), `${t.fragKey} on ${t.url} holds its original bytes again`);
  }
  for (const o of objects) assert.equal(sha(await getBytes(o.bucket, o.key)), sha(o.data));
  console.log(
    `# bit rot: ${targets.length} fragments (${targets.map((t) => t.original.length).reduce((x, y) => Math.min(x, y))}–` +
      `${targets.map((t) => t.original.length).reduce((x, y) => Math.max(x, y))} bytes) of ${objects.length} objects on ${affected.length} nodes, ` +
      `${flipped} bytes flipped in data.mdb; ${reads} GETs before heal exact (${corruptSeenByReads} bad fragments noticed, ${degradedReads} degraded stripe reads); heal 1: ${fmtHeal(h1)}; heal 2: ${fmtHeal(h2)}; all fragments original again`,
  );
});

test('one node more than tolerated: GET fails with 503 naming the quorum, PUT fails and leaves nothing visible', { timeout: 90_000 }, async () => {
  const policyText = 'ec:6+2';
  const policy = parsePolicy(policyText);
  const bucket = 'over-ec-6-2';
  await kvs.createBucket(bucket, { policy: policyText });
  const data = randomBytes(2 * 1024 * 1024 + 12345); // three stripes
  await put(bucket, 'victim', data);
  const nodes = gw!.objects.head(TENANT, bucket, 'victim').parts[0]!.nodes;
  assert.equal(nodes.length, policyWidth(policy));
  // faultTolerance + 1 of the nodes holding its fragments; take data shards so no cheap read path is left.
  const victims = nodes.slice(0, faultTolerance(policy) + 1).map((u) => cluster!.byUrl(u));
  // A bucket whose every placement needs all 9 nodes (ec:7+2 tolerates 2 as well).
  const wide = 'over-ec-7-2';
  await kvs.createBucket(wide, { policy: 'ec:7+2' });
  assert.equal(faultTolerance(parsePolicy('ec:7+2')), faultTolerance(policy));
  await cluster!.kill(victims);
  try {
    for (const range of [undefined, 'bytes=0-99', `bytes=${data.length - 1000}-`]) {
      const t0 = Date.now();
      const e = await s3err(getBytes(bucket, 'victim', range));
      const ms = Date.now() - t0;
      assert.equal(e.name, 'ServiceUnavailable', `${range ?? 'whole'}: ${e.name} ${e.message}`);
      assert.equal(e.$metadata.httpStatusCode, 503);
      assert.match(e.message, /read quorum not met for policy ec:6\+2: 5 fragment\(s\) readable, 6 needed/);
      assert.ok(ms < 10_000, `answered in ${ms} ms, not a hang`);
      console.log(`# GET ${range ?? 'whole'} with ${victims.length} of its 8 nodes down: ${e.$metadata.httpStatusCode} ${e.name} "${e.message}" in ${ms} ms`);
    }

    // PUT to a bucket whose placement needs the killed nodes: 503, nothing visible.
    const t0 = Date.now();
    const e = await s3err(put(wide, 'never', randomBytes(300_000)));
    const ms = Date.now() - t0;
    assert.equal(e.name, 'ServiceUnavailable', `${e.name} ${e.message}`);
    assert.equal(e.$metadata.httpStatusCode, 503);
    assert.match(e.message, /write quorum not met for policy ec:7\+2: 6 fragment\(s\) durable, 7 needed/);
    const gone = await s3err(getBytes(wide, 'never'));
    assert.equal(gone.name, 'NoSuchKey');
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: wide }), opts());
    assert.equal(listed.KeyCount, 0);
    console.log(`# PUT to ec:7+2 with 3 of 9 nodes down: 503 ${e.name} "${e.message}" in ${ms} ms; GET → ${gone.name}; ListObjectsV2 → ${listed.KeyCount} keys`);

    // PUTs to the ec:6+2 bucket (8 of 9 nodes per object) fail exactly when their placement holds all 3.
    const down = new Set(victims.map((v) => v.url));
    let ok = 0;
    const failedKeys: string[] = [];
    for (let i = 0; i < 16; i++) {
      const key = `try-${i}`;
      const body = randomBytes(50_000);
      try {
        await put(bucket, key, body);
        ok++;
        const placed = gw!.objects.head(TENANT, bucket, key).parts[0]!.nodes;
        assert.ok(placed.filter((u) => down.has(u)).length <= faultTolerance(policy), 'a write that succeeded had its quorum');
        assert.equal(sha(await getBytes(bucket, key)), sha(body));
      } catch (err) {
        const x = err as S3ServiceException;
        assert.equal(x.name, 'ServiceUnavailable', `${x.name} ${x.message}`);
        assert.match(x.message, /write quorum not met for policy ec:6\+2/);
        failedKeys.push(key);
      }
    }
    assert.ok(failedKeys.length > 0, 'some placements needed all three killed nodes');
    const visible = new Set(((await s3.send(new ListObjectsV2Command({ Bucket: bucket }), opts())).Contents ?? []).map((c) => c.Key));
    for (const key of failedKeys) {
      assert.ok(!visible.has(key), `${key} is not listed`);
      assert.equal((await s3err(getBytes(bucket, key))).name, 'NoSuchKey');
    }
    console.log(`# PUTs to ec:6+2 with 3 nodes down: ${ok} succeeded (placement avoided one killed node), ${failedKeys.length} failed with 503, none of them visible`);
  } finally {
    await cluster!.restart(victims);
  }
  assert.equal(sha(await getBytes(bucket, 'victim')), sha(data), 'readable again once the nodes are back');

  // replicate:3 tolerates 1 (its write quorum is 2 of 3), but its reads need only one copy: with 2 of its 3
  // nodes down a GET is still exact, and only with all 3 down does it fail, again with a 503 naming the quorum.
  await kvs.createBucket('over-rep-3', { policy: 'replicate:3' });
  const rdata = randomBytes(180_000);
  await put('over-rep-3', 'copies', rdata);
  const holders = gw!.objects.head(TENANT, 'over-rep-3', 'copies').parts[0]!.nodes.map((u) => cluster!.byUrl(u));
  assert.equal(faultTolerance(parsePolicy('replicate:3')) + 1, 2);
  try {
    await cluster!.kill(holders.slice(0, 2));
    assert.equal(sha(await getBytes('over-rep-3', 'copies')), sha(rdata), 'one copy left is enough to read');
    await cluster!.kill(holders.slice(2));
    const t1 = Date.now();
    const e = await s3err(getBytes('over-rep-3', 'copies'));
    assert.equal(e.name, 'ServiceUnavailable', `${e.name} ${e.message}`);
    assert.equal(e.$metadata.httpStatusCode, 503);
    assert.match(e.message, /read quorum not met for policy replicate:3: 0 fragment\(s\) readable, 1 needed/);
    console.log(`# replicate:3 with 2 of its 3 nodes down: GET exact; with all 3 down: 503 ${e.name} "${e.message}" in ${Date.now() - t1} ms`);
  } finally {
    await cluster!.restart(holders);
  }
  assert.equal(sha(await getBytes('over-rep-3', 'copies')), sha(rdata));
  const h = await gw!.heal();
  assert.equal(h.unrecoverable, 0);
  assert.equal(h.unreachable, 0);
});
