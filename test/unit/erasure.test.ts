import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import {
  parsePolicy,
  formatPolicy,
  policyWidth,
  writeQuorum,
  readQuorumMet,
  faultTolerance,
  storageClassPolicy,
  STORAGE_CLASSES,
  PolicyError,
  encodeStripe,
  decodeStripe,
  rebuildFragments,
  dataShardSpans,
  shardLength,
  ErasureError,
} from '../../src/kvs/erasure/index.js';
import type { Policy } from '../../src/kvs/erasure/index.js';

describe('policy', () => {
  test('parse and format round-trip', () => {
    for (const s of ['replicate:1', 'replicate:3', 'replicate:16', 'ec:1+1', 'ec:6+2', 'ec:24+6', 'hybrid:1+6/8', 'hybrid:2+4/6', 'hybrid:1+1/2', 'hybrid:3+24/30']) {
      assert.equal(formatPolicy(parsePolicy(s)), s);
    }
    assert.deepEqual(parsePolicy('EC:6+2'), { kind: 'ec', k: 6, m: 2 });
    assert.deepEqual(parsePolicy('Hybrid:1+6/8'), { kind: 'hybrid', r: 1, k: 6, n: 8 });
    assert.deepEqual(parsePolicy('REPLICATE:2'), { kind: 'replicate', n: 2 });
  });

  test('rejects bad policies with an actionable message', () => {
    const cases: [string, RegExp][] = [
      ['replicate:0', /1 ≤ N ≤ 16/],
      ['replicate:17', /1 ≤ N ≤ 16/],
      ['ec:0+2', /ec:K\+M needs 1 ≤ K ≤ 24 and 1 ≤ M ≤ 6/],
      ['ec:25+2', /ec:K\+M needs 1 ≤ K ≤ 24 and 1 ≤ M ≤ 6/],
      ['ec:6+0', /ec:K\+M needs/],
      ['ec:6+7', /ec:K\+M needs/],
      ['hybrid:0+6/8', /R ≥ 1/],
      ['hybrid:1+8/8', /1 ≤ K < N/],
      ['hybrid:1+0/2', /1 ≤ K < N/],
      ['hybrid:1+2/9', /N-K ≤ 6/],
      ['hybrid:1+25/27', /K ≤ 24/],
      ['ec: 6+2', /no spaces/],
      ['ec:6+2 ', /no spaces/],
      ['raid5', /replicate:N/],
      ['', /replicate:N/],
      ['ec:6', /ec:K\+M/],
      ['ec:-1+2', /ec:K\+M/],
      ['replicate:3.5', /replicate:N/],
    ];
    for (const [s, re] of cases) {
      assert.throws(
        () => parsePolicy(s),
        (e: unknown) => e instanceof PolicyError && e.code === 'InvalidPolicy' && re.test(e.message),
        `${JSON.stringify(s)} should be rejected matching ${re}`,
      );
    }
  });

  test('width, write quorum, fault tolerance', () => {
    const table: [string, number, number, number][] = [
      // policy, width, writeQuorum, faultTolerance
      ['replicate:1', 1, 1, 0],
      ['replicate:2', 2, 2, 0],
      ['replicate:3', 3, 2, 1],
      ['replicate:4', 4, 3, 1],
      ['replicate:5', 5, 3, 2],
      ['ec:1+1', 2, 2, 0],
      ['ec:4+2', 6, 4, 2],
      ['ec:6+2', 8, 6, 2],
      ['ec:2+2', 4, 3, 1],
      ['ec:10+4', 14, 10, 4],
      ['ec:24+6', 30, 24, 6],
      ['hybrid:1+6/8', 9, 6, 2],
      ['hybrid:2+4/6', 8, 4, 2],
      ['hybrid:1+3/6', 7, 4, 2],
      ['hybrid:3+1/2', 5, 2, 0],
    ];
    for (const [s, w, q, f] of table) {
      const p = parsePolicy(s);
      assert.equal(policyWidth(p), w, `${s} width`);
      assert.equal(writeQuorum(p), q, `${s} write quorum`);
      assert.equal(faultTolerance(p), f, `${s} fault tolerance`);
    }
  });

  test('fault tolerance agrees with brute force over loss sets', () => {
    for (const s of ['replicate:1', 'replicate:3', 'replicate:4', 'ec:1+1', 'ec:2+2', 'ec:4+2', 'hybrid:1+6/8', 'hybrid:2+4/6', 'hybrid:1+3/6', 'hybrid:3+1/2']) {
      const p = parsePolicy(s);
      const w = policyWidth(p);
      const shardFrom = p.kind === 'hybrid' ? p.r : 0;
      let best = w;
      for (let mask = 0; mask < 1 << w; mask++) {
        const present = Array.from({ length: w }, (_, i) => (mask & (1 << i)) === 0);
        const durable = present.slice(shardFrom).filter(Boolean).length;
        const ok = readQuorumMet(p, present) && durable >= writeQuorum(p);
        if (!ok) best = Math.min(best, present.filter((x) => !x).length - 1);
      }
      assert.equal(faultTolerance(p), best, s);
    }
  });

  test('readQuorumMet', () => {
    const r3 = parsePolicy('replicate:3');
    assert.equal(readQuorumMet(r3, [false, false, true]), true);
    assert.equal(readQuorumMet(r3, [false, false, false]), false);
    assert.equal(readQuorumMet(r3, []), false);
    const ec = parsePolicy('ec:4+2');
    assert.equal(readQuorumMet(ec, [true, false, true, false, true, true]), true);
    assert.equal(readQuorumMet(ec, [true, false, true, false, true, false]), false);
    const h = parsePolicy('hybrid:1+6/8');
    assert.equal(readQuorumMet(h, [true, false, false, false, false, false, false, false, false]), true);
    assert.equal(readQuorumMet(h, [false, true, true, true, true, true, false, false, true]), true);
    assert.equal(readQuorumMet(h, [false, true, true, true, true, true, false, false, false]), false);
  });

  test('storage classes', () => {
    assert.deepEqual(storageClassPolicy('STANDARD'), parsePolicy('replicate:3'));
    assert.deepEqual(storageClassPolicy('REDUCED_REDUNDANCY'), parsePolicy('replicate:3'));
    assert.deepEqual(storageClassPolicy('EXPRESS_ONEZONE'), parsePolicy('replicate:3'));
    for (const c of ['STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'WARM']) assert.deepEqual(storageClassPolicy(c), parsePolicy('hybrid:1+6/8'), c);
    for (const c of ['GLACIER', 'GLACIER_IR', 'DEEP_ARCHIVE', 'OUTPOSTS', 'SNOW', 'COLD']) assert.deepEqual(storageClassPolicy(c), parsePolicy('ec:6+2'), c);
    assert.deepEqual(storageClassPolicy('HOT'), parsePolicy('replicate:3'));
    assert.deepEqual(storageClassPolicy('SG-EC:4+2'), parsePolicy('ec:4+2'));
    assert.deepEqual(storageClassPolicy('SG-REPLICATE:2'), parsePolicy('replicate:2'));
    assert.deepEqual(storageClassPolicy('SG-HYBRID:1+6/8'), parsePolicy('hybrid:1+6/8'));
    assert.equal(storageClassPolicy('SG-EC:40+2'), undefined);
    assert.equal(storageClassPolicy('PLATINUM'), undefined);
    assert.equal(storageClassPolicy('toString'), undefined);
    for (const [cls, pol] of Object.entries(STORAGE_CLASSES)) assert.deepEqual(storageClassPolicy(cls), parsePolicy(pol));
    assert.ok(Object.isFrozen(STORAGE_CLASSES));
  });
});

const CODEC_POLICIES = ['replicate:1', 'replicate:2', 'replicate:3', 'replicate:4', 'ec:1+1', 'ec:4+2', 'ec:6+2', 'ec:10+4', 'ec:24+6', 'hybrid:1+6/8', 'hybrid:2+4/6'];

/** Random subset of 0..w-1 of the given size. */
function pick(w: number, size: number, seed: number[]): number[] {
  const idx = Array.from({ length: w }, (_, i) => i);
  for (let i = w - 1; i > 0; i--) {
    const j = (seed[i % seed.length] ?? 0) % (i + 1);
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx.slice(0, size).sort((a, b) => a - b);
}

function presence(w: number, dropped: number[]): boolean[] {
  const present = new Array<boolean>(w).fill(true);
  for (const d of dropped) present[d] = false;
  return present;
}

function rejectsTooFew(e: unknown): boolean {
  return e instanceof ErasureError && e.code === 'InsufficientFragments';
}

/** Every drop set to test: all subsets for narrow policies; for wide ones, random subsets of every size. */
function dropSets(p: Policy, seed: number[]): number[][] {
  const w = policyWidth(p);
  const sets: number[][] = [];
  if (w <= 9) {
    for (let mask = 0; mask < 1 << w; mask++) {
      const s: number[] = [];
      for (let i = 0; i < w; i++) if (mask & (1 << i)) s.push(i);
      sets.push(s);
    }
  } else {
    for (let size = 0; size <= w; size++) {
      for (let t = 0; t < 3; t++) sets.push(pick(w, size, seed.map((x) => x * (t + 7) + size)));
    }
    // all data shards lost; all parity lost
    if (p.kind === 'ec') {
      sets.push(Array.from({ length: p.m }, (_, i) => i));
      sets.push(Array.from({ length: p.m }, (_, i) => p.k + i));
    }
  }
  return sets;
}

describe('codec', () => {
  test('shardLength', () => {
    assert.equal(shardLength(parsePolicy('ec:6+2'), 0), 8);
    assert.equal(shardLength(parsePolicy('ec:6+2'), 1), 8);
    assert.equal(shardLength(parsePolicy('ec:6+2'), 48), 8);
    assert.equal(shardLength(parsePolicy('ec:6+2'), 49), 16);
    assert.equal(shardLength(parsePolicy('ec:6+2'), 1 << 20), 174768);
    assert.equal(shardLength(parsePolicy('hybrid:1+6/8'), 100), 24);
    assert.equal(shardLength(parsePolicy('replicate:3'), 100), 100);
  });

  test('encode shapes; replicas share one buffer; shards are views of one allocation', async () => {
    const data = randomBytes(1000);
    const h = await encodeStripe(parsePolicy('hybrid:2+4/6'), data);
    assert.equal(h.fragments.length, 8);
    assert.equal(h.fragments[0], data);
    assert.equal(h.fragments[1], data);
    for (let i = 2; i < 8; i++) assert.equal(h.fragments[i]!.length, h.shardLen);
    assert.equal(h.fragments[2]!.buffer, h.fragments[7]!.buffer);
    const r = await encodeStripe(parsePolicy('replicate:3'), data);
    assert.equal(r.shardLen, 1000);
    assert.ok(r.fragments.every((f) => f === data));
    // data shards hold the data followed by zero padding
    const e = await encodeStripe(parsePolicy('ec:3+2'), Buffer.from('abcdefghij'));
    assert.equal(e.shardLen, 8);
    assert.equal(Buffer.concat(e.fragments.slice(0, 3)).toString('latin1'), 'abcdefghij' + '\0'.repeat(14));
  });

  for (const s of CODEC_POLICIES) {
    test(`${s}: every allowed loss decodes and rebuilds exactly; one more loss throws`, async () => {
      const p = parsePolicy(s);
      const w = policyWidth(p);
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            { arbitrary: fc.constantFrom(0, 1, 7, 8, 9, 4096), weight: 2 },
            { arbitrary: fc.integer({ min: 0, max: 3000 }), weight: 3 },
            { arbitrary: fc.integer({ min: 3000, max: 200_000 }), weight: 1 },
          ),
          fc.array(fc.nat(1000), { minLength: 8, maxLength: 8 }),
          async (len, seed) => {
            const data = randomBytes(len);
            const { shardLen, fragments } = await encodeStripe(p, data);
            assert.equal(shardLen, shardLength(p, len));
            assert.equal(fragments.length, w);
            const originals = fragments.map((f) => Buffer.from(f));
            for (const dropped of dropSets(p, seed)) {
              const given: (Buffer | undefined)[] = fragments.map((f, i) => (dropped.includes(i) ? undefined : f));
              if (readQuorumMet(p, presence(w, dropped))) {
                const out = await decodeStripe(p, given, shardLen, len);
                assert.ok(out.equals(data), `${s} len ${len} dropped [${dropped}]`);
                if (dropped.length > 0) {
                  const rebuilt = await rebuildFragments(p, given, shardLen, len, dropped);
                  assert.equal(rebuilt.length, dropped.length);
                  dropped.forEach((d, j) => assert.ok(rebuilt[j]!.equals(originals[d]!), `${s} len ${len} rebuilt fragment ${d}`));
                }
              } else {
                await assert.rejects(decodeStripe(p, given, shardLen, len), rejectsTooFew, `${s} dropped [${dropped}] should fail`);
                await assert.rejects(rebuildFragments(p, given, shardLen, len, dropped), rejectsTooFew);
              }
            }
            // the fragments given to decode/rebuild were not modified
            fragments.forEach((f, i) => assert.ok(f.equals(originals[i]!), `${s} input fragment ${i} modified`));
          },
        ),
        { numRuns: w <= 6 ? 40 : w <= 9 ? 12 : 30 },
      );
    });
  }

  test('one too many losses throws (explicit sets)', async () => {
    const cases: [string, number[]][] = [
      ['replicate:3', [0, 1, 2]],
      ['ec:6+2', [0, 1, 7]],
      ['ec:6+2', [5, 6, 7]],
      ['ec:24+6', [0, 1, 2, 3, 4, 5, 29]],
      ['hybrid:1+6/8', [0, 1, 2, 3]],
      ['hybrid:2+4/6', [0, 1, 2, 5, 7]],
    ];
    for (const [s, dropped] of cases) {
      const p = parsePolicy(s);
      const data = randomBytes(999);
      const { shardLen, fragments } = await encodeStripe(p, data);
      const given = fragments.map((f, i) => (dropped.includes(i) ? undefined : f));
      assert.equal(readQuorumMet(p, presence(policyWidth(p), dropped)), false);
      await assert.rejects(decodeStripe(p, given, shardLen, data.length), rejectsTooFew, s);
      await assert.rejects(rebuildFragments(p, given, shardLen, data.length, dropped), rejectsTooFew, s);
    }
  });

  test('hybrid rebuilds shards from a replica when shards alone are too few, and a replica from shards', async () => {
    const p = parsePolicy('hybrid:1+6/8');
    const data = randomBytes(5000);
    const { shardLen, fragments } = await encodeStripe(p, data);
    const given = fragments.map((f, i) => (i === 0 || i >= 6 ? f : undefined)); // replica + 3 shards
    const rebuilt = await rebuildFragments(p, given, shardLen, data.length, [1, 2, 3, 4, 5]);
    rebuilt.forEach((b, j) => assert.ok(b.equals(fragments[j + 1]!)));
    const noReplica = fragments.map((f, i) => (i === 0 ? undefined : f));
    const [rep] = await rebuildFragments(p, noReplica, shardLen, data.length, [0]);
    assert.ok(rep!.equals(data));
  });

  test('rebuild ignores a listed fragment even when given, and accepts duplicates', async () => {
    const p = parsePolicy('ec:4+2');
    const data = randomBytes(777);
    const { shardLen, fragments } = await encodeStripe(p, data);
    const out = await rebuildFragments(p, fragments, shardLen, data.length, [5, 1, 5]);
    assert.ok(out[0]!.equals(fragments[5]!));
    assert.ok(out[1]!.equals(fragments[1]!));
    assert.ok(out[2]!.equals(fragments[5]!));
    assert.deepEqual(await rebuildFragments(p, fragments, shardLen, data.length, []), []);
    await assert.rejects(rebuildFragments(p, fragments, shardLen, data.length, [6]), (e: unknown) => e instanceof ErasureError && e.code === 'BadInput');
  });

  test('decode works from separately stored fragment copies and rejects wrong-length fragments', async () => {
    const p = parsePolicy('ec:6+2');
    const data = randomBytes(10_000);
    const { shardLen, fragments } = await encodeStripe(p, data);
    const copies = fragments.map((f) => Buffer.from(f));
    assert.ok((await decodeStripe(p, copies, shardLen, data.length)).equals(data));
    copies[3] = copies[3]!.subarray(1);
    await assert.rejects(decodeStripe(p, copies, shardLen, data.length), (e: unknown) => e instanceof ErasureError && e.code === 'BadFragment');
  });

  test('property: dataShardSpans agree with slicing the original', async () => {
    for (const s of ['replicate:2', 'ec:1+1', 'ec:4+2', 'ec:6+2', 'ec:24+6', 'hybrid:1+6/8', 'hybrid:2+4/6']) {
      const p = parsePolicy(s);
      const data = randomBytes(4000);
      const { shardLen, fragments } = await encodeStripe(p, data);
      fc.assert(
        fc.property(fc.integer({ min: 0, max: data.length }), fc.integer({ min: 0, max: data.length }), (a, b) => {
          const start = Math.min(a, b);
          const end = Math.max(a, b);
          const spans = dataShardSpans(p, shardLen, start, end);
          const got = Buffer.concat(spans.map((sp) => fragments[sp.fragment]!.subarray(sp.offset, sp.offset + sp.length)));
          assert.ok(got.equals(data.subarray(start, end)), `${s} [${start}, ${end})`);
          for (const sp of spans) {
            assert.ok(sp.length > 0);
            assert.ok(sp.offset + sp.length <= (p.kind === 'replicate' ? data.length : shardLen));
          }
        }),
        { numRuns: 100 },
      );
    }
    assert.deepEqual(dataShardSpans(parsePolicy('ec:4+2'), 8, 5, 5), []);
    assert.deepEqual(dataShardSpans(parsePolicy('hybrid:2+4/6'), 8, 6, 18), [
      { fragment: 2, offset: 6, length: 2 },
      { fragment: 3, offset: 0, length: 8 },
      { fragment: 4, offset: 0, length: 2 },
    ]);
    assert.throws(() => dataShardSpans(parsePolicy('ec:4+2'), 8, 0, 33), ErasureError);
  });
});
