// The five meter cipher suites (docs/meter-pipeline.md, "Cipher suites"): identity keys and signatures, key
// establishment (ephemeral ECDH / X25519, or RSA-OAEP key transport), HKDF-SHA256, and the metrology signer.
// Everything goes through node:crypto; this file only chooses algorithms, parameters and encodings.

import {
  constants,
  createECDH,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type JsonWebKey,
  type KeyObject,
  privateDecrypt,
  publicEncrypt,
  sign,
  verify,
} from 'node:crypto';
import { CryptoError } from './envelope.js';

export type SuiteName = 'rsa2048-aes128gcm' | 'rsa3072-aes256gcm' | 'p256-aes128gcm' | 'p384-aes256gcm' | 'x25519-ed25519-aes256gcm';

/** In wire-id order: a suite's position here plus one is its byte in handshake messages; append only. */
export const SUITES: readonly SuiteName[] = ['rsa2048-aes128gcm', 'rsa3072-aes256gcm', 'p256-aes128gcm', 'p384-aes256gcm', 'x25519-ed25519-aes256gcm'];

export type KexKind = 'rsa-oaep-sha256' | 'ecdh-p256' | 'ecdh-p384' | 'x25519';
export type SignatureKind = 'rsa-pss-sha256' | 'ecdsa-p256-sha256' | 'ecdsa-p384-sha384' | 'ed25519';

export interface SuiteInfo {
  name: SuiteName;
  /** The suite's byte in handshake messages (1..5). */
  wireId: number;
  kex: KexKind;
  signature: SignatureKind;
  /** RSA modulus bits, or the curve's size in bits (255 for Curve25519). */
  identityBits: number;
  /** Record encryption key size: 16 → AES-128-GCM, 32 → AES-256-GCM. */
  ekBytes: 16 | 32;
  /** Record authentication key size (DLMS AK). */
  akBytes: 16;
  /** Raw ephemeral public key size on the wire (uncompressed point, or 32 for X25519); 0 for RSA key transport. */
  ephemeralPublicBytes: number;
  /** Signature size: ECDSA is IEEE P1363 (r ‖ s), so every suite's signatures have a fixed length. */
  signatureBytes: number;
  /** Whether identityFromSeed can derive this suite's identity (EC and Ed25519 yes, RSA no). */
  derivable: boolean;
}

const INFO: Record<SuiteName, SuiteInfo> = {
  'rsa2048-aes128gcm': {
    name: 'rsa2048-aes128gcm',
    wireId: 1,
    kex: 'rsa-oaep-sha256',
    signature: 'rsa-pss-sha256',
    identityBits: 2048,
    ekBytes: 16,
    akBytes: 16,
    ephemeralPublicBytes: 0,
    signatureBytes: 256,
    derivable: false,
  },
  'rsa3072-aes256gcm': {
    name: 'rsa3072-aes256gcm',
    wireId: 2,
    kex: 'rsa-oaep-sha256',
    signature: 'rsa-pss-sha256',
    identityBits: 3072,
    ekBytes: 32,
    akBytes: 16,
    ephemeralPublicBytes: 0,
    signatureBytes: 384,
    derivable: false,
  },
  'p256-aes128gcm': {
    name: 'p256-aes128gcm',
    wireId: 3,
    kex: 'ecdh-p256',
    signature: 'ecdsa-p256-sha256',
    identityBits: 256,
    ekBytes: 16,
    akBytes: 16,
    ephemeralPublicBytes: 65,
    signatureBytes: 64,
    derivable: true,
  },
  'p384-aes256gcm': {
    name: 'p384-aes256gcm',
    wireId: 4,
    kex: 'ecdh-p384',
    signature: 'ecdsa-p384-sha384',
    identityBits: 384,
    ekBytes: 32,
    akBytes: 16,
    ephemeralPublicBytes: 97,
    signatureBytes: 96,
    derivable: true,
  },
  'x25519-ed25519-aes256gcm': {
    name: 'x25519-ed25519-aes256gcm',
    wireId: 5,
    kex: 'x25519',
    signature: 'ed25519',
    identityBits: 255,
    ekBytes: 32,
    akBytes: 16,
    ephemeralPublicBytes: 32,
    signatureBytes: 64,
    derivable: true,
  },
};

