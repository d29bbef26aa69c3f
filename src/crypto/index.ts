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
export {
  SUITES,
  parseSuite,
  suiteInfo,
  suiteByWireId,
  generateIdentity,
  identityFromSeed,
  publicKeyFromDer,
  signWith,
  verifyWith,
  generateEphemeral,
  exportEphemeralPrivate,
  importEphemeralPrivate,
  parseEphemeralPublic,
  ephemeralSecret,
  rsaEncryptPremaster,
  rsaDecryptPremaster,
  hkdfSha256,
  sha256,
  batchSigningBytes,
  metrologyKeyId,
  MetrologyKey,
  generateMetrologyKey,
  metrologyKeyFromPem,
  verifyBatch,
} from './suites.js';
export type { SuiteName, SuiteInfo, KexKind, SignatureKind, IdentityKey, EphemeralKey, BatchHeader } from './suites.js';
export { HASH_SIZE, leafHash, merkleTree, verifyInclusion, encodeProof, decodeProof } from './merkle.js';
export type { MerkleTree } from './merkle.js';
