// Storage node: one behaviour suite run against LocalFragmentStore and against RemoteFragmentStore talking to
// a real node server on 127.0.0.1 (port 0), plus the wire codec's properties and the HTTP surface.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  LocalFragmentStore, NodeRequestError, NodeUnavailableError, RemoteFragmentStore, startNodeServer,
  type FragmentStore, type NodeServer,
} from '../../src/kvs/node/index.js';
import {
  MAX_KEY_BYTES, WireError, decodeEntries, decodeKeys, decodeValues, encodeEntries, encodeKeys, encodeValues,
} from '../../src/kvs/node/wire.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'sg-node-'));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const buf = (s: string): Buffer => Buffer.from(s, 'utf8');
const isUnavailable = (err: unknown): boolean => err instanceof NodeUnavailableError && err.code === 'NodeUnavailable';
const isBadRequest = (err: unknown): boolean => err instanceof NodeRequestError && err.code === 'NodeBadRequest';
const isUnauthorized = (err: unknown): boolean => err instanceof NodeRequestError && err.code === 'NodeUnauthorized';

interface Harness {
  store: FragmentStore;
  /** Closes everything and opens the same data again (local: same dir; remote: server restart on the same dir). */
  reopen(): Promise<FragmentStore>;
  close(): Promise<void>;
}

async function localHarness(): Promise<Harness> {
  const dir = tempDir();
  let store = new LocalFragmentStore({ id: 'local-1', dir });
  return {
    get store() { return store; },
    async reopen() {
      await store.close();
      store = new LocalFragmentStore({ id: 'local-1', dir });
      return store;
    },
    async close() { await store.close(); },
  };
}

async function remoteHarness(): Promise<Harness> {
  const dir = tempDir();
  let server = await startNodeServer({ dataDir: dir, port: 0 });
  let store = new RemoteFragmentStore({ url: server.url });
  return {
    get store() { return store; },
    async reopen() {
      await store.close();
      await server.close();
      server = await startNodeServer({ dataDir: dir, port: 0 });
      store = new RemoteFragmentStore({ url: server.url });
      return store;
    },
    async close() {
      await store.close();
      await server.close();
    },
  };
}

