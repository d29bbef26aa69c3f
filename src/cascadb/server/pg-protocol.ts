// The PostgreSQL v3 wire codec, server side, in the manner of node-postgres' pg-protocol: a streaming parser for
// frontend messages (bytes in any chunking → typed messages) and a serializer for backend messages. No sockets.
// Protocol reference: https://www.postgresql.org/docs/current/protocol-message-formats.html

/** Startup packet codes (the startup packet has no type byte; its int32 code follows the length). */
export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;
export const PROTOCOL_3_0 = 196608; // 3 << 16

/** PostgreSQL's MAX_STARTUP_PACKET_LENGTH. */
const MAX_STARTUP_LENGTH = 10000;
/** Query, Parse, Bind may be up to 1 GiB (PostgreSQL: MaxAllocSize - 1). */
const MAX_LARGE_MESSAGE = 0x40000000;
/** Describe, Close, Execute carry only names (PostgreSQL: PQ_SMALL_MESSAGE_LIMIT). */
const MAX_SMALL_MESSAGE = 10000;
/** Password / SASL messages (PostgreSQL: PG_MAX_AUTH_TOKEN_LENGTH). */
const MAX_AUTH_MESSAGE = 65535 + 4;

const enum Frontend {
  Query = 0x51, // Q
  Parse = 0x50, // P
  Bind = 0x42, // B
  Describe = 0x44, // D
  Execute = 0x45, // E
  Sync = 0x53, // S
  Flush = 0x48, // H
  Close = 0x43, // C
  Terminate = 0x58, // X
  Password = 0x70, // p: PasswordMessage, SASLInitialResponse, SASLResponse
  FunctionCall = 0x46, // F
}

const enum Backend {
  Authentication = 0x52, // R
  ParameterStatus = 0x53, // S
  BackendKeyData = 0x4b, // K
  ReadyForQuery = 0x5a, // Z
  RowDescription = 0x54, // T
  DataRow = 0x44, // D
  CommandComplete = 0x43, // C
  EmptyQueryResponse = 0x49, // I
  ErrorResponse = 0x45, // E
  NoticeResponse = 0x4e, // N
  ParseComplete = 0x31, // 1
  BindComplete = 0x32, // 2
  CloseComplete = 0x33, // 3
  NoData = 0x6e, // n
  ParameterDescription = 0x74, // t
  PortalSuspended = 0x73, // s
  NegotiateProtocolVersion = 0x76, // v
}

export type StartupMessage =
  | { type: 'sslRequest' }
  | { type: 'gssEncRequest' }
  | { type: 'cancelRequest'; processId: number; secretKey: number }
  | { type: 'startup'; protocol: number; params: Record<string, string> };

/** A fatal protocol violation; after one the parser yields nothing more. */
export interface ProtocolError {
  type: 'protocolError';
  code: string; // 08P01, or 0A000 for an unsupported protocol version
  message: string;
}

export type FrontendMessage =
  | StartupMessage
  | ProtocolError
  | { type: 'query'; sql: string }
  | { type: 'parse'; name: string; sql: string; paramOids: number[] }
  | {
      type: 'bind';
      portal: string;
      statement: string;
      paramFormats: number[];
      /** Views into the received bytes (never overwritten by later input); null = SQL NULL. */
      params: Array<Buffer | null>;
      resultFormats: number[];
    }
  | { type: 'describe'; kind: 'S' | 'P'; name: string }
  | { type: 'execute'; portal: string; maxRows: number }
  | { type: 'close'; kind: 'S' | 'P'; name: string }
  | { type: 'sync' }
  | { type: 'flush' }
  | { type: 'terminate' }
  /** PasswordMessage, SASLInitialResponse or SASLResponse: which one depends on the authentication step. */
  | { type: 'password'; data: Buffer }
  | { type: 'functionCall' };

class Violation extends Error {}

const EMPTY = Buffer.alloc(0);

