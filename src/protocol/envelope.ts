// The transport envelopes (docs/meter-pipeline.md, "Envelopes", "MQTT 5 topics", "Field link"): pure codecs,
// bytes in, values out, no I/O. All integers big-endian.
//
//   MeterEnvelope = type u8 ‖ serial u32 ‖ sessionId (8) ‖ body (the rest; ≤ 65,535 bytes)
//   field frame   = u32 length ‖ MeterEnvelope                      (meters ↔ aggregator, TCP or in process)
//   UplinkBatch   = 'U' ‖ 0x01 ‖ aggLen u8 ‖ aggregatorId ‖ seq u64 ‖ count u16 ‖ count × item
//   Downlink      = 'D' ‖ 0x01 ‖ aggLen u8 ‖ aggregatorId ‖ count u16 ‖ count × item
//   Ack           = 'A' ‖ 0x01 ‖ aggLen u8 ‖ aggregatorId ‖ count u16 ‖ count × seq u64
//   item          = type u8 ‖ serial u32 ‖ sessionId (8) ‖ bodyLen u16 ‖ body
//
// Kind and version bytes make a payload published on the wrong topic fail loudly instead of misparsing.
// Decoders return sessionId and body as views (subarray) of the input: copy them to keep them past its reuse.

import type { MeterSerial, RejectReason } from './types.js';

/**
 * Envelope types. Uplink (meter → collector) below 0x80, downlink at 0x80 and above, so the untrusted relay can
 * route by one bit. `alert` is our addition: an unauthenticated hint from the collector (e.g. `no-session`,
 * on which the meter re-keys); a meter must treat it as advice only and rate-limit what it triggers.
 */
export const EnvelopeType = {
  clientHello: 0x01,
  finish: 0x02,
  record: 0x03,
  response: 0x04,
  serverHello: 0x81,
  established: 0x82,
  downlink: 0x83,
  alert: 0x84,
} as const;
export type EnvelopeType = (typeof EnvelopeType)[keyof typeof EnvelopeType];

const TYPE_NAMES: ReadonlyMap<number, keyof typeof EnvelopeType> = new Map(
  (Object.keys(EnvelopeType) as Array<keyof typeof EnvelopeType>).map((k) => [EnvelopeType[k], k]),
);

/** The name of an envelope type (for logs and metrics), undefined if unknown. */
export function envelopeTypeName(type: number): keyof typeof EnvelopeType | undefined {
  return TYPE_NAMES.get(type);
}

export function isUplinkType(type: number): boolean {
  return TYPE_NAMES.has(type) && type < 0x80;
}

export function isDownlinkType(type: number): boolean {
  return TYPE_NAMES.has(type) && type >= 0x80;
}

export interface MeterEnvelope {
  type: EnvelopeType;
  serial: MeterSerial;
  /** 8 bytes; all zero when there is no session yet (handshake messages). */
  sessionId: Buffer;
  body: Buffer;
}

export interface UplinkBatch {
  aggregatorId: string;
  /** Per aggregator, monotonic; a number 0..2^53−1 (u64 on the wire; larger values are rejected). */
  seq: number;
  envelopes: MeterEnvelope[];
}

/** The uplink batches (by seq) of one aggregator now durable. */
export interface Ack {
  aggregatorId: string;
  seqs: number[];
}

export interface Downlink {
  aggregatorId: string;
  envelopes: MeterEnvelope[];
}

export type EnvelopeErrorDetail =
  | 'length' // truncated, trailing bytes, or a frame length below the header size
  | 'kind' // not the message kind / version expected
  | 'type' // unknown envelope type, or one going the wrong way for its container
  | 'field' // serial, session id or seq out of range
  | 'limit' // a count or length over its limit
  | 'aggregator' // an aggregator id that is not 1..64 printable ASCII without / + # or space
  | 'topic'; // not an sg/<agg>/<up|resp|ack|down> topic

export class EnvelopeError extends Error {
  readonly code = 'malformed' as const;
  constructor(
    readonly detail: EnvelopeErrorDetail,
    message: string,
  ) {
    super(message);
    this.name = 'EnvelopeError';
  }
}