function behaviourSuite(kind: string, make: () => Promise<Harness>): void {
  describe(`${kind} store`, () => {
    let h: Harness;
    before(async () => { h = await make(); });
    after(async () => { await h.close(); });

    test('put then get whole values; missing keys are undefined; empty values are present', async () => {
      const s = h.store;
      await s.put([{ key: 'a/1', value: buf('hello') }, { key: 'a/2', value: Buffer.alloc(0) }]);
      assert.deepEqual(await s.get('a/1'), buf('hello'));
      assert.deepEqual(await s.get('a/2'), Buffer.alloc(0));
      assert.equal(await s.get('a/none'), undefined);
      await s.put([{ key: 'a/1', value: buf('world!') }]);
      assert.deepEqual(await s.get('a/1'), buf('world!'));
      await s.put([]);
    });

    test('the last entry wins when one put names a key twice', async () => {
      await h.store.put([{ key: 'dup', value: buf('one') }, { key: 'dup', value: buf('two') }]);
      assert.deepEqual(await h.store.get('dup'), buf('two'));
    });

    test('range reads are [start, end) clamped to the size, and copies', async () => {
      const s = h.store;
      await s.put([{ key: 'r/x', value: buf('0123456789') }]);
      assert.deepEqual(await s.get('r/x', { start: 2, end: 5 }), buf('234'));
      assert.deepEqual(await s.get('r/x', { start: 0, end: 1 }), buf('0'));
      assert.deepEqual(await s.get('r/x', { start: 7, end: 100 }), buf('789'));
      assert.deepEqual(await s.get('r/x', { start: 10, end: 12 }), Buffer.alloc(0));
      assert.deepEqual(await s.get('r/x', { start: 50, end: 60 }), Buffer.alloc(0));
      assert.deepEqual(await s.get('r/x', { start: 5, end: 2 }), Buffer.alloc(0));
      assert.equal(await s.get('r/none', { start: 0, end: 4 }), undefined);
      assert.equal(await s.get('r/none', { start: 3, end: 3 }), undefined);
      const a = await s.get('r/x', { start: 0, end: 4 });
      const b = await s.get('r/x', { start: 4, end: 8 });
      assert.deepEqual([a, b], [buf('0123'), buf('4567')], 'an earlier slice is not overwritten by a later read');
      await s.put([{ key: 'r/empty', value: Buffer.alloc(0) }]);
      assert.deepEqual(await s.get('r/empty', { start: 0, end: 5 }), Buffer.alloc(0));
      await assert.rejects(s.get('r/x', { start: -1, end: 3 }), isBadRequest);
      await assert.rejects(s.get('r/x', { start: 1.5, end: 3 }), isBadRequest);
    });

    test('getMany returns values in order with undefined for absent keys', async () => {
      const s = h.store;
      await s.put([{ key: 'm/1', value: buf('one') }, { key: 'm/2', value: buf('two') }, { key: 'm/e', value: Buffer.alloc(0) }]);
      assert.deepEqual(await s.getMany(['m/2', 'm/x', 'm/1', 'm/e', 'm/2']), [buf('two'), undefined, buf('one'), Buffer.alloc(0), buf('two')]);
      assert.deepEqual(await s.getMany([]), []);
      assert.deepEqual(await s.getMany(['m/none']), [undefined]);
    });

    test('delete removes existing keys and ignores missing ones', async () => {
      const s = h.store;
      await s.put([{ key: 'd/1', value: buf('1') }, { key: 'd/2', value: buf('2') }, { key: 'd/3', value: buf('3') }]);
      await s.delete(['d/1', 'd/missing', 'd/3']);
      assert.deepEqual(await s.getMany(['d/1', 'd/2', 'd/3']), [undefined, buf('2'), undefined]);
      await s.delete(['d/2']);
      assert.equal(await s.get('d/2'), undefined);
      await s.delete(['d/2']);
      await s.delete([]);
    });

    test('list pages through a prefix in byte order with after / limit / next', async () => {
      const s = h.store;
      const keys = Array.from({ length: 25 }, (_, i) => `L/${String(i).padStart(2, '0')}`);
      await s.put(keys.map((key, i) => ({ key, value: Buffer.alloc(i, 1) })));
      await s.put([{ key: 'L', value: buf('exact') }, { key: 'L0', value: buf('x') }, { key: 'K/9', value: buf('x') }, { key: 'M/0', value: buf('x') }]);

      const first = await s.list({ prefix: 'L/', limit: 10 });
      assert.deepEqual(first.keys.map((k) => k.key), keys.slice(0, 10));
      assert.deepEqual(first.keys.map((k) => k.size), Array.from({ length: 10 }, (_, i) => i));
      assert.equal(first.next, 'L/09');
      const seen = [...first.keys.map((k) => k.key)];
      let next: string | undefined = first.next;
      while (next) {
        const page = await s.list({ prefix: 'L/', after: next, limit: 10 });
        seen.push(...page.keys.map((k) => k.key));
        next = page.next;
      }
      assert.deepEqual(seen, keys);

      const exact = await s.list({ prefix: 'L/', after: 'L/14', limit: 10 });
      assert.deepEqual(exact.keys.map((k) => k.key), keys.slice(15));
      assert.equal(exact.next, undefined, 'no next when the page holds exactly the rest');
      assert.deepEqual((await s.list({ prefix: 'L' })).keys.map((k) => k.key), ['L', ...keys, 'L0']);
      assert.deepEqual(await s.list({ prefix: 'nothing/' }), { keys: [] });
      assert.deepEqual((await s.list({ prefix: 'L/', after: 'A' , limit: 2 })).keys.map((k) => k.key), ['L/00', 'L/01']);
      assert.deepEqual(await s.list({ prefix: 'L/', after: 'Z' }), { keys: [] });
      const all = await s.list({ after: 'L0', limit: 1 });
      assert.deepEqual(all.keys.map((k) => k.key), ['M/0']);
      const everything = await s.list();
      const names = everything.keys.map((k) => k.key);
      assert.deepEqual(names, [...names].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)));
      assert.ok(names.includes('K/9') && names.includes('M/0'));
      await assert.rejects(s.list({ limit: 0 }), isBadRequest);
      await assert.rejects(s.list({ prefix: 'has space' }), isBadRequest);
    });

    test('an 8 MiB value round-trips, whole and by range', async () => {
      const s = h.store;
      const big = Buffer.alloc(8 * 1024 * 1024);
      for (let i = 0; i < big.length; i += 4096) big.writeUInt32BE(i, i);
      await s.put([{ key: 'big/1', value: big }, { key: 'big/small', value: buf('s') }]);
      const got = await s.get('big/1');
      assert.ok(got && got.equals(big));
      assert.ok((await s.get('big/1', { start: 4096 * 1000, end: 4096 * 1000 + 4 }))!.equals(big.subarray(4096 * 1000, 4096 * 1000 + 4)));
      const many = await s.getMany(['big/small', 'big/1']);
      assert.ok(many[1]!.equals(big));
      const st = await s.status();
      assert.ok(st.ok);
      assert.ok(st.bytes >= big.length, `status bytes ${st.bytes} counts the big value`);
      await s.delete(['big/1']);
    });

    test('invalid keys are rejected with NodeBadRequest, before anything is stored', async () => {
      const s = h.store;
      for (const key of ['', 'has space', 'tab\t', 'é', 'x'.repeat(MAX_KEY_BYTES + 1)]) {
        await assert.rejects(s.get(key), isBadRequest, JSON.stringify(key));
        await assert.rejects(s.put([{ key: 'ok/1', value: buf('v') }, { key, value: buf('v') }]), isBadRequest);
        await assert.rejects(s.getMany(['ok/1', key]), isBadRequest);
        await assert.rejects(s.delete([key]), isBadRequest);
      }
      assert.equal(await s.get('ok/1'), undefined, 'a rejected put stores nothing');
      const longest = 'k'.repeat(MAX_KEY_BYTES);
      await s.put([{ key: longest, value: buf('v') }, { key: '~!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}', value: buf('w') }]);
      assert.deepEqual(await s.getMany([longest, '~!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}']), [buf('v'), buf('w')]);
    });

    test('32 concurrent writers of small fragments, then status counts them', async () => {
      const s = h.store;
      const before = (await s.status()).entries;
      const n = 320;
      let next = 0;
      await Promise.all(Array.from({ length: 32 }, async () => {
        while (next < n) {
          const i = next++;
          await s.put([{ key: `c/${i}`, value: buf(`v${i}`) }]);
        }
      }));
      const keys = Array.from({ length: n }, (_, i) => `c/${i}`);
      assert.deepEqual(await s.getMany(keys), keys.map((_, i) => buf(`v${i}`)));
      assert.equal((await s.status()).entries, before + n);
    });

    test('data survives closing and reopening the same directory', async () => {
      await h.store.put([{ key: 'p/keep', value: buf('durable') }]);
      const again = await h.reopen();
      assert.deepEqual(await again.get('p/keep'), buf('durable'));
    });

    test('a closed store rejects every call with NodeUnavailableError', async () => {
      const s = h.store;
      await s.close();
      await s.close();
      await assert.rejects(s.put([{ key: 'z', value: buf('z') }]), isUnavailable);
      await assert.rejects(s.get('z'), isUnavailable);
      await assert.rejects(s.get('z', { start: 0, end: 1 }), isUnavailable);
      await assert.rejects(s.getMany(['z']), isUnavailable);
      await assert.rejects(s.delete(['z']), isUnavailable);
      await assert.rejects(s.list(), isUnavailable);
      await assert.rejects(s.status(), isUnavailable);
      await h.reopen();
    });
  });
}

