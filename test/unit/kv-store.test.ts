// KvStore, the KVS interface CascaDB uses: the same behaviour over HTTPS and embedded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { EmbeddedKvStore, KvsClient, RemoteKvStore, type KvStore } from '../../src/kvs/index.js';
import { startTestKvs, type TestKvs } from '../helpers/kvs.js';

let kvs: TestKvs;
let client: KvsClient;
const stores: Array<[string, () => KvStore]> = [];

before(async () => {
  kvs = await startTestKvs({ nodes: 5 });
  client = new KvsClient({ url: kvs.gw.url, accessKeyId: kvs.accessKeyId, secretAccessKey: kvs.secretAccessKey, ca: kvs.gw.tls?.cert });
  await client.createBucket('kv-remote');
  await client.createBucket('kv-embedded');
  stores.push(['remote', () => new RemoteKvStore(client, 'kv-remote')], ['embedded', () => new EmbeddedKvStore(kvs.gw.objects, kvs.tenant, 'kv-embedded')]);
});
after(async () => {
  await client?.close();
  await kvs?.close();
});

test('get, getMany, atomic write, ordered paged scan — remote and embedded alike', async () => {
  for (const [name, make] of stores) {
    const s = make();
    const keys = Array.from({ length: 1200 }, () => randomBytes(1 + Math.floor(Math.random() * 12)));
    keys.push(Buffer.alloc(0).fill(0, 0), Buffer.from([0]), Buffer.from([0, 0]), Buffer.from([0xff]), Buffer.from([0xff, 0]));
    const uniq = [...new Map(keys.filter((k) => k.length > 0).map((k) => [k.toString('hex'), k])).values()];
    await s.write(uniq.map((k) => ({ op: 'put' as const, key: k, value: Buffer.concat([Buffer.from('v:'), k]) })));
    const sorted = [...uniq].sort(Buffer.compare);
    const all: Buffer[] = [];
    for await (const e of s.scan(Buffer.alloc(0), undefined, { pageSize: 100 })) {
      assert.deepEqual(e.value, Buffer.concat([Buffer.from('v:'), e.key]), name);
      all.push(e.key);
    }
    assert.deepEqual(all.map((k) => k.toString('hex')), sorted.map((k) => k.toString('hex')), `${name}: byte order`);
    const lo = sorted[100]!;
    const hi = sorted[300]!;
    const range: Buffer[] = [];
    for await (const e of s.scan(lo, hi, { pageSize: 64 })) range.push(e.key);
    assert.deepEqual(range.map((k) => k.toString('hex')), sorted.slice(100, 300).map((k) => k.toString('hex')), `${name}: [lo, hi)`);
    assert.deepEqual(await s.get(sorted[5]!), Buffer.concat([Buffer.from('v:'), sorted[5]!]));
    assert.equal(await s.get(Buffer.from('absent-key')), undefined);
    const many = await s.getMany([sorted[0]!, Buffer.from('nope'), sorted[1]!]);
    assert.deepEqual(many, [Buffer.concat([Buffer.from('v:'), sorted[0]!]), undefined, Buffer.concat([Buffer.from('v:'), sorted[1]!])]);
    await s.write([{ op: 'delete', key: sorted[0]! }, { op: 'put', key: sorted[1]!, value: Buffer.from('changed') }]);
    assert.equal(await s.get(sorted[0]!), undefined);
    assert.deepEqual(await s.get(sorted[1]!), Buffer.from('changed'));
    await s.close();
  }
});