export const SESSION_ID_SIZE = 8;
export const ENVELOPE_HEADER_SIZE = 13;
export const MAX_ENVELOPE_BODY = 0xffff;
/** The largest field-frame length (one envelope); the FieldFrameDecoder rejects longer ones. */
export const MAX_FIELD_FRAME = ENVELOPE_HEADER_SIZE + MAX_ENVELOPE_BODY;
export const MAX_BATCH_ENVELOPES = 0xffff;
export const MAX_ACK_SEQS = 0xffff;
export const MAX_AGGREGATOR_ID = 64;

const MAX_METER_SERIAL = 99_999_999;
const TWO_32 = 2 ** 32;
const VERSION = 0x01;
const KIND_UPLINK = 0x55; // 'U'
const KIND_DOWNLINK = 0x44; // 'D'
const KIND_ACK = 0x41; // 'A'
const ITEM_HEADER = ENVELOPE_HEADER_SIZE + 2;

// ---- aggregator ids and topics ----

export function isAggregatorId(id: string): boolean {
  if (typeof id !== 'string' || id.length < 1 || id.length > MAX_AGGREGATOR_ID) return false;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    // MQTT separators and wildcards would let one aggregator's id address another's topics.
    if (c < 0x21 || c > 0x7e || c === 0x2f || c === 0x2b || c === 0x23) return false;
  }
  return true;
}

function checkAggregatorId(id: string): void {
  if (!isAggregatorId(id)) throw new EnvelopeError('aggregator', `bad aggregator id ${JSON.stringify(String(id).slice(0, 80))}`);
}

export type TopicKind = 'up' | 'resp' | 'ack' | 'down';

export function topics(aggregatorId: string): Record<TopicKind, string> {
  checkAggregatorId(aggregatorId);
  const base = `sg/${aggregatorId}/`;
  return { up: base + 'up', resp: base + 'resp', ack: base + 'ack', down: base + 'down' };
}

/** Ingest's shared subscription to every aggregator's uplink. */
export const SHARED_UP = '$share/ingest/sg/+/up';
/** Every ingest instance's (non-shared) subscription to command responses. */
export const RESP_ALL = 'sg/+/resp';

export function parseTopic(topic: string): { aggregatorId: string; kind: TopicKind } {
  const parts = typeof topic === 'string' ? topic.split('/') : [];
  const kind = parts[2];
  if (parts.length !== 3 || parts[0] !== 'sg' || (kind !== 'up' && kind !== 'resp' && kind !== 'ack' && kind !== 'down') || !isAggregatorId(parts[1]!)) {
    throw new EnvelopeError('topic', `not a securegrid topic: ${JSON.stringify(String(topic).slice(0, 120))}`);
  }
  return { aggregatorId: parts[1]!, kind };
}

export function aggregatorIdFromTopic(topic: string): string {
  return parseTopic(topic).aggregatorId;
}

// ---- writing ----

function checkEnvelope(env: MeterEnvelope): void {
  if (!TYPE_NAMES.has(env.type)) throw new EnvelopeError('type', `unknown envelope type ${env.type}`);
  if (!Number.isInteger(env.serial) || env.serial < 0 || env.serial > MAX_METER_SERIAL) throw new EnvelopeError('field', `serial must be an integer 0..${MAX_METER_SERIAL}`);
  if (!(env.sessionId instanceof Uint8Array) || env.sessionId.length !== SESSION_ID_SIZE) throw new EnvelopeError('field', 'sessionId must be 8 bytes');
  if (!(env.body instanceof Uint8Array)) throw new EnvelopeError('field', 'body must be bytes');
  if (env.body.length > MAX_ENVELOPE_BODY) throw new EnvelopeError('limit', `body of ${env.body.length} bytes exceeds ${MAX_ENVELOPE_BODY}`);
}

function writeHeader(b: Buffer, p: number, env: MeterEnvelope): number {
  b[p] = env.type;
  b.writeUInt32BE(env.serial, p + 1);
  b.set(env.sessionId, p + 5);
  return p + ENVELOPE_HEADER_SIZE;
}