/** A meter's or the collector's long-term identity in one suite. */
export interface IdentityKey {
  suite: SuiteName;
  /** SPKI DER, as registered in the meter directory (`meter.public_key`). */
  publicKey: Buffer;
  privateKey: KeyObject;
}

/** An ephemeral key-agreement key pair of an EC suite; publicKey is raw (uncompressed point, or 32 bytes X25519). */
export interface EphemeralKey {
  suite: SuiteName;
  publicKey: Buffer;
  privateKey: KeyObject;
}

function isSuiteName(name: unknown): name is SuiteName {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(INFO, name);
}

/** The suite named `name`; throws CryptoError('BadInput') listing the known suites otherwise. */
export function parseSuite(name: string): SuiteName {
  if (isSuiteName(name)) return name;
  throw new CryptoError('BadInput', `unknown cipher suite ${JSON.stringify(name)}; use one of ${SUITES.join(', ')}`);
}

export function suiteInfo(name: SuiteName): SuiteInfo {
  return INFO[parseSuite(name)];
}

/** The suite with handshake wire id `id`, or undefined. */
export function suiteByWireId(id: number): SuiteName | undefined {
  return SUITES[id - 1];
}

// Curve parameters per EC suite: OpenSSL curve name, JWK name, scalar size, group order, SPKI prefix of a raw point.
interface Curve {
  openssl: 'prime256v1' | 'secp384r1';
  jwk: 'P-256' | 'P-384';
  bytes: number;
  order: bigint;
  hash: 'sha256' | 'sha384';
}

const P256: Curve = {
  openssl: 'prime256v1',
  jwk: 'P-256',
  bytes: 32,
  order: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  hash: 'sha256',
};
const P384: Curve = {
  openssl: 'secp384r1',
  jwk: 'P-384',
  bytes: 48,
  order: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
  hash: 'sha384',
};

function curveOf(suite: SuiteName): Curve | undefined {
  return suite === 'p256-aes128gcm' ? P256 : suite === 'p384-aes256gcm' ? P384 : undefined;
}

// SPKI DER headers of raw identity public keys: identityFromSeed builds SPKI without a (slow) DER export.
const SPKI_PREFIX: Partial<Record<SuiteName, Buffer>> = {
  'p256-aes128gcm': Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex'),
  'p384-aes256gcm': Buffer.from('3076301006072a8648ce3d020106052b81040022036200', 'hex'),
  'x25519-ed25519-aes256gcm': Buffer.from('302a300506032b6570032100', 'hex'),
};
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

function spkiDer(key: KeyObject): Buffer {
  return key.export({ type: 'spki', format: 'der' });
}

/** A fresh identity key pair (RSA keygen takes 0.1–2 s; do it once, not per test case). */
export function generateIdentity(suite: SuiteName): IdentityKey {
  const info = suiteInfo(suite);
  let pair: { publicKey: KeyObject; privateKey: KeyObject };
  if (info.kex === 'rsa-oaep-sha256') pair = generateKeyPairSync('rsa', { modulusLength: info.identityBits, publicExponent: 0x10001 });
  else if (info.signature === 'ed25519') pair = generateKeyPairSync('ed25519');
  else pair = generateKeyPairSync('ec', { namedCurve: curveOf(suite)!.openssl });
  return { suite, publicKey: spkiDer(pair.publicKey), privateKey: pair.privateKey };
}

/**
 * The identity a 32-byte seed determines, so a simulator can re-derive a fleet's keys instead of storing them.
 * Ed25519: the seed is the RFC 8032 private key. P-256/P-384: scalar = HKDF-SHA256(seed, info = suite name),
 * 16 bytes longer than the order, reduced into [1, n−1] (bias below 2^-128). RSA suites cannot be derived.
 */
