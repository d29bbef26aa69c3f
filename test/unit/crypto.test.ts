import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import {
  CHUNK_SIZE,
  TAG_SIZE,
  WRAPPED_KEY_SIZE,
  ChunkEncryptor,
  CryptoError,
  chunkCount,
  chunkSpan,
  cipherSize,
  decryptChunks,
  newDataKey,
  seal,
  unseal,
  unwrapKey,
  wrapKey,
  SealedFileKeyProvider,
} from '../../src/crypto/index.js';

const SEALED = CHUNK_SIZE + TAG_SIZE;

/** Deterministic-enough filler: random bytes are slow to compare only when huge; these sizes are small. */
function plaintext(n: number): Buffer {
  return randomBytes(n);
}

function encryptAll(key: Buffer, aad: Buffer, plain: Buffer, pieces: number[] = [plain.length]): Buffer {
  const enc = new ChunkEncryptor(key, aad);
  const out: Buffer[] = [];
  let pos = 0;
  for (const n of pieces) {
    out.push(...enc.push(plain.subarray(pos, pos + n)));
    pos += n;
  }
  if (pos < plain.length) out.push(...enc.push(plain.subarray(pos)));
  assert.equal(enc.plainBytes, plain.length);
  out.push(enc.final());
  return Buffer.concat(out);
}

function isCryptoError(code?: string): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof CryptoError, `expected CryptoError, got ${String(e)}`);
    if (code !== undefined) assert.equal(e.code, code);
    return true;
  };
}

describe('envelope sizes', () => {
  test('chunkCount and cipherSize', () => {
    assert.equal(chunkCount(0), 1);
    assert.equal(cipherSize(0), TAG_SIZE);
    assert.equal(chunkCount(1), 1);
    assert.equal(cipherSize(1), 1 + TAG_SIZE);
    assert.equal(chunkCount(CHUNK_SIZE - 1), 1);
    assert.equal(chunkCount(CHUNK_SIZE), 1);
    assert.equal(cipherSize(CHUNK_SIZE), SEALED);
    assert.equal(chunkCount(CHUNK_SIZE + 1), 2);
    assert.equal(cipherSize(CHUNK_SIZE + 1), CHUNK_SIZE + 1 + 2 * TAG_SIZE);
    assert.equal(chunkCount(10 * CHUNK_SIZE), 10);
    assert.throws(() => chunkCount(-1), isCryptoError('BadInput'));
    assert.throws(() => chunkCount(1.5), isCryptoError('BadInput'));
  });

  test('chunkSpan edges', () => {
    const size = 3 * CHUNK_SIZE + 100;
    // whole object
    assert.deepEqual(chunkSpan(size, 0, size), { firstChunk: 0, lastChunk: 3, cipherStart: 0, cipherEnd: cipherSize(size), skip: 0 });
    // single byte at the very start and the very end
    assert.deepEqual(chunkSpan(size, 0, 1), { firstChunk: 0, lastChunk: 0, cipherStart: 0, cipherEnd: SEALED, skip: 0 });
    assert.deepEqual(chunkSpan(size, size - 1, size), {
      firstChunk: 3,
      lastChunk: 3,
      cipherStart: 3 * SEALED,
      cipherEnd: cipherSize(size),
      skip: 99,
    });
    // start exactly at a chunk boundary, end exactly at a chunk boundary
    assert.deepEqual(chunkSpan(size, CHUNK_SIZE, 2 * CHUNK_SIZE), {
      firstChunk: 1,
      lastChunk: 1,
      cipherStart: SEALED,
      cipherEnd: 2 * SEALED,
      skip: 0,
    });
    // last byte of a chunk, first byte of the next
    assert.deepEqual(chunkSpan(size, CHUNK_SIZE - 1, CHUNK_SIZE + 1), {
      firstChunk: 0,
      lastChunk: 1,
      cipherStart: 0,
      cipherEnd: 2 * SEALED,
      skip: CHUNK_SIZE - 1,
    });
    // an object of exactly one full chunk
    assert.deepEqual(chunkSpan(CHUNK_SIZE, 5, CHUNK_SIZE), { firstChunk: 0, lastChunk: 0, cipherStart: 0, cipherEnd: SEALED, skip: 5 });
    // one-byte object
    assert.deepEqual(chunkSpan(1, 0, 1), { firstChunk: 0, lastChunk: 0, cipherStart: 0, cipherEnd: 1 + TAG_SIZE, skip: 0 });
    assert.throws(() => chunkSpan(size, 5, 5), isCryptoError('BadInput'));
    assert.throws(() => chunkSpan(size, 0, size + 1), isCryptoError('BadInput'));
    assert.throws(() => chunkSpan(0, 0, 1), isCryptoError('BadInput'));
    assert.throws(() => chunkSpan(size, -1, 3), isCryptoError('BadInput'));
  });
});

