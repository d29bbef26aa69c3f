// Merkle trees over metrology batches, RFC 6962 style: leaf = SHA-256(0x00 ‖ data), node = SHA-256(0x01 ‖ left ‖
// right). Levels are built pairwise; a level's last node without a partner is promoted unchanged to the next
// level. That gives the same root and proofs as RFC 6962's "split at the largest power of two" definition, so
// verifyInclusion is RFC 9162 §2.1.3.2.
//
// The tree size is bound by the signed batch header (signBatch covers count), not by a proof: a proof for
// leaf i in a tree of n leaves also verifies for another size n' whose path to leaf i has the same shape
// (e.g. leaf 0 of 3 and of 4 leaves). Verifiers take count from the signed header.

import * as nodeCrypto from 'node:crypto';
import { CryptoError } from './envelope.js';

export const HASH_SIZE = 32;
const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

// One-shot crypto.hash (Node ≥ 20.12) is about twice as fast as createHash for 65-byte inputs; fall back without it.
const oneShot: ((algorithm: string, data: Buffer, encoding: 'buffer') => Buffer) | undefined =
  typeof nodeCrypto.hash === 'function' ? (nodeCrypto.hash as (algorithm: string, data: Buffer, encoding: 'buffer') => Buffer) : undefined;
const nodeInput = Buffer.alloc(1 + 2 * HASH_SIZE, 0x01);

export function leafHash(data: Buffer): Buffer {
  if (oneShot === undefined) return nodeCrypto.createHash('sha256').update(LEAF_PREFIX).update(data).digest();
  const input = Buffer.allocUnsafe(1 + data.length);
  input[0] = 0x00;
  data.copy(input, 1);
  return oneShot('sha256', input, 'buffer');
}

function nodeHash(left: Buffer, right: Buffer): Buffer {
  if (oneShot === undefined) return nodeCrypto.createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();
  left.copy(nodeInput, 1);
  right.copy(nodeInput, 1 + HASH_SIZE);
  return oneShot('sha256', nodeInput, 'buffer');
}

export interface MerkleTree {
  readonly root: Buffer;
  readonly count: number;
  /** Sibling hashes from the leaf up (RFC 9162 inclusion path). */
  proof(index: number): Buffer[];
}

/** Builds the tree over leaf hashes (from leafHash) in O(n); keeps every level so proof() is O(log n). */
export function merkleTree(leafHashes: readonly Buffer[]): MerkleTree {
  if (!Array.isArray(leafHashes) || leafHashes.length === 0) {
    throw new CryptoError('BadInput', 'a Merkle tree needs at least one leaf; do not open a batch without readings');
  }
  for (let i = 0; i < leafHashes.length; i++) {
    const h = leafHashes[i];
    if (!Buffer.isBuffer(h) || h.length !== HASH_SIZE) throw new CryptoError('BadInput', `leaf ${i} is not a 32-byte hash (use leafHash(data))`);
  }
  const levels: Buffer[][] = [leafHashes.slice()];
  for (let level = levels[0]; level.length > 1; ) {
    const next: Buffer[] = new Array<Buffer>(Math.ceil(level.length / 2));
    for (let i = 0; i + 1 < level.length; i += 2) next[i >> 1] = nodeHash(level[i], level[i + 1]);
    if (level.length % 2 === 1) next[next.length - 1] = level[level.length - 1];
    levels.push(next);
    level = next;
  }
  const count = leafHashes.length;
  return {
    root: levels[levels.length - 1][0],
    count,
    proof(index: number): Buffer[] {
      if (!Number.isInteger(index) || index < 0 || index >= count) {
        throw new CryptoError('BadInput', `leaf index ${index} is outside a tree of ${count} leaves`);
      }
      const path: Buffer[] = [];
      let i = index;
      for (let l = 0; l < levels.length - 1; l++) {
        const level = levels[l];
        const sibling = i ^ 1;
        if (sibling < level.length) path.push(level[sibling]); // else: promoted, no sibling at this level
        i >>= 1;
      }
      return path;
    },
  };
}

/** RFC 9162 inclusion check; false (never a throw) for any malformed argument. */
export function verifyInclusion(leaf: Buffer, index: number, count: number, proof: readonly Buffer[], root: Buffer): boolean {
  if (!Buffer.isBuffer(leaf) || leaf.length !== HASH_SIZE || !Buffer.isBuffer(root) || root.length !== HASH_SIZE) return false;
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(count) || index < 0 || index >= count || !Array.isArray(proof)) return false;
  let fn = index;
  let sn = count - 1;
  let r = leaf;
  for (const p of proof) {
    if (!Buffer.isBuffer(p) || p.length !== HASH_SIZE || sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && r.equals(root);
}

/** A proof as stored in `reading.proof`: the concatenated 32-byte hashes. */
export function encodeProof(proof: readonly Buffer[]): Buffer {
  for (const p of proof) if (!Buffer.isBuffer(p) || p.length !== HASH_SIZE) throw new CryptoError('BadInput', 'a proof holds 32-byte hashes only');
  return Buffer.concat(proof as Buffer[], proof.length * HASH_SIZE);
}

export function decodeProof(bytes: Buffer): Buffer[] {
  if (!Buffer.isBuffer(bytes) || bytes.length % HASH_SIZE !== 0) {
    throw new CryptoError('BadInput', `an encoded proof is a multiple of ${HASH_SIZE} bytes, got ${Buffer.isBuffer(bytes) ? bytes.length : typeof bytes}`);
  }
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += HASH_SIZE) out.push(Buffer.from(bytes.subarray(at, at + HASH_SIZE)));
  return out;
}
