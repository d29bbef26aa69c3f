// The gateway's own trusted state, in LMDB under <data>/gateway/meta: buckets, the ordered object index
// (the namespace; storage nodes never see a name), API keys, multipart uploads, and the id → owner map used
// to collect orphaned fragments. Several processes (the gateway and `securegrid kvs keys create`) may open it.
import { open, type Database, type RootDatabase } from 'lmdb';
import { Packr } from 'msgpackr';
import { mkdirSync } from 'node:fs';
import type { PackRef } from './pack.js';

export interface StripeInfo {
  /** Ciphertext bytes in this stripe. */
  len: number;
  /** Shard length (ec/hybrid) or len (replicate). */
  shard: number;
  /** 16-byte truncated SHA-256 of each fragment, concatenated in fragment order. */
  sums: Buffer;
}

export interface PartLayout {
  /** Opaque id naming this part's fragments on the nodes. */
  id: string;
  /** Node ids, in fragment order. */
  nodes: string[];
  /** Plaintext bytes. */
  size: number;
  /** Data key wrapped under the tenant master key. */
  wrappedKey: Buffer;
  stripes: StripeInfo[];
  /** Hex MD5 of the part's plaintext. */
  md5: string;
}

export interface ObjectMeta {
  id: string;
  version: number;
  tenant: string;
  bucket: string;
  key: string;
  policy: string;
  storageClass: string;
  size: number;
  etag: string;
  lastModified: number;
  contentType?: string;
  userMeta?: Record<string, string>;
  /** Empty for a member of a pack: its bytes are in the pack, where `pack` says. */
  parts: PartLayout[];
  pack?: PackRef;
}

/** A pack: many small objects of one batch stored as one encrypted, encoded, placed part (see pack.ts). */
export interface PackRecord {
  id: string;
  tenant: string;
  bucket: string;
  policy: string;
  created: number;
  /** The pack's ciphertext layout (id = the pack id; size = plaintext bytes of all members). */
  layout: PartLayout;
  members: number;
  /** Members still referenced by the index, and their plaintext bytes: the rest is garbage for compaction. */
  live: number;
  liveBytes: number;
}

export interface BucketRecord {
  name: string;
  tenant: string;
  created: number;
  /** Default policy for objects that name no storage class. */
  policy: string;
}

export interface AccessKeyRecord {
  tenant: string;
  sealedSecret: Buffer;
  created: number;
  disabled?: boolean;
}

export interface UploadRecord {
  uploadId: string;
  tenant: string;
  bucket: string;
  key: string;
  initiated: number;
  policy: string;
  storageClass: string;
  contentType?: string;
  userMeta?: Record<string, string>;
}

export interface UploadPartRecord {
  partNumber: number;
  etag: string;
  lastModified: number;
  layout: PartLayout;
}

/** Who owns an id on the storage nodes: an object (bucket+key) or an in-progress multipart upload. */
export type IdOwner = { bucket: string; key: string } | { upload: string } | { pack: string };

const SEP = 0;

export function objectKey(bucket: string, key: string): Buffer {
  const bl = Buffer.byteLength(bucket);
  const b = Buffer.allocUnsafe(bl + 1 + Buffer.byteLength(key));
  b.write(bucket, 0, 'utf8');
  b[bl] = SEP;
  b.write(key, bl + 1, 'utf8');
  return b;
}

export function partKey(uploadId: string, partNumber: number): Buffer {
  const b = Buffer.alloc(Buffer.byteLength(uploadId) + 5);
  b.write(uploadId, 0, 'utf8');
  b[b.length - 5] = SEP;
  b.writeUInt32BE(partNumber, b.length - 4);
  return b;
}

// Index entries of pack members are written thousands at a time: a fixed binary layout (first byte 0xC1, which
// MessagePack never uses) instead of MessagePack; every other entry stays MessagePack, as lmdb-js writes it.
//   0xC1 ‖ 1 ‖ version f64 ‖ lastModified f64 ‖ size u32 ‖ md5 etag (16) ‖ pack id (16) ‖ member no u32 ‖
//   s, bo, bl, bn, o, n (u32 each) ‖ tenant, bucket, key, policy, storageClass (u16 length ‖ UTF-8 each)
const COMPACT = 0xc1;
const FIXED = 82;
const msgpack = new Packr({ copyBuffers: true });
const encodedMeta = new WeakMap<ObjectMeta, Buffer>();
const HEX32 = /^[0-9a-f]{32}$/;
const ETAG = /^"([0-9a-f]{32})"$/;
const U32 = 0x1_0000_0000;

