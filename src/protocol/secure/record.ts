// DLMS/COSEM general-glo-ciphering records (security control 0x30: authenticated and encrypted):
//   record = SC ‖ IC (u32 BE) ‖ ciphertext ‖ tag (12);  IV = sender system title (8) ‖ IC;  AAD = SC ‖ AK.
// AES-128-GCM or AES-256-GCM by EK length. Hot path (50,000+ records/s): one cipher object per call, no concat.

import { createCipheriv, createDecipheriv, type CipherGCMTypes } from 'node:crypto';
import { CryptoError } from '../../crypto/index.js';
import { SecureError } from './errors.js';

/** Security control byte: authenticated and encrypted. */
export const SC_AUTH_ENC = 0x30;
export const SYSTEM_TITLE_SIZE = 8;
export const RECORD_TAG_SIZE = 12;
/** SC ‖ IC. */
export const RECORD_HEADER_SIZE = 5;
export const RECORD_OVERHEAD = RECORD_HEADER_SIZE + RECORD_TAG_SIZE;
export const MAX_COUNTER = 0xffffffff;

/** One direction's record keys: EK (16 or 32 bytes) and AK (16 bytes in every suite). */
export interface RecordKeys {
  ek: Buffer;
  ak: Buffer;
}

function algorithm(ek: Buffer): CipherGCMTypes {
  if (ek.length === 16) return 'aes-128-gcm';
  if (ek.length === 32) return 'aes-256-gcm';
  throw new CryptoError('BadKey', `a record EK is 16 or 32 bytes, got ${ek.length}`);
}

function aad(ak: Buffer): Buffer {
  const out = Buffer.allocUnsafe(1 + ak.length);
  out[0] = SC_AUTH_ENC;
  ak.copy(out, 1);
  return out;
}

function iv(systemTitle: Buffer, ic: number): Buffer {
  if (systemTitle.length !== SYSTEM_TITLE_SIZE) throw new CryptoError('BadInput', `a system title is 8 bytes, got ${systemTitle.length}`);
  const out = Buffer.allocUnsafe(12);
  systemTitle.copy(out, 0);
  out.writeUInt32BE(ic, 8);
  return out;
}

/** Encrypts one record under the sender's system title and invocation counter (never reuse a counter). */
export function sealRecord(keys: RecordKeys, systemTitle: Buffer, ic: number, plaintext: Buffer): Buffer {
  if (!Number.isInteger(ic) || ic < 0 || ic > MAX_COUNTER) throw new CryptoError('BadInput', `an invocation counter is a u32, got ${ic}`);
  const cipher = createCipheriv(algorithm(keys.ek), keys.ek, iv(systemTitle, ic), { authTagLength: RECORD_TAG_SIZE });
  cipher.setAAD(aad(keys.ak));
  const body = cipher.update(plaintext);
  cipher.final(); // GCM emits nothing here
  const out = Buffer.allocUnsafe(RECORD_OVERHEAD + body.length);
  out[0] = SC_AUTH_ENC;
  out.writeUInt32BE(ic, 1);
  body.copy(out, RECORD_HEADER_SIZE);
  cipher.getAuthTag().copy(out, RECORD_HEADER_SIZE + body.length);
  return out;
}

/** The invocation counter of a record, without decrypting; SecureError('malformed') if it is not a record. */
export function peekCounter(record: Buffer): number {
  if (!Buffer.isBuffer(record) || record.length < RECORD_OVERHEAD) {
    throw new SecureError('malformed', `a record is at least ${RECORD_OVERHEAD} bytes (SC ‖ IC ‖ tag)`);
  }
  if (record[0] !== SC_AUTH_ENC) {
    throw new SecureError('malformed', `security control 0x${record[0].toString(16).padStart(2, '0')} is not supported (only 0x30)`);
  }
  return record.readUInt32BE(1);
}

/** Decrypts and authenticates a record; SecureError('malformed') for a non-record, SecureError('auth') for a forgery. */
export function openRecord(keys: RecordKeys, systemTitle: Buffer, record: Buffer): { ic: number; plaintext: Buffer } {
  const ic = peekCounter(record);
  const decipher = createDecipheriv(algorithm(keys.ek), keys.ek, iv(systemTitle, ic), { authTagLength: RECORD_TAG_SIZE });
  decipher.setAAD(aad(keys.ak));
  decipher.setAuthTag(record.subarray(record.length - RECORD_TAG_SIZE));
  const plaintext = decipher.update(record.subarray(RECORD_HEADER_SIZE, record.length - RECORD_TAG_SIZE));
  try {
    decipher.final();
  } catch {
    plaintext.fill(0);
    throw new SecureError('auth', 'the record does not authenticate: altered, forged, or sent under another session or sender');
  }
  return { ic, plaintext };
}
