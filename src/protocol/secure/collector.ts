// The collector's side of the handshake. Stateless between ServerHello and Finish: the cookie carries, sealed
// under the collectors' shared cookie key, everything Finish needs, so any ingest instance can take message 3.
//
// Cookie = AES-256-GCM (crypto seal: iv ‖ ciphertext ‖ tag, AAD "securegrid-cookie/1") of
//   format (1) ‖ suite (1) ‖ serial (u32) ‖ issued at (u48 ms) ‖ Nm (32) ‖ Nc (32) ‖ th2 (32) ‖
//   u8 len ‖ the meter's ephemeral public key ‖ u16 len ‖ the collector's ephemeral key pair (exportEphemeralPrivate)

import { randomBytes } from 'node:crypto';
import {
  ephemeralSecret,
  exportEphemeralPrivate,
  generateEphemeral,
  importEphemeralPrivate,
  parseEphemeralPublic,
  rsaDecryptPremaster,
  seal,
  signWith,
  suiteByWireId,
  suiteInfo,
  unseal,
  verifyWith,
  type IdentityKey,
  type SuiteName,
} from '../../crypto/index.js';
import type { MeterSerial } from '../types.js';
import { SecureError } from './errors.js';
import { decodeClientHello, decodeFinish, encodeEstablished, encodeServerHello, NONCE_SIZE, serverHelloSigned } from './messages.js';
import { MAX_COUNTER, sealRecord, SYSTEM_TITLE_SIZE } from './record.js';
import { ReplayWindow } from './replay-window.js';
import { deriveSessionKeys, meterSystemTitle, sealDownlink, type SessionState } from './session.js';
import { CONFIRMATION, meterSigningBytes, serverSigningBytes, transcriptAfterFinish, transcriptAfterServerHello } from './transcript.js';

/** How long a ServerHello's cookie is good for (docs/meter-pipeline.md: age ≤ 60 s). */
export const COOKIE_TTL_MS = 60_000;
const COOKIE_AAD = Buffer.from('securegrid-cookie/1', 'ascii');
const COOKIE_FORMAT = 1;
const COOKIE_FIXED = 1 + 1 + 4 + 6 + 3 * 32;

/** A meter as the directory knows it. */
export interface MeterRecord {
  suite: SuiteName;
  /** SPKI DER (`meter.public_key`). */
  publicKey: Buffer;
}

export type MeterLookup = (serial: MeterSerial) => MeterRecord | undefined;

export interface CollectorOptions {
  identities: Partial<Record<SuiteName, IdentityKey>>;
  /** 32 bytes shared by every ingest instance (a service key). */
  cookieKey: Buffer;
  /** This process's system title (newCollectorSystemTitle()), used as the IV prefix of every downlink it sends. */
  systemTitle: Buffer;
  now?: () => number;
}

interface Cookie {
  suite: SuiteName;
  serial: MeterSerial;
  issuedAt: number;
  nm: Buffer;
  nc: Buffer;
  th2: Buffer;
  /** The meter's raw ephemeral public key from its ClientHello (empty for RSA suites). */
  clientEphemeral: Buffer;
  /** The collector's ephemeral key pair, exportEphemeralPrivate bytes (empty for RSA suites). */
  ephemeral: Buffer;
}

export class Collector {
  readonly systemTitle: Buffer;
  readonly #identities: Partial<Record<SuiteName, IdentityKey>>;
  readonly #cookieKey: Buffer;
  readonly #now: () => number;
  // Process-wide downlink counter: with a per-process title, (title, ic) never repeats under any key.
  #downlinkIc = 0;

  constructor(opts: CollectorOptions) {
    if (!Buffer.isBuffer(opts.cookieKey) || opts.cookieKey.length !== 32) throw new SecureError('handshake', 'the collector cookie key is 32 bytes');
    if (!Buffer.isBuffer(opts.systemTitle) || opts.systemTitle.length !== SYSTEM_TITLE_SIZE) throw new SecureError('handshake', 'a collector system title is 8 bytes');
    for (const [suite, id] of Object.entries(opts.identities)) {
      if (id !== undefined && id.suite !== suite) throw new SecureError('handshake', `the collector identity given for ${suite} is a ${id.suite} key`);
    }
    this.systemTitle = Buffer.from(opts.systemTitle);
    this.#identities = { ...opts.identities };
    this.#cookieKey = Buffer.from(opts.cookieKey);
    const clock = opts.now ?? Date.now;
    this.#now = () => Math.max(0, Math.floor(clock())); // the cookie and session store whole milliseconds
  }

