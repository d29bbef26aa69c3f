// Binary framing for the node's batch endpoints, and the limits and checks both stores share.
// Pure functions, bytes in / bytes out; all integers are unsigned big-endian (network order).
//
//   keys      (batch get / batch delete request):  u32 count, then per key: u16 keyLen, key bytes
//   entries   (batch put request):                  u32 count, then per entry: u16 keyLen, key bytes,
//                                                                                u32 valueLen, value bytes
//   values    (batch get response):                 u32 count, then per key: u8 present (0|1), u32 len,
//                                                                            value bytes (len is 0 when absent)
//
// Keys are printable ASCII without space (0x21..0x7e), 1..200 bytes, so one char is one byte on the wire.
// Decoders check every length against the bytes that remain and throw WireError (never RangeError) on any
// malformed input; the server answers those with 400. Decoded values are views into the input buffer.

export const MAX_KEY_BYTES = 200;
export const MAX_VALUE_BYTES = 64 * 1024 * 1024;
/** HTTP body limit of the node server; the remote store splits bigger put batches below it. */
export const MAX_BODY_BYTES = 80 * 1024 * 1024;
export const DEFAULT_LIST_LIMIT = 1000;
export const MAX_LIST_LIMIT = 10_000;

/** Malformed wire input: a length that overruns, a bad flag, trailing bytes, an invalid key. */
export class WireError extends Error {
  readonly code = 'BadWire';
}

/** Why `key` is not a valid fragment key, or undefined when it is. */
export function keyProblem(key: unknown): string | undefined {
  if (typeof key !== 'string') return 'key must be a string';
  if (key.length < 1 || key.length > MAX_KEY_BYTES) return `key must be 1..${MAX_KEY_BYTES} bytes`;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return 'key must be printable ASCII without spaces';
  }
  return undefined;
}

/** Why a list `prefix` / `after` is invalid (printable ASCII, 0..200 bytes), or undefined. */
export function boundProblem(name: string, s: unknown): string | undefined {
  if (s === undefined) return undefined;
  if (typeof s !== 'string') return `${name} must be a string`;
  if (s.length === 0) return undefined;
  const p = keyProblem(s);
  return p ? `${name}: ${p.replace(/^key /, '')}` : undefined;
}

/** Why `limit` is invalid, or undefined. Valid limits are integers >= 1 (larger than MAX_LIST_LIMIT is clamped). */
export function limitProblem(limit: unknown): string | undefined {
  if (limit === undefined) return undefined;
  if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1) return 'limit must be an integer >= 1';
  return undefined;
}

export function effectiveLimit(limit: number | undefined): number {
  return Math.min(limit ?? DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT);
}

/** Why a byte range is invalid, or undefined. start and end are integers >= 0; end <= start means empty. */
export function rangeProblem(range: { start: number; end: number } | undefined): string | undefined {
  if (range === undefined) return undefined;
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < 0) {
    return 'range start and end must be integers >= 0';
  }
  return undefined;
}

/** [start, end) clamped to a value of `size` bytes. */
export function clampRange(range: { start: number; end: number }, size: number): [number, number] {
  const s = Math.min(range.start, size);
  return [s, Math.min(Math.max(range.end, s), size)];
}

function checkKeyForWire(key: string): void {
  const p = keyProblem(key);
  if (p) throw new WireError(p);
}

export function encodeKeys(keys: readonly string[]): Buffer {
  let total = 4;
  for (const k of keys) {
    checkKeyForWire(k);
    total += 2 + k.length;
  }
  const out = Buffer.allocUnsafe(total);
  out.writeUInt32BE(keys.length, 0);
  let off = 4;
  for (const k of keys) {
    out.writeUInt16BE(k.length, off);
    off += 2;
    off += out.write(k, off, 'latin1');
  }
  return out;
}