behaviourSuite('local', localHarness);
behaviourSuite('remote', remoteHarness);

describe('remote store failures', () => {
  test('a stopped server gives NodeUnavailableError quickly, not a hang', async () => {
    const server = await startNodeServer({ dataDir: tempDir(), port: 0 });
    const store = new RemoteFragmentStore({ url: server.url, timeoutMs: 2000 });
    await store.put([{ key: 'k', value: buf('v') }]); // leaves a keep-alive connection behind
    await server.close();
    const t0 = Date.now();
    await assert.rejects(store.get('k'), isUnavailable);
    await assert.rejects(store.put([{ key: 'k', value: buf('v') }, { key: 'k2', value: buf('v') }]), isUnavailable);
    await assert.rejects(store.status(), isUnavailable);
    assert.ok(Date.now() - t0 < 1500, `failed in ${Date.now() - t0} ms`);
    await store.close();
  });

  test('a node that accepts but never answers times out into NodeUnavailableError', async () => {
    const sockets: Socket[] = [];
    const hung = createServer((sock) => { sockets.push(sock); });
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
    const { port } = hung.address() as { port: number };
    const store = new RemoteFragmentStore({ url: `http://127.0.0.1:${port}`, timeoutMs: 300, id: 'hung' });
    const t0 = Date.now();
    await assert.rejects(store.getMany(['a', 'b']), (err) => isUnavailable(err) && (err as NodeUnavailableError).nodeId === 'hung');
    assert.ok(Date.now() - t0 < 3000);
    await store.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => hung.close(() => resolve()));
  });

  test('a token-protected node answers 401 → NodeUnauthorized; /health and /metrics stay open', async () => {
    const server = await startNodeServer({ dataDir: tempDir(), port: 0, token: 's3cret-token' });
    try {
      const anon = new RemoteFragmentStore({ url: server.url });
      const wrong = new RemoteFragmentStore({ url: server.url, token: 'nope' });
      const right = new RemoteFragmentStore({ url: server.url, token: 's3cret-token' });
      await assert.rejects(anon.put([{ key: 't', value: buf('v') }]), isUnauthorized);
      await assert.rejects(anon.get('t'), isUnauthorized);
      await assert.rejects(wrong.getMany(['t']), isUnauthorized);
      await assert.rejects(wrong.list(), isUnauthorized);
      await right.put([{ key: 't', value: buf('v') }]);
      assert.deepEqual(await right.get('t'), buf('v'));
      assert.equal((await anon.status()).entries, 1);
      const m = await fetch(`${server.url}/metrics`);
      assert.equal(m.status, 200);
      await Promise.all([anon.close(), wrong.close(), right.close()]);
    } finally {
      await server.close();
    }
  });
});