describe('envelope round trips', () => {
  const key = newDataKey();
  const aad = Buffer.from('bucket/object#v1/part1');

  for (const n of [0, 1, 100, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE, 3 * CHUNK_SIZE + 7]) {
    test(`${n} bytes, one push`, () => {
      const plain = plaintext(n);
      const cipher = encryptAll(key, aad, plain);
      assert.equal(cipher.length, cipherSize(n));
      assert.ok(decryptChunks(key, aad, n, 0, cipher).equals(plain));
    });
  }

  test('empty object is one 16-byte chunk; pushing empty buffers changes nothing', () => {
    const enc = new ChunkEncryptor(key, aad);
    assert.deepEqual(enc.push(Buffer.alloc(0)), []);
    const c = enc.final();
    assert.equal(c.length, TAG_SIZE);
    assert.equal(decryptChunks(key, aad, 0, 0, c).length, 0);
  });

  test('a full chunk is held back until it is known not to be final', () => {
    const enc = new ChunkEncryptor(key, aad);
    assert.equal(enc.push(Buffer.alloc(CHUNK_SIZE)).length, 0);
    const more = enc.push(Buffer.alloc(1));
    assert.equal(more.length, 1);
    assert.equal(more[0]!.length, SEALED);
    assert.equal(enc.final().length, 1 + TAG_SIZE);
  });

  test('one large push yields all but the last chunk', () => {
    const enc = new ChunkEncryptor(key, aad);
    const chunks = enc.push(Buffer.alloc(5 * CHUNK_SIZE + 3));
    assert.equal(chunks.length, 5);
    assert.equal(enc.final().length, 3 + TAG_SIZE);
  });

  test('final() twice and push() after final() throw', () => {
    const enc = new ChunkEncryptor(key, aad);
    enc.final();
    assert.throws(() => enc.final(), isCryptoError('BadInput'));
    assert.throws(() => enc.push(Buffer.alloc(1)), isCryptoError('BadInput'));
    assert.throws(() => new ChunkEncryptor(Buffer.alloc(16), aad), isCryptoError('BadKey'));
    assert.throws(() => decryptChunks(Buffer.alloc(31), aad, 0, 0, Buffer.alloc(16)), isCryptoError('BadKey'));
  });

  test('property: random sizes and random pushes round-trip', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.constantFrom(0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE, 2 * CHUNK_SIZE + 1),
          fc.integer({ min: 0, max: 4 * CHUNK_SIZE + 100 }),
        ),
        fc.array(fc.integer({ min: 0, max: 2 * CHUNK_SIZE + 10 }), { maxLength: 8 }),
        fc.array(fc.nat({ max: 200 }), { maxLength: 8 }),
        (n, pieces, tiny) => {
          const plain = plaintext(n);
          // mix big and tiny pushes; the remainder (if any) goes in one last push
          const mixed: number[] = [];
          pieces.forEach((p, i) => mixed.push(p, tiny[i] ?? 0));
          const cipher = encryptAll(key, aad, plain, mixed);
          assert.equal(cipher.length, cipherSize(n));
          assert.ok(decryptChunks(key, aad, n, 0, cipher).equals(plain));
        },
      ),
      { numRuns: 150 },
    );
  });

  test('property: decrypting any range equals the plaintext slice', () => {
    const n = 5 * CHUNK_SIZE + 1234;
    const plain = plaintext(n);
    const cipher = encryptAll(key, aad, plain);
    const boundaries = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE, 5 * CHUNK_SIZE, n - 1, n];
    const pos = fc.oneof(fc.constantFrom(...boundaries), fc.integer({ min: 0, max: n }));
    fc.assert(
      fc.property(pos, pos, (a, b) => {
        fc.pre(a !== b);
        const start = Math.min(a, b);
        const end = Math.max(a, b);
        const span = chunkSpan(n, start, end);
        const part = decryptChunks(key, aad, n, span.firstChunk, cipher.subarray(span.cipherStart, span.cipherEnd));
        assert.ok(part.subarray(span.skip, span.skip + (end - start)).equals(plain.subarray(start, end)));
        // the span holds exactly the chunks needed, no more
        assert.ok(part.length - span.skip - (end - start) < CHUNK_SIZE);
        assert.ok(span.skip < CHUNK_SIZE);
      }),
      { numRuns: 400 },
    );
  });
});