class Reader {
  off = 0;
  constructor(readonly buf: Buffer) {}
  need(n: number, what: string): void {
    if (n > this.buf.length - this.off) throw new WireError(`truncated ${what} at byte ${this.off}`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.off++]!;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.off);
    this.off += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }
  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const v = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return v;
  }
  key(): string {
    const len = this.u16('key length');
    if (len < 1 || len > MAX_KEY_BYTES) throw new WireError(`key length ${len} is outside 1..${MAX_KEY_BYTES}`);
    this.need(len, 'key');
    const k = this.buf.toString('latin1', this.off, this.off + len);
    this.off += len;
    checkKeyForWire(k);
    return k;
  }
  count(minBytesEach: number, what: string): number {
    const n = this.u32(`${what} count`);
    if (n * minBytesEach > this.buf.length - this.off) throw new WireError(`${what} count ${n} exceeds the body`);
    return n;
  }
  end(): void {
    if (this.off !== this.buf.length) throw new WireError(`${this.buf.length - this.off} trailing bytes`);
  }
}

export function decodeKeys(buf: Buffer): string[] {
  const r = new Reader(buf);
  const n = r.count(3, 'key');
  const keys = new Array<string>(n);
  for (let i = 0; i < n; i++) keys[i] = r.key();
  r.end();
  return keys;
}

export function encodeEntries(entries: ReadonlyArray<{ key: string; value: Uint8Array }>): Buffer {
  let total = 4;
  for (const e of entries) {
    checkKeyForWire(e.key);
    if (e.value.length > MAX_VALUE_BYTES) throw new WireError(`value of ${e.value.length} bytes exceeds ${MAX_VALUE_BYTES}`);
    total += 2 + e.key.length + 4 + e.value.length;
  }
  const out = Buffer.allocUnsafe(total);
  out.writeUInt32BE(entries.length, 0);
  let off = 4;
  for (const e of entries) {
    out.writeUInt16BE(e.key.length, off);
    off += 2;
    off += out.write(e.key, off, 'latin1');
    out.writeUInt32BE(e.value.length, off);
    off += 4;
    out.set(e.value, off);
    off += e.value.length;
  }
  return out;
}

/** Bytes encodeEntries would produce for these entries (without the 4-byte count). */
export function entryWireSize(e: { key: string; value: Uint8Array }): number {
  return 2 + e.key.length + 4 + e.value.length;
}

export function decodeEntries(buf: Buffer): Array<{ key: string; value: Buffer }> {
  const r = new Reader(buf);
  const n = r.count(7, 'entry');
  const entries = new Array<{ key: string; value: Buffer }>(n);
  for (let i = 0; i < n; i++) {
    const key = r.key();
    const len = r.u32('value length');
    if (len > MAX_VALUE_BYTES) throw new WireError(`value of ${len} bytes exceeds ${MAX_VALUE_BYTES}`);
    entries[i] = { key, value: r.bytes(len, 'value') };
  }
  r.end();
  return entries;
}

export function encodeValues(values: ReadonlyArray<Uint8Array | undefined>): Buffer {
  let total = 4;
  for (const v of values) total += 5 + (v ? v.length : 0);
  const out = Buffer.allocUnsafe(total);
  out.writeUInt32BE(values.length, 0);
  let off = 4;
  for (const v of values) {
    out[off] = v ? 1 : 0;
    out.writeUInt32BE(v ? v.length : 0, off + 1);
    off += 5;
    if (v) {
      out.set(v, off);
      off += v.length;
    }
  }
  return out;
}

/** Decodes a batch-get response; `expected`, when given, is the number of keys that were asked for. */
export function decodeValues(buf: Buffer, expected?: number): Array<Buffer | undefined> {
  const r = new Reader(buf);
  const n = r.count(5, 'value');
  if (expected !== undefined && n !== expected) throw new WireError(`expected ${expected} values, got ${n}`);
  const values = new Array<Buffer | undefined>(n);
  for (let i = 0; i < n; i++) {
    const present = r.u8('presence flag');
    const len = r.u32('value length');
    if (present === 0) {
      if (len !== 0) throw new WireError('absent value with a non-zero length');
      values[i] = undefined;
    } else if (present === 1) {
      values[i] = r.bytes(len, 'value');
    } else {
      throw new WireError(`presence flag ${present} is not 0 or 1`);
    }
  }
  r.end();
  return values;
}
