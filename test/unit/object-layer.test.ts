// The object layer over in-process LMDB storage nodes: quorum, visibility, versions, healing, orphans.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localNodeSpecs, startGateway, type Gateway } from '../../src/kvs/index.js';
import { newId } from '../../src/kvs/gateway/clock.js';

async function withGateway(fn: (gw: Gateway, dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sg-ol-'));
  const gw = await startGateway({ dataDir: join(dir, 'gw'), nodes: localNodeSpecs(join(dir, 'nodes'), 9), noListen: true });
  try {
    await fn(gw, dir);
  } finally {
    await gw.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const T = 'tenant-x';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('writes meet quorum with tolerated nodes down, fail cleanly beyond it, and leave nothing visible', async () => {
  await withGateway(async (gw) => {
    const o = gw.objects;
    await o.createBucket(T, 'cold', (await import('../../src/kvs/erasure/index.js')).parsePolicy('ec:6+2'));
    const data = randomBytes(300_000);
    await o.putBuffer(T, 'cold', 'before', data);
    const placed = o.head(T, 'cold', 'before').parts[0]!.nodes;
    // Close two of the object's nodes: reads and writes still work.
    const byId = new Map(gw.nodes.map((n) => [n.id, n]));
    await byId.get(placed[0]!)!.close();
    await byId.get(placed[7]!)!.close();
    assert.equal(sha(await o.getBuffer(T, 'cold', 'before')), sha(data));
    let ok = 0;
    let refused = 0;
    for (let i = 0; i < 20; i++) {
      try {
        await o.putBuffer(T, 'cold', `during-${i}`, randomBytes(5000));
        ok++;
      } catch (err) {
        assert.equal((err as { code: string }).code, 'ServiceUnavailable');
        refused++;
      }
    }
    // At most 2 of any object's 8 placement nodes are down: 6 fragments remain, the write quorum of ec:6+2.
    assert.equal(ok, 20);
    assert.equal(refused, 0);
    // A third node down: objects placed on all three closed nodes cannot be written (6 needed, 5 left) or read.
    await byId.get(placed[3]!)!.close();
    await assert.rejects(o.getBuffer(T, 'cold', 'before'), (err: Error & { code: string }) => err.code === 'ServiceUnavailable' && /quorum/.test(err.message));
    let failedWrites = 0;
    for (let i = 0; i < 30; i++) {
      try {
        await o.putBuffer(T, 'cold', `beyond-${i}`, randomBytes(5000));
      } catch (err) {
        assert.equal((err as { code: string }).code, 'ServiceUnavailable');
        failedWrites++;
        assert.throws(() => o.head(T, 'cold', `beyond-${i}`), (e: Error & { code: string }) => e.code === 'NoSuchKey');
      }
    }
    assert.ok(failedWrites > 0, 'some placements include all three closed nodes');
  });
});

test('the newest version wins, and a superseded version’s fragments are removed', async () => {
  await withGateway(async (gw) => {
    const o = gw.objects;
    await o.createBucket(T, 'b');
    const writes = await Promise.all(Array.from({ length: 10 }, (_, i) => o.putBuffer(T, 'b', 'k', Buffer.from(`v${i}`))));
    const newest = writes.reduce((a, b) => (a.version > b.version ? a : b));
    assert.equal((await o.getBuffer(T, 'b', 'k')).toString(), `v${writes.indexOf(newest)}`);
    assert.equal(o.head(T, 'b', 'k').id, newest.id);
    await new Promise((r) => setTimeout(r, 200));
    let fragments = 0;
    for (const n of gw.nodes) fragments += (await n.list({ limit: 1000 })).keys.filter((k) => !k.key.endsWith('.meta')).length;
    assert.equal(fragments, 3, 'only the newest version’s 3 replicas remain');
  });
});

test('a corrupt fragment is detected on read, the read is still correct, and healing restores it', async () => {
  await withGateway(async (gw) => {
    const o = gw.objects;
    await o.createBucket(T, 'h', (await import('../../src/kvs/erasure/index.js')).parsePolicy('hybrid:1+6/8'));
    const data = randomBytes(2 * 1024 * 1024 + 99);
    const meta = await o.putBuffer(T, 'h', 'obj', data);
    const part = meta.parts[0]!;
    const replicaNode = gw.nodes.find((n) => n.id === part.nodes[0])!;
    const key = `${part.id}.0.0`;
    const good = (await replicaNode.get(key))!;
    const bad = Buffer.from(good);
    bad[1000] ^= 0xff;
    await replicaNode.put([{ key, value: bad }]);
    assert.equal(sha(await o.getBuffer(T, 'h', 'obj')), sha(data));
    const ranged: Buffer[] = [];
    for await (const c of o.read(meta, 10, 5000)) ranged.push(c);
    assert.deepEqual(Buffer.concat(ranged), data.subarray(10, 5000));
    const r = await gw.heal();
    assert.equal(r.corrupt, 1);
    assert.equal(r.rebuilt, 1);
    assert.deepEqual(await replicaNode.get(key), good);
    const again = await gw.heal();
    assert.equal(again.corrupt + again.missing, 0);
  });
});

test('orphaned fragments are collected after the grace period, young ones are kept', async () => {
  await withGateway(async (gw) => {
    const o = gw.objects;
    await o.createBucket(T, 'g');
    await o.putBuffer(T, 'g', 'live', Buffer.from('live'));
    const old = newId((Date.now() - 2 * 3600_000) * 1000, randomBytes(8));
    const young = newId(Date.now() * 1000, randomBytes(8));
    await gw.nodes[0]!.put([{ key: `${old}.0.0`, value: Buffer.from('x') }, { key: `${young}.0.0`, value: Buffer.from('y') }]);
    const removed = await o.collectOrphans();
    assert.equal(removed, 1);
    assert.equal(await gw.nodes[0]!.get(`${old}.0.0`), undefined);
    assert.ok(await gw.nodes[0]!.get(`${young}.0.0`));
    assert.equal((await o.getBuffer(T, 'g', 'live')).toString(), 'live');
  });
});

test('metadata copies beside the fragments unseal to the index entry', async () => {
  await withGateway(async (gw) => {
    const o = gw.objects;
    await o.createBucket(T, 'm');
    const meta = await o.putBuffer(T, 'm', 'name-only-the-gateway-knows', randomBytes(100), { userMeta: { meter: 'm-9' } });
    for (const n of meta.parts[0]!.nodes) {
      const node = gw.nodes.find((x) => x.id === n)!;
      const sealed = (await node.get(`${meta.id}.meta`))!;
      assert.ok(!sealed.includes(Buffer.from('name-only-the-gateway-knows')));
      const copy = await o.readMetaCopy(meta.id, sealed);
      assert.equal(copy.key, 'name-only-the-gateway-knows');
      assert.equal(copy.version, meta.version);
      assert.deepEqual(copy.userMeta, { meter: 'm-9' });
    }
  });
});
