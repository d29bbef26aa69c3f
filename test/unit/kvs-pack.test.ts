// Packs: the small values of one batch stored as one sealed, encoded, placed object. Reads after overwrite and
// delete, garbage and compaction, healing of a pack, a crash between the pack write and the index commit,
// quorum failures, and the compact index entry format.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localNodeSpecs, parsePolicy, startGateway, type Gateway } from '../../src/kvs/index.js';
import { decodeObjectMeta, encodeObjectMeta, encodePackMembers, type ObjectMeta } from '../../src/kvs/gateway/meta-store.js';
import { buildPack, openBlock, BLOCK_TARGET } from '../../src/kvs/gateway/pack.js';

async function withGateway(nodes: number, fn: (gw: Gateway) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sg-pack-'));
  const gw = await startGateway({ dataDir: join(dir, 'gw'), nodes: localNodeSpecs(join(dir, 'nodes'), nodes), noListen: true, scrubIntervalMs: 0 });
  try {
    await fn(gw);
  } finally {
    await gw.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const T = 'tenant-p';
const val = (i: number, salt = '') => Buffer.from(`${salt}value-${i}-${'x'.repeat(i % 300)}`);
const key = (i: number) => `k/${String(i).padStart(5, '0')}`;

async function until(cond: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('pack blocks: each member is found where its ref says; a tampered or misplaced block fails authentication', () => {
  const k = randomBytes(32);
  const values = Array.from({ length: 500 }, (_, i) => randomBytes(i % 7 === 0 ? 9000 : (i * 37) % 700));
  const built = buildPack(k, 'a'.repeat(32), values, 64 * 1024);
  assert.ok(built.stripes.length > 1);
  for (const s of built.stripes) assert.ok(s.length <= 64 * 1024 + 9000 + 16);
  values.forEach((v, i) => {
    const r = built.refs[i]!;
    if (v.length <= BLOCK_TARGET) assert.ok(r.bl - 16 <= BLOCK_TARGET || r.o === 0);
    const plain = openBlock(k, 'a'.repeat(32), r.bn, built.stripes[r.s]!.subarray(r.bo, r.bo + r.bl));
    assert.deepEqual(plain.subarray(r.o, r.o + r.n), v);
  });
  const r = built.refs[3]!;
  const sealed = Buffer.from(built.stripes[r.s]!.subarray(r.bo, r.bo + r.bl));
  assert.throws(() => openBlock(k, 'b'.repeat(32), r.bn, sealed), /failed authentication/);
  assert.throws(() => openBlock(k, 'a'.repeat(32), r.bn + 1, sealed), /failed authentication/);
  sealed[0]! ^= 1;
  assert.throws(() => openBlock(k, 'a'.repeat(32), r.bn, sealed), /failed authentication/);
});

test('index entries of pack members: compact form round-trips; anything else stays MessagePack', () => {
  const base: ObjectMeta = {
    id: `${'c'.repeat(32)}-7`,
    version: 1_760_000_000_123_456,
    tenant: 'tenant-ü',
    bucket: 'b',
    key: 'k/é/1',
    policy: 'replicate:3',
    storageClass: 'STANDARD',
    size: 123,
    etag: `"${createHash('md5').update('x').digest('hex')}"`,
    lastModified: 1_760_000_000_123,
    parts: [],
    pack: { id: 'c'.repeat(32), s: 1, bo: 4112, bl: 4000, bn: 9, o: 17, n: 123 },
  };
  const enc = encodeObjectMeta(base);
  assert.equal(enc[0], 0xc1);
  assert.deepEqual(decodeObjectMeta(Buffer.from(enc)), base);
  const batch = encodePackMembers([base, { ...base, id: `${'c'.repeat(32)}-1`, key: 'other' }]);
  assert.deepEqual(decodeObjectMeta(batch[0]!), base);
  assert.equal(decodeObjectMeta(batch[1]!).key, 'other');
  const withMeta = { ...base, contentType: 'text/plain' };
  const e2 = encodeObjectMeta(withMeta);
  assert.notEqual(e2[0], 0xc1);
  assert.deepEqual(decodeObjectMeta(e2), withMeta);
  const plain: ObjectMeta = { ...base, pack: undefined, parts: [{ id: 'd'.repeat(32), nodes: ['n1'], size: 3, wrappedKey: randomBytes(60), stripes: [{ len: 19, shard: 19, sums: randomBytes(16) }], md5: 'ab' }] };
  delete plain.pack;
  assert.deepEqual(decodeObjectMeta(encodeObjectMeta(plain)), plain);
});

for (const policy of ['replicate:3', 'ec:4+2', 'hybrid:1+4/6']) {
  test(`${policy}: a batch of small values is one pack; get, getValues, scan and ranges read exact values`, async () => {
    await withGateway(9, async (gw) => {
      const o = gw.objects;
      await o.createBucket(T, 'b', parsePolicy(policy));
      const n = 3000;
      await o.batch(T, 'b', Array.from({ length: n }, (_, i) => ({ op: 'put' as const, key: key(i), value: val(i) })));
      const m0 = o.head(T, 'b', key(0));
      assert.ok(m0.pack, 'a small batched value is a pack member');
      assert.deepEqual(m0.parts, []);
      assert.equal(m0.etag, `"${createHash('md5').update(val(0)).digest('hex')}"`);
      const packIds = new Set(Array.from({ length: n }, (_, i) => o.head(T, 'b', key(i)).pack!.id));
      assert.equal(packIds.size, 1);
      const rec = o.opts.meta.packs.get([...packIds][0]!)!;
      assert.equal(rec.live, n);
      assert.ok(rec.layout.stripes.length >= 1);
      assert.deepEqual(await o.getBuffer(T, 'b', key(1234)), val(1234));
      const ranged: Buffer[] = [];
      for await (const c of o.read(o.head(T, 'b', key(299)), 3, 40)) ranged.push(c);
      assert.deepEqual(Buffer.concat(ranged), val(299).subarray(3, 40));
      const picks = [5, 2999, 17, 1500, 1501, 0];
      assert.deepEqual(await o.getValues(T, 'b', [...picks.map(key), 'nope']), [...picks.map((i) => val(i)), undefined]);
      const page = await o.scanValues(T, 'b', key(100), key(900), 10_000);
      assert.equal(page.length, 800);
      page.forEach((e, j) => {
        assert.equal(e.key, key(100 + j));
        assert.deepEqual(e.value, val(100 + j));
      });
      const res = await o.batch(T, 'b', [{ op: 'get', key: key(7) }, { op: 'get', key: 'missing' }]);
      assert.deepEqual(res[0], { ok: true, value: val(7) });
      assert.equal(res[1]!.ok, false);
    });
  });
}

test('overwrites and deletes leave the other members readable; a pack with no live member is dropped with its fragments', async () => {
  await withGateway(3, async (gw) => {
    const o = gw.objects;
    await o.createBucket(T, 'b', parsePolicy('replicate:3'));
    await o.batch(T, 'b', Array.from({ length: 100 }, (_, i) => ({ op: 'put' as const, key: key(i), value: val(i) })));
    const packId = o.head(T, 'b', key(0)).pack!.id;
    // Same key twice in one batch: the later put wins.
    await o.batch(T, 'b', [
      { op: 'put', key: key(1), value: Buffer.from('first') },
      { op: 'put', key: key(1), value: Buffer.from('second') },
      { op: 'delete', key: key(2) },
      { op: 'put', key: key(3), value: randomBytes(200_000) }, // a large value: an object of its own
    ]);
    assert.equal((await o.getBuffer(T, 'b', key(1))).toString(), 'second');
    await assert.rejects(o.getBuffer(T, 'b', key(2)), (e: { code?: string }) => e.code === 'NoSuchKey');
    assert.equal(o.head(T, 'b', key(3)).pack, undefined);
    assert.equal(o.head(T, 'b', key(3)).parts.length, 1);
    const rec = o.opts.meta.packs.get(packId)!;
    assert.equal(rec.live, 97);
    assert.equal(rec.liveBytes, rec.layout.size - val(1).length - val(2).length - val(3).length);
    for (let i = 4; i < 100; i++) assert.deepEqual(await o.getBuffer(T, 'b', key(i)), val(i));
    // The 'first' member of the second pack lost within its own batch.
    const second = o.head(T, 'b', key(1)).pack!.id;
    assert.equal(o.opts.meta.packs.get(second)!.live, 1);
    await o.deleteObjects(T, 'b', Array.from({ length: 100 }, (_, i) => key(i)).filter((k) => k !== key(1)));
    assert.equal(o.opts.meta.packs.get(packId), undefined);
    assert.equal(o.opts.meta.ids.get(packId), undefined);
    await until(async () => (await Promise.all(gw.nodes.map((n) => n.get(`${packId}.0.0`).then(() => n.get(`${packId}.0.1`))))).every((x) => x === undefined), 'pack fragments removed');
    for (const n of gw.nodes) assert.equal((await n.list({ prefix: packId })).keys.length, 0);
    assert.equal((await o.getBuffer(T, 'b', key(1))).toString(), 'second');
  });
});

test('compaction rewrites the live members of a mostly-dead pack into a new pack, keeping versions; the old pack goes', async () => {
  await withGateway(5, async (gw) => {
    const o = gw.objects;
    await o.createBucket(T, 'b', parsePolicy('ec:2+1'));
    await o.batch(T, 'b', Array.from({ length: 200 }, (_, i) => ({ op: 'put' as const, key: key(i), value: val(i) })));
    const old = o.head(T, 'b', key(0)).pack!.id;
    await o.batch(T, 'b', Array.from({ length: 150 }, (_, i) => ({ op: 'put' as const, key: key(i), value: val(i, 'new-') })));
    const before = Array.from({ length: 200 }, (_, i) => o.head(T, 'b', key(i)));
    assert.equal(o.opts.meta.packs.get(old)!.live, 50);
    assert.equal(await o.compactPacks(0.1), 0, 'above the threshold: left alone');
    const report = await gw.heal();
    assert.equal(report.packsCompacted, 1);
    assert.equal(o.opts.meta.packs.get(old), undefined);
    for (let i = 0; i < 200; i++) {
      const m = o.head(T, 'b', key(i));
      assert.notEqual(m.pack!.id, old);
      assert.equal(m.version, before[i]!.version);
      assert.equal(m.etag, before[i]!.etag);
      assert.deepEqual(await o.getBuffer(T, 'b', key(i)), i < 150 ? val(i, 'new-') : val(i));
    }
    await until(async () => (await Promise.all(gw.nodes.map((n) => n.list({ prefix: old })))).every((l) => l.keys.length === 0), 'old pack removed');
    const again = await gw.heal();
    assert.equal(again.packsCompacted, 0);
    assert.equal(again.corrupt + again.missing, 0);
  });
});

test('a corrupt or missing pack fragment: reads stay exact, heal rebuilds it and restores the metadata copy', async () => {
  await withGateway(9, async (gw) => {
    const o = gw.objects;
    await o.createBucket(T, 'h', parsePolicy('hybrid:1+4/6'));
    await o.batch(T, 'h', Array.from({ length: 2000 }, (_, i) => ({ op: 'put' as const, key: key(i), value: val(i) })));
    const rec = o.opts.meta.packs.get(o.head(T, 'h', key(0)).pack!.id)!;
    const node = (i: number) => gw.nodes.find((n) => n.id === rec.layout.nodes[i])!;
    const fk = `${rec.id}.0.0`;
    const good = (await node(0).get(fk))!;
    const bad = Buffer.from(good);
    for (let i = 0; i < bad.length; i += 997) bad[i]! ^= 0x5a;
    await node(0).put([{ key: fk, value: bad }]);
    await node(3).delete([`${rec.id}.0.3`, `${rec.id}.meta`]);
    for (let i = 0; i < 2000; i += 37) assert.deepEqual(await o.getBuffer(T, 'h', key(i)), val(i));
    assert.equal((await o.scanValues(T, 'h', '', undefined, 5000)).length, 2000);
    const r = await gw.heal();
    assert.equal(r.corrupt, 1);
    assert.equal(r.missing, 1);
    assert.equal(r.rebuilt, 2);
    assert.deepEqual(await node(0).get(fk), good);
    assert.ok(await node(3).get(`${rec.id}.0.3`));
    const copy = await o.readPackCopy(rec.id, (await node(3).get(`${rec.id}.meta`))!);
    assert.equal(copy.members.length, 2000);
    assert.equal(copy.members[5]!.key, key(5));
    assert.ok(!(await node(3).get(`${rec.id}.meta`))!.includes(Buffer.from(key(5))), 'the metadata copy is sealed');
    const again = await gw.heal();
    assert.equal(again.corrupt + again.missing + again.rebuilt, 0);
  });
});

test('a crash between the pack write and the index commit leaves nothing visible; the fragments become orphans', async () => {
  await withGateway(3, async (gw) => {
    const o = gw.objects;
    await o.createBucket(T, 'c', parsePolicy('replicate:3'));
    await o.batch(T, 'c', [{ op: 'put', key: 'before', value: Buffer.from('ok') }]);
    const meta = o.opts.meta;
    const real = meta.transaction.bind(meta);
    meta.transaction = (() => Promise.reject(new Error('gateway died before the index commit'))) as typeof meta.transaction;
    await assert.rejects(o.batch(T, 'c', Array.from({ length: 50 }, (_, i) => ({ op: 'put' as const, key: key(i), value: val(i) }))), /died/);
    meta.transaction = real;
    for (let i = 0; i < 50; i++) assert.throws(() => o.head(T, 'c', key(i)), (e: { code?: string }) => e.code === 'NoSuchKey');
    const onNodes = (await gw.nodes[0]!.list({})).keys.map((k) => k.key);
    const before = o.head(T, 'c', 'before').pack!.id;
    const stray = onNodes.filter((k) => !k.startsWith(before));
    assert.ok(stray.length >= 2, 'the pack reached the nodes');
    assert.equal(await o.collectOrphans(), 0, 'young orphans are kept (a write may be in flight)');
    assert.equal(await o.collectOrphans(Date.now() + 2 * 3600_000), stray.length * 3);
    assert.equal((await o.getBuffer(T, 'c', 'before')).toString(), 'ok');
  });
});

test('a pack that misses its write quorum fails the batch and nothing of it becomes visible', async () => {
  await withGateway(3, async (gw) => {
    const o = gw.objects;
    await o.createBucket(T, 'q', parsePolicy('replicate:3'));
    await gw.nodes[0]!.close();
    await o.batch(T, 'q', [{ op: 'put', key: 'one-down', value: Buffer.from('fine') }]);
    await gw.nodes[1]!.close();
    await assert.rejects(
      o.batch(T, 'q', [{ op: 'put', key: 'a', value: Buffer.from('x') }, { op: 'delete', key: 'one-down' }]),
      (e: { code?: string; message: string }) => e.code === 'ServiceUnavailable' && /quorum/.test(e.message),
    );
    assert.throws(() => o.head(T, 'q', 'a'), (e: { code?: string }) => e.code === 'NoSuchKey');
    assert.equal((await o.getBuffer(T, 'q', 'one-down')).toString(), 'fine');
  });
});