function writeU64(b: Buffer, p: number, v: number): void {
  b.writeUInt32BE(Math.floor(v / TWO_32), p);
  b.writeUInt32BE(v >>> 0, p + 4);
}

function checkSeq(v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new EnvelopeError('field', 'seq must be an integer 0..2^53-1');
}

export function encodeEnvelope(env: MeterEnvelope): Buffer {
  checkEnvelope(env);
  const b = Buffer.allocUnsafe(ENVELOPE_HEADER_SIZE + env.body.length);
  b.set(env.body, writeHeader(b, 0, env));
  return b;
}

/** One field-link frame: u32 length ‖ envelope. */
export function encodeFieldFrame(env: MeterEnvelope): Buffer {
  checkEnvelope(env);
  const n = ENVELOPE_HEADER_SIZE + env.body.length;
  const b = Buffer.allocUnsafe(4 + n);
  b.writeUInt32BE(n, 0);
  b.set(env.body, writeHeader(b, 4, env));
  return b;
}

/** kind ‖ version ‖ aggLen ‖ aggregatorId; returns the buffer and the write position. */
function startMessage(kind: number, aggregatorId: string, rest: number): [Buffer, number] {
  checkAggregatorId(aggregatorId);
  const b = Buffer.allocUnsafe(3 + aggregatorId.length + rest);
  b[0] = kind;
  b[1] = VERSION;
  b[2] = aggregatorId.length;
  b.write(aggregatorId, 3, 'latin1');
  return [b, 3 + aggregatorId.length];
}

function itemsSize(envelopes: MeterEnvelope[], uplink: boolean): number {
  if (!Array.isArray(envelopes) || envelopes.length > MAX_BATCH_ENVELOPES) throw new EnvelopeError('limit', `at most ${MAX_BATCH_ENVELOPES} envelopes`);
  let size = 2;
  for (const env of envelopes) {
    checkEnvelope(env);
    if (uplink !== (env.type < 0x80)) throw new EnvelopeError('type', `${envelopeTypeName(env.type)} envelope in a ${uplink ? 'uplink batch' : 'downlink'}`);
    size += ITEM_HEADER + env.body.length;
  }
  return size;
}

function writeItems(b: Buffer, p: number, envelopes: MeterEnvelope[]): void {
  b.writeUInt16BE(envelopes.length, p);
  p += 2;
  for (const env of envelopes) {
    p = writeHeader(b, p, env);
    b.writeUInt16BE(env.body.length, p);
    b.set(env.body, p + 2);
    p += 2 + env.body.length;
  }
}

/** Uplink envelopes only (clientHello, finish, record, response). */
export function encodeUplinkBatch(batch: UplinkBatch): Buffer {
  checkSeq(batch.seq);
  const [b, p] = startMessage(KIND_UPLINK, batch.aggregatorId, 8 + itemsSize(batch.envelopes, true));
  writeU64(b, p, batch.seq);
  writeItems(b, p + 8, batch.envelopes);
  return b;
}

/** Downlink envelopes only (serverHello, established, downlink, alert). */
export function encodeDownlink(downlink: Downlink): Buffer {
  const [b, p] = startMessage(KIND_DOWNLINK, downlink.aggregatorId, itemsSize(downlink.envelopes, false));
  writeItems(b, p, downlink.envelopes);
  return b;
}

export function encodeAck(ack: Ack): Buffer {
  if (!Array.isArray(ack.seqs) || ack.seqs.length > MAX_ACK_SEQS) throw new EnvelopeError('limit', `at most ${MAX_ACK_SEQS} seqs`);
  for (const s of ack.seqs) checkSeq(s);
  const [b, p] = startMessage(KIND_ACK, ack.aggregatorId, 2 + 8 * ack.seqs.length);
  b.writeUInt16BE(ack.seqs.length, p);
  ack.seqs.forEach((s, i) => writeU64(b, p + 2 + 8 * i, s));
  return b;
}

// ---- reading ----

function asBuffer(input: Uint8Array): Buffer {
  return Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
}

