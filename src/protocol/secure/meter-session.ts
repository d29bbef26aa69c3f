// The meter's side of the secure session: the handshake state machine, uplink sealing with counters from a
// CounterStore, and downlink opening with one replay window per sender system title.

import { randomBytes, type KeyObject } from 'node:crypto';
import {
  ephemeralSecret,
  generateEphemeral,
  publicKeyFromDer,
  rsaEncryptPremaster,
  signWith,
  suiteInfo,
  verifyWith,
  type EphemeralKey,
  type IdentityKey,
  type SuiteName,
} from '../../crypto/index.js';
import type { MeterSerial } from '../types.js';
import type { CounterStore } from './counter-store.js';
import { SecureError } from './errors.js';
import { decodeEstablished, decodeServerHello, encodeClientHello, encodeFinish, finishSigned, NONCE_SIZE } from './messages.js';
import { openRecord, peekCounter, sealRecord, SYSTEM_TITLE_SIZE } from './record.js';
import { ReplayWindow } from './replay-window.js';
import { DEFAULT_REKEY_AFTER, deriveSessionKeys, meterSystemTitle, type SessionKeys } from './session.js';
import { CONFIRMATION, meterSigningBytes, serverSigningBytes, transcriptAfterFinish, transcriptAfterServerHello } from './transcript.js';

export interface MeterSessionOptions {
  suite: SuiteName;
  serial: MeterSerial;
  identity: IdentityKey;
  /** The collector's identity public key of this suite (SPKI DER), embedded in the meter. */
  collectorPublicKey: Buffer;
  counters: CounterStore;
  /** Uplink records per session before needsRekey turns true (default 2^20). */
  rekeyAfter?: number;
}

type Pending =
  | { stage: 'hello-sent'; clientHello: Buffer; nonce: Buffer; ephemeral: EphemeralKey | undefined }
  | { stage: 'finish-sent'; keys: SessionKeys };

interface Live {
  keys: SessionKeys;
  /** Downlink floors per sender system title (hex); a new session starts them afresh, as its keys are new. */
  windows: Map<string, ReplayWindow>;
  records: number;
}

export class MeterSession {
  readonly suite: SuiteName;
  readonly serial: MeterSerial;
  readonly systemTitle: Buffer;
  readonly #identity: IdentityKey;
  readonly #collectorKey: KeyObject;
  readonly #counters: CounterStore;
  readonly #rekeyAfter: number;
  #pending: Pending | undefined;
  #live: Live | undefined;

  constructor(opts: MeterSessionOptions) {
    this.suite = suiteInfo(opts.suite).name;
    if (opts.identity.suite !== this.suite) throw new SecureError('handshake', `meter ${opts.serial}: identity is ${opts.identity.suite}, suite is ${this.suite}`);
    this.serial = opts.serial;
    this.systemTitle = meterSystemTitle(opts.serial);
    this.#identity = opts.identity;
    this.#collectorKey = publicKeyFromDer(this.suite, opts.collectorPublicKey);
    this.#counters = opts.counters;
    const rekeyAfter = opts.rekeyAfter ?? DEFAULT_REKEY_AFTER;
    if (!Number.isInteger(rekeyAfter) || rekeyAfter < 1) throw new SecureError('handshake', `rekeyAfter must be a positive integer, got ${rekeyAfter}`);
    this.#rekeyAfter = rekeyAfter;
  }

  get established(): boolean {
    return this.#live !== undefined;
  }

  /** The current session's id (8 bytes), undefined before the first handshake completes. */
  get sessionId(): Buffer | undefined {
    return this.#live?.keys.sessionId;
  }

  /** True once the session has sealed rekeyAfter records: start a new handshake (clientHello). */
  get needsRekey(): boolean {
    return this.#live === undefined || this.#live.records >= this.#rekeyAfter;
  }

  /** Starts a handshake (again). The current session, if any, keeps working until the new one is established. */
  clientHello(): Buffer {
    const nonce = randomBytes(NONCE_SIZE);
    const ephemeral = suiteInfo(this.suite).ephemeralPublicBytes > 0 ? generateEphemeral(this.suite) : undefined;
    const clientHello = encodeClientHello({
      suite: this.suite,
      serial: this.serial,
      systemTitle: this.systemTitle,
      nonce,
      ephemeral: ephemeral?.publicKey ?? Buffer.alloc(0),
    });
    this.#pending = { stage: 'hello-sent', clientHello, nonce, ephemeral };
    return clientHello;
  }