export function identityFromSeed(suite: SuiteName, seed: Buffer): IdentityKey {
  const info = suiteInfo(suite);
  if (!info.derivable) {
    throw new CryptoError('BadInput', `${suite} identities are generated, not derived from a seed: use generateIdentity (or an EC/Ed25519 suite)`);
  }
  if (!Buffer.isBuffer(seed) || seed.length !== 32) {
    throw new CryptoError('BadInput', `an identity seed is 32 bytes, got ${Buffer.isBuffer(seed) ? seed.length : typeof seed}`);
  }
  let privateKey: KeyObject;
  let raw: Buffer;
  if (info.signature === 'ed25519') {
    privateKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
    raw = Buffer.from(createPublicKey(privateKey).export({ format: 'jwk' }).x!, 'base64url');
  } else {
    const curve = curveOf(suite)!;
    const wide = Buffer.from(hkdfSync('sha256', seed, Buffer.alloc(0), `securegrid-identity/1 ${suite}`, curve.bytes + 16));
    const d = (BigInt(`0x${wide.toString('hex')}`) % (curve.order - 1n)) + 1n;
    const dBytes = Buffer.from(d.toString(16).padStart(curve.bytes * 2, '0'), 'hex');
    const ecdh = createECDH(curve.openssl);
    ecdh.setPrivateKey(dBytes);
    const point = ecdh.getPublicKey(); // 0x04 ‖ x ‖ y
    raw = point;
    privateKey = createPrivateKey({
      key: {
        kty: 'EC',
        crv: curve.jwk,
        d: dBytes.toString('base64url'),
        x: point.subarray(1, 1 + curve.bytes).toString('base64url'),
        y: point.subarray(1 + curve.bytes).toString('base64url'),
      },
      format: 'jwk',
    });
    wide.fill(0);
    dBytes.fill(0);
  }
  return { suite, publicKey: Buffer.concat([SPKI_PREFIX[suite]!, raw]), privateKey };
}

function keyMatchesSuite(key: KeyObject, suite: SuiteName): boolean {
  const info = INFO[suite];
  const details = key.asymmetricKeyDetails ?? {};
  switch (info.signature) {
    case 'rsa-pss-sha256':
      return key.asymmetricKeyType === 'rsa' && details.modulusLength === info.identityBits;
    case 'ed25519':
      return key.asymmetricKeyType === 'ed25519';
    default:
      return key.asymmetricKeyType === 'ec' && details.namedCurve === curveOf(suite)!.openssl;
  }
}

// Parsed identity keys by DER: OpenSSL 3 spends 100–250 µs decoding one, and the same meters re-key again and again.
const KEY_CACHE_SIZE = 4096;
const keyCache = new Map<string, KeyObject>();

/** Parses an SPKI DER public key and checks it is of `suite`'s kind; CryptoError('BadKey') otherwise. */
export function publicKeyFromDer(suite: SuiteName, der: Buffer): KeyObject {
  parseSuite(suite);
  if (!Buffer.isBuffer(der)) throw new CryptoError('BadKey', `a public key is SPKI DER bytes (expected a ${suite} identity key)`);
  const id = der.toString('base64');
  let key = keyCache.get(id);
  if (key === undefined) {
    try {
      key = createPublicKey({ key: der, format: 'der', type: 'spki' });
    } catch {
      throw new CryptoError('BadKey', `not an SPKI DER public key (expected a ${suite} identity key)`);
    }
    if (keyCache.size >= KEY_CACHE_SIZE) keyCache.delete(keyCache.keys().next().value!);
    keyCache.set(id, key);
  }
  if (!keyMatchesSuite(key, suite)) {
    throw new CryptoError('BadKey', `the public key is ${key.asymmetricKeyType ?? 'unknown'}, not a ${suite} identity key`);
  }
  return key;
}

