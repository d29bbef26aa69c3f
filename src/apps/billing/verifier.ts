// Metrology verification at batch-job speed: each batch header's Ed25519 signature is checked once per
// worker, and the Merkle nodes a verified proof authenticated (its path and the siblings it used) are kept,
// so the next reading of the same batch stops hashing where its path meets a known node. Readings of
// neighbouring meters sit side by side in a batch, so most proofs cost one hash beyond the leaf instead of ~13.
// Nodes are kept as bytes in one fixed-size direct-mapped table per verifier: bounded memory, nothing for the
// garbage collector to trace, and a collision only costs hashes.
import { hash } from 'node:crypto';
import { metrologyKeyId, verifyBatch } from '../../crypto/index.js';
import type { SetBatch } from './measurements.js';

export type BatchVerdict = 'ok' | 'wrong-key' | 'bad-batch-signature' | 'unknown-batch';

export interface BatchState {
  verdict: BatchVerdict;
  count: number;
  root: Buffer;
  rootWords: Int32Array;
  signature: Buffer;
  /** Small integer naming this header in the node table's tags. */
  serial: number;
  /** Offset of each tree level in the batch's node numbering (level 0 = leaves). */
  levelAt: Int32Array;
  /** Another header with the same id and key id but other bytes (a forgery attempt): checked on its own. */
  other?: Map<string, BatchState>;
}

export class BatchVerifier {
  readonly keyId: string;
  readonly #publicKey: Buffer;
  readonly #batches = new Map<string, BatchState>();
  #serial = 0;
  // The node table: slot → (batch serial, node number) tags and the node's hex.
  readonly #mask: number;
  readonly #tagBatch: Int32Array;
  readonly #tagNode: Int32Array;
  readonly #value: Uint8Array;
  readonly #words: Int32Array;
  readonly #leafBuf = Buffer.alloc(81);
  readonly #leaf = Buffer.alloc(32);
  readonly #nodeBuf = Buffer.alloc(65);
  // Nodes move as 8 aligned 32-bit words where they can (table, snapshots, the walk's current node).
  readonly #cur = new Uint8Array(32);
  readonly #curWords = new Int32Array(this.#cur.buffer);
  readonly #pendPos = new Int32Array(128);
  readonly #pendFrom = new Int32Array(128);
  readonly #pendWords = new Int32Array(128 * 8);
  /** SHA-256 computations done (the bench compares them with the bound). */
  hashes = 0;
  signatures = 0;

  /** memoSlots: node table size (rounded up to a power of two; default 2^18, 10 MB). */
  constructor(metrologyPublicKey: Buffer, o: { memoSlots?: number } = {}) {
    this.#publicKey = metrologyPublicKey;
    this.keyId = metrologyKeyId(metrologyPublicKey);
    const slots = 2 ** Math.max(1, Math.ceil(Math.log2(o.memoSlots ?? 2 ** 18)));
    this.#mask = slots - 1;
    this.#tagBatch = new Int32Array(slots).fill(-1);
    this.#tagNode = new Int32Array(slots);
    this.#value = new Uint8Array(slots * 32);
    this.#words = new Int32Array(this.#value.buffer);
    this.#nodeBuf[0] = 1;
  }

