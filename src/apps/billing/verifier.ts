// Metrology verification at batch-job speed: each batch header's Ed25519 signature is checked once per
// worker, and the Merkle nodes a verified proof authenticated (its path and the siblings it used) are kept,
// so the next reading of the same batch stops hashing where its path meets a known node. Readings of
// neighbouring meters sit side by side in a batch, so most proofs cost one or two hashes instead of ~13.
import { hash } from 'node:crypto';
import { metrologyKeyId, verifyBatch } from '../../crypto/index.js';
import type { SetBatch } from './measurements.js';

export type BatchVerdict = 'ok' | 'wrong-key' | 'bad-batch-signature' | 'unknown-batch';

interface BatchState {
  verdict: BatchVerdict;
  count: number;
  root: Buffer;
  signature: Buffer;
  /** Another header with the same id and key id but other bytes (a forgery attempt): checked on its own. */
  other?: Map<string, BatchState>;
  /** Authenticated nodes: key level · 2^24 + index (small integers keep the map fast). */
  nodes: Map<number, Buffer>;
}

const LEVEL = 0x100_0000;

export class BatchVerifier {
  readonly keyId: string;
  readonly #publicKey: Buffer;
  readonly #batches = new Map<string, BatchState>();
  readonly #memoLimit: number;
  #memo = 0;
  readonly #leafBuf = Buffer.alloc(81);
  readonly #nodeBuf = Buffer.alloc(65);
  readonly #pendK: number[] = [];
  readonly #pendV: Buffer[] = [];
  /** SHA-256 computations done (the bench compares them with the bound). */
  hashes = 0;
  signatures = 0;

  constructor(metrologyPublicKey: Buffer, o: { memoLimit?: number } = {}) {
    this.#publicKey = metrologyPublicKey;
    this.keyId = metrologyKeyId(metrologyPublicKey);
    this.#memoLimit = o.memoLimit ?? 2_000_000;
    this.#nodeBuf[0] = 1;
  }

  /** The verdict on a batch header (signature checked at most once per distinct header). */
  batch(h: SetBatch): BatchState {
    const key = `${h.keyId}\0${h.batchId}`;
    const s = this.#batches.get(key);
    if (s && s.count === h.count && s.root.equals(h.root) && s.signature.equals(h.signature)) return s;
    if (!s) {
      if (this.#batches.size >= 500_000) this.#reset(true);
      const fresh = this.#check(h);
      this.#batches.set(key, fresh);
      return fresh;
    }
    const alt = `${h.count}\0${h.root.toString('hex')}\0${h.signature.toString('hex')}`;
    s.other ??= new Map();
    let o = s.other.get(alt);
    if (!o) s.other.set(alt, (o = this.#check(h)));
    return o;
  }

  #check(h: SetBatch): BatchState {
    let verdict: BatchVerdict;
    if (h.count === 0 || h.count >= LEVEL || h.root.length !== 32) verdict = 'unknown-batch';
    else if (h.keyId !== this.keyId) verdict = 'wrong-key';
    else {
      this.signatures++;
      verdict = verifyBatch(this.#publicKey, { batchId: h.batchId, count: h.count, root: h.root }, h.signature) ? 'ok' : 'bad-batch-signature';
    }
    return { verdict, count: h.count, root: Buffer.from(h.root), signature: Buffer.from(h.signature), nodes: new Map() };
  }

  #reset(all: boolean): void {
    if (all) this.#batches.clear();
    else for (const s of this.#batches.values()) {
      s.nodes.clear();
      for (const o of s.other?.values() ?? []) o.nodes.clear();
    }
    this.#memo = 0;
  }

  /** SHA-256(0x00 ‖ canonical) of the 80 bytes at `at`. */
  leafHash(bytes: Buffer, at: number): Buffer {
    this.#leafBuf[0] = 0;
    bytes.copy(this.#leafBuf, 1, at, at + 80);
    this.hashes++;
    return hash('sha256', this.#leafBuf, 'buffer');
  }

  #node(left: Buffer, right: Buffer): Buffer {
    left.copy(this.#nodeBuf, 1);
    right.copy(this.#nodeBuf, 33);
    this.hashes++;
    return hash('sha256', this.#nodeBuf, 'buffer');
  }

  /**
   * Whether `leaf` is proven to be leaf `index` of the batch's signed tree, given its RFC 9162 path (proofLen
   * hashes at proofAt): verifyInclusion against the signed root, except that the walk stops at the first node
   * already proven (so a genuine leaf whose stored proof is damaged can still be recognised).
   */
  includes(s: BatchState, index: number, leaf: Buffer, proof: Buffer, proofAt: number, proofLen: number): boolean {
    if (s.verdict !== 'ok' || index >= s.count) return false;
    if (this.#memo > this.#memoLimit) this.#reset(false);
    const pk = this.#pendK;
    const pv = this.#pendV;
    pk.length = 0;
    pv.length = 0;
    let node = leaf;
    let idx = index;
    let width = s.count;
    let p = 0;
    for (let l = 0; width > 1; l++) {
      const k = l * LEVEL + idx;
      const known = s.nodes.get(k);
      if (known) {
        if (!known.equals(node)) return false;
        this.#commit(s);
        return true;
      }
      pk.push(k);
      pv.push(node);
      const sib = idx ^ 1;
      if (sib < width) {
        if (p >= proofLen) return false;
        const h = proof.subarray(proofAt + 32 * p, proofAt + 32 * p + 32);
        p++;
        pk.push(l * LEVEL + sib);
        pv.push(h);
        node = idx & 1 ? this.#node(h, node) : this.#node(node, h);
      }
      idx = Math.floor(idx / 2);
      width = Math.ceil(width / 2);
    }
    if (p !== proofLen || !node.equals(s.root)) return false;
    this.#commit(s);
    return true;
  }

  #commit(s: BatchState): void {
    const pk = this.#pendK;
    const pv = this.#pendV;
    for (let i = 0; i < pk.length; i++) s.nodes.set(pk[i]!, pv[i]!);
    this.#memo += pk.length;
  }
}