function signParams(suite: SuiteName): { algorithm: string | null; options: Record<string, unknown> } {
  switch (INFO[suite].signature) {
    case 'rsa-pss-sha256':
      return { algorithm: 'sha256', options: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST } };
    case 'ecdsa-p256-sha256':
      return { algorithm: 'sha256', options: { dsaEncoding: 'ieee-p1363' } };
    case 'ecdsa-p384-sha384':
      return { algorithm: 'sha384', options: { dsaEncoding: 'ieee-p1363' } };
    case 'ed25519':
      return { algorithm: null, options: {} };
  }
}

/** Signs with the identity's suite algorithm (RSA-PSS-SHA256, ECDSA P1363, or Ed25519). */
export function signWith(identity: IdentityKey, data: Buffer): Buffer {
  const { algorithm, options } = signParams(parseSuite(identity.suite));
  return sign(algorithm, data, { key: identity.privateKey, ...options });
}

/**
 * True when `sig` is `suite`'s signature of `data` by `publicKey` (SPKI DER, or a KeyObject from
 * publicKeyFromDer). A malformed signature is false; a key that is not of the suite throws CryptoError('BadKey').
 */
export function verifyWith(suite: SuiteName, publicKey: Buffer | KeyObject, data: Buffer, sig: Buffer): boolean {
  const key = Buffer.isBuffer(publicKey) ? publicKeyFromDer(suite, publicKey) : publicKey;
  if (!keyMatchesSuite(key, suite)) {
    throw new CryptoError('BadKey', `the public key is ${key.asymmetricKeyType ?? 'unknown'}, not a ${suite} identity key`);
  }
  if (!Buffer.isBuffer(sig) || sig.length !== INFO[suite].signatureBytes) return false;
  const { algorithm, options } = signParams(suite);
  try {
    return verify(algorithm, data, { key, ...options }, sig);
  } catch {
    return false;
  }
}

/** A fresh ephemeral key-agreement key pair for an EC suite (throws for RSA suites, which use key transport). */
export function generateEphemeral(suite: SuiteName): EphemeralKey {
  const info = suiteInfo(suite);
  if (info.ephemeralPublicBytes === 0) throw new CryptoError('BadInput', `${suite} uses RSA key transport, not ephemeral key agreement`);
  const pair = info.kex === 'x25519' ? generateKeyPairSync('x25519') : generateKeyPairSync('ec', { namedCurve: curveOf(suite)!.openssl });
  return { suite, publicKey: rawPublic(pair.publicKey.export({ format: 'jwk' })), privateKey: pair.privateKey };
}

// Raw keys go through JWK, not DER: OpenSSL 3's DER decoders cost 100–500 µs a key, JWK import a tenth of that.
function rawPublic(jwk: JsonWebKey): Buffer {
  const x = Buffer.from(jwk.x!, 'base64url');
  return jwk.kty === 'OKP' ? x : Buffer.concat([Buffer.from([0x04]), x, Buffer.from(jwk.y!, 'base64url')]);
}

function publicJwk(suite: SuiteName, raw: Buffer): JsonWebKey {
  const curve = curveOf(suite);
  if (curve === undefined) return { kty: 'OKP', crv: 'X25519', x: raw.toString('base64url') };
  if (raw[0] !== 0x04) throw new CryptoError('BadKey', `a ${suite} ephemeral public key is an uncompressed point (0x04 ‖ x ‖ y)`);
  return { kty: 'EC', crv: curve.jwk, x: raw.subarray(1, 1 + curve.bytes).toString('base64url'), y: raw.subarray(1 + curve.bytes).toString('base64url') };
}

function scalarBytes(suite: SuiteName): number {
  return curveOf(suite)?.bytes ?? 32;
}

/** Compact bytes of an ephemeral key pair, private scalar ‖ raw public key (the collector seals them into its cookie). */
export function exportEphemeralPrivate(key: EphemeralKey): Buffer {
  const d = Buffer.from(key.privateKey.export({ format: 'jwk' }).d!, 'base64url');
  return Buffer.concat([d, key.publicKey]);
}

