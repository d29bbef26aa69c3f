// Merkle batches (RFC 6962-style, odd node promoted) and the metrology signatures over their roots.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import {
  CryptoError,
  batchSigningBytes,
  decodeProof,
  encodeProof,
  generateMetrologyKey,
  leafHash,
  merkleTree,
  metrologyKeyFromPem,
  verifyBatch,
  verifyInclusion,
} from '../../src/crypto/index.js';

const sha = (...parts: Buffer[]): Buffer => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const node = (l: Buffer, r: Buffer): Buffer => sha(Buffer.from([1]), l, r);

/** RFC 6962 §2.1 MTH, written from the RFC independently of the implementation (split at the largest power of 2 < n). */
function referenceRoot(leaves: Buffer[]): Buffer {
  if (leaves.length === 1) return leaves[0];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return node(referenceRoot(leaves.slice(0, k)), referenceRoot(leaves.slice(k)));
}

/** RFC 6962 §2.1.1 PATH(m, D[n]). */
function referencePath(m: number, leaves: Buffer[]): Buffer[] {
  if (leaves.length === 1) return [];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return m < k
    ? [...referencePath(m, leaves.slice(0, k)), referenceRoot(leaves.slice(k))]
    : [...referencePath(m - k, leaves.slice(k)), referenceRoot(leaves.slice(0, k))];
}

/** Left/right sequence of the path to leaf i in a tree of n leaves (what a proof's shape depends on). */
function pathShape(i: number, n: number): string {
  if (n === 1) return '';
  let k = 1;
  while (k * 2 < n) k *= 2;
  return i < k ? `${pathShape(i, k)}R` : `${pathShape(i - k, n - k)}L`;
}

const leavesOf = (n: number, salt = 0): Buffer[] => Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`reading ${salt}/${i}`)));

test('leaf and node hashes are domain-separated SHA-256 (0x00 leaf, 0x01 node); small trees by hand', () => {
  const data = Buffer.from('canonical reading');
  assert.deepEqual(leafHash(data), sha(Buffer.from([0]), data));
  const [a, b, c] = leavesOf(3);
  assert.deepEqual(merkleTree([a]).root, a);
  assert.deepEqual(merkleTree([a, b]).root, node(a, b));
  assert.deepEqual(merkleTree([a, b, c]).root, node(node(a, b), c), 'the odd node c is promoted');
  assert.deepEqual(merkleTree([a, b, c]).proof(2), [node(a, b)]);
  assert.deepEqual(merkleTree([a, b, c]).proof(0), [b, c]);
});

test('root and proofs equal RFC 6962 MTH and PATH for every size up to 70', () => {
  for (let n = 1; n <= 70; n++) {
    const leaves = leavesOf(n);
    const tree = merkleTree(leaves);
    assert.deepEqual(tree.root, referenceRoot(leaves), `root, n=${n}`);
    for (let i = 0; i < n; i++) assert.deepEqual(tree.proof(i), referencePath(i, leaves), `path ${i}/${n}`);
  }
});

test('property: every leaf proof verifies; a changed leaf, index, proof byte, proof length or root fails', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 300 }), fc.nat(), fc.nat(), fc.nat(), (n, pick, otherPick, bitPick) => {
      const leaves = leavesOf(n, pick);
      const tree = merkleTree(leaves);
      for (let i = 0; i < n; i++) assert.ok(verifyInclusion(leaves[i], i, n, tree.proof(i), tree.root), `leaf ${i}/${n}`);
      const i = pick % n;
      const proof = tree.proof(i);
      assert.ok(!verifyInclusion(leafHash(Buffer.from('forged')), i, n, proof, tree.root), 'changed leaf');
      if (n > 1) {
        const j = (i + 1 + (otherPick % (n - 1))) % n;
        assert.ok(!verifyInclusion(leaves[i], j, n, proof, tree.root), `index ${i} → ${j}`);
        const bit = bitPick % (proof.length * 256);
        const bent = proof.map((p) => Buffer.from(p));
        bent[bit >> 8][(bit >> 3) & 31] ^= 1 << (bit & 7);
        assert.ok(!verifyInclusion(leaves[i], i, n, bent, tree.root), 'flipped proof bit');
        assert.ok(!verifyInclusion(leaves[i], i, n, proof.slice(1), tree.root), 'shortened proof');
      }
      assert.ok(!verifyInclusion(leaves[i], i, n, [...proof, leaves[0]], tree.root), 'lengthened proof');
      const root = Buffer.from(tree.root);
      root[otherPick % 32] ^= 0x80;
      assert.ok(!verifyInclusion(leaves[i], i, n, proof, root), 'changed root');
      assert.ok(!verifyInclusion(leaves[i], n, n, proof, tree.root), 'index out of range');
    }),
    { numRuns: 120 },
  );
});

test('property: a changed count fails unless both sizes give leaf i the same path (count is bound by the signed header)', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 200 }), fc.nat(), (n, m, pick) => {
      fc.pre(n !== m);
      const leaves = leavesOf(n);
      const tree = merkleTree(leaves);
      const i = pick % n;
      const ok = verifyInclusion(leaves[i], i, m, tree.proof(i), tree.root);
      if (i >= m || pathShape(i, n) !== pathShape(i, m)) assert.equal(ok, false, `leaf ${i}: size ${n} claimed as ${m}`);
      else assert.equal(ok, true, 'same shape: the documented limit (leaf 0 of 3 vs 4)');
    }),
    { numRuns: 300 },
  );
  const leaves = leavesOf(3);
  const t = merkleTree(leaves);
  assert.ok(verifyInclusion(leaves[0], 0, 4, t.proof(0), t.root), 'the documented example');
  assert.ok(!verifyInclusion(leaves[2], 2, 4, t.proof(2), t.root));
});

