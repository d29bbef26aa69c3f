// Group commit of small single PUTs (concurrent PUTs share one pack and one index transaction) and the gateway's
// cache of decrypted pack blocks: visibility, versions, quorum failures, metadata, and what cached reads skip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localNodeSpecs, parsePolicy, startGateway, type Gateway } from '../../src/kvs/index.js';
import type { ObjectLayer } from '../../src/kvs/gateway/object-layer.js';

async function withGateway(nodes: number, fn: (gw: Gateway) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sg-group-'));
  const gw = await startGateway({ dataDir: join(dir, 'gw'), nodes: localNodeSpecs(join(dir, 'nodes'), nodes), noListen: true, scrubIntervalMs: 0 });
  try {
    await fn(gw);
  } finally {
    await gw.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const T = 'tenant-g';
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

/** A single PUT as the S3 front door makes it (the size is announced, so a small body may be grouped). */
function put(o: ObjectLayer, bucket: string, key: string, value: Buffer, extra: { contentType?: string; userMeta?: Record<string, string> } = {}) {
  return o.putObject(T, bucket, key, (async function* () {
    yield value;
  })(), { size: value.length, ...extra });
}

function packCount(o: ObjectLayer): number {
  let n = 0;
  for (const _ of o.opts.meta.packs.getRange({})) n++;
  return n;
}

test('concurrent small PUTs share packs, each acknowledged with its own ETag and metadata, all readable', async () => {
  await withGateway(9, async (gw) => {
    const o = gw.objects;
    for (const p of ['replicate:3', 'ec:6+2', 'hybrid:1+6/8']) {
      const b = `b-${p.replace(/[^a-z0-9]+/g, '-')}`;
      await o.createBucket(T, b, parsePolicy(p));
      const values = Array.from({ length: 120 }, (_, i) => randomBytes(1 + ((i * 97) % 3000)));
      const metas = await Promise.all(values.map((v, i) => put(o, b, `k${i}`, v, i % 3 === 0 ? { contentType: 'text/csv', userMeta: { meter: `m-${i}` } } : {})));
      metas.forEach((m, i) => {
        assert.ok(m.pack, 'a small single PUT is a pack member');
        assert.equal(m.etag, `"${md5(values[i]!)}"`);
      });
      const packs = new Set(metas.map((m) => m.pack!.id));
      assert.ok(packs.size < values.length / 4, `${packs.size} packs for ${values.length} concurrent PUTs`);
      for (let i = 0; i < values.length; i++) {
        const h = o.head(T, b, `k${i}`);
        assert.equal(h.etag, `"${md5(values[i]!)}"`);
        assert.equal(h.contentType, i % 3 === 0 ? 'text/csv' : undefined);
        assert.deepEqual(h.userMeta, i % 3 === 0 ? { meter: `m-${i}` } : undefined);
        assert.deepEqual(await o.getBuffer(T, b, `k${i}`), values[i]);
      }
      const use = o.storageUse(T, b);
      assert.equal(use.objects, values.length);
      assert.ok(use.raw > use.logical, `raw storage counts the packs (${use.raw} bytes for ${use.logical})`);
      // The pack's sealed metadata copy lists every member with its metadata (enough to rebuild the index).
      const id = metas[0]!.pack!.id;
      const rec = o.opts.meta.packs.get(id)!;
      const node = gw.nodes.find((n) => n.id === rec.layout.nodes[0])!;
      const copy = await o.readPackCopy(id, (await node.get(`${id}.meta`))!);
      const listed = new Map(copy.members.map((m) => [m.key, m]));
      for (const m of metas.filter((x) => x.pack!.id === id)) assert.deepEqual(listed.get(m.key)?.userMeta, m.userMeta);
    }
  });
});

test('a body larger than the group limit, or without an announced size, is an object of its own', async () => {
  await withGateway(9, async (gw) => {
    const o = gw.objects;
    await o.createBucket(T, 'b');
    const big = randomBytes(40_000);
    assert.equal((await put(o, 'b', 'big', big)).pack, undefined);
    assert.equal((await o.putBuffer(T, 'b', 'plain', Buffer.from('no size announced'))).pack, undefined);
    assert.deepEqual(await o.getBuffer(T, 'b', 'big'), big);
  });
});

test('concurrent PUTs of one key: the newest version wins; superseded packs are dropped with their fragments', async () => {
  await withGateway(9, async (gw) => {
    const o = gw.objects;
    await o.createBucket(T, 'v');
    const writes = await Promise.all(Array.from({ length: 40 }, (_, i) => put(o, 'v', 'same', Buffer.from(`value-${i}`))));
    const newest = writes.reduce((a, b) => (a.version > b.version ? a : b));
    assert.equal((await o.getBuffer(T, 'v', 'same')).toString(), `value-${writes.indexOf(newest)}`);
    assert.equal(o.head(T, 'v', 'same').version, newest.version);
    // Later rounds supersede every member of the earlier packs: those packs go away.
    for (let r = 0; r < 3; r++) await Promise.all(Array.from({ length: 10 }, (_, i) => put(o, 'v', 'same', Buffer.from(`round-${r}-${i}`))));
    assert.equal(packCount(o), 1, 'only the pack holding the live version is left');
    await o.deleteObject(T, 'v', 'same');
    assert.equal(packCount(o), 0);
    await new Promise((r) => setTimeout(r, 100));
    let fragments = 0;
    for (const n of gw.nodes) fragments += (await n.list({ limit: 1000 })).keys.length;
    assert.equal(fragments, 0, 'no fragment or metadata copy is left');
  });
});

test('a group that misses its write quorum fails every member and leaves none visible', async () => {
  await withGateway(3, async (gw) => {
    const o = gw.objects;
    await o.createBucket(T, 'q', parsePolicy('replicate:3'));
    await put(o, 'q', 'before', Buffer.from('ok'));
    await gw.nodes[1]!.close();
    await gw.nodes[2]!.close();
    const results = await Promise.allSettled(Array.from({ length: 25 }, (_, i) => put(o, 'q', `during-${i}`, randomBytes(500))));
    for (const r of results) {
      assert.equal(r.status, 'rejected');
      assert.equal((r.reason as { code: string }).code, 'ServiceUnavailable');
    }
    for (let i = 0; i < 25; i++) assert.throws(() => o.head(T, 'q', `during-${i}`), (e: Error & { code: string }) => e.code === 'NoSuchKey');
    assert.equal((await o.getBuffer(T, 'q', 'before')).toString(), 'ok');
  });
});

test('the block cache: overwrites and deletes are seen at once; a dropped pack leaves the cache; the bound holds', async () => {
  await withGateway(9, async (gw) => {
    const o = gw.objects;
    const internals = o as unknown as { blockCache: Map<string, unknown>; blockCacheUsed: number };
    await o.createBucket(T, 'c');
    const values = Array.from({ length: 20 }, (_, i) => Buffer.from(`v${i}-${'y'.repeat(200)}`));
    const metas = await Promise.all(values.map((v, i) => put(o, 'c', `k${i}`, v)));
    for (let i = 0; i < 20; i++) assert.deepEqual(await o.getBuffer(T, 'c', `k${i}`), values[i]);
    assert.ok(internals.blockCache.size > 0, 'reads fill the cache');
    // A value handed out is a copy: changing it does not change the next read.
    const first = await o.getBuffer(T, 'c', 'k0');
    first.fill(0);
    assert.deepEqual(await o.getBuffer(T, 'c', 'k0'), values[0]);
    await put(o, 'c', 'k1', Buffer.from('new'));
    assert.equal((await o.getBuffer(T, 'c', 'k1')).toString(), 'new');
    await o.deleteObject(T, 'c', 'k2');
    assert.throws(() => o.head(T, 'c', 'k2'), (e: Error & { code: string }) => e.code === 'NoSuchKey');
    assert.deepEqual(await o.getBuffer(T, 'c', 'k3'), values[3]);
    // Every member of the first packs removed: those packs are dropped, and so are their cached blocks.
    const old = new Set(metas.map((m) => m.pack!.id));
    await o.deleteObjects(T, 'c', values.map((_, i) => `k${i}`));
    for (const k of internals.blockCache.keys()) assert.ok(!old.has(k.slice(0, 32)), 'no block of a dropped pack stays cached');
    // The bound: with room for two blocks, reading many keeps at most that much.
    (o.opts as { blockCacheBytes?: number }).blockCacheBytes = 2 * 4096;
    const more = Array.from({ length: 60 }, (_, i) => randomBytes(900 + i));
    await Promise.all(more.map((v, i) => put(o, 'c', `m${i}`, v)));
    for (let i = 0; i < 60; i++) assert.deepEqual(await o.getBuffer(T, 'c', `m${i}`), more[i]);
    assert.ok(internals.blockCacheUsed <= 2 * 4096, `${internals.blockCacheUsed} bytes cached`);
  });
});

test('cached reads do not re-read node bytes; uncached reads and the scrubber still find bit rot', async () => {
  await withGateway(9, async (gw) => {
    const o = gw.objects;
    await o.createBucket(T, 'r', parsePolicy('replicate:3'));
    const value = randomBytes(700);
    const m = await put(o, 'r', 'k', value);
    assert.deepEqual(await o.getBuffer(T, 'r', 'k'), value);
    const rec = o.opts.meta.packs.get(m.pack!.id)!;
    for (const [fi, n] of rec.layout.nodes.entries()) {
      const node = gw.nodes.find((x) => x.id === n)!;
      const fk = `${rec.id}.0.${fi}`;
      const bad = Buffer.from((await node.get(fk))!);
      bad[5]! ^= 0xff;
      await node.put([{ key: fk, value: bad }]);
    }
    assert.deepEqual(await o.getBuffer(T, 'r', 'k'), value, 'served from the verified block in gateway memory');
    (o.opts as { blockCacheBytes?: number }).blockCacheBytes = 0;
    (o as unknown as { blockCache: Map<string, unknown> }).blockCache.clear();
    await assert.rejects(o.getBuffer(T, 'r', 'k'), /failed authentication|quorum/);
    const report = await gw.heal();
    assert.equal(report.corrupt, 3);
  });
});