/** The ephemeral private key back from exportEphemeralPrivate's bytes; CryptoError('BadKey') if they are not a key of the suite. */
export function importEphemeralPrivate(suite: SuiteName, bytes: Buffer): KeyObject {
  const info = suiteInfo(suite);
  if (info.ephemeralPublicBytes === 0) throw new CryptoError('BadInput', `${suite} uses RSA key transport, not ephemeral key agreement`);
  const dLen = scalarBytes(suite);
  if (!Buffer.isBuffer(bytes) || bytes.length !== dLen + info.ephemeralPublicBytes) {
    throw new CryptoError('BadKey', `an exported ${suite} ephemeral key is ${dLen + info.ephemeralPublicBytes} bytes`);
  }
  try {
    const jwk = publicJwk(suite, bytes.subarray(dLen));
    return createPrivateKey({ key: { ...jwk, d: bytes.subarray(0, dLen).toString('base64url') }, format: 'jwk' });
  } catch {
    throw new CryptoError('BadKey', `not a ${suite} ephemeral key pair`);
  }
}

/** Parses a raw ephemeral public key of an EC suite; CryptoError('BadKey') if the size is wrong or the point is off the curve. */
export function parseEphemeralPublic(suite: SuiteName, raw: Buffer): KeyObject {
  const info = suiteInfo(suite);
  if (info.ephemeralPublicBytes === 0) throw new CryptoError('BadInput', `${suite} uses RSA key transport, not ephemeral key agreement`);
  if (!Buffer.isBuffer(raw) || raw.length !== info.ephemeralPublicBytes) {
    throw new CryptoError('BadKey', `a ${suite} ephemeral public key is ${info.ephemeralPublicBytes} bytes`);
  }
  try {
    return createPublicKey({ key: publicJwk(suite, raw), format: 'jwk' });
  } catch {
    throw new CryptoError('BadKey', `the ${suite} ephemeral public key is not a point on the curve`);
  }
}

/**
 * The shared secret of our ephemeral private key and the peer's raw ephemeral public key. A peer key that is
 * the wrong size, not on the curve, or of low order throws CryptoError('BadKey').
 */
export function ephemeralSecret(suite: SuiteName, privateKey: KeyObject, peerPublic: Buffer): Buffer {
  const peer = parseEphemeralPublic(suite, peerPublic);
  try {
    return diffieHellman({ privateKey, publicKey: peer });
  } catch {
    throw new CryptoError('BadKey', `the peer's ${suite} ephemeral public key is invalid (not on the curve, or of low order)`);
  }
}

/** RSA-OAEP-SHA256 encryption of a premaster secret to the collector's RSA identity key (SPKI DER or KeyObject). */
export function rsaEncryptPremaster(suite: SuiteName, publicKey: Buffer | KeyObject, premaster: Buffer): Buffer {
  if (INFO[parseSuite(suite)].kex !== 'rsa-oaep-sha256') throw new CryptoError('BadInput', `${suite} does not use RSA key transport`);
  const key = Buffer.isBuffer(publicKey) ? publicKeyFromDer(suite, publicKey) : publicKey;
  return publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, premaster);
}

/** Inverse of rsaEncryptPremaster; any failure is CryptoError('DecryptFailed') (one message, no padding oracle detail). */
export function rsaDecryptPremaster(identity: IdentityKey, encrypted: Buffer): Buffer {
  if (INFO[parseSuite(identity.suite)].kex !== 'rsa-oaep-sha256') throw new CryptoError('BadInput', `${identity.suite} does not use RSA key transport`);
  try {
    return privateDecrypt({ key: identity.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, encrypted);
  } catch {
    throw new CryptoError('DecryptFailed', 'the encrypted premaster secret does not decrypt under the collector key');
  }
}

export function hkdfSha256(ikm: Buffer, salt: Buffer, info: Buffer, length: number): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, length));
}