describe('envelope tamper detection', () => {
  const key = newDataKey();
  const aad = Buffer.from('tenant/bucket/key#v7/part1');
  const n = 3 * CHUNK_SIZE + 500;
  const plain = plaintext(n);
  const cipher = encryptAll(key, aad, plain);

  test('wrong key', () => {
    assert.throws(() => decryptChunks(newDataKey(), aad, n, 0, cipher), isCryptoError('DecryptFailed'));
  });

  test('wrong aad', () => {
    assert.throws(() => decryptChunks(key, Buffer.from('tenant/bucket/key#v8/part1'), n, 0, cipher), isCryptoError('DecryptFailed'));
  });

  test('property: any flipped bit', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: cipher.length - 1 }), fc.integer({ min: 0, max: 7 }), (byte, bit) => {
        const bad = Buffer.from(cipher);
        bad[byte]! ^= 1 << bit;
        assert.throws(() => decryptChunks(key, aad, n, 0, bad), isCryptoError('DecryptFailed'));
      }),
      { numRuns: 300 },
    );
    // tags and the short final chunk explicitly
    for (const byte of [SEALED - 1, SEALED - TAG_SIZE, 3 * SEALED, cipher.length - 1]) {
      const bad = Buffer.from(cipher);
      bad[byte]! ^= 0x01;
      assert.throws(() => decryptChunks(key, aad, n, 0, bad), isCryptoError('DecryptFailed'));
    }
  });

  test('chunks reordered', () => {
    const c0 = cipher.subarray(0, SEALED);
    const c1 = cipher.subarray(SEALED, 2 * SEALED);
    const swapped = Buffer.concat([c1, c0, cipher.subarray(2 * SEALED)]);
    assert.throws(() => decryptChunks(key, aad, n, 0, swapped), isCryptoError('DecryptFailed'));
    // a chunk presented at another position
    assert.throws(() => decryptChunks(key, aad, n, 1, c0), isCryptoError('DecryptFailed'));
    assert.throws(() => decryptChunks(key, aad, n, 0, c1), isCryptoError('DecryptFailed'));
  });

  test('truncated object: final flag missing where expected', () => {
    // drop the last chunk and claim the object ended at a chunk boundary
    const short = cipher.subarray(0, 3 * SEALED);
    assert.throws(() => decryptChunks(key, aad, 3 * CHUNK_SIZE, 0, short), isCryptoError('DecryptFailed'));
    assert.throws(() => decryptChunks(key, aad, 3 * CHUNK_SIZE, 2, short.subarray(2 * SEALED)), isCryptoError('DecryptFailed'));
    // a final chunk presented as a middle one (object claimed longer)
    assert.throws(() => decryptChunks(key, aad, n + CHUNK_SIZE, 3, cipher.subarray(3 * SEALED)), isCryptoError());
  });

  test('ciphertext cut mid-chunk, cut to nothing, or running past the final chunk', () => {
    assert.throws(() => decryptChunks(key, aad, n, 0, cipher.subarray(0, cipher.length - 1)), isCryptoError('Truncated'));
    assert.throws(() => decryptChunks(key, aad, n, 0, cipher.subarray(0, SEALED + 10)), isCryptoError('Truncated'));
    assert.throws(() => decryptChunks(key, aad, n, 0, Buffer.alloc(0)), isCryptoError('Truncated'));
    assert.throws(() => decryptChunks(key, aad, n, 0, Buffer.concat([cipher, Buffer.alloc(1)])), isCryptoError());
    assert.throws(() => decryptChunks(key, aad, n, 4, cipher.subarray(0, SEALED)), isCryptoError('BadInput'));
  });

  test('chunk spliced from another object (same key, different aad)', () => {
    const other = encryptAll(key, Buffer.from('tenant/bucket/other#v1/part1'), plaintext(n));
    const spliced = Buffer.concat([cipher.subarray(0, SEALED), other.subarray(SEALED, 2 * SEALED), cipher.subarray(2 * SEALED)]);
    assert.throws(() => decryptChunks(key, aad, n, 0, spliced), isCryptoError('DecryptFailed'));
  });

  test('empty object tampering', () => {
    const empty = encryptAll(key, aad, Buffer.alloc(0));
    const bad = Buffer.from(empty);
    bad[0]! ^= 0x80;
    assert.throws(() => decryptChunks(key, aad, 0, 0, bad), isCryptoError('DecryptFailed'));
    // the empty object's chunk is not a valid first chunk of a longer object
    assert.throws(() => decryptChunks(key, aad, 1, 0, empty), isCryptoError());
  });
});

