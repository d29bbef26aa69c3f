// crypto/: the only door to cryptography in securegrid. node:crypto only; no home-made primitives.
export {
  CHUNK_SIZE,
  TAG_SIZE,
  WRAPPED_KEY_SIZE,
  cipherSize,
  chunkCount,
  chunkSpan,
  ChunkEncryptor,
  decryptChunks,
  newDataKey,
  wrapKey,
  unwrapKey,
  seal,
  unseal,
  CryptoError,
  freshRandom,
} from './envelope.js';
export type { ChunkSpan } from './envelope.js';
export { SealedFileKeyProvider } from './key-provider.js';
export type { KeyProvider } from './key-provider.js';
