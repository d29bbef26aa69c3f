// The batch extension's wire format (POST /<bucket>?sg-batch), bytes in, values out, no I/O.
// Request:  "SGB1" u32 count, then per op: u8 kind (1 put, 2 get, 3 delete), u16 keyLen, key (UTF-8),
//           and for a put: u32 valueLen, value.
// Response: "SGB1" u32 count, then per result: u8 status (0 ok, 1 ok with value, 2 error),
//           value: u32 len, bytes; error: u16 codeLen, code, u16 msgLen, message (UTF-8).

export type WireOp = { op: 'put'; key: string; value: Buffer } | { op: 'get'; key: string } | { op: 'delete'; key: string };
export type WireResult = { ok: true; value?: Buffer } | { ok: false; code: string; message: string };

const MAGIC = Buffer.from('SGB1');
const KIND = { put: 1, get: 2, delete: 3 } as const;
export const MAX_BATCH_OPS = 100_000;

export class BatchCodecError extends Error {
  readonly code = 'MalformedBatch';
}

export function encodeBatchRequest(ops: WireOp[]): Buffer {
  let size = 8;
  const keys = ops.map((o) => Buffer.from(o.key, 'utf8'));
  ops.forEach((o, i) => {
    size += 3 + keys[i]!.length + (o.op === 'put' ? 4 + o.value.length : 0);
  });
  const out = Buffer.allocUnsafe(size);
  MAGIC.copy(out, 0);
  out.writeUInt32BE(ops.length, 4);
  let p = 8;
  ops.forEach((o, i) => {
    const k = keys[i]!;
    if (k.length > 0xffff) throw new BatchCodecError(`key too long: ${k.length} bytes`);
    out[p++] = KIND[o.op];
    out.writeUInt16BE(k.length, p);
    p += 2;
    k.copy(out, p);
    p += k.length;
    if (o.op === 'put') {
      out.writeUInt32BE(o.value.length, p);
      p += 4;
      o.value.copy(out, p);
      p += o.value.length;
    }
  });
  return out;
}

class Reader {
  p = 0;
  constructor(readonly b: Buffer) {}
  need(n: number): void {
    if (this.p + n > this.b.length) throw new BatchCodecError(`batch body truncated at byte ${this.p}`);
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
  u32(): number {
    this.need(4);
    const v = this.b.readUInt32BE(this.p);
    this.p += 4;
    return v;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const v = this.b.subarray(this.p, this.p + n);
    this.p += n;
    return v;
  }
  header(): number {
    if (!this.bytes(4).equals(MAGIC)) throw new BatchCodecError('not a securegrid batch (bad magic)');
    const n = this.u32();
    if (n > MAX_BATCH_OPS) throw new BatchCodecError(`batch of ${n} operations exceeds the limit of ${MAX_BATCH_OPS}`);
    return n;
  }
  end(): void {
    if (this.p !== this.b.length) throw new BatchCodecError(`${this.b.length - this.p} trailing bytes after the batch`);
  }
}

export function decodeBatchRequest(body: Buffer): WireOp[] {
  const r = new Reader(body);
  const n = r.header();
  const ops: WireOp[] = [];
  for (let i = 0; i < n; i++) {
    const kind = r.u8();
    const key = r.bytes(r.u16()).toString('utf8');
    if (kind === KIND.put) ops.push({ op: 'put', key, value: Buffer.from(r.bytes(r.u32())) });
    else if (kind === KIND.get) ops.push({ op: 'get', key });
    else if (kind === KIND.delete) ops.push({ op: 'delete', key });
    else throw new BatchCodecError(`unknown batch operation kind ${kind} at op ${i}`);
  }
  r.end();
  return ops;
}

export function encodeBatchResponse(results: WireResult[]): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.allocUnsafe(8);
  MAGIC.copy(head, 0);
  head.writeUInt32BE(results.length, 4);
  parts.push(head);
  for (const r of results) {
    if (r.ok && r.value === undefined) parts.push(Buffer.from([0]));
    else if (r.ok) {
      const h = Buffer.allocUnsafe(5);
      h[0] = 1;
      h.writeUInt32BE(r.value!.length, 1);
      parts.push(h, r.value!);
    } else {
      const code = Buffer.from(r.code, 'utf8').subarray(0, 0xffff);
      const msg = Buffer.from(r.message, 'utf8').subarray(0, 0xffff);
      const h = Buffer.allocUnsafe(3);
      h[0] = 2;
      h.writeUInt16BE(code.length, 1);
      const m = Buffer.allocUnsafe(2);
      m.writeUInt16BE(msg.length, 0);
      parts.push(h, code, m, msg);
    }
  }
  return Buffer.concat(parts);
}

export function decodeBatchResponse(body: Buffer): WireResult[] {
  const r = new Reader(body);
  const n = r.header();
  const out: WireResult[] = [];
  for (let i = 0; i < n; i++) {
    const s = r.u8();
    if (s === 0) out.push({ ok: true });
    else if (s === 1) out.push({ ok: true, value: Buffer.from(r.bytes(r.u32())) });
    else if (s === 2) {
      const code = r.bytes(r.u16()).toString('utf8');
      const message = r.bytes(r.u16()).toString('utf8');
      out.push({ ok: false, code, message });
    } else throw new BatchCodecError(`unknown result status ${s} at ${i}`);
  }
  r.end();
  return out;
}

// Scan pages (GET /<bucket>?sg-scan&start=<hex>&end=<hex>&limit=N): "SGS1" u32 count, then per entry
// u16 keyLen, key (UTF-8), u32 valueLen, value.
const SCAN_MAGIC = Buffer.from('SGS1');

export function encodeScanResponse(entries: Array<{ key: string; value: Buffer }>): Buffer {
  const keys = entries.map((e) => Buffer.from(e.key, 'utf8'));
  let size = 8;
  entries.forEach((e, i) => (size += 6 + keys[i]!.length + e.value.length));
  const out = Buffer.allocUnsafe(size);
  SCAN_MAGIC.copy(out, 0);
  out.writeUInt32BE(entries.length, 4);
  let p = 8;
  entries.forEach((e, i) => {
    const k = keys[i]!;
    out.writeUInt16BE(k.length, p);
    k.copy(out, p + 2);
    p += 2 + k.length;
    out.writeUInt32BE(e.value.length, p);
    e.value.copy(out, p + 4);
    p += 4 + e.value.length;
  });
  return out;
}

export function decodeScanResponse(body: Buffer): Array<{ key: string; value: Buffer }> {
  const r = new Reader(body);
  if (!r.bytes(4).equals(SCAN_MAGIC)) throw new BatchCodecError('not a securegrid scan page (bad magic)');
  const n = r.u32();
  const out: Array<{ key: string; value: Buffer }> = [];
  for (let i = 0; i < n; i++) {
    const key = r.bytes(r.u16()).toString('utf8');
    out.push({ key, value: Buffer.from(r.bytes(r.u32())) });
  }
  r.end();
  return out;
}
