// Existence checks without reads (hasValues / KvStore.hasMany), the pack member blob of the sealed metadata copy,
// and CascaDB's INSERT … ON CONFLICT DO NOTHING answered from existence alone, inside and outside transactions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedKvStore, localNodeSpecs, parsePolicy, startGateway, type Gateway } from '../../src/kvs/index.js';
import { decodePackMemberBlob, encodePackMemberBlob, encodePackMembers } from '../../src/kvs/gateway/meta-store.js';
import { Engine, runJson } from '../../src/cascadb/index.js';
import type { Session } from '../../src/cascadb/server/backend.js';
import { logger } from '../../src/observe/index.js';

async function withStore(fn: (gw: Gateway, kv: EmbeddedKvStore) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sg-exists-'));
  const gw = await startGateway({ dataDir: join(dir, 'gw'), nodes: localNodeSpecs(join(dir, 'nodes'), 5), noListen: true, scrubIntervalMs: 0 });
  try {
    await gw.objects.createBucket('t', 'b', parsePolicy('replicate:3'));
    await fn(gw, new EmbeddedKvStore(gw.objects, 't', 'b'));
  } finally {
    await gw.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('hasMany answers from the index: present, absent, deleted; no fragment is read', async () => {
  await withStore(async (gw, kv) => {
    const k = (i: number) => Buffer.from([1, 2, i]);
    await kv.write([0, 1, 2].map((i) => ({ op: 'put' as const, key: k(i), value: Buffer.from(`v${i}`) })));
    await kv.write([{ op: 'delete', key: k(1) }]);
    // With every storage node's reads failing, existence is still answered (it never touches them).
    const originals = gw.nodes.map((n) => n.getMany.bind(n));
    for (const n of gw.nodes) n.getMany = async () => assert.fail('hasMany read a fragment');
    try {
      assert.deepEqual(await kv.hasMany([k(0), k(1), k(2), k(3)]), [true, false, true, false]);
    } finally {
      gw.nodes.forEach((n, i) => (n.getMany = originals[i]!));
    }
    assert.deepEqual((await kv.getMany([k(0), k(1)])).map((v) => v?.toString()), ['v0', undefined]);
  });
});

test('pack member blob: self-delimiting compact entries, equal to the one-by-one encoding', () => {
  const id = 'ab'.repeat(16);
  const metas = Array.from({ length: 40 }, (_, j) => ({
    id: `${id}-${j}`,
    version: 1_760_000_000_000_000 + j,
    tenant: 'tenant-ü',
    bucket: 'b',
    key: `k/${'é'.repeat(j % 5)}${j}`,
    policy: 'replicate:3',
    storageClass: 'STANDARD',
    size: j * 3,
    etag: `"${'0123456789abcdef'.repeat(2)}"`,
    lastModified: 1_760_000_000_000,
    parts: [],
    pack: { id, s: 0, bo: j * 100, bl: 116, bn: j, o: 0, n: j * 3 },
  }));
  const digests = metas.map(() => Buffer.from('0123456789abcdef0123456789abcdef', 'hex'));
  const { entries, blob } = encodePackMemberBlob(metas, digests);
  assert.ok(blob);
  assert.deepEqual(Buffer.concat(entries), blob);
  assert.deepEqual(encodePackMembers(metas), entries);
  assert.deepEqual(decodePackMemberBlob(blob), metas);
  // Not uniform (another pack id): no blob, entries one by one.
  const mixed = encodePackMemberBlob([metas[0]!, { ...metas[1]!, pack: { ...metas[1]!.pack, id: 'cd'.repeat(16) }, id: `${'cd'.repeat(16)}-1` }]);
  assert.equal(mixed.blob, undefined);
  assert.equal(mixed.entries.length, 2);
});

test('ON CONFLICT DO NOTHING counts only new rows, in and out of transactions, and keeps the stored rows', async () => {
  await withStore(async (_gw, kv) => {
    const engine = new Engine({ kv, log: logger('test') });
    await engine.start();
    const s: Session = { id: 1, user: 'u', database: 'd', params: {}, txStatus: 'I', state: {} };
    const q = (sql: string, params: unknown[] = []) => runJson(engine, s, sql, params);
    await q('CREATE TABLE r (m bigint, ts bigint, v real, note varchar(4), PRIMARY KEY (m, ts))');
    const ins = (rows: unknown[][]) => q(`INSERT INTO r (m, ts, v, note) VALUES ${rows.map((_, i) => `($${i * 4 + 1}, $${i * 4 + 2}, $${i * 4 + 3}, $${i * 4 + 4})`).join(', ')} ON CONFLICT DO NOTHING`, rows.flat());
    assert.equal((await ins([[1, 1, 0.1, 'a'], [1, 2, 0.2, 'b'], [1, 2, 9, 'dup']])).rowCount, 2);
    await q('BEGIN');
    assert.equal((await ins([[1, 2, 5, 'x'], [1, 3, 0.3, 'c']])).rowCount, 1);
    assert.equal((await ins([[1, 3, 7, 'y'], [1, 4, 0.4, 'd']])).rowCount, 1); // (1,3) is the transaction's own
    await q('DELETE FROM r WHERE m = 1 AND ts = 1');
    assert.equal((await ins([[1, 1, 1.5, 'e']])).rowCount, 1); // deleted inside the transaction: free again
    await q('COMMIT');
    const rows = (await q('SELECT ts, v, note FROM r ORDER BY ts')).rows;
    assert.deepEqual(rows, [[1, 1.5, 'e'], [2, 0.2, 'b'], [3, 0.3, 'c'], [4, 0.4, 'd']]);
    // Without ON CONFLICT: 23505; a too-long varchar: 22001; both checked as before.
    await assert.rejects(q('INSERT INTO r (m, ts, v, note) VALUES ($1, $2, $3, $4)', [1, 2, 0, 'z']), (e: { code: string }) => e.code === '23505');
    await assert.rejects(q('INSERT INTO r (m, ts, v, note) VALUES ($1, $2, $3, $4)', [1, 9, 0, 'toolong']), (e: { code: string }) => e.code === '22001');
    await engine.closeSession(s);
  });
});