class Reader {
  p = 0;
  constructor(readonly b: Buffer) {}
  need(n: number): void {
    if (this.b.length - this.p < n) throw new EnvelopeError('length', `truncated at byte ${this.p}`);
  }
  u8(): number {
    this.need(1);
    return this.b[this.p++]!;
  }
  u16(): number {
    this.need(2);
    const v = this.b.readUInt16BE(this.p);
    this.p += 2;
    return v;
  }
  u64(): number {
    this.need(8);
    const hi = this.b.readUInt32BE(this.p);
    if (hi > 0x1fffff) throw new EnvelopeError('field', 'seq exceeds 2^53-1');
    const v = hi * TWO_32 + this.b.readUInt32BE(this.p + 4);
    this.p += 8;
    return v;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const v = this.b.subarray(this.p, this.p + n);
    this.p += n;
    return v;
  }
  end(): void {
    if (this.p !== this.b.length) throw new EnvelopeError('length', `${this.b.length - this.p} trailing bytes`);
  }
}

/** type ‖ serial ‖ sessionId from an envelope's first 13 bytes (already known to be there). */
function readHeader(b: Buffer, p: number, body: Buffer): MeterEnvelope {
  const type = b[p]!;
  if (!TYPE_NAMES.has(type)) throw new EnvelopeError('type', `unknown envelope type 0x${type.toString(16)}`);
  const serial = b.readUInt32BE(p + 1);
  if (serial > MAX_METER_SERIAL) throw new EnvelopeError('field', `serial ${serial} exceeds ${MAX_METER_SERIAL}`);
  return { type: type as EnvelopeType, serial, sessionId: b.subarray(p + 5, p + ENVELOPE_HEADER_SIZE), body };
}

export function decodeEnvelope(input: Uint8Array): MeterEnvelope {
  const b = asBuffer(input);
  if (b.length < ENVELOPE_HEADER_SIZE) throw new EnvelopeError('length', `envelope of ${b.length} bytes is shorter than its header`);
  if (b.length > MAX_FIELD_FRAME) throw new EnvelopeError('limit', `envelope of ${b.length} bytes exceeds ${MAX_FIELD_FRAME}`);
  return readHeader(b, 0, b.subarray(ENVELOPE_HEADER_SIZE));
}

function readStart(r: Reader, kind: number, what: string): string {
  if (r.u8() !== kind || r.u8() !== VERSION) throw new EnvelopeError('kind', `not a version-1 ${what}`);
  const n = r.u8();
  const id = r.bytes(n).toString('latin1');
  checkAggregatorId(id);
  return id;
}

function readItems(r: Reader, uplink: boolean): MeterEnvelope[] {
  const count = r.u16();
  // Each item is at least ITEM_HEADER bytes: a lying count fails here, before any allocation.
  r.need(count * ITEM_HEADER);
  const out = new Array<MeterEnvelope>(count);
  for (let i = 0; i < count; i++) {
    r.need(ITEM_HEADER);
    const p = r.p;
    const len = r.b.readUInt16BE(p + ENVELOPE_HEADER_SIZE);
    r.p = p + ITEM_HEADER;
    const env = readHeader(r.b, p, r.bytes(len));
    if (uplink !== (env.type < 0x80)) throw new EnvelopeError('type', `${envelopeTypeName(env.type)} envelope in a ${uplink ? 'uplink batch' : 'downlink'}`);
    out[i] = env;
  }
  return out;
}

export function decodeUplinkBatch(input: Uint8Array): UplinkBatch {
  const r = new Reader(asBuffer(input));
  const aggregatorId = readStart(r, KIND_UPLINK, 'uplink batch');
  const seq = r.u64();
  const envelopes = readItems(r, true);
  r.end();
  return { aggregatorId, seq, envelopes };
}

export function decodeDownlink(input: Uint8Array): Downlink {
  const r = new Reader(asBuffer(input));
  const aggregatorId = readStart(r, KIND_DOWNLINK, 'downlink');
  const envelopes = readItems(r, false);
  r.end();
  return { aggregatorId, envelopes };
}

export function decodeAck(input: Uint8Array): Ack {
  const r = new Reader(asBuffer(input));
  const aggregatorId = readStart(r, KIND_ACK, 'ack');
  const count = r.u16();
  r.need(8 * count);
  const seqs = new Array<number>(count);
  for (let i = 0; i < count; i++) seqs[i] = r.u64();
  r.end();
  return { aggregatorId, seqs };
}