export function sha256(...parts: Buffer[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

// ---- metrology signatures (INMETRO's Ed25519 key over Merkle batch roots)

export interface BatchHeader {
  /** Batch id as stored in `batch.batch_id`; no NUL characters (NUL separates the signed fields). */
  batchId: string;
  /** Number of readings (Merkle leaves), an unsigned 32-bit integer. */
  count: number;
  /** Merkle root, 32 bytes. */
  root: Buffer;
}

const BATCH_LABEL = Buffer.from('securegrid-batch/1', 'utf8');

/** "securegrid-batch/1" ‖ 0 ‖ batchId (UTF-8) ‖ 0 ‖ u32 BE count ‖ root: the bytes a batch signature covers. */
export function batchSigningBytes(batch: BatchHeader): Buffer {
  if (typeof batch.batchId !== 'string' || batch.batchId.length === 0 || batch.batchId.includes('\0')) {
    throw new CryptoError('BadInput', 'a batch id is a non-empty string without NUL characters');
  }
  if (!Number.isInteger(batch.count) || batch.count < 0 || batch.count > 0xffffffff) {
    throw new CryptoError('BadInput', `a batch count is an unsigned 32-bit integer, got ${batch.count}`);
  }
  if (!Buffer.isBuffer(batch.root) || batch.root.length !== 32) throw new CryptoError('BadInput', 'a batch root is a 32-byte SHA-256 hash');
  const id = Buffer.from(batch.batchId, 'utf8');
  const out = Buffer.alloc(BATCH_LABEL.length + 1 + id.length + 1 + 4 + 32);
  let at = BATCH_LABEL.copy(out, 0) + 1;
  at += id.copy(out, at) + 1;
  at = out.writeUInt32BE(batch.count, at);
  batch.root.copy(out, at);
  return out;
}

/** Key id of a metrology public key: the first 16 hex digits of SHA-256(SPKI DER). */
export function metrologyKeyId(publicKeyDer: Buffer): string {
  return sha256(publicKeyDer).toString('hex').slice(0, 16);
}

/** The metrology (INMETRO) Ed25519 signing key. */
export class MetrologyKey {
  readonly #privateKey: KeyObject;
  /** SPKI DER. */
  readonly publicKey: Buffer;
  readonly keyId: string;

  constructor(privateKey: KeyObject) {
    if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') {
      throw new CryptoError('BadKey', 'a metrology key is an Ed25519 private key');
    }
    this.#privateKey = privateKey;
    this.publicKey = spkiDer(createPublicKey(privateKey));
    this.keyId = metrologyKeyId(this.publicKey);
  }

  /** PKCS#8 PEM of the private key (keep it sealed: it signs what the auditor trusts). */
  toPem(): string {
    return this.#privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  }

  signBatch(batch: BatchHeader): Buffer {
    return sign(null, batchSigningBytes(batch), this.#privateKey);
  }
}

export function generateMetrologyKey(): MetrologyKey {
  return new MetrologyKey(generateKeyPairSync('ed25519').privateKey);
}

export function metrologyKeyFromPem(pem: string): MetrologyKey {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new CryptoError('BadKey', 'the metrology key PEM does not parse; expected a PKCS#8 Ed25519 private key (MetrologyKey.toPem output)');
  }
  return new MetrologyKey(key);
}

/** True when `signature` is the metrology key's signature of the batch header; false for any malformed input. */
export function verifyBatch(publicKeyDer: Buffer, batch: BatchHeader, signature: Buffer): boolean {
  let key: KeyObject;
  let bytes: Buffer;
  try {
    key = createPublicKey({ key: publicKeyDer, format: 'der', type: 'spki' });
    bytes = batchSigningBytes(batch);
  } catch {
    return false;
  }
  if (key.asymmetricKeyType !== 'ed25519' || !Buffer.isBuffer(signature) || signature.length !== 64) return false;
  try {
    return verify(null, bytes, key, signature);
  } catch {
    return false;
  }
}