describe('node server over HTTP', () => {
  let server: NodeServer;
  let dir: string;
  before(async () => {
    dir = tempDir();
    server = await startNodeServer({ dataDir: dir, port: 0 });
  });
  after(async () => { await server.close(); });

  test('GET with Range answers 206 / 416 and PUT stores raw bytes', async () => {
    const put = await fetch(`${server.url}/v1/f/${encodeURIComponent('h/a?b#c%d')}`, {
      method: 'PUT', body: buf('0123456789'), headers: { 'content-type': 'application/octet-stream' },
    });
    assert.equal(put.status, 204);
    const url = `${server.url}/v1/f/${encodeURIComponent('h/a?b#c%d')}`;
    const r1 = await fetch(url, { headers: { range: 'bytes=2-4' } });
    assert.equal(r1.status, 206);
    assert.equal(r1.headers.get('content-range'), 'bytes 2-4/10');
    assert.equal(await r1.text(), '234');
    const r2 = await fetch(url, { headers: { range: 'bytes=-3' } });
    assert.equal(await r2.text(), '789');
    const r3 = await fetch(url, { headers: { range: 'bytes=8-' } });
    assert.equal(r3.status, 206);
    assert.equal(await r3.text(), '89');
    const r4 = await fetch(url, { headers: { range: 'bytes=10-20' } });
    assert.equal(r4.status, 416);
    assert.equal(r4.headers.get('content-range'), 'bytes */10');
    await r4.body?.cancel();
    const r5 = await fetch(url, { headers: { range: 'bytes=1-2,4-5' } });
    assert.equal(r5.status, 200, 'multi-range is ignored');
    assert.equal(await r5.text(), '0123456789');
    const missing = await fetch(`${server.url}/v1/f/nope`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
  });

  test('bad keys and bad queries are 400', async () => {
    for (const path of ['/v1/f/has%20space', `/v1/f/${'x'.repeat(201)}`, '/v1/f/%C3%A9', '/v1/list?limit=0', '/v1/list?limit=abc', '/v1/list?prefix=a&prefix=b']) {
      const res = await fetch(`${server.url}${path}`);
      assert.equal(res.status, 400, path);
      const body = await res.json() as { code: string };
      assert.equal(typeof body.code, 'string');
    }
  });

  test('random garbage batch bodies get 400 (or a 2xx when they happen to be valid), never a crash', async () => {
    await fc.assert(fc.asyncProperty(
      fc.constantFrom('put', 'get', 'delete'),
      fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ minLength: 4, maxLength: 64 }).map((b) => {
        b.set([0, 0, 0, 1 + (b[3]! % 3)]); // plausible small counts, to get past the first check
        return b;
      })),
      async (op, body) => {
        const res = await fetch(`${server.url}/v1/batch/${op}`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
        await res.arrayBuffer();
        assert.ok(res.status === 400 || res.status === 200 || res.status === 204, `status ${res.status}`);
      },
    ), { numRuns: 60 });
    const health = await fetch(`${server.url}/health`);
    assert.equal(health.status, 200);
  });

  test('/health is a NodeStatus and /metrics counts requests; the id survives a restart', async () => {
    const health = await (await fetch(`${server.url}/health`)).json() as { id: string; ok: boolean; entries: number };
    assert.equal(health.ok, true);
    assert.equal(health.id, readFileSync(join(dir, 'node-id'), 'utf8').trim());
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /kvs_node_requests_total\{[^}]*op="put"[^}]*status="204"/);
    assert.match(metrics, /kvs_node_entries\{[^}]*\} [1-9]/);
    assert.doesNotMatch(metrics, /0123456789/);
    await server.close();
    server = await startNodeServer({ dataDir: dir, port: 0 });
    const store = new RemoteFragmentStore({ url: server.url, id: 'n1' });
    const st = await store.status();
    assert.equal(st.id, 'n1');
    assert.equal(st.nodeId, health.id);
    assert.deepEqual(await store.get('h/a?b#c%d'), buf('0123456789'));
    await store.close();
  });
});

