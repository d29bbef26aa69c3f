// Session state on the collector side, the key schedule both sides share, and system titles.

import { randomBytes } from 'node:crypto';
import { hkdfSha256, suiteByWireId, suiteInfo, type SuiteName } from '../../crypto/index.js';
import type { MeterSerial } from '../types.js';
import { SecureError } from './errors.js';
import { MAX_SERIAL, SESSION_ID_SIZE } from './messages.js';
import { openRecord, peekCounter, sealRecord, SYSTEM_TITLE_SIZE, type RecordKeys } from './record.js';
import { REPLAY_WINDOW_BYTES, ReplayWindow } from './replay-window.js';

/** Records per session before the meter re-keys (docs/meter-pipeline.md, "Session keys"). */
export const DEFAULT_REKEY_AFTER = 2 ** 20;

const METER_TITLE_PREFIX = Buffer.from('SGM', 'ascii');
const COLLECTOR_TITLE_PREFIX = Buffer.from('SGC', 'ascii');

/** A meter's system title: ASCII "SGM" ‖ serial as a 5-byte big-endian integer. */
export function meterSystemTitle(serial: MeterSerial): Buffer {
  if (!Number.isInteger(serial) || serial < 0 || serial > MAX_SERIAL) throw new SecureError('malformed', `a meter serial is 0..${MAX_SERIAL}, got ${serial}`);
  const out = Buffer.allocUnsafe(SYSTEM_TITLE_SIZE);
  METER_TITLE_PREFIX.copy(out, 0);
  out.writeUIntBE(serial, 3, 5);
  return out;
}

/** A fresh ingest-process system title: ASCII "SGC" ‖ 5 random bytes. Draw one per process start. */
export function newCollectorSystemTitle(): Buffer {
  return Buffer.concat([COLLECTOR_TITLE_PREFIX, randomBytes(5)]);
}

/** What the collector keeps per session (encodeSession → seal → meter_session.sealed). */
export interface SessionState {
  sessionId: Buffer;
  serial: MeterSerial;
  suite: SuiteName;
  uplink: RecordKeys;
  downlink: RecordKeys;
  meterSystemTitle: Buffer;
  /** Epoch ms when the collector derived the session. */
  createdAt: number;
  /** Uplink floor and window; persisted with the session. */
  window: ReplayWindow;
  /** Uplink records accepted so far. */
  records: number;
}

export interface SessionKeys {
  sessionId: Buffer;
  uplink: RecordKeys;
  downlink: RecordKeys;
}

const KDF_INFO = Buffer.from('securegrid/1', 'ascii');
const AK_SIZE = 16;

/** HKDF-SHA256(ikm, salt = Nm ‖ Nc, info = "securegrid/1" ‖ transcript hash) → up EK, up AK, down EK, down AK, id. */
export function deriveSessionKeys(suite: SuiteName, ikm: Buffer, nm: Buffer, nc: Buffer, transcriptHash: Buffer): SessionKeys {
  const ek = suiteInfo(suite).ekBytes;
  const okm = hkdfSha256(ikm, Buffer.concat([nm, nc]), Buffer.concat([KDF_INFO, transcriptHash]), 2 * ek + 2 * AK_SIZE + SESSION_ID_SIZE);
  let at = 0;
  const take = (n: number): Buffer => okm.subarray(at, (at += n));
  return {
    uplink: { ek: take(ek), ak: take(AK_SIZE) },
    downlink: { ek: take(ek), ak: take(AK_SIZE) },
    sessionId: take(SESSION_ID_SIZE),
  };
}

/**
 * Opens an uplink record of this session: window check, decrypt, then accept. Throws SecureError
 * 'malformed' (not a record), 'replay' (counter at or below the floor, or seen), or 'auth' (forged or altered).
 * Mutates state.window and state.records; persist the session after.
 */