// ---- alert bodies ----

const ALERT_CODES: Readonly<Record<RejectReason, number>> = {
  malformed: 1,
  'unknown-meter': 2,
  handshake: 3,
  'no-session': 4,
  auth: 5,
  replay: 6,
  range: 7,
  duplicate: 8,
};
const ALERT_REASONS = new Map<number, RejectReason>((Object.keys(ALERT_CODES) as RejectReason[]).map((k) => [ALERT_CODES[k], k]));

/** The body of an `alert` envelope: one byte naming the reject reason. */
export function encodeAlert(reason: RejectReason): Buffer {
  const code = ALERT_CODES[reason];
  if (code === undefined) throw new EnvelopeError('field', `unknown reject reason ${String(reason)}`);
  return Buffer.from([code]);
}

export function decodeAlert(body: Uint8Array): RejectReason {
  const reason = body.length === 1 ? ALERT_REASONS.get(body[0]!) : undefined;
  if (reason === undefined) throw new EnvelopeError('field', 'not an alert body');
  return reason;
}

// ---- the field-link stream ----

/**
 * Splits a byte stream (TCP chunks of any size) into envelopes. A declared length over the limit, or a frame that
 * does not decode, is fatal: framing can no longer be trusted, so the decoder throws that EnvelopeError now and
 * on every later push, and the caller closes the connection (envelopes earlier in the same chunk are dropped).
 * Returned sessionId/body are views of the pushed chunks, which the decoder never writes.
 */
export class FieldFrameDecoder {
  private pending: Buffer[] = [];
  private pendingLen = 0;
  /** Bytes needed in `pending` before parsing can advance. */
  private need = 4;
  private failure: EnvelopeError | undefined;
  private readonly maxFrame: number;

  constructor(options: { maxFrameSize?: number } = {}) {
    const max = options.maxFrameSize ?? MAX_FIELD_FRAME;
    if (!Number.isInteger(max) || max < ENVELOPE_HEADER_SIZE || max > MAX_FIELD_FRAME) throw new RangeError(`maxFrameSize must be ${ENVELOPE_HEADER_SIZE}..${MAX_FIELD_FRAME}`);
    this.maxFrame = max;
  }

  /** Bytes held awaiting the rest of a frame. */
  get buffered(): number {
    return this.pendingLen;
  }

  get failed(): boolean {
    return this.failure !== undefined;
  }

  push(chunk: Uint8Array): MeterEnvelope[] {
    if (this.failure) throw this.failure;
    let data = asBuffer(chunk);
    if (this.pendingLen > 0) {
      this.pending.push(data);
      this.pendingLen += data.length;
      if (this.pendingLen < this.need) return [];
      data = Buffer.concat(this.pending, this.pendingLen);
    }
    this.pending = [];
    this.pendingLen = 0;
    this.need = 4;
    const out: MeterEnvelope[] = [];
    let p = 0;
    try {
      while (data.length - p >= 4) {
        const len = data.readUInt32BE(p);
        if (len > this.maxFrame) throw new EnvelopeError('limit', `field frame of ${len} bytes exceeds ${this.maxFrame}`);
        if (len < ENVELOPE_HEADER_SIZE) throw new EnvelopeError('length', `field frame of ${len} bytes is shorter than an envelope header`);
        if (data.length - p - 4 < len) {
          this.need = 4 + len;
          break;
        }
        out.push(decodeEnvelope(data.subarray(p + 4, p + 4 + len)));
        p += 4 + len;
      }
    } catch (e) {
      this.failure = e instanceof EnvelopeError ? e : new EnvelopeError('length', String(e));
      throw this.failure;
    }
    if (p < data.length) {
      this.pending.push(data.subarray(p));
      this.pendingLen = data.length - p;
    }
    return out;
  }

  /** At the end of the stream: throws if a frame was cut off (or the stream had failed). */
  end(): void {
    if (this.failure) throw this.failure;
    if (this.pendingLen > 0) throw new EnvelopeError('length', `stream ended inside a frame (${this.pendingLen} bytes held)`);
  }
}