function compactable(m: ObjectMeta): number {
  const p = m.pack;
  if (!p || m.parts.length !== 0 || m.contentType !== undefined || m.userMeta !== undefined || !HEX32.test(p.id) || !ETAG.test(m.etag)) return -1;
  const dash = m.id.lastIndexOf('-');
  const no = Number(m.id.slice(dash + 1));
  if (m.id.slice(0, dash) !== p.id || !Number.isInteger(no) || no < 0 || no >= U32) return -1;
  for (const n of [m.size, p.s, p.bo, p.bl, p.bn, p.o, p.n]) if (!Number.isInteger(n) || n < 0 || n >= U32) return -1;
  return no;
}

/** An index entry as stored (cached per object, so a pack's entries are encoded once for the index and its copy). */
export function encodeObjectMeta(m: ObjectMeta): Buffer {
  const hit = encodedMeta.get(m);
  if (hit) return hit;
  const no = compactable(m);
  let out: Buffer;
  const strs = no < 0 ? [] : [m.tenant, m.bucket, m.key, m.policy, m.storageClass].map((x) => Buffer.from(x, 'utf8'));
  if (no < 0 || strs.some((b) => b.length > 0xffff)) out = msgpack.pack(m);
  else {
    const p = m.pack!;
    out = Buffer.allocUnsafe(FIXED + strs.reduce((a, b) => a + 2 + b.length, 0));
    out[0] = COMPACT;
    out[1] = 1;
    out.writeDoubleBE(m.version, 2);
    out.writeDoubleBE(m.lastModified, 10);
    out.writeUInt32BE(m.size, 18);
    out.write(m.etag.slice(1, 33), 22, 'hex');
    out.write(p.id, 38, 'hex');
    out.writeUInt32BE(no, 54);
    let at = 58;
    for (const n of [p.s, p.bo, p.bl, p.bn, p.o, p.n]) at = out.writeUInt32BE(n, at);
    for (const b of strs) {
      at = out.writeUInt16BE(b.length, at);
      at += b.copy(out, at);
    }
  }
  encodedMeta.set(m, out);
  return out;
}

/**
 * The index entries of a new pack's members, which share tenant, bucket, policy and storage class and whose ids
 * are `<pack id>-<j>` (as preparePack makes them): encoded in one go, the shared fields once.
 */
export function encodePackMembers(metas: readonly ObjectMeta[], digests?: readonly Buffer[]): Buffer[] {
  return encodePackMemberBlob(metas, digests).entries;
}

/**
 * encodePackMembers, the entries laid end to end in one buffer (`blob`, whose slices the entries are) when they
 * all take the compact layout — self-delimiting, so the blob alone is the sealed copy's member list. `digests[j]`,
 * when given, is the raw MD5 that metas[j].etag spells (saves parsing the hex back).
 */
export function encodePackMemberBlob(metas: readonly ObjectMeta[], digests?: readonly Buffer[]): { entries: Buffer[]; blob?: Buffer } {
  const m0 = metas[0];
  const uniform = (): boolean => {
    if (!m0 || compactable(m0) < 0) return false;
    for (let j = 0; j < metas.length; j++) {
      const m = metas[j]!;
      if (m.tenant !== m0.tenant || m.bucket !== m0.bucket || m.policy !== m0.policy || m.storageClass !== m0.storageClass || m.pack?.id !== m0.pack!.id || m.id !== `${m0.pack!.id}-${j}`) return false;
      if (m.contentType !== undefined || m.userMeta !== undefined || m.parts.length !== 0 || (!digests && !ETAG.test(m.etag))) return false;
    }
    return true;
  };
  if (!uniform()) return { entries: metas.map(encodeObjectMeta) };
  const head = [m0!.tenant, m0!.bucket].map((x) => Buffer.from(x, 'utf8'));
  const tail = [m0!.policy, m0!.storageClass].map((x) => Buffer.from(x, 'utf8'));
  if ([...head, ...tail].some((b) => b.length > 0xffff)) return { entries: metas.map(encodeObjectMeta) };
  const keyLens = metas.map((m) => Buffer.byteLength(m.key));
  if (keyLens.some((n) => n > 0xffff)) return { entries: metas.map(encodeObjectMeta) };
  // The bytes every entry shares (tenant, bucket; policy, storage class; the pack id) are laid out once.
  const headBytes = Buffer.concat(head.flatMap((b) => [u16(b.length), b]));
  const tailBytes = Buffer.concat(tail.flatMap((b) => [u16(b.length), b]));
  const packId = Buffer.from(m0!.pack!.id, 'hex');
  let total = 0;
  for (const n of keyLens) total += FIXED + headBytes.length + 2 + n + tailBytes.length;
  const blob = Buffer.allocUnsafe(total);
  const entries: Buffer[] = new Array(metas.length);
  let at = 0;
  for (let j = 0; j < metas.length; j++) {
    const m = metas[j]!;
    const p = m.pack!;
    const start = at;
    blob[at] = COMPACT;
    blob[at + 1] = 1;
    blob.writeDoubleBE(m.version, at + 2);
    blob.writeDoubleBE(m.lastModified, at + 10);
    blob.writeUInt32BE(m.size, at + 18);
    if (digests) digests[j]!.copy(blob, at + 22, 0, 16);
    else blob.write(m.etag.slice(1, 33), at + 22, 'hex');
    packId.copy(blob, at + 38);
    blob.writeUInt32BE(j, at + 54);
    blob.writeUInt32BE(p.s, at + 58);
    blob.writeUInt32BE(p.bo, at + 62);
    blob.writeUInt32BE(p.bl, at + 66);
    blob.writeUInt32BE(p.bn, at + 70);
    blob.writeUInt32BE(p.o, at + 74);
    blob.writeUInt32BE(p.n, at + 78);
    at += FIXED;
    at += headBytes.copy(blob, at);
    at = blob.writeUInt16BE(keyLens[j]!, at);
    at += blob.write(m.key, at, 'utf8');
    at += tailBytes.copy(blob, at);
    entries[j] = blob.subarray(start, at);
  }
  return { entries, blob };
}