  #identity(suite: SuiteName): IdentityKey {
    const id = this.#identities[suite];
    if (id === undefined) throw new SecureError('handshake', `this collector has no ${suite} identity key; add one to the ingest key file`);
    return id;
  }

  /**
   * Answers a ClientHello. SecureError 'malformed' (does not decode), 'unknown-meter' (lookup has no such
   * serial), or 'handshake' (suite or system title disagree with the directory, or no collector key for it).
   */
  serverHello(clientHelloBody: Buffer, meterLookup: MeterLookup | MeterRecord): Buffer {
    const ch = decodeClientHello(clientHelloBody);
    const meter = typeof meterLookup === 'function' ? meterLookup(ch.serial) : meterLookup;
    if (meter === undefined) throw new SecureError('unknown-meter', `meter ${ch.serial} is not in the meter directory`);
    if (meter.suite !== ch.suite) throw new SecureError('handshake', `meter ${ch.serial} is registered for ${meter.suite}, its ClientHello asks for ${ch.suite}`);
    if (!ch.systemTitle.equals(meterSystemTitle(ch.serial))) throw new SecureError('handshake', `meter ${ch.serial}: the system title does not match the serial`);
    const identity = this.#identity(ch.suite);
    if (ch.ephemeral.length > 0) {
      try {
        parseEphemeralPublic(ch.suite, ch.ephemeral); // refuse before signing anything for it
      } catch {
        throw new SecureError('handshake', `meter ${ch.serial}: its ephemeral public key is not a point on the ${ch.suite} curve`);
      }
    }
    const nc = randomBytes(NONCE_SIZE);
    const ephemeral = suiteInfo(ch.suite).ephemeralPublicBytes > 0 ? generateEphemeral(ch.suite) : undefined;
    const signed = serverHelloSigned(nc, ephemeral?.publicKey ?? Buffer.alloc(0));
    const th2 = transcriptAfterServerHello(clientHelloBody, signed);
    const signature = signWith(identity, serverSigningBytes(th2));
    const cookie = this.#sealCookie({
      suite: ch.suite,
      serial: ch.serial,
      issuedAt: this.#now(),
      nm: ch.nonce,
      nc,
      th2,
      clientEphemeral: ch.ephemeral,
      ephemeral: ephemeral === undefined ? Buffer.alloc(0) : exportEphemeralPrivate(ephemeral),
    });
    return encodeServerHello(signed, signature, cookie);
  }

  /**
   * Completes a handshake. `meterPublicKey` is the meter's registered key, or a lookup by the serial the cookie
   * names. SecureError 'malformed', 'unknown-meter', or 'handshake' (cookie tampered or expired, signature wrong).
   * The session id is deterministic for a given Finish: store sessions insert-if-absent, so a replayed Finish
   * cannot reset a live session's replay window.
   */
  finish(finishBody: Buffer, meterPublicKey: Buffer | MeterLookup): { session: SessionState; established: Buffer } {
    const fin = decodeFinish(finishBody);
    const cookie = this.#openCookie(fin.cookie);
    const info = suiteInfo(cookie.suite);
    const now = this.#now();
    if (now - cookie.issuedAt > COOKIE_TTL_MS || cookie.issuedAt - now > COOKIE_TTL_MS) {
      throw new SecureError('handshake', `meter ${cookie.serial}: the handshake cookie has expired (older than ${COOKIE_TTL_MS / 1000} s); start again`);
    }
    let meterKey: Buffer;
    if (typeof meterPublicKey === 'function') {
      const meter = meterPublicKey(cookie.serial);
      if (meter === undefined) throw new SecureError('unknown-meter', `meter ${cookie.serial} is not in the meter directory`);
      if (meter.suite !== cookie.suite) throw new SecureError('handshake', `meter ${cookie.serial} is registered for ${meter.suite}, not ${cookie.suite}`);
      meterKey = meter.publicKey;
    } else {
      meterKey = meterPublicKey;
    }
    const th3 = transcriptAfterFinish(cookie.th2, fin.signed);
    let verified: boolean;
    try {
      verified = verifyWith(cookie.suite, meterKey, meterSigningBytes(th3), fin.signature);
    } catch {
      throw new SecureError('handshake', `meter ${cookie.serial}: its registered public key is not a ${cookie.suite} key; fix the meter directory`);
    }
    if (!verified) throw new SecureError('handshake', `meter ${cookie.serial}: the Finish is not signed by the meter's registered key`);
    let ikm: Buffer;
    if (info.ephemeralPublicBytes > 0) {
      if (fin.premaster.length !== 0) throw new SecureError('malformed', `a ${cookie.suite} Finish carries no premaster`);
      ikm = agree(cookie);
    } else {
      try {
        ikm = rsaDecryptPremaster(this.#identity(cookie.suite), fin.premaster);
      } catch (e) {
        if (e instanceof SecureError) throw e;
        throw new SecureError('handshake', `meter ${cookie.serial}: the premaster secret does not decrypt under the collector key`);
      }
      if (ikm.length !== 32) throw new SecureError('handshake', `meter ${cookie.serial}: the premaster secret is not 32 bytes`);
    }
    const keys = deriveSessionKeys(cookie.suite, ikm, cookie.nm, cookie.nc, th3);
    ikm.fill(0);
    const session: SessionState = {
      sessionId: keys.sessionId,
      serial: cookie.serial,
      suite: cookie.suite,
      uplink: keys.uplink,
      downlink: keys.downlink,
      meterSystemTitle: meterSystemTitle(cookie.serial),
      createdAt: now,
      window: new ReplayWindow(),
      records: 0,
    };
    const confirmation = sealRecord(keys.downlink, this.systemTitle, this.#nextDownlinkIc(), CONFIRMATION);
    return { session, established: encodeEstablished({ sessionId: keys.sessionId, systemTitle: this.systemTitle, record: confirmation }) };
  }

  /** Seals a downlink frame for the session with this process's title and next counter. */
  sealDownlink(state: SessionState, frame: Buffer): Buffer {
    return sealDownlink(state, this.systemTitle, this.#nextDownlinkIc(), frame);
  }

  #nextDownlinkIc(): number {
    if (this.#downlinkIc >= MAX_COUNTER - 1) {
      throw new SecureError('handshake', 'this ingest process has used every downlink counter under its system title; restart it (a new title is drawn)');
    }
    return ++this.#downlinkIc;
  }

  #sealCookie(c: Cookie): Buffer {
    const out = Buffer.allocUnsafe(COOKIE_FIXED + 1 + c.clientEphemeral.length + 2 + c.ephemeral.length);
    let at = out.writeUInt8(COOKIE_FORMAT, 0);
    at = out.writeUInt8(suiteInfo(c.suite).wireId, at);
    at = out.writeUInt32BE(c.serial, at);
    at = out.writeUIntBE(c.issuedAt, at, 6);
    for (const b of [c.nm, c.nc, c.th2]) at += b.copy(out, at);
    at = out.writeUInt8(c.clientEphemeral.length, at);
    at += c.clientEphemeral.copy(out, at);
    at = out.writeUInt16BE(c.ephemeral.length, at);
    c.ephemeral.copy(out, at);
    const sealed = seal(this.#cookieKey, out, COOKIE_AAD);
    out.fill(0);
    return sealed;
  }

  #openCookie(bytes: Buffer): Cookie {
    let plain: Buffer;
    try {
      plain = unseal(this.#cookieKey, bytes, COOKIE_AAD);
    } catch {
      throw new SecureError('handshake', 'the handshake cookie does not authenticate (tampered, or sealed under another cookie key)');
    }
    // Authenticated, so only our own encoder wrote it; still read it with bounds checks.
    const bad = (): SecureError => new SecureError('handshake', 'the handshake cookie has an unknown layout (another software version?)');
    if (plain.length < COOKIE_FIXED + 3 || plain[0] !== COOKIE_FORMAT) throw bad();
    const suite = suiteByWireId(plain[1]);
    if (suite === undefined) throw bad();
    let at = 2;
    const serial = plain.readUInt32BE(at);
    at += 4;
    const issuedAt = plain.readUIntBE(at, 6);
    at += 6;
    const take = (n: number): Buffer => {
      if (plain.length - at < n) throw bad();
      return plain.subarray(at, (at += n));
    };
    const nm = take(32);
    const nc = take(32);
    const th2 = take(32);
    const clientEphemeral = take(take(1)[0]);
    const ephemeral = take(take(2).readUInt16BE(0));
    if (at !== plain.length) throw bad();
    return { suite, serial, issuedAt, nm, nc, th2, clientEphemeral, ephemeral };
  }
}

function agree(cookie: Cookie): Buffer {
  try {
    return ephemeralSecret(cookie.suite, importEphemeralPrivate(cookie.suite, cookie.ephemeral), cookie.clientEphemeral);
  } catch {
    throw new SecureError('handshake', `meter ${cookie.serial}: its ephemeral public key is invalid (not on the curve, or of low order)`);
  }
}