describe('key wrapping and sealed records', () => {
  const master = newDataKey();
  const aad = Buffer.from('tenant-a/bucket/obj#v1');

  test('wrap / unwrap', () => {
    const dk = newDataKey();
    const w = wrapKey(master, dk, aad);
    assert.equal(w.length, WRAPPED_KEY_SIZE);
    assert.ok(unwrapKey(master, w, aad).equals(dk));
    assert.notDeepEqual(wrapKey(master, dk, aad), w, 'fresh IV every time');
    assert.throws(() => unwrapKey(newDataKey(), w, aad), isCryptoError('DecryptFailed'));
    assert.throws(() => unwrapKey(master, w, Buffer.from('tenant-b/bucket/obj#v1')), isCryptoError('DecryptFailed'));
    const bad = Buffer.from(w);
    bad[20]! ^= 4;
    assert.throws(() => unwrapKey(master, bad, aad), isCryptoError('DecryptFailed'));
    assert.throws(() => unwrapKey(master, w.subarray(1), aad), isCryptoError('BadInput'));
    assert.throws(() => wrapKey(master, Buffer.alloc(16), aad), isCryptoError('BadKey'));
  });

  test('seal / unseal', () => {
    for (const n of [0, 1, 1000]) {
      const p = plaintext(n);
      const s = seal(master, p, aad);
      assert.equal(s.length, 12 + n + TAG_SIZE);
      assert.ok(unseal(master, s, aad).equals(p));
      assert.throws(() => unseal(master, s, Buffer.from('x')), isCryptoError('DecryptFailed'));
      const bad = Buffer.from(s);
      bad[bad.length - 1]! ^= 1;
      assert.throws(() => unseal(master, bad, aad), isCryptoError('DecryptFailed'));
    }
    assert.throws(() => unseal(master, Buffer.alloc(27), aad), isCryptoError('Truncated'));
  });
});