export function openUplink(state: SessionState, record: Buffer): { ic: number; plaintext: Buffer } {
  const ic = peekCounter(record);
  if (!state.window.check(ic)) {
    throw new SecureError('replay', `invocation counter ${ic} is at or below the floor ${state.window.floor} or was already seen in this session`);
  }
  const opened = openRecord(state.uplink, state.meterSystemTitle, record);
  state.window.accept(ic);
  state.records++;
  return opened;
}

/**
 * Seals a downlink record. (collectorSystemTitle, ic) must never repeat under the session's downlink key:
 * use a fresh process title and a process-wide counter (Collector.sealDownlink does both).
 */
export function sealDownlink(state: SessionState, collectorSystemTitle: Buffer, ic: number, frame: Buffer): Buffer {
  return sealRecord(state.downlink, collectorSystemTitle, ic, frame);
}

const SESSION_FORMAT = 1;
// format ‖ suite ‖ session id ‖ serial u32 ‖ meter title ‖ createdAt u48 ‖ records u32 ‖ up EK ‖ up AK ‖ down EK ‖ down AK ‖ window
const FIXED = 1 + 1 + SESSION_ID_SIZE + 4 + SYSTEM_TITLE_SIZE + 6 + 4;

/** Plain bytes of a session, keys included: seal them (crypto seal) before they leave the process. */
export function encodeSession(s: SessionState): Buffer {
  const info = suiteInfo(s.suite);
  const out = Buffer.allocUnsafe(FIXED + 2 * (info.ekBytes + AK_SIZE) + REPLAY_WINDOW_BYTES);
  let at = out.writeUInt8(SESSION_FORMAT, 0);
  at = out.writeUInt8(info.wireId, at);
  at += s.sessionId.copy(out, at);
  at = out.writeUInt32BE(s.serial, at);
  at += s.meterSystemTitle.copy(out, at);
  at = out.writeUIntBE(s.createdAt, at, 6);
  at = out.writeUInt32BE(Math.min(s.records, 0xffffffff), at);
  for (const k of [s.uplink.ek, s.uplink.ak, s.downlink.ek, s.downlink.ak]) at += k.copy(out, at);
  s.window.serialize().copy(out, at);
  return out;
}

/** Inverse of encodeSession; SecureError('malformed') for anything encodeSession cannot have produced. */
export function decodeSession(bytes: Buffer): SessionState {
  if (!Buffer.isBuffer(bytes) || bytes.length < FIXED || bytes[0] !== SESSION_FORMAT) {
    throw new SecureError('malformed', `not an encoded session (format ${SESSION_FORMAT})`);
  }
  const suite = suiteByWireId(bytes[1]);
  if (suite === undefined) throw new SecureError('malformed', `encoded session names unknown suite id ${bytes[1]}`);
  const ek = suiteInfo(suite).ekBytes;
  if (bytes.length !== FIXED + 2 * (ek + AK_SIZE) + REPLAY_WINDOW_BYTES) throw new SecureError('malformed', `an encoded ${suite} session has the wrong length`);
  let at = 2;
  const take = (n: number): Buffer => Buffer.from(bytes.subarray(at, (at += n)));
  const sessionId = take(SESSION_ID_SIZE);
  const serial = bytes.readUInt32BE(at);
  at += 4;
  if (serial > MAX_SERIAL) throw new SecureError('malformed', `encoded session serial ${serial} has more than 8 digits`);
  const title = take(SYSTEM_TITLE_SIZE);
  if (!title.equals(meterSystemTitle(serial))) throw new SecureError('malformed', 'encoded session system title does not match its serial');
  const createdAt = bytes.readUIntBE(at, 6);
  at += 6;
  const records = bytes.readUInt32BE(at);
  at += 4;
  const uplink = { ek: take(ek), ak: take(AK_SIZE) };
  const downlink = { ek: take(ek), ak: take(AK_SIZE) };
  const window = ReplayWindow.deserialize(bytes.subarray(at));
  return { sessionId, serial, suite, uplink, downlink, meterSystemTitle: title, createdAt, window, records };
}
