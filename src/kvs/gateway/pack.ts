// Packs: the small values of one batch stored as ONE encrypted, encoded and placed object, so that a data key,
// a placement, a metadata copy and the node writes are paid once per batch rather than once per value.
//
// A pack's ciphertext is a sequence of sealed blocks, cut into stripes at block boundaries:
//   block_b = AES-256-GCM(packKey, nonce_b, aad = "securegrid/pack/<id>", member ‖ member ‖ …) ‖ tag_b
//   nonce_b (12 bytes) = 0x50 ‖ 3 zero bytes ‖ uint64 BE b       (the pack key is fresh: nonces never repeat)
// A block holds whole members, about BLOCK_TARGET bytes of them (a larger member is a block of its own), so a
// read fetches and decrypts only the one block its value is in. Each member's index entry says where:
// (pack, stripe, block offset and sealed length in the stripe, block number, offset and length in the block).
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { CryptoError, TAG_SIZE } from '../../crypto/index.js';

/** Plaintext bytes per block: what a point read decrypts at most (for members up to this size). */
export const BLOCK_TARGET = 4096;
/** Values up to this size go into packs; larger ones are objects of their own. */
export const PACK_MAX_VALUE = 64 * 1024;
/** A pack is at most this much plaintext; a bigger batch makes several packs. */
export const PACK_MAX_BYTES = 4 * 1024 * 1024;

/** Where one member's bytes are. Stored in the member's index entry. */
export interface PackRef {
  /** Pack id (names the pack's fragments on the nodes). */
  id: string;
  /** Stripe number. */
  s: number;
  /** Block's byte offset in the stripe's ciphertext, and its sealed length (incl. tag). */
  bo: number;
  bl: number;
  /** Block number (its nonce). */
  bn: number;
  /** Offset and length of the member in the block's plaintext. */
  o: number;
  n: number;
}

export interface BuiltPack {
  /** Ciphertext of each stripe. */
  stripes: Buffer[];
  /** One ref per member, in input order (without the pack id, set by the caller). */
  refs: Array<Omit<PackRef, 'id'>>;
}

export function packAad(packId: string): Buffer {
  return Buffer.from(`securegrid/pack/${packId}`);
}

function blockNonce(b: number): Buffer {
  const nonce = Buffer.alloc(12);
  nonce[0] = 0x50;
  nonce.writeUInt32BE(Math.floor(b / 0x1_0000_0000), 4);
  nonce.writeUInt32BE(b >>> 0, 8);
  return nonce;
}

/** Lays the members out into blocks and stripes (stripe ciphertext at most stripeMax bytes) and seals them. */
export function buildPack(key: Buffer, packId: string, values: readonly Buffer[], stripeMax: number): BuiltPack {
  const aad = packAad(packId);
  const refs: Array<Omit<PackRef, 'id'>> = new Array(values.length);
  // First the layout: blocks of whole members, stripes of whole blocks.
  const blocks: Array<{ first: number; end: number; len: number; s: number; bo: number }> = [];
  const stripeLens: number[] = [0];
  let i = 0;
  while (i < values.length) {
    const first = i;
    let len = values[i++]!.length;
    while (i < values.length && len + values[i]!.length <= BLOCK_TARGET) len += values[i++]!.length;
    const sealed = len + TAG_SIZE;
    let s = stripeLens.length - 1;
    if (stripeLens[s]! > 0 && stripeLens[s]! + sealed > stripeMax) {
      stripeLens.push(0);
      s++;
    }
    blocks.push({ first, end: i, len, s, bo: stripeLens[s]! });
    stripeLens[s]! += sealed;
  }
  const stripes = stripeLens.map((n) => Buffer.allocUnsafe(n));
  // Members are gathered into one plaintext block first: one cipher call per block, not one per member.
  let scratch = Buffer.allocUnsafe(BLOCK_TARGET);
  blocks.forEach((b, bn) => {
    const out = stripes[b.s]!;
    const c = createCipheriv('aes-256-gcm', key, blockNonce(bn), { authTagLength: TAG_SIZE });
    c.setAAD(aad);
    let plain: Buffer;
    if (b.end - b.first === 1) plain = values[b.first]!;
    else {
      if (scratch.length < b.len) scratch = Buffer.allocUnsafe(b.len);
      plain = scratch.subarray(0, b.len);
    }
    let o = 0;
    for (let m = b.first; m < b.end; m++) {
      const v = values[m]!;
      if (plain !== v) plain.set(v, o);
      refs[m] = { s: b.s, bo: b.bo, bl: b.len + TAG_SIZE, bn, o, n: v.length };
      o += v.length;
    }
    let at = b.bo + c.update(plain).copy(out, b.bo);
    at += c.final().copy(out, at);
    c.getAuthTag().copy(out, at);
  });
  plainWipe(scratch);
  return { stripes, refs };
}

/** Scratch plaintext does not linger in a reused buffer. */
function plainWipe(b: Buffer): void {
  b.fill(0);
}

/** One block's plaintext; CryptoError when it fails authentication (tampered, truncated, wrong block or pack). */
export function openBlock(key: Buffer, packId: string, bn: number, sealed: Buffer): Buffer {
  if (sealed.length < TAG_SIZE) throw new CryptoError('Truncated', `a pack block is at least ${TAG_SIZE} bytes, got ${sealed.length}`);
  try {
    const d = createDecipheriv('aes-256-gcm', key, blockNonce(bn), { authTagLength: TAG_SIZE });
    d.setAAD(packAad(packId));
    d.setAuthTag(sealed.subarray(sealed.length - TAG_SIZE));
    const plain = d.update(sealed.subarray(0, sealed.length - TAG_SIZE));
    d.final();
    return plain;
  } catch {
    throw new CryptoError('DecryptFailed', `pack block ${bn} failed authentication (wrong key, tampered, truncated or from another pack)`);
  }
}