describe('wire codec', () => {
  const keyArb = fc.string({
    unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
    minLength: 1, maxLength: MAX_KEY_BYTES,
  });
  const valueArb = fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u));
  const entryArb = fc.record({ key: keyArb, value: valueArb }).map(({ key, value }) => ({ key, value }));

  test('entries, keys and values round-trip', () => {
    fc.assert(fc.property(fc.array(entryArb, { maxLength: 20 }), (entries) => {
      assert.deepEqual(decodeEntries(encodeEntries(entries)), entries);
    }));
    fc.assert(fc.property(fc.array(keyArb, { maxLength: 30 }), (keys) => {
      assert.deepEqual(decodeKeys(encodeKeys(keys)), keys);
    }));
    fc.assert(fc.property(fc.array(fc.option(valueArb, { nil: undefined }), { maxLength: 20 }), (values) => {
      assert.deepEqual(decodeValues(encodeValues(values), values.length), values);
    }));
  });

  test('garbage and truncated input throws WireError, nothing else', () => {
    const onlyWireErrors = (fn: () => unknown): void => {
      try {
        fn();
      } catch (err) {
        assert.ok(err instanceof WireError, `unexpected ${String(err)}`);
      }
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (u) => {
      const b = Buffer.from(u);
      onlyWireErrors(() => decodeEntries(b));
      onlyWireErrors(() => decodeKeys(b));
      onlyWireErrors(() => decodeValues(b));
    }), { numRuns: 500 });
    fc.assert(fc.property(fc.array(entryArb, { minLength: 1, maxLength: 5 }), fc.nat(), (entries, cut) => {
      const enc = encodeEntries(entries);
      const at = cut % enc.length;
      assert.throws(() => decodeEntries(enc.subarray(0, at)), WireError);
      assert.throws(() => decodeEntries(Buffer.concat([enc, Buffer.from([0])])), WireError);
    }));
    assert.throws(() => decodeValues(encodeValues([buf('a')]), 2), WireError);
    assert.throws(() => decodeKeys(Buffer.from([0xff, 0xff, 0xff, 0xff])), WireError);
    assert.throws(() => encodeKeys(['bad key']), WireError);
  });
});