  /** The verdict on a batch header (signature checked at most once per distinct header). */
  batch(h: SetBatch): BatchState {
    const key = `${h.keyId}\0${h.batchId}`;
    const s = this.#batches.get(key);
    if (s && s.count === h.count && s.root.equals(h.root) && s.signature.equals(h.signature)) return s;
    if (!s) {
      if (this.#batches.size >= 500_000) this.#batches.clear();
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
    if (h.count === 0 || h.count > 0x1000_0000 || h.root.length !== 32) verdict = 'unknown-batch';
    else if (h.keyId !== this.keyId) verdict = 'wrong-key';
    else {
      this.signatures++;
      verdict = verifyBatch(this.#publicKey, { batchId: h.batchId, count: h.count, root: h.root }, h.signature) ? 'ok' : 'bad-batch-signature';
    }
    const levels: number[] = [];
    if (verdict === 'ok') for (let w = h.count, at = 0; ; w = Math.ceil(w / 2)) {
      levels.push(at);
      if (w <= 1) break;
      at += w;
    }
    if (this.#serial === 0x7fff_ffff) {
      // A serial must never name two headers: forget every header and node before reusing them.
      this.#batches.clear();
      this.#tagBatch.fill(-1);
      this.#serial = 0;
    }
    this.#serial++;
    const rootWords = new Int32Array(8);
    new Uint8Array(rootWords.buffer).set(h.root.subarray(0, 32));
    return { verdict, count: h.count, root: Buffer.from(h.root), rootWords, signature: Buffer.from(h.signature), serial: this.#serial, levelAt: Int32Array.from(levels) };
  }

  /** SHA-256(0x00 ‖ canonical) of the 80 bytes at `at`, into a scratch buffer valid until the next call. */
  leafHash(bytes: Uint8Array, at: number): Buffer {
    const lb = this.#leafBuf;
    for (let j = 0; j < 80; j++) lb[1 + j] = bytes[at + j]!;
    this.hashes++;
    // A binary (latin1) string is the cheapest output node:crypto has (a fresh Buffer costs ~3× as much).
    const h = hash('sha256', lb, 'binary');
    const out = this.#leaf;
    for (let j = 0; j < 32; j++) out[j] = h.charCodeAt(j);
    return out;
  }

  #slot(serial: number, pos: number): number {
    let h = Math.imul(serial, 0x9e3779b1) ^ Math.imul(pos, 0x85ebca77);
    h ^= h >>> 15;
    return h & this.#mask;
  }

  /**
   * Whether the 32-byte leaf is proven to be leaf `index` of the batch's signed tree, given its RFC 9162 path
   * (proofLen hashes at proofAt): verifyInclusion against the signed root, except that the walk stops at the
   * first node already proven (so a genuine leaf whose stored proof is damaged can still be recognised).
   */
  includes(s: BatchState, index: number, leaf: Uint8Array, proof: Uint8Array, proofAt: number, proofLen: number): boolean {
    if (s.verdict !== 'ok' || index >= s.count || index < 0 || leaf.length < 32) return false;
    const serial = s.serial;
    const lv = s.levelAt;
    const pp = this.#pendPos;
    const pf = this.#pendFrom;
    const pi = this.#pendWords;
    const nb = this.#nodeBuf;
    const cur = this.#cur;
    const cw = this.#curWords;
    const tw = this.#words;
    for (let j = 0; j < 32; j++) cur[j] = leaf[j]!;
    let np = 0;
    let idx = index;
    let width = s.count;
    let p = 0;
    for (let l = 0; width > 1; l++) {
      const pos = lv[l]! + idx;
      const slot = this.#slot(serial, pos);
      if (this.#tagBatch[slot] === serial && this.#tagNode[slot] === pos) {
        for (let w = 0, o = slot * 8; w < 8; w++) if (tw[o + w] !== cw[w]) return false;
        this.#commit(serial, np, proof);
        return true;
      }
      // Pending until the walk reaches a proven node: this node (a snapshot) and its sibling (where the proof has it).
      pp[np] = pos;
      pf[np] = -1;
      for (let w = 0, o = np * 8; w < 8; w++) pi[o + w] = cw[w]!;
      np++;
      const sib = idx ^ 1;
      if (sib < width) {
        if (p >= proofLen) return false;
        const at = proofAt + 32 * p;
        p++;
        if (at + 32 > proof.length) return false;
        pp[np] = lv[l]! + sib;
        pf[np] = at;
        np++;
        const lo = idx & 1 ? 33 : 1;
        const ro = 34 - lo;
        for (let j = 0; j < 32; j++) {
          nb[lo + j] = cur[j]!;
          nb[ro + j] = proof[at + j]!;
        }
        this.hashes++;
        const h = hash('sha256', nb, 'binary');
        for (let j = 0; j < 32; j++) cur[j] = h.charCodeAt(j);
      }
      idx >>>= 1;
      width = (width + 1) >>> 1;
    }
    if (p !== proofLen) return false;
    const rw = s.rootWords;
    for (let w = 0; w < 8; w++) if (rw[w] !== cw[w]) return false;
    this.#commit(serial, np, proof);
    return true;
  }

  #commit(serial: number, np: number, proof: Uint8Array): void {
    const pp = this.#pendPos;
    const pf = this.#pendFrom;
    const pi = this.#pendWords;
    const tw = this.#words;
    const tb = this.#value;
    for (let i = 0; i < np; i++) {
      const j = this.#slot(serial, pp[i]!);
      this.#tagBatch[j] = serial;
      this.#tagNode[j] = pp[i]!;
      const from = pf[i]!;
      if (from < 0) for (let w = 0, o = j * 8, q = i * 8; w < 8; w++) tw[o + w] = pi[q + w]!;
      else for (let b = 0, o = j * 32; b < 32; b++) tb[o + b] = proof[from + b]!;
    }
  }
}