  /** Verifies the collector's ServerHello and returns the Finish body. SecureError 'malformed' or 'handshake'. */
  onServerHello(body: Buffer): Buffer {
    const pending = this.#pending;
    if (pending?.stage !== 'hello-sent') throw new SecureError('handshake', `meter ${this.serial}: a ServerHello arrived with no ClientHello outstanding`);
    const sh = decodeServerHello(body);
    const info = suiteInfo(this.suite);
    if (sh.ephemeral.length !== info.ephemeralPublicBytes) {
      throw new SecureError('malformed', `a ${this.suite} ServerHello carries a ${info.ephemeralPublicBytes}-byte ephemeral key, got ${sh.ephemeral.length}`);
    }
    const th2 = transcriptAfterServerHello(pending.clientHello, sh.signed);
    if (!verifyWith(this.suite, this.#collectorKey, serverSigningBytes(th2), sh.signature)) {
      throw new SecureError('handshake', `meter ${this.serial}: the ServerHello is not signed by the collector key this meter trusts`);
    }
    let ikm: Buffer;
    let premaster: Buffer = Buffer.alloc(0);
    if (pending.ephemeral !== undefined) {
      try {
        ikm = ephemeralSecret(this.suite, pending.ephemeral.privateKey, sh.ephemeral);
      } catch {
        throw new SecureError('handshake', `meter ${this.serial}: the collector's ephemeral key is invalid`);
      }
    } else {
      ikm = randomBytes(32);
      premaster = rsaEncryptPremaster(this.suite, this.#collectorKey, ikm);
    }
    const signed = finishSigned(sh.cookie, premaster);
    const th3 = transcriptAfterFinish(th2, signed);
    const finish = encodeFinish(signed, signWith(this.#identity, meterSigningBytes(th3)));
    const keys = deriveSessionKeys(this.suite, ikm, pending.nonce, sh.nonce, th3);
    ikm.fill(0);
    this.#pending = { stage: 'finish-sent', keys };
    return finish;
  }

  /** Checks the collector's key confirmation and switches to the new session. SecureError 'malformed' or 'handshake'. */
  onEstablished(body: Buffer): void {
    const pending = this.#pending;
    if (pending?.stage !== 'finish-sent') throw new SecureError('handshake', `meter ${this.serial}: an Established arrived with no Finish outstanding`);
    const m = decodeEstablished(body);
    if (!m.sessionId.equals(pending.keys.sessionId)) throw new SecureError('handshake', `meter ${this.serial}: Established names another session`);
    let opened: { ic: number; plaintext: Buffer };
    try {
      opened = openRecord(pending.keys.downlink, m.systemTitle, m.record);
    } catch {
      throw new SecureError('handshake', `meter ${this.serial}: the key confirmation does not authenticate (the collector derived other keys)`);
    }
    if (!opened.plaintext.equals(CONFIRMATION)) throw new SecureError('handshake', `meter ${this.serial}: the key confirmation carries the wrong text`);
    const window = new ReplayWindow();
    if (!window.check(opened.ic)) throw new SecureError('handshake', `meter ${this.serial}: the key confirmation uses counter 0`);
    window.accept(opened.ic);
    this.#live = { keys: pending.keys, windows: new Map([[m.systemTitle.toString('hex'), window]]), records: 0 };
    this.#pending = undefined;
  }

  /** Forgets the session (after a no-session answer); the next clientHello starts afresh. */
  drop(): void {
    this.#live = undefined;
  }

  /** Seals one uplink frame with the next counter. SecureError('no-session') before the handshake completes. */
  seal(frame: Buffer): Buffer {
    const live = this.#live;
    if (live === undefined) throw new SecureError('no-session', `meter ${this.serial} has no established session; run the handshake first`);
    const ic = this.#counters.next(this.serial);
    const record = sealRecord(live.keys.uplink, this.systemTitle, ic, frame);
    live.records++;
    return record;
  }

  /** Opens a downlink record from the collector instance `senderSystemTitle`: 'malformed', 'replay' or 'auth'. */
  openDownlink(senderSystemTitle: Buffer, record: Buffer): Buffer {
    const live = this.#live;
    if (live === undefined) throw new SecureError('no-session', `meter ${this.serial} has no established session`);
    if (!Buffer.isBuffer(senderSystemTitle) || senderSystemTitle.length !== SYSTEM_TITLE_SIZE) throw new SecureError('malformed', 'a sender system title is 8 bytes');
    const title = senderSystemTitle.toString('hex');
    const window = live.windows.get(title) ?? new ReplayWindow();
    const ic = peekCounter(record);
    if (!window.check(ic)) throw new SecureError('replay', `downlink counter ${ic} is at or below the floor ${window.floor} or was already seen`);
    const { plaintext } = openRecord(live.keys.downlink, senderSystemTitle, record);
    window.accept(ic);
    live.windows.set(title, window);
    return plaintext;
  }
}