test('empty trees, bad leaves and bad indexes are clear errors; verifyInclusion never throws', () => {
  assert.throws(() => merkleTree([]), (e: unknown) => e instanceof CryptoError && e.code === 'BadInput' && /at least one leaf/.test(e.message));
  assert.throws(() => merkleTree([Buffer.alloc(31)]), CryptoError);
  const t = merkleTree(leavesOf(5));
  assert.throws(() => t.proof(5), CryptoError);
  assert.throws(() => t.proof(-1), CryptoError);
  assert.throws(() => t.proof(1.5), CryptoError);
  assert.equal(verifyInclusion(Buffer.alloc(3), 0, 5, t.proof(0), t.root), false);
  assert.equal(verifyInclusion(leavesOf(5)[0], 0, 0, [], t.root), false);
  assert.equal(verifyInclusion(leavesOf(5)[0], 0, 5, [Buffer.alloc(5)], t.root), false);
});

test('proofs encode to concatenated 32-byte hashes and back', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 5000 }), fc.nat(), (n, pick) => {
      const t = merkleTree(leavesOf(n));
      const proof = t.proof(pick % n);
      const bytes = encodeProof(proof);
      assert.equal(bytes.length, 32 * proof.length);
      assert.deepEqual(decodeProof(bytes), proof);
    }),
    { numRuns: 40 },
  );
  assert.deepEqual(decodeProof(Buffer.alloc(0)), []);
  assert.throws(() => decodeProof(Buffer.alloc(33)), (e: unknown) => e instanceof CryptoError && e.code === 'BadInput');
  assert.throws(() => encodeProof([Buffer.alloc(31)]), CryptoError);
});

test('builds a 100,000-leaf tree in linear time (printed)', () => {
  const leaves = leavesOf(100_000);
  const t0 = performance.now();
  const tree = merkleTree(leaves);
  const ms = performance.now() - t0;
  console.log(`  merkleTree(100,000 leaves): ${ms.toFixed(0)} ms; 4,096 leaves ≈ ${((ms * 4096) / 100_000).toFixed(1)} ms`);
  assert.ok(verifyInclusion(leaves[77_777], 77_777, 100_000, tree.proof(77_777), tree.root));
  assert.equal(tree.proof(77_777).length, 17);
});

test('metrology key: signs the batch header; key id; PEM round trip; any change fails to verify', () => {
  const key = generateMetrologyKey();
  assert.match(key.keyId, /^[0-9a-f]{16}$/);
  assert.equal(key.keyId, sha(key.publicKey).toString('hex').slice(0, 16));
  const root = merkleTree(leavesOf(10)).root;
  const batch = { batchId: 'ing1-000042', count: 10, root };
  const sig = key.signBatch(batch);
  assert.equal(sig.length, 64);
  assert.ok(verifyBatch(key.publicKey, batch, sig));

  const again = metrologyKeyFromPem(key.toPem());
  assert.equal(again.keyId, key.keyId);
  assert.ok(verifyBatch(again.publicKey, batch, again.signBatch(batch)));

  assert.ok(!verifyBatch(key.publicKey, { ...batch, batchId: 'ing1-000043' }, sig), 'batch id');
  assert.ok(!verifyBatch(key.publicKey, { ...batch, count: 11 }, sig), 'count');
  assert.ok(!verifyBatch(key.publicKey, { ...batch, root: merkleTree(leavesOf(11)).root }, sig), 'root');
  const bent = Buffer.from(sig);
  bent[10] ^= 1;
  assert.ok(!verifyBatch(key.publicKey, batch, bent), 'signature');
  assert.ok(!verifyBatch(generateMetrologyKey().publicKey, batch, sig), 'another key');
  assert.ok(!verifyBatch(Buffer.from('garbage'), batch, sig), 'garbage key');
  assert.ok(!verifyBatch(key.publicKey, { ...batch, root: Buffer.alloc(3) }, sig), 'malformed root');
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'der' });
  assert.ok(!verifyBatch(rsa, batch, sig), 'not an Ed25519 key');
});

test('batch signing bytes are "securegrid-batch/1" ‖ 0 ‖ batchId ‖ 0 ‖ u32 count ‖ root', () => {
  const root = Buffer.alloc(32, 0xab);
  const want = Buffer.concat([Buffer.from('securegrid-batch/1'), Buffer.from([0]), Buffer.from('b-1'), Buffer.from([0]), Buffer.from([0, 0, 1, 2]), root]);
  assert.deepEqual(batchSigningBytes({ batchId: 'b-1', count: 258, root }), want);
  assert.throws(() => batchSigningBytes({ batchId: 'a\0b', count: 1, root }), CryptoError, 'NUL would make the fields ambiguous');
  assert.throws(() => batchSigningBytes({ batchId: 'b', count: 2 ** 32, root }), CryptoError);
  assert.throws(() => metrologyKeyFromPem('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n'), (e: unknown) => e instanceof CryptoError && e.code === 'BadKey');
});
