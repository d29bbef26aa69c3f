// Handshake message codecs: compact, big-endian, every length checked. Decoding any bytes either returns a
// message or throws SecureError('malformed'). Each message starts with its type byte (which is also its version).
//
//   ClientHello = 0x01 ‖ suite (u8) ‖ serial (u32) ‖ system title (8) ‖ Nm (32) ‖ u8 len ‖ ephemeral public key
//   ServerHello = 0x02 ‖ Nc (32) ‖ u8 len ‖ ephemeral public key ‖ u16 len ‖ signature ‖ u16 len ‖ cookie
//   Finish      = 0x03 ‖ u16 len ‖ cookie ‖ u16 len ‖ RSA-OAEP premaster ‖ u16 len ‖ signature
//   Established = 0x04 ‖ session id (8) ‖ collector system title (8) ‖ key-confirmation record (the rest)
// Ephemeral keys are empty for RSA suites, the premaster is empty for EC suites.

import { suiteByWireId, suiteInfo, type SuiteName } from '../../crypto/index.js';
import type { MeterSerial } from '../types.js';
import { SecureError } from './errors.js';
import { RECORD_OVERHEAD, SYSTEM_TITLE_SIZE } from './record.js';

export const NONCE_SIZE = 32;
export const SESSION_ID_SIZE = 8;
export const MAX_SERIAL = 99_999_999;

export const enum HandshakeType {
  ClientHello = 0x01,
  ServerHello = 0x02,
  Finish = 0x03,
  Established = 0x04,
}

export interface ClientHello {
  suite: SuiteName;
  serial: MeterSerial;
  systemTitle: Buffer;
  nonce: Buffer;
  /** Raw ephemeral public key; empty for RSA suites. */
  ephemeral: Buffer;
}

export interface ServerHello {
  nonce: Buffer;
  ephemeral: Buffer;
  signature: Buffer;
  cookie: Buffer;
  /** The bytes of the message up to the ephemeral key (the part the transcript hash covers). */
  signed: Buffer;
}

export interface Finish {
  cookie: Buffer;
  /** RSA suites: the premaster under RSA-OAEP; empty for EC suites. */
  premaster: Buffer;
  signature: Buffer;
  /** The bytes of the message before the signature (the part the transcript hash covers). */
  signed: Buffer;
}

export interface Established {
  sessionId: Buffer;
  systemTitle: Buffer;
  record: Buffer;
}

/** Bounds-checked reader: every read past the end, and any trailing byte, is SecureError('malformed'). */
class Reader {
  #at = 0;
  constructor(
    readonly bytes: Buffer,
    readonly what: string,
  ) {}

  get at(): number {
    return this.#at;
  }

  #need(n: number): void {
    if (this.bytes.length - this.#at < n) throw new SecureError('malformed', `${this.what} is cut short at byte ${this.#at}`);
  }