/** Reads one message body; any overrun is a protocol violation. */
class Reader {
  private pos = 0;
  constructor(private readonly b: Buffer) {}
  int16(): number {
    if (this.pos + 2 > this.b.length) throw new Violation('invalid message format');
    const v = this.b.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  int32(): number {
    if (this.pos + 4 > this.b.length) throw new Violation('invalid message format');
    const v = this.b.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  uint32(): number {
    if (this.pos + 4 > this.b.length) throw new Violation('invalid message format');
    const v = this.b.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  byte(): number {
    if (this.pos >= this.b.length) throw new Violation('invalid message format');
    return this.b[this.pos++]!;
  }
  bytes(n: number): Buffer {
    if (n < 0 || this.pos + n > this.b.length) throw new Violation('invalid message format');
    const v = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  cstring(): string {
    const end = this.b.indexOf(0, this.pos);
    if (end < 0) throw new Violation('invalid string in message');
    const s = this.b.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }
  rest(): Buffer {
    const v = this.b.subarray(this.pos);
    this.pos = this.b.length;
    return v;
  }
  end(): void {
    if (this.pos !== this.b.length) throw new Violation('invalid message format');
  }
}

function maxLength(type: number): number {
  switch (type) {
    case Frontend.Query:
    case Frontend.Parse:
    case Frontend.Bind:
    case Frontend.FunctionCall:
      return MAX_LARGE_MESSAGE;
    case Frontend.Describe:
    case Frontend.Close:
    case Frontend.Execute:
      return MAX_SMALL_MESSAGE;
    case Frontend.Password:
      return MAX_AUTH_MESSAGE;
    case Frontend.Sync:
    case Frontend.Flush:
    case Frontend.Terminate:
      return 4;
    default:
      return -1; // not a frontend message we accept (CopyData/CopyDone/CopyFail included: we never start COPY)
  }
}

function portalKind(b: number): 'S' | 'P' {
  if (b === 0x53) return 'S';
  if (b === 0x50) return 'P';
  throw new Violation(`invalid DESCRIBE/CLOSE message subtype ${b}`);
}

function parseStartup(body: Buffer): StartupMessage {
  const r = new Reader(body);
  const code = r.int32();
  if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
    r.end();
    return { type: code === SSL_REQUEST_CODE ? 'sslRequest' : 'gssEncRequest' };
  }
  if (code === CANCEL_REQUEST_CODE) {
    const processId = r.int32();
    const secretKey = r.int32();
    r.end();
    return { type: 'cancelRequest', processId, secretKey };
  }
  if (code >>> 16 !== 3) throw new UnsupportedProtocol(code);
  const params: Record<string, string> = Object.create(null);
  for (;;) {
    const key = r.cstring();
    if (key === '') break;
    params[key] = r.cstring();
  }
  r.end();
  return { type: 'startup', protocol: code, params };
}

class UnsupportedProtocol extends Error {
  constructor(readonly code: number) {
    super(`unsupported frontend protocol ${code >>> 16}.${code & 0xffff}: server supports 3.0 to 3.0`);
  }
}

function parseTyped(type: number, body: Buffer): FrontendMessage {
  const r = new Reader(body);
  switch (type) {
    case Frontend.Query: {
      const sql = r.cstring();
      r.end();
      return { type: 'query', sql };
    }
    case Frontend.Parse: {
      const name = r.cstring();
      const sql = r.cstring();
      const n = r.int16();
      if (n < 0) throw new Violation('invalid number of parameter types');
      const paramOids = new Array<number>(n);
      for (let i = 0; i < n; i++) paramOids[i] = r.uint32();
      r.end();
      return { type: 'parse', name, sql, paramOids };
    }
    case Frontend.Bind: {
      const portal = r.cstring();
      const statement = r.cstring();
      const nf = r.int16();
      if (nf < 0) throw new Violation('invalid number of parameter formats');
      const paramFormats = new Array<number>(nf);
      for (let i = 0; i < nf; i++) paramFormats[i] = r.int16();
      const np = r.int16();
      if (np < 0) throw new Violation('invalid number of parameters');
      const params = new Array<Buffer | null>(np);
      for (let i = 0; i < np; i++) {
        const len = r.int32();
        if (len === -1) params[i] = null;
        else if (len < 0) throw new Violation('invalid parameter length');
        else params[i] = r.bytes(len);
      }
      const nr = r.int16();
      if (nr < 0) throw new Violation('invalid number of result formats');
      const resultFormats = new Array<number>(nr);
      for (let i = 0; i < nr; i++) resultFormats[i] = r.int16();
      r.end();
      return { type: 'bind', portal, statement, paramFormats, params, resultFormats };
    }
    case Frontend.Describe:
    case Frontend.Close: {
      const kind = portalKind(r.byte());
      const name = r.cstring();
      r.end();
      return { type: type === Frontend.Describe ? 'describe' : 'close', kind, name };
    }
    case Frontend.Execute: {
      const portal = r.cstring();
      const maxRows = r.int32();
      r.end();
      return { type: 'execute', portal, maxRows };
    }
    case Frontend.Sync:
      return { type: 'sync' };
    case Frontend.Flush:
      return { type: 'flush' };
    case Frontend.Terminate:
      return { type: 'terminate' };
    case Frontend.Password:
      return { type: 'password', data: r.rest() };
    case Frontend.FunctionCall:
      return { type: 'functionCall' };
    default:
      throw new Violation(`invalid frontend message type ${type}`);
  }
}

/**
 * Frontend message parser over a byte stream: feed() takes chunks as they arrive, in any split, and returns
 * the messages completed so far. It starts in startup mode (packets without a type byte) and switches to typed
 * messages after a StartupMessage. Never throws; a malformed stream yields one ProtocolError and then nothing.
 */
export class FrontendParser {
  private buf: Buffer = EMPTY;
  private start = 0;
  private end = 0;
  /** buf was allocated here (may be appended to); otherwise it is a caller's chunk (read only). */
  private owned = false;
  /** Total length of the message whose header has been seen, so the buffer grows once to fit it. */
  private want = 0;
  private startup = true;
  private failed = false;

  /** Bytes received but not yet part of a complete message. */
  get buffered(): number {
    return this.end - this.start;
  }

  /** True until a StartupMessage has been parsed. */
  get inStartup(): boolean {
    return this.startup;
  }

  feed(chunk: Uint8Array): FrontendMessage[] {
    if (this.failed) return [];
    const out: FrontendMessage[] = [];
    try {
      this.append(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      for (;;) {
        const m = this.startup ? this.nextStartup() : this.nextTyped();
        if (!m) break;
        out.push(m);
        if (m.type === 'startup') this.startup = false;
      }
    } catch (e) {
      this.failed = true;
      this.buf = EMPTY;
      this.start = this.end = 0;
      if (e instanceof UnsupportedProtocol) out.push({ type: 'protocolError', code: '0A000', message: e.message });
      else out.push({ type: 'protocolError', code: '08P01', message: e instanceof Violation ? e.message : 'invalid message' });
      return out;
    }
    if (this.start === this.end) {
      this.buf = EMPTY;
      this.start = this.end = 0;
      this.owned = false;
    }
    return out;
  }

  private nextStartup(): StartupMessage | undefined {
    const avail = this.end - this.start;
    if (avail < 4) return undefined;
    const len = this.buf.readInt32BE(this.start);
    if (len < 8 || len > MAX_STARTUP_LENGTH) throw new Violation('invalid length of startup packet');
    if (avail < len) {
      this.want = len;
      return undefined;
    }
    const body = this.buf.subarray(this.start + 4, this.start + len);
    this.start += len;
    this.want = 0;
    return parseStartup(body);
  }

  private nextTyped(): FrontendMessage | undefined {
    const avail = this.end - this.start;
    if (avail < 1) return undefined;
    const type = this.buf[this.start]!;
    const max = maxLength(type);
    if (max < 0) throw new Violation(`invalid frontend message type ${type}`);
    if (avail < 5) return undefined;
    const len = this.buf.readInt32BE(this.start + 1);
    if (len < 4 || len > max) throw new Violation(`invalid message length ${len} for message type ${type}`);
    if (avail < len + 1) {
      this.want = len + 1;
      return undefined;
    }
    const body = this.buf.subarray(this.start + 5, this.start + 1 + len);
    this.start += len + 1;
    this.want = 0;
    return parseTyped(type, body);
  }

  private append(chunk: Buffer): void {
    if (chunk.length === 0) return;
    const used = this.end - this.start;
    if (used === 0) {
      this.buf = chunk;
      this.start = 0;
      this.end = chunk.length;
      this.owned = false;
      return;
    }
    if (this.owned && this.buf.length - this.end >= chunk.length) {
      chunk.copy(this.buf, this.end);
      this.end += chunk.length;
      return;
    }
    // A fresh buffer, never compacting in place: messages already returned may hold views into the old one.
    const need = used + chunk.length;
    const next = Buffer.allocUnsafe(Math.max(need, this.want, Math.min(need * 2, need + 65536)));
    this.buf.copy(next, 0, this.start, this.end);
    chunk.copy(next, used);
    this.buf = next;
    this.start = 0;
    this.end = need;
    this.owned = true;
  }
}

/** The password of a PasswordMessage body (a C string), or undefined when malformed. */
export function decodePassword(data: Buffer): string | undefined {
  const nul = data.indexOf(0);
  if (nul !== data.length - 1) return undefined;
  return data.toString('utf8', 0, nul);
}

/** A SASLInitialResponse body: mechanism name and the client's first message; undefined when malformed. */
export function decodeSaslInitialResponse(data: Buffer): { mechanism: string; response: Buffer } | undefined {
  try {
    const r = new Reader(data);
    const mechanism = r.cstring();
    const len = r.int32();
    const response = len === -1 ? EMPTY : r.bytes(len);
    r.end();
    return { mechanism, response };
  } catch {
    return undefined;
  }
}

/** The fields of an ErrorResponse / NoticeResponse. */
export interface NoticeFields {
  severity: 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE' | 'DEBUG' | 'INFO' | 'LOG';
  code: string;
  message: string;
  detail?: string;
  hint?: string;
  position?: number;
}

/** What RowDescription needs per column (structurally the same as backend.ts' FieldDesc). */
export interface ColumnDesc {
  name: string;
  tableOid: number;
  columnAttr: number;
  typeOid: number;
  typeSize: number;
  typeMod: number;
}

export type TransactionStatus = 'I' | 'T' | 'E';

const INITIAL_SIZE = 16384;

/**
 * Serializes backend messages into one growing buffer, so that a batch of messages (a result's DataRows, or
 * ParseComplete+BindComplete+… of a pipeline) leaves in one socket write. take() hands the bytes over.
 */
export class BackendWriter {
  private buf: Buffer;
  private pos = 0;
  private msgStart = 0;

  constructor(private readonly initialSize = INITIAL_SIZE) {
    this.buf = EMPTY;
  }

  /** Bytes written and not yet taken. */
  get length(): number {
    return this.pos;
  }

  /** The serialized messages so far; the writer starts over with a new buffer. */
  take(): Buffer {
    const out = this.buf.subarray(0, this.pos);
    this.buf = EMPTY; // the next write allocates; the taken bytes stay untouched
    this.pos = 0;
    return out;
  }

  authenticationOk(): this {
    return this.auth(0);
  }
  authenticationCleartextPassword(): this {
    return this.auth(3);
  }
  authenticationSASL(mechanisms: string[]): this {
    this.begin(Backend.Authentication);
    this.int32(10);
    for (const m of mechanisms) this.cstring(m);
    this.byte(0);
    return this.finish();
  }
  authenticationSASLContinue(data: Buffer | string): this {
    return this.auth(11, data);
  }
  authenticationSASLFinal(data: Buffer | string): this {
    return this.auth(12, data);
  }

  parameterStatus(name: string, value: string): this {
    this.begin(Backend.ParameterStatus);
    this.cstring(name);
    this.cstring(value);
    return this.finish();
  }
  backendKeyData(processId: number, secretKey: number): this {
    this.begin(Backend.BackendKeyData);
    this.int32(processId);
    this.int32(secretKey);
    return this.finish();
  }
  readyForQuery(status: TransactionStatus): this {
    this.begin(Backend.ReadyForQuery);
    this.byte(status.charCodeAt(0));
    return this.finish();
  }
  /** Minor version 0 and the protocol options (`_pq_.*`) we did not recognise. */
  negotiateProtocolVersion(newestMinor: number, unrecognized: string[]): this {
    this.begin(Backend.NegotiateProtocolVersion);
    this.int32(newestMinor);
    this.int32(unrecognized.length);
    for (const o of unrecognized) this.cstring(o);
    return this.finish();
  }

  /** All columns in text format (0) unless `formats` says otherwise (one code per column). */
  rowDescription(fields: readonly ColumnDesc[], formats?: readonly number[]): this {
    this.begin(Backend.RowDescription);
    this.int16(fields.length);
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i]!;
      this.cstring(f.name);
      this.int32(f.tableOid);
      this.int16(f.columnAttr);
      this.int32(f.typeOid);
      this.int16(f.typeSize);
      this.int32(f.typeMod);
      this.int16(formats?.[i] ?? 0);
    }
    return this.finish();
  }

  /** The hot path: text values straight into the batch buffer, lengths patched in afterwards. */
  dataRow(row: ReadonlyArray<string | null>): this {
    const n = row.length;
    let need = 7 + 4 * n;
    for (let i = 0; i < n; i++) {
      const v = row[i];
      if (v != null) need += v.length < 4096 ? v.length * 3 : Buffer.byteLength(v);
    }
    if (this.pos + need > this.buf.length) this.grow(need);
    const buf = this.buf;
    let p = this.pos;
    const start = p + 1;
    buf[p] = Backend.DataRow;
    p += 5;
    buf[p++] = n >>> 8;
    buf[p++] = n & 0xff;
    for (let i = 0; i < n; i++) {
      const v = row[i];
      if (v == null) {
        buf[p++] = 0xff;
        buf[p++] = 0xff;
        buf[p++] = 0xff;
        buf[p++] = 0xff;
        continue;
      }
      let w = 0;
      const len = v.length;
      if (len < 24) {
        // Short ASCII strings: a byte loop beats the native call.
        const q = p + 4;
        for (; w < len; w++) {
          const c = v.charCodeAt(w);
          if (c > 0x7f) break;
          buf[q + w] = c;
        }
        if (w < len) w = buf.write(v, q, 'utf8');
      } else {
        w = buf.write(v, p + 4, 'utf8');
      }
      buf[p++] = w >>> 24;
      buf[p++] = (w >>> 16) & 0xff;
      buf[p++] = (w >>> 8) & 0xff;
      buf[p++] = w & 0xff;
      p += w;
    }
    const len = p - start;
    buf[start] = len >>> 24;
    buf[start + 1] = (len >>> 16) & 0xff;
    buf[start + 2] = (len >>> 8) & 0xff;
    buf[start + 3] = len & 0xff;
    this.pos = p;
    return this;
  }

  commandComplete(tag: string): this {
    this.begin(Backend.CommandComplete);
    this.cstring(tag);
    return this.finish();
  }
  emptyQueryResponse(): this {
    return this.empty(Backend.EmptyQueryResponse);
  }
  errorResponse(f: NoticeFields): this {
    return this.notice(Backend.ErrorResponse, f);
  }
  noticeResponse(f: NoticeFields): this {
    return this.notice(Backend.NoticeResponse, f);
  }
  parseComplete(): this {
    return this.empty(Backend.ParseComplete);
  }
  bindComplete(): this {
    return this.empty(Backend.BindComplete);
  }
  closeComplete(): this {
    return this.empty(Backend.CloseComplete);
  }
  noData(): this {
    return this.empty(Backend.NoData);
  }
  portalSuspended(): this {
    return this.empty(Backend.PortalSuspended);
  }
  parameterDescription(oids: readonly number[]): this {
    this.begin(Backend.ParameterDescription);
    this.int16(oids.length);
    for (const o of oids) {
      this.ensure(4);
      this.buf.writeUInt32BE(o >>> 0, this.pos);
      this.pos += 4;
    }
    return this.finish();
  }

  private notice(code: number, f: NoticeFields): this {
    this.begin(code);
    this.field(0x53, f.severity); // S: localized severity
    this.field(0x56, f.severity); // V: severity, never localized
    this.field(0x43, f.code); // C
    this.field(0x4d, f.message); // M
    if (f.detail !== undefined) this.field(0x44, f.detail); // D
    if (f.hint !== undefined) this.field(0x48, f.hint); // H
    if (f.position !== undefined) this.field(0x50, String(f.position)); // P
    this.byte(0);
    return this.finish();
  }
  private field(code: number, value: string): void {
    this.byte(code);
    this.cstring(value);
  }
  private auth(code: number, data?: Buffer | string): this {
    this.begin(Backend.Authentication);
    this.int32(code);
    if (data !== undefined) {
      const b = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      this.ensure(b.length);
      b.copy(this.buf, this.pos);
      this.pos += b.length;
    }
    return this.finish();
  }
  private empty(code: number): this {
    this.ensure(5);
    this.buf[this.pos] = code;
    this.buf.writeInt32BE(4, this.pos + 1);
    this.pos += 5;
    return this;
  }
  private begin(code: number): void {
    this.ensure(5);
    this.buf[this.pos] = code;
    this.msgStart = this.pos + 1;
    this.pos += 5;
  }
  private finish(): this {
    this.buf.writeInt32BE(this.pos - this.msgStart, this.msgStart);
    return this;
  }
  private byte(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }
  private int16(v: number): void {
    this.ensure(2);
    this.buf.writeInt16BE(v, this.pos);
    this.pos += 2;
  }
  private int32(v: number): void {
    this.ensure(4);
    this.buf.writeInt32BE(v | 0, this.pos);
    this.pos += 4;
  }
  /** A NUL-terminated string; an embedded NUL would end it early, so it is dropped. */
  private cstring(s: string): void {
    if (s.includes('\0')) s = s.replaceAll('\0', '');
    const n = Buffer.byteLength(s);
    this.ensure(n + 1);
    this.buf.write(s, this.pos, 'utf8');
    this.pos += n;
    this.buf[this.pos++] = 0;
  }
  private ensure(n: number): void {
    if (this.pos + n > this.buf.length) this.grow(n);
  }
  private grow(n: number): void {
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n, this.initialSize));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
}

/** One Buffer per backend message, for callers (and tests) that do not batch. */
export const serialize = {
  authenticationOk: (): Buffer => new BackendWriter(16).authenticationOk().take(),
  authenticationCleartextPassword: (): Buffer => new BackendWriter(16).authenticationCleartextPassword().take(),
  authenticationSASL: (mechanisms: string[]): Buffer => new BackendWriter(64).authenticationSASL(mechanisms).take(),
  authenticationSASLContinue: (data: Buffer | string): Buffer => new BackendWriter(128).authenticationSASLContinue(data).take(),
  authenticationSASLFinal: (data: Buffer | string): Buffer => new BackendWriter(128).authenticationSASLFinal(data).take(),
  parameterStatus: (name: string, value: string): Buffer => new BackendWriter(64).parameterStatus(name, value).take(),
  backendKeyData: (processId: number, secretKey: number): Buffer => new BackendWriter(16).backendKeyData(processId, secretKey).take(),
  readyForQuery: (status: TransactionStatus): Buffer => new BackendWriter(8).readyForQuery(status).take(),
  negotiateProtocolVersion: (newestMinor: number, unrecognized: string[]): Buffer =>
    new BackendWriter(64).negotiateProtocolVersion(newestMinor, unrecognized).take(),
  rowDescription: (fields: readonly ColumnDesc[], formats?: readonly number[]): Buffer =>
    new BackendWriter(256).rowDescription(fields, formats).take(),
  dataRow: (row: ReadonlyArray<string | null>): Buffer => new BackendWriter(256).dataRow(row).take(),
  commandComplete: (tag: string): Buffer => new BackendWriter(64).commandComplete(tag).take(),
  emptyQueryResponse: (): Buffer => new BackendWriter(8).emptyQueryResponse().take(),
  errorResponse: (f: NoticeFields): Buffer => new BackendWriter(256).errorResponse(f).take(),
  noticeResponse: (f: NoticeFields): Buffer => new BackendWriter(256).noticeResponse(f).take(),
  parseComplete: (): Buffer => new BackendWriter(8).parseComplete().take(),
  bindComplete: (): Buffer => new BackendWriter(8).bindComplete().take(),
  closeComplete: (): Buffer => new BackendWriter(8).closeComplete().take(),
  noData: (): Buffer => new BackendWriter(8).noData().take(),
  parameterDescription: (oids: readonly number[]): Buffer => new BackendWriter(64).parameterDescription(oids).take(),
  portalSuspended: (): Buffer => new BackendWriter(8).portalSuspended().take(),
};