function u16(n: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(n, 0);
  return b;
}

/** The entries of a member blob (encodePackMemberBlob), in order. */
export function decodePackMemberBlob(blob: Buffer): ObjectMeta[] {
  const out: ObjectMeta[] = [];
  let at = 0;
  while (at < blob.length) {
    if (blob[at] !== COMPACT) throw new Error('a pack member list holds compact entries only');
    let end = at + FIXED;
    for (let f = 0; f < 5; f++) end += 2 + blob.readUInt16BE(end);
    out.push(decodeObjectMeta(blob.subarray(at, end)));
    at = end;
  }
  return out;
}

export function decodeObjectMeta(bytes: Uint8Array, size?: unknown): ObjectMeta {
  const len = typeof size === 'number' ? size : bytes.length;
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b[0] !== COMPACT) return msgpack.unpack(b.subarray(0, len)) as ObjectMeta;
  if (b[1] !== 1) throw new Error(`index entry format ${b[1]} is not known to this version`);
  const id = b.toString('hex', 38, 54);
  const r = (o: number) => b.readUInt32BE(o);
  let at = FIXED;
  const str = () => {
    const n = b.readUInt16BE(at);
    const v = b.toString('utf8', at + 2, at + 2 + n);
    at += 2 + n;
    return v;
  };
  const tenant = str();
  const bucket = str();
  const key = str();
  const policy = str();
  const storageClass = str();
  return {
    id: `${id}-${r(54)}`,
    version: b.readDoubleBE(2),
    tenant,
    bucket,
    key,
    policy,
    storageClass,
    size: r(18),
    etag: `"${b.toString('hex', 22, 38)}"`,
    lastModified: b.readDoubleBE(10),
    parts: [],
    pack: { id, s: r(58), bo: r(62), bl: r(66), bn: r(70), o: r(74), n: r(78) },
  };
}

export class MetaStore {
  readonly root: RootDatabase;
  readonly buckets: Database<BucketRecord, string>;
  readonly objects: Database<ObjectMeta, Buffer>;
  readonly accessKeys: Database<AccessKeyRecord, string>;
  readonly uploads: Database<UploadRecord, string>;
  readonly uploadParts: Database<UploadPartRecord, Buffer>;
  readonly ids: Database<IdOwner, string>;
  readonly packs: Database<PackRecord, string>;
  readonly settings: Database<unknown, string>;

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true });
    // overlappingSync off: a commit resolves only after it is flushed, so an acknowledged write survives a crash.
    this.root = open({ path: dir, maxDbs: 16, compression: false, overlappingSync: false, noSync: false, noMetaSync: false });
    this.buckets = this.root.openDB({ name: 'buckets' });
    this.objects = this.root.openDB({ name: 'objects', keyEncoding: 'binary', ...({ encoder: { encode: encodeObjectMeta, decode: decodeObjectMeta } } as object) });
    this.accessKeys = this.root.openDB({ name: 'access-keys' });
    this.uploads = this.root.openDB({ name: 'uploads' });
    this.uploadParts = this.root.openDB({ name: 'upload-parts', keyEncoding: 'binary' });
    this.ids = this.root.openDB({ name: 'ids' });
    this.packs = this.root.openDB({ name: 'packs' });
    this.settings = this.root.openDB({ name: 'settings' });
  }

  /** Runs fn in one durable write transaction across all tables. */
  transaction<T>(fn: () => T): Promise<T> {
    return this.root.transaction(fn);
  }

  async close(): Promise<void> {
    await this.root.close();
  }
}
