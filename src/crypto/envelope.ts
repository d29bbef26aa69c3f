// Object envelope in the spirit of MinIO's DARE: AES-256-GCM over 64 KiB chunks, each nonce carrying
// the chunk's sequence number and a final-chunk flag, so truncation, reordering and splicing fail to decrypt.
//
// Layout of an object's ciphertext: chunk_0 ‖ chunk_1 ‖ … ‖ chunk_{n-1}, each chunk = GCM(plain_i) ‖ tag_i,
// plain_i is CHUNK_SIZE bytes except the last (which may be shorter, and is CHUNK_SIZE or less but > 0
// unless the object is empty: an empty object is exactly one chunk with 0 plaintext bytes).
// Nonce_i (12 bytes) = flag byte (0x00, or 0x80 for the final chunk) ‖ 3 zero bytes ‖ uint64 BE i.
// AAD_i = the caller's object AAD (binds the chunk to one object version and part).
// A data key is used for exactly one object part, so nonces never repeat under one key.

import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';

export const CHUNK_SIZE = 64 * 1024;
export const TAG_SIZE = 16;
/** iv(12) ‖ wrapped key(32) ‖ tag(16) */
export const WRAPPED_KEY_SIZE = 60;

const ALGORITHM = 'aes-256-gcm';
const KEY_SIZE = 32;
const IV_SIZE = 12;
const FINAL_FLAG = 0x80;
const SEALED_CHUNK = CHUNK_SIZE + TAG_SIZE;

export class CryptoError extends Error {
  readonly code: string;
  constructor(code: 'DecryptFailed' | 'Truncated' | 'BadKey' | 'BadInput', message: string) {
    super(message);
    this.code = code;
  }
}

export interface ChunkSpan {
  firstChunk: number; // index of the first chunk holding plaintext byte `start`
  lastChunk: number; // index of the chunk holding plaintext byte `end - 1`
  cipherStart: number; // byte offset of firstChunk in the ciphertext
  cipherEnd: number; // byte offset just past lastChunk (incl. its tag)
  skip: number; // plaintext bytes to drop from the front of firstChunk's plaintext
}

function checkSize(name: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new CryptoError('BadInput', `${name} must be a non-negative integer, got ${n}`);
}

function checkKey(key: Buffer, what = 'key'): void {
  if (!Buffer.isBuffer(key) || key.length !== KEY_SIZE) {
    throw new CryptoError('BadKey', `${what} must be ${KEY_SIZE} bytes, got ${Buffer.isBuffer(key) ? key.length : typeof key}`);
  }
}

export function chunkCount(plainSize: number): number {
  checkSize('plainSize', plainSize);
  return plainSize === 0 ? 1 : Math.ceil(plainSize / CHUNK_SIZE);
}

export function cipherSize(plainSize: number): number {
  return plainSize + chunkCount(plainSize) * TAG_SIZE;
}

/** Plaintext length of chunk `i` of an object of plainSize bytes (i < chunkCount). */
function chunkPlainLen(plainSize: number, i: number, count: number): number {
  return i < count - 1 ? CHUNK_SIZE : plainSize - (count - 1) * CHUNK_SIZE;
}

/** Which ciphertext bytes hold plaintext [start, end); end > start, end <= plainSize. */
export function chunkSpan(plainSize: number, start: number, end: number): ChunkSpan {
  checkSize('plainSize', plainSize);
  checkSize('start', start);
  checkSize('end', end);
  if (!(end > start) || end > plainSize) {
    throw new CryptoError('BadInput', `range [${start}, ${end}) must be non-empty and within the ${plainSize}-byte object`);
  }
  const count = chunkCount(plainSize);
  const firstChunk = Math.floor(start / CHUNK_SIZE);
  const lastChunk = Math.floor((end - 1) / CHUNK_SIZE);
  return {
    firstChunk,
    lastChunk,
    cipherStart: firstChunk * SEALED_CHUNK,
    cipherEnd: lastChunk * SEALED_CHUNK + chunkPlainLen(plainSize, lastChunk, count) + TAG_SIZE,
    skip: start - firstChunk * CHUNK_SIZE,
  };
}

export function newDataKey(): Buffer {
  return freshRandom(KEY_SIZE);
}

function chunkNonce(seq: number, final: boolean): Buffer {
  const nonce = Buffer.alloc(IV_SIZE);
  nonce[0] = final ? FINAL_FLAG : 0;
  nonce.writeBigUInt64BE(BigInt(seq), 4);
  return nonce;
}

function sealChunk(key: Buffer, aad: Buffer, seq: number, final: boolean, plain: Buffer): Buffer {
  const cipher = createCipheriv(ALGORITHM, key, chunkNonce(seq, final), { authTagLength: TAG_SIZE });
  cipher.setAAD(aad);
  const body = cipher.update(plain);
  const rest = cipher.final(); // empty for GCM, kept for form
  const tag = cipher.getAuthTag();
  return rest.length === 0 ? Buffer.concat([body, tag], body.length + TAG_SIZE) : Buffer.concat([body, rest, tag]);
}