  u8(): number {
    this.#need(1);
    return this.bytes[this.#at++];
  }

  u16(): number {
    this.#need(2);
    const v = this.bytes.readUInt16BE(this.#at);
    this.#at += 2;
    return v;
  }

  u32(): number {
    this.#need(4);
    const v = this.bytes.readUInt32BE(this.#at);
    this.#at += 4;
    return v;
  }

  take(n: number): Buffer {
    this.#need(n);
    const v = this.bytes.subarray(this.#at, this.#at + n);
    this.#at += n;
    return v;
  }

  rest(): Buffer {
    return this.take(this.bytes.length - this.#at);
  }

  end(): void {
    if (this.#at !== this.bytes.length) throw new SecureError('malformed', `${this.what} has ${this.bytes.length - this.#at} trailing bytes`);
  }
}

function reader(bytes: Buffer, type: HandshakeType, what: string): Reader {
  if (!Buffer.isBuffer(bytes)) throw new SecureError('malformed', `${what} must be bytes`);
  const r = new Reader(bytes, what);
  const t = r.u8();
  if (t !== type) throw new SecureError('malformed', `${what} starts with type 0x${t.toString(16).padStart(2, '0')}, expected 0x0${type}`);
  return r;
}

function checkLen(what: string, b: Buffer, max: number): void {
  if (b.length > max) throw new SecureError('malformed', `${what} is ${b.length} bytes, at most ${max} fit`);
}

export function encodeClientHello(m: ClientHello): Buffer {
  const info = suiteInfo(m.suite);
  if (m.systemTitle.length !== SYSTEM_TITLE_SIZE || m.nonce.length !== NONCE_SIZE || m.ephemeral.length !== info.ephemeralPublicBytes) {
    throw new SecureError('malformed', 'ClientHello fields have the wrong sizes');
  }
  const out = Buffer.allocUnsafe(1 + 1 + 4 + SYSTEM_TITLE_SIZE + NONCE_SIZE + 1 + m.ephemeral.length);
  let at = out.writeUInt8(HandshakeType.ClientHello, 0);
  at = out.writeUInt8(info.wireId, at);
  at = out.writeUInt32BE(m.serial, at);
  at += m.systemTitle.copy(out, at);
  at += m.nonce.copy(out, at);
  at = out.writeUInt8(m.ephemeral.length, at);
  m.ephemeral.copy(out, at);
  return out;
}

export function decodeClientHello(bytes: Buffer): ClientHello {
  const r = reader(bytes, HandshakeType.ClientHello, 'ClientHello');
  const id = r.u8();
  const suite = suiteByWireId(id);
  if (suite === undefined) throw new SecureError('malformed', `ClientHello names unknown suite id ${id}`);
  const serial = r.u32();
  if (serial > MAX_SERIAL) throw new SecureError('malformed', `ClientHello serial ${serial} has more than 8 digits`);
  const systemTitle = r.take(SYSTEM_TITLE_SIZE);
  const nonce = r.take(NONCE_SIZE);
  const ephemeral = r.take(r.u8());
  r.end();
  const want = suiteInfo(suite).ephemeralPublicBytes;
  if (ephemeral.length !== want) throw new SecureError('malformed', `a ${suite} ClientHello carries a ${want}-byte ephemeral key, got ${ephemeral.length}`);
  return { suite, serial, systemTitle, nonce, ephemeral };
}

/** The ServerHello bytes covered by the transcript (type ‖ Nc ‖ ephemeral); sign these, then encodeServerHello. */
export function serverHelloSigned(nonce: Buffer, ephemeral: Buffer): Buffer {
  if (nonce.length !== NONCE_SIZE) throw new SecureError('malformed', 'ServerHello nonce is 32 bytes');
  checkLen('ServerHello ephemeral key', ephemeral, 0xff);
  const out = Buffer.allocUnsafe(1 + NONCE_SIZE + 1 + ephemeral.length);
  out[0] = HandshakeType.ServerHello;
  nonce.copy(out, 1);
  out[1 + NONCE_SIZE] = ephemeral.length;
  ephemeral.copy(out, 2 + NONCE_SIZE);
  return out;
}

export function encodeServerHello(signed: Buffer, signature: Buffer, cookie: Buffer): Buffer {
  checkLen('ServerHello signature', signature, 0xffff);
  checkLen('ServerHello cookie', cookie, 0xffff);
  const out = Buffer.allocUnsafe(signed.length + 2 + signature.length + 2 + cookie.length);
  let at = signed.copy(out, 0);
  at = out.writeUInt16BE(signature.length, at);
  at += signature.copy(out, at);
  at = out.writeUInt16BE(cookie.length, at);
  cookie.copy(out, at);
  return out;
}

export function decodeServerHello(bytes: Buffer): ServerHello {
  const r = reader(bytes, HandshakeType.ServerHello, 'ServerHello');
  const nonce = r.take(NONCE_SIZE);
  const ephemeral = r.take(r.u8());
  const signed = bytes.subarray(0, r.at);
  const signature = r.take(r.u16());
  const cookie = r.take(r.u16());
  r.end();
  return { nonce, ephemeral, signature, cookie, signed };
}

/** The Finish bytes covered by the transcript (type ‖ cookie ‖ premaster); sign these, then encodeFinish. */
export function finishSigned(cookie: Buffer, premaster: Buffer): Buffer {
  checkLen('Finish cookie', cookie, 0xffff);
  checkLen('Finish premaster', premaster, 0xffff);
  const out = Buffer.allocUnsafe(1 + 2 + cookie.length + 2 + premaster.length);
  let at = out.writeUInt8(HandshakeType.Finish, 0);
  at = out.writeUInt16BE(cookie.length, at);
  at += cookie.copy(out, at);
  at = out.writeUInt16BE(premaster.length, at);
  premaster.copy(out, at);
  return out;
}

export function encodeFinish(signed: Buffer, signature: Buffer): Buffer {
  checkLen('Finish signature', signature, 0xffff);
  const out = Buffer.allocUnsafe(signed.length + 2 + signature.length);
  let at = signed.copy(out, 0);
  at = out.writeUInt16BE(signature.length, at);
  signature.copy(out, at);
  return out;
}

export function decodeFinish(bytes: Buffer): Finish {
  const r = reader(bytes, HandshakeType.Finish, 'Finish');
  const cookie = r.take(r.u16());
  const premaster = r.take(r.u16());
  const signed = bytes.subarray(0, r.at);
  const signature = r.take(r.u16());
  r.end();
  return { cookie, premaster, signature, signed };
}

export function encodeEstablished(m: Established): Buffer {
  if (m.sessionId.length !== SESSION_ID_SIZE || m.systemTitle.length !== SYSTEM_TITLE_SIZE) {
    throw new SecureError('malformed', 'Established fields have the wrong sizes');
  }
  return Buffer.concat([Buffer.from([HandshakeType.Established]), m.sessionId, m.systemTitle, m.record]);
}

export function decodeEstablished(bytes: Buffer): Established {
  const r = reader(bytes, HandshakeType.Established, 'Established');
  const sessionId = r.take(SESSION_ID_SIZE);
  const systemTitle = r.take(SYSTEM_TITLE_SIZE);
  const record = r.rest();
  if (record.length < RECORD_OVERHEAD) throw new SecureError('malformed', 'Established carries no key-confirmation record');
  return { sessionId, systemTitle, record };
}
