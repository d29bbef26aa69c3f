// Object envelope in the spirit of MinIO's DARE: AES-256-GCM over 64 KiB chunks, each nonce carrying
// the chunk's sequence number and a final-chunk flag, so truncation, reordering and splicing fail to decrypt.
//
// Layout of an object's ciphertext: chunk_0 ‖ chunk_1 ‖ … ‖ chunk_{n-1}, each chunk = GCM(plain_i) ‖ tag_i,
// plain_i is CHUNK_SIZE bytes except the last (which may be shorter, and is CHUNK_SIZE or less but > 0
// unless the object is empty: an empty object is exactly one chunk with 0 plaintext bytes).
// Nonce_i (12 bytes) = flag byte (0x00, or 0x80 for the final chunk) ‖ 3 zero bytes ‖ uint64 BE i.
// AAD_i = the caller's object AAD (binds the chunk to one object version and part).
// A data key is used for exactly one object part, so nonces never repeat under one key.

export const CHUNK_SIZE = 64 * 1024;
export const TAG_SIZE = 16;
/** iv(12) ‖ wrapped key(32) ‖ tag(16) */
export const WRAPPED_KEY_SIZE = 60;

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

export declare function chunkCount(plainSize: number): number;
export declare function cipherSize(plainSize: number): number;
/** Which ciphertext bytes hold plaintext [start, end); end > start, end <= plainSize. */
export declare function chunkSpan(plainSize: number, start: number, end: number): ChunkSpan;
export declare function newDataKey(): Buffer;

/** Streaming encryptor: push plaintext in any pieces, get whole sealed chunks back; final() seals the rest. */
export declare class ChunkEncryptor {
  constructor(key: Buffer, aad: Buffer);
  /** Returns sealed chunks completed by this push (possibly none). */
  push(plain: Buffer): Buffer[];
  /** Seals the last chunk (flagged final). Must be called exactly once. */
  final(): Buffer;
  /** Plaintext bytes pushed so far. */
  readonly plainBytes: number;
}

/**
 * Decrypts consecutive sealed chunks firstChunk..firstChunk+k of an object whose plaintext is plainSize bytes
 * (so it knows which chunk is final). `cipher` holds exactly those chunks. Throws CryptoError on any tamper.
 */
export declare function decryptChunks(key: Buffer, aad: Buffer, plainSize: number, firstChunk: number, cipher: Buffer): Buffer;

/** Wraps a 32-byte data key under a 32-byte master key (AES-256-GCM, fresh IV), bound to aad. */
export declare function wrapKey(master: Buffer, dataKey: Buffer, aad: Buffer): Buffer;
export declare function unwrapKey(master: Buffer, wrapped: Buffer, aad: Buffer): Buffer;

/** Small records (secrets, metadata copies): iv ‖ ciphertext ‖ tag under a 32-byte key. */
export declare function seal(key: Buffer, plaintext: Buffer, aad: Buffer): Buffer;
export declare function unseal(key: Buffer, sealed: Buffer, aad: Buffer): Buffer;