/** Streaming encryptor: push plaintext in any pieces, get whole sealed chunks back; final() seals the rest. */
export class ChunkEncryptor {
  readonly #key: Buffer;
  readonly #aad: Buffer;
  // Holds the not-yet-sealed tail (≤ CHUNK_SIZE bytes). A full chunk stays here until more data arrives,
  // because only then is it known not to be the final chunk.
  // Grown on demand (small objects never pay for a 64 KiB buffer).
  #pending = Buffer.alloc(0);
  #pendingLen = 0;
  #seq = 0;
  #plainBytes = 0;
  #done = false;

  constructor(key: Buffer, aad: Buffer) {
    checkKey(key);
    if (!Buffer.isBuffer(aad)) throw new CryptoError('BadInput', 'aad must be a Buffer');
    this.#key = Buffer.from(key);
    this.#aad = Buffer.from(aad);
  }

  /** Plaintext bytes pushed so far. */
  get plainBytes(): number {
    return this.#plainBytes;
  }

  /** Returns sealed chunks completed by this push (possibly none). */
  push(plain: Buffer): Buffer[] {
    if (this.#done) throw new CryptoError('BadInput', 'push() after final()');
    if (!Buffer.isBuffer(plain)) throw new CryptoError('BadInput', 'plaintext must be a Buffer');
    const out: Buffer[] = [];
    let pos = 0;
    const len = plain.length;
    while (pos < len) {
      if (this.#pendingLen === CHUNK_SIZE) {
        out.push(sealChunk(this.#key, this.#aad, this.#seq++, false, this.#pending));
        this.#pendingLen = 0;
      }
      if (this.#pendingLen === 0 && len - pos > CHUNK_SIZE) {
        // Whole chunk straight from the input, with more input after it: no copy into the pending buffer.
        out.push(sealChunk(this.#key, this.#aad, this.#seq++, false, plain.subarray(pos, pos + CHUNK_SIZE)));
        pos += CHUNK_SIZE;
        continue;
      }
      const n = Math.min(CHUNK_SIZE - this.#pendingLen, len - pos);
      if (this.#pendingLen + n > this.#pending.length) {
        const grown = Buffer.allocUnsafe(Math.min(CHUNK_SIZE, Math.max(this.#pendingLen + n, this.#pending.length * 2, 1024)));
        this.#pending.copy(grown, 0, 0, this.#pendingLen);
        this.#pending.fill(0);
        this.#pending = grown;
      }
      this.#pending.set(plain.subarray(pos, pos + n), this.#pendingLen);
      this.#pendingLen += n;
      pos += n;
    }
    this.#plainBytes += len;
    return out;
  }

  /** Seals the last chunk (flagged final). Must be called exactly once. */
  final(): Buffer {
    if (this.#done) throw new CryptoError('BadInput', 'final() called twice');
    this.#done = true;
    const sealed = sealChunk(this.#key, this.#aad, this.#seq++, true, this.#pending.subarray(0, this.#pendingLen));
    this.#pending.fill(0);
    this.#key.fill(0);
    return sealed;
  }
}

/**
 * Decrypts consecutive sealed chunks firstChunk..firstChunk+k of an object whose plaintext is plainSize bytes
 * (so it knows which chunk is final). `cipher` holds exactly those chunks. Throws CryptoError on any tamper.
 */
export function decryptChunks(key: Buffer, aad: Buffer, plainSize: number, firstChunk: number, cipher: Buffer): Buffer {
  checkKey(key);
  if (!Buffer.isBuffer(aad)) throw new CryptoError('BadInput', 'aad must be a Buffer');
  if (!Buffer.isBuffer(cipher)) throw new CryptoError('BadInput', 'ciphertext must be a Buffer');
  const count = chunkCount(plainSize);
  checkSize('firstChunk', firstChunk);
  if (firstChunk >= count) {
    throw new CryptoError('BadInput', `chunk ${firstChunk} does not exist in a ${plainSize}-byte object (${count} chunks)`);
  }
  if (cipher.length === 0) throw new CryptoError('Truncated', 'no ciphertext given');
  // Walk the chunk boundaries first, so a bad length fails before any decryption work.
  let total = 0;
  let pos = 0;
  let i = firstChunk;
  while (pos < cipher.length) {
    if (i >= count) throw new CryptoError('DecryptFailed', `ciphertext runs past the final chunk ${count - 1}`);
    const sealedLen = chunkPlainLen(plainSize, i, count) + TAG_SIZE;
    if (cipher.length - pos < sealedLen) {
      throw new CryptoError('Truncated', `chunk ${i} is cut short: ${cipher.length - pos} of ${sealedLen} bytes`);
    }
    total += sealedLen - TAG_SIZE;
    pos += sealedLen;
    i++;
  }
  const out = Buffer.allocUnsafe(total);
  let outPos = 0;
  pos = 0;
  for (let seq = firstChunk; seq < i; seq++) {
    const plainLen = chunkPlainLen(plainSize, seq, count);
    const body = cipher.subarray(pos, pos + plainLen);
    const tag = cipher.subarray(pos + plainLen, pos + plainLen + TAG_SIZE);
    pos += plainLen + TAG_SIZE;
    let plain: Buffer;
    try {
      const decipher = createDecipheriv(ALGORITHM, key, chunkNonce(seq, seq === count - 1), { authTagLength: TAG_SIZE });
      decipher.setAAD(aad);
      decipher.setAuthTag(tag);
      plain = decipher.update(body);
      const rest = decipher.final();
      if (rest.length > 0) plain = Buffer.concat([plain, rest]);
    } catch {
      out.fill(0);
      throw new CryptoError(
        'DecryptFailed',
        `chunk ${seq} failed authentication (wrong key, tampered, reordered, truncated or from another object)`,
      );
    }
    plain.copy(out, outPos);
    outPos += plain.length;
  }
  return out;
}

function gcmSeal(key: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const iv = freshRandom(IV_SIZE);
  const cipher = createCipheriv(ALGORITHM, key, iv, { authTagLength: TAG_SIZE });
  cipher.setAAD(aad);
  const body = cipher.update(plaintext);
  const rest = cipher.final();
  return Buffer.concat([iv, body, rest, cipher.getAuthTag()]);
}

function gcmOpen(key: Buffer, sealed: Buffer, aad: Buffer, what: string): Buffer {
  const iv = sealed.subarray(0, IV_SIZE);
  const body = sealed.subarray(IV_SIZE, sealed.length - TAG_SIZE);
  const tag = sealed.subarray(sealed.length - TAG_SIZE);
  try {
    const decipher = createDecipheriv(ALGORITHM, key, iv, { authTagLength: TAG_SIZE });
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    const plain = decipher.update(body);
    const rest = decipher.final();
    return rest.length === 0 ? plain : Buffer.concat([plain, rest]);
  } catch {
    throw new CryptoError('DecryptFailed', `${what} failed authentication (wrong key, wrong context or tampered)`);
  }
}

/** Wraps a 32-byte data key under a 32-byte master key (AES-256-GCM, fresh IV), bound to aad. */
export function wrapKey(master: Buffer, dataKey: Buffer, aad: Buffer): Buffer {
  checkKey(master, 'master key');
  checkKey(dataKey, 'data key');
  if (!Buffer.isBuffer(aad)) throw new CryptoError('BadInput', 'aad must be a Buffer');
  return gcmSeal(master, dataKey, aad);
}

export function unwrapKey(master: Buffer, wrapped: Buffer, aad: Buffer): Buffer {
  checkKey(master, 'master key');
  if (!Buffer.isBuffer(aad)) throw new CryptoError('BadInput', 'aad must be a Buffer');
  if (!Buffer.isBuffer(wrapped) || wrapped.length !== WRAPPED_KEY_SIZE) {
    throw new CryptoError('BadInput', `a wrapped key is ${WRAPPED_KEY_SIZE} bytes, got ${Buffer.isBuffer(wrapped) ? wrapped.length : typeof wrapped}`);
  }
  return gcmOpen(master, wrapped, aad, 'wrapped data key');
}

/** Small records (secrets, metadata copies): iv ‖ ciphertext ‖ tag under a 32-byte key. */
export function seal(key: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  checkKey(key);
  if (!Buffer.isBuffer(plaintext) || !Buffer.isBuffer(aad)) throw new CryptoError('BadInput', 'plaintext and aad must be Buffers');
  return gcmSeal(key, plaintext, aad);
}

export function unseal(key: Buffer, sealed: Buffer, aad: Buffer): Buffer {
  checkKey(key);
  if (!Buffer.isBuffer(sealed) || !Buffer.isBuffer(aad)) throw new CryptoError('BadInput', 'sealed record and aad must be Buffers');
  if (sealed.length < IV_SIZE + TAG_SIZE) {
    throw new CryptoError('Truncated', `a sealed record is at least ${IV_SIZE + TAG_SIZE} bytes, got ${sealed.length}`);
  }
  return gcmOpen(key, sealed, aad, 'sealed record');
}

// Fresh random bytes from a pool filled 16 KiB at a time (one system call for many keys and IVs). A slice is
// handed out once and never reused: when the pool runs out, a new buffer is allocated and filled.
const POOL_SIZE = 16 * 1024;
let pool = Buffer.alloc(0);
let poolAt = 0;

export function freshRandom(n: number): Buffer {
  if (n > POOL_SIZE / 4) return randomFillSync(Buffer.allocUnsafe(n));
  if (poolAt + n > pool.length) {
    pool = randomFillSync(Buffer.allocUnsafe(POOL_SIZE));
    poolAt = 0;
  }
  const out = pool.subarray(poolAt, poolAt + n);
  poolAt += n;
  return out;
}