describe('SealedFileKeyProvider', () => {
  const savedEnv = process.env.SECUREGRID_ROOT_KEY;

  async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
    const dir = await mkdtemp(path.join(tmpdir(), 'sg-keys-'));
    delete process.env.SECUREGRID_ROOT_KEY;
    try {
      await fn(dir);
    } finally {
      if (savedEnv === undefined) delete process.env.SECUREGRID_ROOT_KEY;
      else process.env.SECUREGRID_ROOT_KEY = savedEnv;
      await rm(dir, { recursive: true, force: true });
    }
  }

  test('creates root.key 0600, creates tenant keys on request, persists them sealed', async () => {
    await withDir(async (dir) => {
      const kp = new SealedFileKeyProvider(dir);
      await assert.rejects(kp.tenantKey('acme', { create: false }), (e: unknown) => (e as { code?: string }).code === 'NoSuchTenantKey');
      await assert.rejects(kp.tenantKey('acme'), (e: unknown) => (e as { code?: string }).code === 'NoSuchTenantKey');
      const k1 = await kp.tenantKey('acme', { create: true });
      assert.equal(k1.length, 32);
      assert.ok((await kp.tenantKey('acme')).equals(k1));
      const other = await kp.tenantKey('globex', { create: true });
      assert.ok(!other.equals(k1));
      const svc = await kp.serviceKey('api-keys');
      assert.equal(svc.length, 32);
      assert.ok((await kp.serviceKey('api-keys')).equals(svc));
      assert.ok(!(await kp.serviceKey('metadata')).equals(svc));
      // callers get copies: scribbling on one does not change the provider's key
      k1.fill(0);
      assert.ok(!(await kp.tenantKey('acme')).equals(k1));
      await kp.close();
      await assert.rejects(kp.tenantKey('acme'));

      const st = await stat(path.join(dir, 'root.key'));
      assert.equal(st.mode & 0o777, 0o600);
      assert.match((await readFile(path.join(dir, 'root.key'), 'utf8')).trim(), /^[0-9a-f]{64}$/);
      const file = await readFile(path.join(dir, 'keys.sealed'), 'utf8');
      const again = new SealedFileKeyProvider(dir);
      const acme = await again.tenantKey('acme');
      for (const k of [acme, other, svc]) {
        assert.ok(!file.includes(k.toString('hex')), 'key material must not appear in the clear');
        assert.ok(!file.includes(k.toString('base64')), 'key material must not appear in the clear');
      }
      assert.ok((await again.tenantKey('globex')).equals(other));
      assert.ok((await again.serviceKey('api-keys')).equals(svc));
      await again.close();
    });
  });

  test('a provider sees keys another one created later (re-reads on a miss)', async () => {
    await withDir(async (dir) => {
      const a = new SealedFileKeyProvider(dir);
      const b = new SealedFileKeyProvider(dir);
      await assert.rejects(b.tenantKey('late'), (e: unknown) => (e as { code?: string }).code === 'NoSuchTenantKey');
      const ka = await a.tenantKey('late', { create: true });
      assert.ok((await b.tenantKey('late')).equals(ka));
      await Promise.all([a.close(), b.close()]);
    });
  });

  test('concurrent creators agree and lose no key', async () => {
    await withDir(async (dir) => {
      const providers = [0, 1, 2].map(() => new SealedFileKeyProvider(dir));
      const tenants = Array.from({ length: 8 }, (_, i) => `t${i}`);
      const results = await Promise.all(
        providers.map((p) => Promise.all(tenants.map((t) => p.tenantKey(t, { create: true })))),
      );
      for (let t = 0; t < tenants.length; t++) {
        assert.ok(results[1]![t]!.equals(results[0]![t]!), `tenant ${t} differs between providers`);
        assert.ok(results[2]![t]!.equals(results[0]![t]!), `tenant ${t} differs between providers`);
      }
      const fresh = new SealedFileKeyProvider(dir);
      for (let t = 0; t < tenants.length; t++) assert.ok((await fresh.tenantKey(tenants[t]!)).equals(results[0]![t]!));
      await Promise.all([...providers, fresh].map((p) => p.close()));
    });
  });

  test('concurrent processes creating the same keys agree and lose none', async () => {
    await withDir(async (dir) => {
      const moduleUrl = new URL('../../src/crypto/key-provider.js', import.meta.url).href;
      // Each child creates the same 6 tenants in a different order and prints sha256 digests (never the keys).
      const script = `
        import { createHash } from 'node:crypto';
        const { SealedFileKeyProvider } = await import(process.argv[1]);
        const kp = new SealedFileKeyProvider(process.argv[2]);
        const order = process.argv[3].split(',');
        const out = {};
        await Promise.all(order.map(async (t) => { out[t] = createHash('sha256').update(await kp.tenantKey(t, { create: true })).digest('hex'); }));
        await kp.close();
        process.stdout.write(JSON.stringify(out));`;
      const orders = ['a,b,c,d,e,f', 'f,e,d,c,b,a', 'c,a,e,b,f,d', 'b,d,f,a,c,e'];
      const env = { ...process.env };
      delete env.SECUREGRID_ROOT_KEY;
      const outputs = await Promise.all(
        orders.map(
          (order) =>
            new Promise<Record<string, string>>((resolve, reject) => {
              execFile(process.execPath, ['--input-type=module', '-e', script, moduleUrl, dir, order], { env }, (err, stdout) => {
                if (err) reject(err);
                else resolve(JSON.parse(stdout) as Record<string, string>);
              });
            }),
        ),
      );
      for (const o of outputs.slice(1)) assert.deepEqual(o, outputs[0]);
      const kp = new SealedFileKeyProvider(dir);
      for (const t of ['a', 'b', 'c', 'd', 'e', 'f']) {
        assert.equal(createHash('sha256').update(await kp.tenantKey(t)).digest('hex'), outputs[0]![t]);
      }
      await kp.close();
    });
  });

  test('root key from SECUREGRID_ROOT_KEY; a different root key cannot open the file', async () => {
    await withDir(async (dir) => {
      process.env.SECUREGRID_ROOT_KEY = randomBytes(32).toString('hex');
      const a = new SealedFileKeyProvider(dir);
      const k = await a.tenantKey('acme', { create: true });
      await a.close();
      await assert.rejects(stat(path.join(dir, 'root.key')), 'no root.key when the variable is set');
      const b = new SealedFileKeyProvider(dir);
      assert.ok((await b.tenantKey('acme')).equals(k));
      await b.close();
      process.env.SECUREGRID_ROOT_KEY = randomBytes(32).toString('hex');
      const c = new SealedFileKeyProvider(dir);
      await assert.rejects(c.tenantKey('acme'), (e: unknown) => (e as { code?: string }).code === 'BadRootKey');
      await c.close();
      process.env.SECUREGRID_ROOT_KEY = 'not-hex';
      const d = new SealedFileKeyProvider(dir);
      await assert.rejects(d.tenantKey('acme'), (e: unknown) => {
        const err = e as { code?: string; message: string };
        return err.code === 'BadRootKey' && err.message.includes('64 hex');
      });
      await d.close();
    });
  });

  test('a damaged key file is reported, not silently replaced', async () => {
    await withDir(async (dir) => {
      await writeFile(path.join(dir, 'keys.sealed'), '{not json');
      const kp = new SealedFileKeyProvider(dir);
      await assert.rejects(kp.tenantKey('acme', { create: true }), (e: unknown) => (e as { code?: string }).code === 'KeyFileCorrupt');
      await kp.close();
    });
  });
});
