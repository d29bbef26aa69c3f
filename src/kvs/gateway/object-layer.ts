// The object layer: everything between an S3 request and the storage nodes. It encrypts (crypto/), encodes
// (erasure/), places fragments (placement.ts) and reaches storage only through FragmentStore, as MinIO's
// erasure layer reaches disks only through StorageAPI. Nothing becomes visible before its fragments are
// durable on a write quorum of nodes; the index commit (one LMDB transaction) is the moment of visibility.
import { createHash, hash, randomBytes } from 'node:crypto';
import { freshRandom } from '../../crypto/index.js';
import { asBinary } from 'lmdb';
import { pack, unpack } from 'msgpackr';
import {
  CHUNK_SIZE,
  TAG_SIZE,
  ChunkEncryptor,
  CryptoError,
  chunkSpan,
  decryptChunks,
  newDataKey,
  seal,
  unseal,
  unwrapKey,
  wrapKey,
  type KeyProvider,
} from '../../crypto/index.js';
import {
  dataShardSpans,
  decodeStripe,
  encodeStripe,
  formatPolicy,
  parsePolicy,
  policyWidth,
  readQuorumMet,
  rebuildFragments,
  writeQuorum,
  type Policy,
} from '../erasure/index.js';
import { NodeUnavailableError, type FragmentEntry, type FragmentStore } from '../node/index.js';
import type { Logger, Metrics } from '../../observe/index.js';
import { idTime, newId, nextVersion } from './clock.js';
import {
  decodeObjectMeta,
  encodePackMemberBlob,
  decodePackMemberBlob,
  objectKey,
  partKey,
  type BucketRecord,
  type IdOwner,
  type MetaStore,
  type ObjectMeta,
  type PackRecord,
  type PartLayout,
  type StripeInfo,
  type UploadPartRecord,
  type UploadRecord,
} from './meta-store.js';
import { buildPack, openBlock, PACK_MAX_BYTES, PACK_MAX_VALUE, type PackRef } from './pack.js';
import { placeFragments } from './placement.js';
import { s3Error, S3Error } from './s3-xml.js';

/** A stripe is 16 sealed chunks: 1 MiB of plaintext. Stripe boundaries fall on chunk boundaries. */
export const STRIPE_CHUNKS = 16;
const SEALED_CHUNK = CHUNK_SIZE + TAG_SIZE;
const STRIPE_CIPHER = STRIPE_CHUNKS * SEALED_CHUNK;
const SUM_LEN = 16;
/** Orphaned fragments younger than this are left alone: they may belong to a write in flight. */
const ORPHAN_GRACE_MS = 60 * 60 * 1000;

export interface ObjectLayerOptions {
  meta: MetaStore;
  nodes: FragmentStore[];
  keys: KeyProvider;
  /** Policy of buckets created without one. */
  defaultPolicy: Policy;
  /** Largest object accepted by a single PUT or a multipart upload (bytes). */
  maxObjectSize: number;
  /** Smallest part (but the last) a multipart upload accepts; S3's is 5 MiB. */
  minPartSize: number;
  storageClassPolicy: (cls: string) => Policy | undefined;
  log: Logger;
  metrics: Metrics;
  /** Plaintext bytes of decrypted pack blocks kept in (trusted) gateway memory for reads; 0 disables. Default 32 MiB. */
  blockCacheBytes?: number;
  /** Single PUTs of at most this many bytes (and a known size) share packs with concurrent ones; 0 disables. */
  groupPutMax?: number;
}

/** Single PUTs up to this size are group-committed into shared packs (see groupPut). */
export const GROUP_PUT_MAX = 16 * 1024;
/** Group commits in flight per (tenant, bucket, policy, storage class): 1 measured cheapest per PUT (bigger groups) at no loss of rate. */
const GROUP_INFLIGHT = 1;
/** Members of one group commit at most (besides PACK_MAX_BYTES). */
const GROUP_MAX_MEMBERS = 4096;
/** Pack blocks larger than this are not cached (a cache of small values, not a second copy of big ones). */
const CACHE_BLOCK_MAX = 16 * 1024;

export interface PutOptions {
  policy?: Policy;
  storageClass?: string;
  contentType?: string;
  userMeta?: Record<string, string>;
  /** Called once the body is read (and, for large bodies, durable), before it becomes visible; throw to abandon the write. */
  beforeCommit?: (info: { md5: Buffer; size: number }) => void | Promise<void>;
  /** The body's length when known in advance: a small body then shares a pack with concurrent PUTs (group commit). */
  size?: number;
}

/** A small single PUT waiting for its group commit. */
interface PendingPut {
  key: string;
  value: Buffer;
  version: number;
  md5: Buffer;
  contentType?: string;
  userMeta?: Record<string, string>;
  resolve: (m: ObjectMeta) => void;
  reject: (err: unknown) => void;
}

/** Small single PUTs of one tenant, bucket, policy and storage class, committed together (one pack each time). */
interface PutGroup {
  tenant: string;
  bucket: string;
  policy: Policy;
  storageClass: string;
  pending: PendingPut[];
  bytes: number;
  inflight: number;
  scheduled: boolean;
}

export interface ListOptions {
  prefix?: string;
  delimiter?: string;
  startAfter?: string;
  /** Continue past every key that starts with this (a common prefix returned on the previous page). */
  afterPrefix?: string;
  maxKeys?: number;
}

export interface ListResult {
  contents: ObjectMeta[];
  commonPrefixes: string[];
  isTruncated: boolean;
  /** The last key or common prefix returned; continue after it. */
  nextAfter?: string;
  nextIsPrefix?: boolean;
}

export type BatchOp = { op: 'put'; key: string; value: Buffer } | { op: 'get'; key: string } | { op: 'delete'; key: string };
export type BatchResult = { ok: true; value?: Buffer } | { ok: false; code: string; message: string };

export interface HealReport {
  objects: number;
  fragmentsChecked: number;
  missing: number;
  corrupt: number;
  rebuilt: number;
  unrecoverable: number;
  unreachable: number;
  orphansRemoved: number;
  /** Packs whose live members were rewritten into new packs by compaction (healAll). */
  packsCompacted?: number;
}

export function emptyHealReport(): HealReport {
  return { objects: 0, fragmentsChecked: 0, missing: 0, corrupt: 0, rebuilt: 0, unrecoverable: 0, unreachable: 0, orphansRemoved: 0 };
}

function sum16(b: Buffer): Buffer {
  return createHash('sha256').update(b).digest().subarray(0, SUM_LEN);
}

function fragKey(partId: string, stripe: number, frag: number): string {
  return `${partId}.${stripe}.${frag}`;
}

function metaCopyKey(objectId: string): string {
  return `${objectId}.meta`;
}

function partAad(partId: string): Buffer {
  return Buffer.from(`securegrid/part/${partId}`);
}

function wrapAad(tenant: string, partId: string): Buffer {
  return Buffer.from(`securegrid/key/${tenant}/${partId}`);
}

/** Which fragment indexes count toward the write quorum, and which hold exact replicas. */
function fragmentRoles(p: Policy): { quorum: number[]; replicas: number[]; shards: number[] } {
  const width = policyWidth(p);
  const all = Array.from({ length: width }, (_, i) => i);
  if (p.kind === 'replicate') return { quorum: all, replicas: all, shards: [] };
  if (p.kind === 'ec') return { quorum: all, replicas: [], shards: all };
  const shards = all.slice(p.r);
  return { quorum: shards, replicas: all.slice(0, p.r), shards };
}

function dataShardCount(p: Policy): number {
  return p.kind === 'ec' ? p.k : p.kind === 'hybrid' ? p.k : 1;
}

/** Encodes each stripe of ciphertext under the policy: fragments and their checksums. */
async function encodeStripes(policy: Policy, cipherStripes: Buffer[]): Promise<{ infos: StripeInfo[]; frags: Buffer[][] }> {
  const infos: StripeInfo[] = [];
  const frags: Buffer[][] = [];
  for (const cipher of cipherStripes) {
    const { shardLen, fragments } = await encodeStripe(policy, cipher);
    const sums = Buffer.alloc(SUM_LEN * fragments.length);
    let prev: Buffer | undefined;
    let prevSum: Buffer | undefined;
    fragments.forEach((f, i) => {
      // Replicas are one Buffer: hash it once.
      if (f !== prev) prevSum = sum16(f);
      prev = f;
      prevSum!.copy(sums, i * SUM_LEN);
    });
    infos.push({ len: cipher.length, shard: shardLen, sums });
    frags.push(fragments);
  }
  return { infos, frags };
}

const parsedPolicies = new Map<string, Policy>();

/** parsePolicy, remembered per text (hot read paths parse the same few policies per request). */
function policyOf(text: string): Policy {
  let p = parsedPolicies.get(text);
  if (!p) {
    p = parsePolicy(text);
    if (parsedPolicies.size < 1024) parsedPolicies.set(text, p);
  }
  return p;
}

async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

/** A whole (small) body in one Buffer. */
async function readBody(body: AsyncIterable<Buffer>, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += c.length;
    if (n > limit) throw s3Error('EntityTooLarge', `Your proposed upload exceeds the maximum allowed object size of ${limit} bytes.`);
    chunks.push(c);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

/** One value for a new pack (a batch put, a group-committed PUT, or a compaction move). */
interface PackMemberInput {
  key: string;
  value: Buffer;
  version: number;
  /** Its MD5 when already known (saves hashing it again). */
  md5?: Buffer;
  contentType?: string;
  userMeta?: Record<string, string>;
}

export class ObjectLayer {
  private readonly byId = new Map<string, FragmentStore>();
  private readonly nodeIds: string[];
  private readonly healQueue = new Set<string>();
  private readonly m: {
    fragmentWrites: ReturnType<Metrics['counter']>;
    fragmentFailures: ReturnType<Metrics['counter']>;
    degradedReads: ReturnType<Metrics['counter']>;
    corruptFragments: ReturnType<Metrics['counter']>;
    bytesIn: ReturnType<Metrics['counter']>;
    bytesOut: ReturnType<Metrics['counter']>;
    healed: ReturnType<Metrics['counter']>;
  };

  constructor(readonly opts: ObjectLayerOptions) {
    for (const n of opts.nodes) {
      if (this.byId.has(n.id)) throw new Error(`storage node ${n.id} is listed twice`);
      this.byId.set(n.id, n);
    }
    this.nodeIds = [...this.byId.keys()];
    const mt = opts.metrics;
    this.m = {
      fragmentWrites: mt.counter('kvs_fragment_writes_total', 'Fragments written to storage nodes'),
      fragmentFailures: mt.counter('kvs_fragment_failures_total', 'Fragment operations that failed, by kind', ['kind']),
      degradedReads: mt.counter('kvs_degraded_reads_total', 'Stripes read by decoding because a fragment was missing or bad'),
      corruptFragments: mt.counter('kvs_corrupt_fragments_total', 'Fragments whose checksum did not match'),
      bytesIn: mt.counter('kvs_plaintext_bytes_in_total', 'Object bytes written by clients'),
      bytesOut: mt.counter('kvs_plaintext_bytes_out_total', 'Object bytes read by clients'),
      healed: mt.counter('kvs_fragments_healed_total', 'Fragments rebuilt by healing'),
    };
  }

  get nodes(): readonly FragmentStore[] {
    return this.opts.nodes;
  }

  // ---------------------------------------------------------------- buckets

  async createBucket(tenant: string, name: string, policy?: Policy): Promise<void> {
    const p = formatPolicy(policy ?? this.opts.defaultPolicy);
    this.checkPlaceable(parsePolicy(p));
    const meta = this.opts.meta;
    const outcome = await meta.transaction(() => {
      const existing = meta.buckets.get(name);
      if (existing) return existing.tenant === tenant ? 'mine' : 'theirs';
      meta.buckets.put(name, { name, tenant, created: Date.now(), policy: p });
      return 'created';
    });
    this.bucketCache.delete(name);
    if (outcome === 'mine') throw s3Error('BucketAlreadyOwnedByYou');
    if (outcome === 'theirs') throw s3Error('BucketAlreadyExists');
  }

  /** Unwrapped data keys of recently read parts (a part's key never changes; bounded). */
  private readonly dataKeys = new Map<string, Buffer>();

  private dataKey(master: Buffer, tenant: string, part: PartLayout): Buffer {
    let k = this.dataKeys.get(part.id);
    if (!k) {
      k = unwrapKey(master, part.wrappedKey, wrapAad(tenant, part.id));
      this.rememberKey(part.id, k);
    }
    return k;
  }

  private rememberKey(id: string, k: Buffer): void {
    if (this.dataKeys.size >= 50_000) this.dataKeys.delete(this.dataKeys.keys().next().value!);
    this.dataKeys.set(id, k);
  }

  /** Pack records by id (their layout never changes; the live counts here may be stale and are not used). */
  private readonly packCache = new Map<string, PackRecord>();

  private packRecord(id: string): PackRecord | undefined {
    let p = this.packCache.get(id);
    if (!p) {
      p = this.opts.meta.packs.get(id);
      if (!p) return undefined;
      if (this.packCache.size >= 20_000) this.packCache.delete(this.packCache.keys().next().value!);
      this.packCache.set(id, p);
    }
    return p;
  }

  /** Bucket records change rarely: kept for a second, so hot paths skip an LMDB read and decode. */
  private readonly bucketCache = new Map<string, { b: BucketRecord | undefined; at: number }>();

  bucket(tenant: string, name: string): BucketRecord {
    const now = Date.now();
    let hit = this.bucketCache.get(name);
    if (!hit || now - hit.at > 1000) {
      hit = { b: this.opts.meta.buckets.get(name), at: now };
      if (this.bucketCache.size > 10_000) this.bucketCache.clear();
      this.bucketCache.set(name, hit);
    }
    const b = hit.b;
    if (!b) throw s3Error('NoSuchBucket', undefined, { BucketName: name });
    if (b.tenant !== tenant) throw s3Error('AccessDenied');
    return b;
  }

  listBuckets(tenant: string): BucketRecord[] {
    const out: BucketRecord[] = [];
    for (const { value } of this.opts.meta.buckets.getRange({})) if (value.tenant === tenant) out.push(value);
    return out;
  }

  async deleteBucket(tenant: string, name: string): Promise<void> {
    this.bucket(tenant, name);
    const meta = this.opts.meta;
    const prefix = objectKey(name, '');
    const ok = await meta.transaction(() => {
      for (const { key } of meta.objects.getRange({ start: prefix, limit: 1 })) if (key.subarray(0, prefix.length).equals(prefix)) return false;
      for (const { value } of meta.uploads.getRange({})) if (value.bucket === name) return false;
      meta.buckets.remove(name);
      return true;
    });
    this.bucketCache.delete(name);
    if (!ok) throw s3Error('BucketNotEmpty', undefined, { BucketName: name });
  }

  // ---------------------------------------------------------------- objects

  head(tenant: string, bucket: string, key: string): ObjectMeta {
    this.bucket(tenant, bucket);
    const m = this.opts.meta.objects.get(objectKey(bucket, key));
    if (!m) throw s3Error('NoSuchKey', undefined, { Key: key });
    return m;
  }

  policyFor(b: BucketRecord, storageClass?: string, policy?: Policy): { policy: Policy; storageClass: string } {
    if (policy) return { policy, storageClass: storageClass ?? `SG-${formatPolicy(policy).toUpperCase()}` };
    if (storageClass) {
      const p = this.opts.storageClassPolicy(storageClass);
      if (!p) throw s3Error('InvalidStorageClass', `The storage class ${storageClass} is not known; see the README for the mapping.`);
      this.checkPlaceable(p);
      return { policy: p, storageClass: storageClass.toUpperCase() };
    }
    const p = parsePolicy(b.policy);
    const std = this.opts.storageClassPolicy('STANDARD');
    return { policy: p, storageClass: std && formatPolicy(std) === b.policy ? 'STANDARD' : `SG-${b.policy.toUpperCase()}` };
  }

  private checkPlaceable(p: Policy): void {
    const w = policyWidth(p);
    if (w > this.nodeIds.length) {
      throw s3Error('InvalidStorageClass', `policy ${formatPolicy(p)} needs ${w} storage nodes; this KVS has ${this.nodeIds.length}`);
    }
  }

  /** Streams the body in, encrypts, encodes and stores it, then makes it visible. */
  async putObject(tenant: string, bucket: string, key: string, body: AsyncIterable<Buffer>, o: PutOptions = {}): Promise<ObjectMeta> {
    const b = this.bucket(tenant, bucket);
    const { policy, storageClass } = this.policyFor(b, o.storageClass, o.policy);
    const version = nextVersion();
    const groupMax = this.opts.groupPutMax ?? GROUP_PUT_MAX;
    if (o.size !== undefined && o.size > 0 && o.size <= groupMax) {
      const value = await readBody(body, this.opts.maxObjectSize);
      if (value.length > 0 && value.length <= groupMax) {
        const md5 = hash('md5', value, 'buffer') as unknown as Buffer;
        await o.beforeCommit?.({ md5, size: value.length });
        const meta = await this.groupPut(tenant, bucket, policy, storageClass, { key, value, version, md5, contentType: o.contentType, userMeta: o.userMeta });
        this.m.bytesIn.inc(meta.size);
        return meta;
      }
      // Not the size announced: the general path (and its checks) takes it.
      body = once(value);
    }
    const id = newId(version, freshRandom(8));
    const base = { id, version, tenant, bucket, key, policy: formatPolicy(policy), storageClass, contentType: o.contentType, userMeta: o.userMeta };
    let meta: ObjectMeta | undefined;
    await this.writePart(tenant, id, policy, body, this.opts.maxObjectSize, async (part, digest) => {
      await o.beforeCommit?.({ md5: digest, size: part.size });
      meta = { ...base, size: part.size, etag: `"${digest.toString('hex')}"`, lastModified: Date.now(), parts: [part] };
      return await this.metaCopy(meta);
    });
    if (!meta) throw new Error('object written without metadata');
    await this.commit([{ bucket, key, meta }]);
    this.m.bytesIn.inc(meta.size);
    return meta;
  }

  /** Group commits of small single PUTs, by tenant, bucket, policy and storage class. */
  private readonly putGroups = new Map<string, PutGroup>();

  /**
   * Group commit: a small PUT joins the PUTs of the same tenant, bucket, policy and storage class that arrive in
   * the same event-loop turn or while earlier groups are being written; each group becomes one pack (one data
   * key, placement, sealed metadata copy, one durable write per node) and one index transaction. The promise
   * resolves only once the group is durable on a write quorum and visible, and rejects if the group fails.
   */
  private groupPut(tenant: string, bucket: string, policy: Policy, storageClass: string, p: Omit<PendingPut, 'resolve' | 'reject'>): Promise<ObjectMeta> {
    const policyText = formatPolicy(policy);
    const gk = `${tenant}\0${bucket}\0${policyText}\0${storageClass}`;
    let g = this.putGroups.get(gk);
    if (!g) this.putGroups.set(gk, (g = { tenant, bucket, policy, storageClass, pending: [], bytes: 0, inflight: 0, scheduled: false }));
    const group = g;
    return new Promise<ObjectMeta>((resolve, reject) => {
      group.pending.push({ ...p, resolve, reject });
      group.bytes += p.value.length;
      if (group.bytes >= PACK_MAX_BYTES || group.pending.length >= GROUP_MAX_MEMBERS) this.flushGroup(group);
      else if (!group.scheduled && group.inflight < GROUP_INFLIGHT) {
        group.scheduled = true;
        // The rest of this turn's arrivals join before the group is cut.
        setImmediate(() => {
          group.scheduled = false;
          if (group.inflight < GROUP_INFLIGHT) this.flushGroup(group);
        });
      }
    });
  }

  private flushGroup(g: PutGroup): void {
    if (g.pending.length === 0) return;
    let n = 0;
    let bytes = 0;
    while (n < g.pending.length && n < GROUP_MAX_MEMBERS && (n === 0 || bytes + g.pending[n]!.value.length <= PACK_MAX_BYTES)) bytes += g.pending[n++]!.value.length;
    const members = g.pending.splice(0, n);
    g.bytes -= bytes;
    g.inflight++;
    this.writeGroup(g, members)
      .then(
        (metas) => members.forEach((m, j) => m.resolve(metas[j]!)),
        (err) => members.forEach((m) => m.reject(err)),
      )
      .finally(() => {
        g.inflight--;
        // What arrived while this group was written goes next, at once.
        if (g.pending.length > 0 && !g.scheduled && g.inflight < GROUP_INFLIGHT) this.flushGroup(g);
        else if (g.pending.length === 0 && g.inflight === 0 && !g.scheduled) this.putGroups.delete(`${g.tenant}\0${g.bucket}\0${formatPolicy(g.policy)}\0${g.storageClass}`);
      });
  }

  /** One group commit: the members as a pack, durable on a write quorum, then visible in one index transaction. */
  private async writeGroup(g: PutGroup, members: PendingPut[]): Promise<ObjectMeta[]> {
    const p = await this.writePackFragments(g.tenant, g.bucket, g.policy, g.storageClass, members);
    await this.commit(
      p.metas.map((m, j) => ({ bucket: g.bucket, key: m.key, meta: m, encoded: p.entries[j] })),
      [p.rec],
    );
    return p.metas;
  }

  /**
   * Makes objects visible (or removes them, meta = undefined) in one transaction; newer versions win. New packs
   * become known in the same transaction; a pack member that is superseded (or loses to a newer version) only
   * lowers its pack's live count, and a pack with no live member left is dropped with its fragments.
   */
  private async commit(changes: Array<{ bucket: string; key: string; meta?: ObjectMeta; encoded?: Buffer }>, newPacks: PackRecord[] = []): Promise<void> {
    const meta = this.opts.meta;
    const superseded: ObjectMeta[] = [];
    const lost: ObjectMeta[] = [];
    const deadPacks: PackRecord[] = [];
    await meta.transaction(() => {
      for (const p of newPacks) {
        meta.packs.put(p.id, p);
        meta.ids.put(p.id, { pack: p.id });
      }
      const released = new Map<string, { n: number; bytes: number }>();
      const release = (m: ObjectMeta) => {
        const r = released.get(m.pack!.id);
        if (r) {
          r.n++;
          r.bytes += m.size;
        } else released.set(m.pack!.id, { n: 1, bytes: m.size });
      };
      for (const c of changes) {
        const k = objectKey(c.bucket, c.key);
        const old = meta.objects.get(k);
        if (c.meta) {
          if (old && old.version > c.meta.version) {
            if (c.meta.pack) release(c.meta);
            else lost.push(c.meta);
            continue;
          }
          // A pack member's entry was encoded with its pack: stored as those bytes.
          meta.objects.put(k, c.encoded ? (asBinary(c.encoded) as unknown as ObjectMeta) : c.meta);
          if (!c.meta.pack) {
            const owner: IdOwner = { bucket: c.bucket, key: c.key };
            meta.ids.put(c.meta.id, owner);
            for (const p of c.meta.parts) meta.ids.put(p.id, owner);
          }
        } else if (old) {
          meta.objects.remove(k);
        }
        if (old && (!c.meta || old.version <= c.meta.version)) {
          if (old.pack) release(old);
          else {
            superseded.push(old);
            meta.ids.remove(old.id);
            for (const p of old.parts) meta.ids.remove(p.id);
          }
        }
      }
      for (const [id, r] of released) {
        const rec = meta.packs.get(id);
        if (!rec) continue;
        rec.live -= r.n;
        rec.liveBytes -= r.bytes;
        if (rec.live <= 0) {
          meta.packs.remove(id);
          meta.ids.remove(id);
          deadPacks.push(rec);
        } else meta.packs.put(id, rec);
      }
    });
    for (const m of [...superseded, ...lost]) void this.removeFragments(m).catch(() => undefined);
    for (const p of deadPacks) void this.removePackFragments(p).catch(() => undefined);
  }

  async deleteObject(tenant: string, bucket: string, key: string): Promise<void> {
    this.bucket(tenant, bucket);
    await this.commit([{ bucket, key }]);
  }

  async deleteObjects(tenant: string, bucket: string, keys: string[]): Promise<void> {
    this.bucket(tenant, bucket);
    await this.commit(keys.map((key) => ({ bucket, key })));
  }

  /** Best-effort removal of a dropped pack's fragments and metadata copies (what fails is collected later as orphans). */
  private async removePackFragments(p: PackRecord): Promise<void> {
    this.packCache.delete(p.id);
    this.uncachePack(p.id);
    const l = p.layout;
    await Promise.allSettled(l.nodes.map((n, fi) => this.byId.get(n)?.delete([...l.stripes.map((_s, si) => fragKey(l.id, si, fi)), metaCopyKey(l.id)])));
  }

  /** Best-effort removal of an object's fragments and metadata copies (what fails is collected later as orphans). */
  private async removeFragments(m: ObjectMeta): Promise<void> {
    if (m.pack) return;
    const perNode = new Map<string, string[]>();
    const add = (node: string, k: string) => {
      let l = perNode.get(node);
      if (!l) perNode.set(node, (l = []));
      l.push(k);
    };
    for (const part of m.parts) {
      part.stripes.forEach((_s, si) => part.nodes.forEach((n, fi) => add(n, fragKey(part.id, si, fi))));
      if (part.id === m.id) for (const n of part.nodes) add(n, metaCopyKey(m.id));
    }
    if (m.parts.length !== 1 || m.parts[0]!.id !== m.id) {
      for (const n of placeFragments(m.id, this.nodeIds, Math.min(this.nodeIds.length, policyWidth(parsePolicy(m.policy))))) add(n, metaCopyKey(m.id));
    }
    await Promise.allSettled([...perNode].map(([n, keys]) => this.byId.get(n)?.delete(keys)));
  }

  // ---------------------------------------------------------------- writing

  /**
   * Encrypts and encodes one part's stream, stripe by stripe, onto its placement. `finish` runs after the last
   * stripe is encoded and before it is written; what it returns (a metadata copy) is written with that stripe.
   */
  private async writePart(
    tenant: string,
    partId: string,
    policy: Policy,
    body: AsyncIterable<Buffer>,
    limit: number,
    finish?: (layout: PartLayout, md5: Buffer) => Promise<Buffer | undefined>,
  ): Promise<PartLayout> {
    const master = await this.opts.keys.tenantKey(tenant, { create: true });
    const dek = newDataKey();
    const nodes = placeFragments(partId, this.nodeIds, policyWidth(policy));
    const roles = fragmentRoles(policy);
    const need = writeQuorum(policy);
    const failed = new Set<number>();
    const layout: PartLayout = { id: partId, nodes, size: 0, wrappedKey: wrapKey(master, dek, wrapAad(tenant, partId)), stripes: [], md5: '' };
    const enc = new ChunkEncryptor(dek, partAad(partId));
    const md5 = createHash('md5');
    let pending: Buffer[] = [];
    let inflight: Promise<void> | undefined;
    let aborted = false;

    const quorumLeft = () => roles.quorum.filter((i) => !failed.has(i)).length;
    const writeStripe = async (stripeNo: number, frags: Buffer[], extra?: Buffer) => {
      await Promise.all(
        frags.map(async (f, i) => {
          if (failed.has(i)) return;
          const entries: FragmentEntry[] = [{ key: fragKey(partId, stripeNo, i), value: f }];
          if (extra) entries.push({ key: metaCopyKey(partId), value: extra });
          try {
            await this.byId.get(nodes[i]!)!.put(entries);
            this.m.fragmentWrites.inc();
          } catch (err) {
            failed.add(i);
            this.m.fragmentFailures.inc({ kind: 'write' });
            this.opts.log.warn({ node: nodes[i], err: (err as Error).message }, 'fragment write failed');
          }
        }),
      );
      if (quorumLeft() < need) throw this.quorumError('write', quorumLeft(), need, policy);
    };
    const encode = async (final: boolean): Promise<{ no: number; frags: Buffer[] }> => {
      const cipher = pending.length === 1 ? pending[0]! : Buffer.concat(pending);
      pending = [];
      const { shardLen, fragments } = await encodeStripe(policy, cipher);
      const sums = Buffer.alloc(SUM_LEN * fragments.length);
      let prev: Buffer | undefined;
      let prevSum: Buffer | undefined;
      fragments.forEach((f, i) => {
        const s = f === prev ? prevSum! : sum16(f);
        s.copy(sums, i * SUM_LEN);
        prev = f;
        prevSum = s;
      });
      const info: StripeInfo = { len: cipher.length, shard: shardLen, sums };
      layout.stripes.push(info);
      void final;
      return { no: layout.stripes.length - 1, frags: fragments };
    };

    try {
      for await (const piece of body) {
        layout.size += piece.length;
        if (layout.size > limit) {
          throw s3Error('EntityTooLarge', `Your proposed upload exceeds the maximum allowed object size of ${limit} bytes.`);
        }
        md5.update(piece);
        for (const c of enc.push(piece)) {
          pending.push(c);
          if (pending.length === STRIPE_CHUNKS) {
            const s = await encode(false);
            if (inflight) await inflight;
            inflight = writeStripe(s.no, s.frags);
            inflight.catch(() => undefined);
          }
        }
      }
      pending.push(enc.final());
      const last = await encode(true);
      if (inflight) await inflight;
      const digest = md5.digest();
      layout.md5 = digest.toString('hex');
      const extra = finish ? await finish(layout, digest) : undefined;
      await writeStripe(last.no, last.frags, extra);
      if (quorumLeft() < need) throw this.quorumError('write', quorumLeft(), need, policy);
      return layout;
    } catch (err) {
      aborted = true;
      if (inflight) await inflight.catch(() => undefined);
      throw err;
    } finally {
      if (aborted && layout.stripes.length > 0) {
        const stripes = layout.stripes.length;
        void Promise.allSettled(
          nodes.map((n, fi) => this.byId.get(n)!.delete([...Array.from({ length: stripes }, (_, s) => fragKey(partId, s, fi)), metaCopyKey(partId)])),
        );
      }
    }
  }

  private quorumError(kind: 'write' | 'read', have: number, need: number, p: Policy): S3Error {
    return s3Error(
      'ServiceUnavailable',
      `${kind} quorum not met for policy ${formatPolicy(p)}: ${have} fragment(s) ${kind === 'write' ? 'durable' : 'readable'}, ${need} needed; storage nodes are down`,
    );
  }

  /** The object's metadata, sealed for its copies beside the fragments (used to rebuild the index). */
  private async metaCopy(meta: ObjectMeta): Promise<Buffer> {
    const key = await this.opts.keys.serviceKey('object-meta');
    return seal(key, pack(meta), Buffer.from(`securegrid/meta/${meta.id}`));
  }

  async readMetaCopy(objectId: string, sealed: Buffer): Promise<ObjectMeta> {
    const key = await this.opts.keys.serviceKey('object-meta');
    return unpack(unseal(key, sealed, Buffer.from(`securegrid/meta/${objectId}`))) as ObjectMeta;
  }

  // ---------------------------------------------------------------- reading

  /** Plaintext of [start, end) of the object, streamed stripe by stripe with one stripe of read-ahead. */
  async *read(meta: ObjectMeta, start = 0, end = meta.size): AsyncGenerator<Buffer> {
    if (meta.pack) {
      if (end > start) {
        const out: Buffer[] = new Array(1);
        await this.readPackMembers([meta], [0], out);
        yield out[0]!.subarray(start, end);
      }
      return;
    }
    const policy = policyOf(meta.policy);
    let partStart = 0;
    for (const part of meta.parts) {
      const partEnd = partStart + part.size;
      if (partEnd <= start && part.size > 0) {
        partStart = partEnd;
        continue;
      }
      if (partStart >= end) break;
      const ls = Math.max(0, start - partStart);
      const le = Math.min(part.size, end - partStart);
      if (le > ls) yield* this.readPart(meta.tenant, policy, part, ls, le);
      partStart = partEnd;
    }
  }

  private async *readPart(tenant: string, policy: Policy, part: PartLayout, ls: number, le: number): AsyncGenerator<Buffer> {
    const master = await this.opts.keys.tenantKey(tenant);
    const dek = this.dataKey(master, tenant, part);
    const aad = partAad(part.id);
    const span = chunkSpan(part.size, ls, le);
    const firstStripe = Math.floor(span.cipherStart / STRIPE_CIPHER);
    const lastStripe = Math.floor((span.cipherEnd - 1) / STRIPE_CIPHER);
    let remaining = le - ls;
    let skip = span.skip;
    const fetch = (s: number) => {
      const sStart = s * STRIPE_CIPHER;
      const a = Math.max(span.cipherStart, sStart) - sStart;
      const b = Math.min(span.cipherEnd, sStart + part.stripes[s]!.len) - sStart;
      const p = this.readStripe(policy, part, s, a, b).then(
        (buf) => ({ buf, a }),
        (err) => ({ err, a }),
      );
      return p;
    };
    let next = fetch(firstStripe);
    for (let s = firstStripe; s <= lastStripe; s++) {
      const cur = await next;
      if (s < lastStripe) next = fetch(s + 1);
      if ('err' in cur) throw cur.err;
      const firstChunk = (s * STRIPE_CIPHER + cur.a) / SEALED_CHUNK;
      let plain: Buffer;
      try {
        plain = decryptChunks(dek, aad, part.size, firstChunk, cur.buf);
      } catch (err) {
        if (!(err instanceof CryptoError)) throw err;
        // Unverified bytes (a range of a fragment) failed authentication: read the stripe the careful way.
        this.m.corruptFragments.inc();
        const whole = await this.readStripeVerified(policy, part, s);
        try {
          plain = decryptChunks(dek, aad, part.size, firstChunk, whole.subarray(cur.a, cur.a + cur.buf.length));
        } catch {
          throw s3Error('InternalError', 'stored object failed authentication on every copy; it was not returned');
        }
      }
      if (skip > 0) {
        plain = plain.subarray(skip);
        skip = 0;
      }
      if (plain.length > remaining) plain = plain.subarray(0, remaining);
      remaining -= plain.length;
      this.m.bytesOut.inc(plain.length);
      yield plain;
    }
  }

  /** Bytes [a, b) of a stripe's ciphertext, by the cheapest route: an exact replica, else the data shards, else decoding. */
  private async readStripe(policy: Policy, part: PartLayout, s: number, a: number, b: number): Promise<Buffer> {
    const info = part.stripes[s]!;
    const whole = a === 0 && b === info.len;
    const roles = fragmentRoles(policy);
    for (const i of roles.replicas) {
      // Unchecked here: AES-GCM authenticates every byte on decryption, and a failure falls back to readStripeVerified.
      const got = await this.fetchFragment(part, s, i, whole ? undefined : { start: a, end: b }, false);
      if (got && got.length === b - a) return got;
    }
    if (roles.shards.length > 0) {
      const spans = dataShardSpans(policy, info.shard, a, b);
      const wholeShards = whole && spans.every((sp) => sp.offset === 0);
      const got = await Promise.all(
        spans.map((sp) =>
          this.fetchFragment(part, s, sp.fragment, wholeShards ? undefined : { start: sp.offset, end: sp.offset + sp.length }, false).then((buf) =>
            buf && wholeShards ? buf.subarray(0, sp.length) : buf,
          ),
        ),
      );
      if (got.every((g, i) => g && g.length === spans[i]!.length)) return got.length === 1 ? got[0]! : Buffer.concat(got as Buffer[]);
    }
    this.m.degradedReads.inc();
    const full = await this.readStripeVerified(policy, part, s);
    return full.subarray(a, b);
  }

  /**
   * One fragment, whole (checked against its checksum) or a byte range (checked later by AES-GCM).
   * Missing, unreachable or corrupt → undefined, and the object is queued for healing.
   */
  private async fetchFragment(part: PartLayout, s: number, i: number, range?: { start: number; end: number }, verify = true): Promise<Buffer | undefined> {
    const node = this.byId.get(part.nodes[i]!);
    if (!node) return undefined;
    try {
      const buf = await node.get(fragKey(part.id, s, i), range);
      if (!buf) {
        this.m.fragmentFailures.inc({ kind: 'missing' });
        this.healQueue.add(part.id);
        return undefined;
      }
      if (verify && !range && !sum16(buf).equals(part.stripes[s]!.sums.subarray(i * SUM_LEN, (i + 1) * SUM_LEN))) {
        this.m.corruptFragments.inc();
        this.healQueue.add(part.id);
        return undefined;
      }
      return buf;
    } catch (err) {
      if (!(err instanceof NodeUnavailableError)) throw err;
      this.m.fragmentFailures.inc({ kind: 'unreachable' });
      return undefined;
    }
  }

  /** The whole stripe from checksummed fragments, decoding when needed; never wrong data. */
  private async readStripeVerified(policy: Policy, part: PartLayout, s: number): Promise<Buffer> {
    const info = part.stripes[s]!;
    const width = policyWidth(policy);
    const frags = await Promise.all(Array.from({ length: width }, (_, i) => this.fetchFragment(part, s, i)));
    const present = frags.map((f) => f !== undefined);
    if (!readQuorumMet(policy, present)) {
      const have = policy.kind === 'hybrid' ? present.slice(policy.r).filter(Boolean).length : present.filter(Boolean).length;
      throw this.quorumError('read', have, dataShardCount(policy), policy);
    }
    return await decodeStripe(policy, frags, info.shard, info.len);
  }

  /**
   * Whole values of many objects at once. Small objects held as exact replicas (one stripe) are fetched with one
   * getMany per node and checked against their checksums; anything else, or any miss, takes the general path.
   */
  async readValues(metas: ObjectMeta[]): Promise<Buffer[]> {
    const out: Buffer[] = new Array(metas.length);
    const perNode = new Map<string, number[]>();
    const slow: number[] = [];
    const packed: number[] = [];
    metas.forEach((m, i) => {
      if (m.pack) {
        packed.push(i);
        return;
      }
      const part = m.parts[0];
      const p = policyOf(m.policy);
      if (m.parts.length === 1 && part!.stripes.length === 1 && p.kind !== 'ec') {
        const node = part!.nodes[0]!;
        let l = perNode.get(node);
        if (!l) perNode.set(node, (l = []));
        l.push(i);
      } else slow.push(i);
    });
    const packReads = packed.length > 0 ? this.readPackMembers(metas, packed, out) : undefined;
    await Promise.all(
      [...perNode].map(async ([nodeId, idx]) => {
        const node = this.byId.get(nodeId);
        let got: (Buffer | undefined)[] = [];
        try {
          got = node ? await node.getMany(idx.map((i) => fragKey(metas[i]!.parts[0]!.id, 0, 0))) : [];
        } catch (err) {
          if (!(err instanceof NodeUnavailableError)) throw err;
          this.m.fragmentFailures.inc({ kind: 'unreachable' });
        }
        for (let j = 0; j < idx.length; j++) {
          const i = idx[j]!;
          const m = metas[i]!;
          const part = m.parts[0]!;
          const buf = got[j];
          if (!buf) {
            slow.push(i);
            continue;
          }
          // AES-GCM authenticates the replica; a corrupt one fails here and takes the checked path.
          const master = await this.opts.keys.tenantKey(m.tenant);
          const dek = this.dataKey(master, m.tenant, part);
          try {
            out[i] = decryptChunks(dek, partAad(part.id), part.size, 0, buf);
          } catch (err) {
            if (!(err instanceof CryptoError)) throw err;
            this.m.corruptFragments.inc();
            this.healQueue.add(part.id);
            slow.push(i);
            continue;
          }
          this.m.bytesOut.inc(part.size);
        }
      }),
    );
    await Promise.all(
      slow.map(async (i) => {
        const chunks: Buffer[] = [];
        for await (const c of this.read(metas[i]!)) chunks.push(c);
        out[i] = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      }),
    );
    if (packReads) await packReads;
    return out;
  }

  /**
   * Values of pack members (metas[i] for i in idx) into out[i]. Each needed block is fetched and decrypted once;
   * blocks close together in one stripe are fetched as one range (a scan reads a pack sequentially).
   */
  private async readPackMembers(metas: ObjectMeta[], idx: number[], out: Buffer[]): Promise<void> {
    const MERGE_GAP = 8192;
    // Cached blocks first: a hit needs no pack record, key or node (a dropped pack's blocks leave the cache).
    let hitBytes = 0;
    let misses: number[] | undefined;
    for (let j = 0; j < idx.length; j++) {
      const i = idx[j]!;
      const r = metas[i]!.pack!;
      const hit = this.cachedBlock(r.id, r.bn);
      if (hit) {
        out[i] = Buffer.from(hit.subarray(r.o, r.o + r.n));
        hitBytes += r.n;
      } else (misses ??= []).push(i);
    }
    if (hitBytes > 0) this.m.bytesOut.inc(hitBytes);
    if (!misses) return;
    idx = misses;
    const byStripe = new Map<string, { rec: PackRecord; s: number; blocks: Map<number, { ref: PackRef; members: number[] }> }>();
    for (const i of idx) {
      const ref = metas[i]!.pack!;
      const k = `${ref.id}.${ref.s}`;
      let g = byStripe.get(k);
      if (!g) {
        const rec = this.packRecord(ref.id);
        // The pack went away between the index read and now: the member was overwritten or deleted meanwhile.
        if (!rec) throw s3Error('NoSuchKey', undefined, { Key: metas[i]!.key });
        byStripe.set(k, (g = { rec, s: ref.s, blocks: new Map() }));
      }
      let blk = g.blocks.get(ref.bn);
      if (!blk) g.blocks.set(ref.bn, (blk = { ref, members: [] }));
      blk.members.push(i);
    }
    await Promise.all(
      [...byStripe.values()].map(async (g) => {
        const rec = g.rec;
        const policy = policyOf(rec.policy);
        const master = await this.opts.keys.tenantKey(rec.tenant);
        const dek = this.dataKey(master, rec.tenant, rec.layout);
        const fill = (blk: { members: number[] }, plain: Buffer, copy: boolean) => {
          for (const i of blk.members) {
            const m = metas[i]!.pack!;
            // Values handed out never alias a cached block (a caller may reuse or wipe its buffer).
            out[i] = copy ? Buffer.from(plain.subarray(m.o, m.o + m.n)) : plain.subarray(m.o, m.o + m.n);
            this.m.bytesOut.inc(m.n);
          }
        };
        const blocks: Array<{ ref: PackRef; members: number[] }> = [];
        for (const blk of g.blocks.values()) {
          const hit = this.cachedBlock(rec.id, blk.ref.bn);
          if (hit) fill(blk, hit, true);
          else blocks.push(blk);
        }
        if (blocks.length === 0) return;
        blocks.sort((a, b) => a.ref.bo - b.ref.bo);
        const spans: Array<{ start: number; end: number; blocks: typeof blocks }> = [];
        for (const blk of blocks) {
          const last = spans[spans.length - 1];
          if (last && blk.ref.bo - last.end <= MERGE_GAP) {
            last.end = Math.max(last.end, blk.ref.bo + blk.ref.bl);
            last.blocks.push(blk);
          } else spans.push({ start: blk.ref.bo, end: blk.ref.bo + blk.ref.bl, blocks: [blk] });
        }
        let verified: Buffer | undefined;
        await Promise.all(
          spans.map(async (sp) => {
            const buf = await this.readStripe(policy, rec.layout, g.s, sp.start, sp.end);
            for (const blk of sp.blocks) {
              const r = blk.ref;
              let plain: Buffer;
              try {
                plain = openBlock(dek, rec.id, r.bn, buf.subarray(r.bo - sp.start, r.bo - sp.start + r.bl));
              } catch (err) {
                if (!(err instanceof CryptoError)) throw err;
                // Unverified bytes failed authentication: read the stripe from checksummed fragments (decoding if need be).
                this.m.corruptFragments.inc();
                this.healQueue.add(rec.id);
                verified ??= await this.readStripeVerified(policy, rec.layout, g.s);
                try {
                  plain = openBlock(dek, rec.id, r.bn, verified.subarray(r.bo, r.bo + r.bl));
                } catch {
                  throw s3Error('InternalError', 'stored object failed authentication on every copy; it was not returned');
                }
              }
              const cached = this.cacheBlock(rec.id, r.bn, plain);
              fill(blk, plain, cached);
            }
          }),
        );
      }),
    );
  }

  /**
   * Decrypted pack blocks, least recently used first, bounded in bytes. They live in the gateway's (trusted)
   * memory, are cached only after AES-GCM verified them, and never change (pack ids are fresh); a cached read
   * does not re-read node bytes — bit rot on the nodes is still found by uncached reads and by the scrubber.
   */
  private readonly blockCache = new Map<string, { pack: string; plain: Buffer }>();
  private readonly blocksOfPack = new Map<string, Set<string>>();
  private blockCacheUsed = 0;

  private cachedBlock(pack: string, bn: number): Buffer | undefined {
    const k = `${pack}.${bn}`;
    const e = this.blockCache.get(k);
    if (!e) return undefined;
    this.blockCache.delete(k);
    this.blockCache.set(k, e);
    return e.plain;
  }

  /** Keeps a verified block; true when kept (its buffer is then the cache's). */
  private cacheBlock(pack: string, bn: number, plain: Buffer): boolean {
    const max = this.opts.blockCacheBytes ?? 32 * 1024 * 1024;
    if (plain.length > CACHE_BLOCK_MAX || plain.length > max) return false;
    const k = `${pack}.${bn}`;
    if (this.blockCache.has(k)) return false;
    while (this.blockCacheUsed + plain.length > max) {
      const [oldest, e] = this.blockCache.entries().next().value!;
      this.dropCached(oldest, e);
    }
    this.blockCache.set(k, { pack, plain });
    this.blockCacheUsed += plain.length;
    let set = this.blocksOfPack.get(pack);
    if (!set) this.blocksOfPack.set(pack, (set = new Set()));
    set.add(k);
    return true;
  }

  private dropCached(k: string, e: { pack: string; plain: Buffer }): void {
    this.blockCache.delete(k);
    this.blockCacheUsed -= e.plain.length;
    const set = this.blocksOfPack.get(e.pack);
    set?.delete(k);
    if (set && set.size === 0) this.blocksOfPack.delete(e.pack);
    e.plain.fill(0);
  }

  /** A dropped pack's blocks leave the cache (no plaintext of deleted values lingers). */
  private uncachePack(pack: string): void {
    const set = this.blocksOfPack.get(pack);
    if (!set) return;
    for (const k of [...set]) {
      const e = this.blockCache.get(k);
      if (e) this.dropCached(k, e);
    }
  }

  /** Values of the given keys (undefined where absent), read together. */
  async getValues(tenant: string, bucket: string, keys: string[]): Promise<(Buffer | undefined)[]> {
    this.bucket(tenant, bucket);
    const metas = keys.map((k) => this.opts.meta.objects.get(objectKey(bucket, k)));
    const present = metas.map((m, i) => ({ m, i })).filter((x): x is { m: ObjectMeta; i: number } => x.m !== undefined);
    const values = await this.readValues(present.map((x) => x.m));
    const out: (Buffer | undefined)[] = new Array(keys.length).fill(undefined);
    present.forEach((x, j) => (out[x.i] = values[j]));
    return out;
  }

  /** Which of the keys exist: the index alone answers (no fragment is read, nothing is decrypted). */
  hasValues(tenant: string, bucket: string, keys: string[]): boolean[] {
    this.bucket(tenant, bucket);
    const db = this.opts.meta.objects;
    const out: boolean[] = new Array(keys.length);
    for (let i = 0; i < keys.length; i++) out[i] = db.doesExist(objectKey(bucket, keys[i]!));
    return out;
  }

  /**
   * Keys in [start, end) in byte order with their values, at most `limit` (a page: call again after the last
   * key). `end` undefined = to the end of the bucket.
   */
  async scanValues(tenant: string, bucket: string, start: string, end: string | undefined, limit: number): Promise<Array<{ key: string; value: Buffer }>> {
    this.bucket(tenant, bucket);
    const bucketLen = Buffer.byteLength(bucket) + 1;
    const metas: ObjectMeta[] = [];
    const keys: string[] = [];
    const range = {
      start: objectKey(bucket, start),
      end: end === undefined ? Buffer.concat([Buffer.from(bucket, 'utf8'), Buffer.from([1])]) : objectKey(bucket, end),
      limit,
    };
    for (const { key, value } of this.opts.meta.objects.getRange(range)) {
      keys.push(key.subarray(bucketLen).toString('utf8'));
      metas.push(value);
    }
    const values = await this.readValues(metas);
    return keys.map((key, i) => ({ key, value: values[i]! }));
  }

  /** What a bucket's objects cost in raw storage (paper, Fig. 5): replicas × ciphertext + shards × shard length, packs included. */
  storageUse(tenant: string, bucket: string): { objects: number; logical: number; raw: number } {
    let objects = 0;
    let logical = 0;
    let raw = 0;
    let startAfter: string | undefined;
    while (true) {
      const page = this.list(tenant, bucket, { startAfter, maxKeys: 1000 });
      for (const m of page.contents) {
        objects++;
        logical += m.size;
        const p = parsePolicy(m.policy);
        for (const part of m.parts) {
          for (const s of part.stripes) {
            if (p.kind === 'replicate') raw += p.n * s.len;
            else if (p.kind === 'ec') raw += (p.k + p.m) * s.shard;
            else raw += p.r * s.len + p.n * s.shard;
          }
        }
      }
      if (!page.isTruncated || page.nextAfter === undefined) break;
      startAfter = page.nextAfter;
    }
    // Pack members hold no parts of their own: their packs' fragments are what they cost (dead members included).
    for (const { value: rec } of this.opts.meta.packs.getRange({})) {
      if (rec.tenant !== tenant || rec.bucket !== bucket) continue;
      const p = policyOf(rec.policy);
      for (const s of rec.layout.stripes) {
        if (p.kind === 'replicate') raw += p.n * s.len;
        else if (p.kind === 'ec') raw += (p.k + p.m) * s.shard;
        else raw += p.r * s.len + p.n * s.shard;
      }
    }
    return { objects, logical, raw };
  }

  // ---------------------------------------------------------------- listing

  list(tenant: string, bucket: string, o: ListOptions): ListResult {
    this.bucket(tenant, bucket);
    const prefix = o.prefix ?? '';
    const maxKeys = Math.max(0, Math.min(o.maxKeys ?? 1000, 1000));
    const out: ListResult = { contents: [], commonPrefixes: [], isTruncated: false };
    const bucketEnd = Buffer.concat([Buffer.from(bucket, 'utf8'), Buffer.from([1])]);
    const prefixKey = objectKey(bucket, prefix);
    let from = prefixKey;
    let exclusive: Buffer | undefined;
    if (o.startAfter && Buffer.compare(objectKey(bucket, o.startAfter), prefixKey) >= 0) {
      from = objectKey(bucket, o.startAfter);
      exclusive = from;
    }
    if (o.afterPrefix !== undefined) {
      const past = Buffer.concat([objectKey(bucket, o.afterPrefix), Buffer.from([0xff])]);
      if (Buffer.compare(past, from) > 0) {
        from = past;
        exclusive = undefined;
      }
    }
    const bucketLen = Buffer.byteLength(bucket) + 1;
    const objects = this.opts.meta.objects;
    let count = 0;
    while (true) {
      let restartAt: Buffer | undefined;
      for (const { key: k, value } of objects.getRange({ start: from, end: bucketEnd })) {
        if (exclusive && k.equals(exclusive)) continue;
        if (!k.subarray(0, prefixKey.length).equals(prefixKey)) return out;
        const name = k.subarray(bucketLen).toString('utf8');
        if (count >= maxKeys) {
          out.isTruncated = true;
          return out;
        }
        if (o.delimiter) {
          const at = name.indexOf(o.delimiter, prefix.length);
          if (at >= 0) {
            const cp = name.slice(0, at + o.delimiter.length);
            out.commonPrefixes.push(cp);
            out.nextAfter = cp;
            out.nextIsPrefix = true;
            count++;
            // Skip every key under this common prefix: restart just past it.
            restartAt = Buffer.concat([objectKey(bucket, cp), Buffer.from([0xff])]);
            break;
          }
        }
        out.contents.push(value);
        out.nextAfter = name;
        out.nextIsPrefix = false;
        count++;
      }
      if (!restartAt) return out;
      from = restartAt;
      exclusive = undefined;
    }
  }

  // ---------------------------------------------------------------- copy

  async copyObject(
    tenant: string,
    src: { bucket: string; key: string },
    dst: { bucket: string; key: string },
    o: { storageClass?: string; replaceMeta?: { contentType?: string; userMeta?: Record<string, string> }; range?: { start: number; end: number } },
  ): Promise<ObjectMeta> {
    const source = this.head(tenant, src.bucket, src.key);
    const dstBucket = this.bucket(tenant, dst.bucket);
    const same = src.bucket === dst.bucket && src.key === dst.key;
    if (same && !o.storageClass && !o.replaceMeta) {
      throw s3Error(
        'InvalidRequest',
        "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
      );
    }
    const { policy, storageClass } = o.storageClass
      ? this.policyFor(dstBucket, o.storageClass)
      : same
        ? { policy: parsePolicy(source.policy), storageClass: source.storageClass }
        : this.policyFor(dstBucket);
    const start = o.range?.start ?? 0;
    const end = o.range?.end ?? source.size;
    // Re-encrypted under a fresh data key and re-encoded under the target policy.
    return this.putObject(tenant, dst.bucket, dst.key, this.read(source, start, end), {
      policy,
      storageClass,
      contentType: o.replaceMeta ? o.replaceMeta.contentType : source.contentType,
      userMeta: o.replaceMeta ? o.replaceMeta.userMeta : source.userMeta,
    });
  }

  // ---------------------------------------------------------------- multipart

  async createUpload(tenant: string, bucket: string, key: string, o: PutOptions): Promise<string> {
    const b = this.bucket(tenant, bucket);
    const { policy, storageClass } = this.policyFor(b, o.storageClass, o.policy);
    const uploadId = randomBytes(24).toString('base64url');
    const rec: UploadRecord = { uploadId, tenant, bucket, key, initiated: Date.now(), policy: formatPolicy(policy), storageClass, contentType: o.contentType, userMeta: o.userMeta };
    await this.opts.meta.uploads.put(uploadId, rec);
    return uploadId;
  }

  upload(tenant: string, bucket: string, key: string, uploadId: string): UploadRecord {
    this.bucket(tenant, bucket);
    const u = this.opts.meta.uploads.get(uploadId);
    if (!u || u.bucket !== bucket || u.key !== key || u.tenant !== tenant) throw s3Error('NoSuchUpload', undefined, { UploadId: uploadId });
    return u;
  }

  async uploadPart(
    tenant: string,
    bucket: string,
    key: string,
    uploadId: string,
    partNumber: number,
    body: AsyncIterable<Buffer>,
    beforeCommit?: PutOptions['beforeCommit'],
  ): Promise<UploadPartRecord> {
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10000) {
      throw s3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive');
    }
    const u = this.upload(tenant, bucket, key, uploadId);
    const version = nextVersion();
    const id = newId(version, freshRandom(8));
    await this.opts.meta.ids.put(id, { upload: uploadId });
    const layout = await this.writePart(tenant, id, parsePolicy(u.policy), body, this.opts.maxObjectSize, async (part, md5) => {
      await beforeCommit?.({ md5, size: part.size });
      return undefined;
    });
    const rec: UploadPartRecord = { partNumber, etag: `"${layout.md5}"`, lastModified: Date.now(), layout };
    const meta = this.opts.meta;
    const replaced = await meta.transaction(() => {
      if (!meta.uploads.get(uploadId)) return 'gone';
      const old = meta.uploadParts.get(partKey(uploadId, partNumber));
      meta.uploadParts.put(partKey(uploadId, partNumber), rec);
      if (old) meta.ids.remove(old.layout.id);
      return old;
    });
    if (replaced === 'gone') {
      void this.removePartFragments(layout);
      throw s3Error('NoSuchUpload', undefined, { UploadId: uploadId });
    }
    if (replaced) void this.removePartFragments(replaced.layout);
    this.m.bytesIn.inc(layout.size);
    return rec;
  }

  listParts(tenant: string, bucket: string, key: string, uploadId: string, o: { marker?: number; maxParts?: number } = {}): { upload: UploadRecord; parts: UploadPartRecord[]; isTruncated: boolean } {
    const upload = this.upload(tenant, bucket, key, uploadId);
    const max = Math.max(0, Math.min(o.maxParts ?? 1000, 1000));
    const parts: UploadPartRecord[] = [];
    let isTruncated = false;
    for (const { value } of this.opts.meta.uploadParts.getRange({ start: partKey(uploadId, (o.marker ?? 0) + 1), end: partKey(uploadId, 10001) })) {
      if (parts.length >= max) {
        isTruncated = true;
        break;
      }
      parts.push(value);
    }
    return { upload, parts, isTruncated };
  }

  listUploads(tenant: string, bucket: string): UploadRecord[] {
    this.bucket(tenant, bucket);
    const out: UploadRecord[] = [];
    for (const { value } of this.opts.meta.uploads.getRange({})) if (value.bucket === bucket && value.tenant === tenant) out.push(value);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.initiated - b.initiated));
  }

  async completeUpload(tenant: string, bucket: string, key: string, uploadId: string, wanted: Array<{ partNumber: number; etag: string }>): Promise<ObjectMeta> {
    const u = this.upload(tenant, bucket, key, uploadId);
    if (wanted.length === 0) throw s3Error('MalformedXML', 'You must specify at least one part');
    const parts: UploadPartRecord[] = [];
    let prev = 0;
    for (const w of wanted) {
      if (w.partNumber <= prev) throw s3Error('InvalidPartOrder');
      prev = w.partNumber;
      const rec = this.opts.meta.uploadParts.get(partKey(uploadId, w.partNumber));
      const norm = (e: string) => e.replace(/^"|"$/g, '').toLowerCase();
      if (!rec || norm(rec.etag) !== norm(w.etag)) {
        throw s3Error('InvalidPart', `One or more of the specified parts could not be found (part ${w.partNumber}).`);
      }
      parts.push(rec);
    }
    parts.forEach((p, i) => {
      if (i < parts.length - 1 && p.layout.size < this.opts.minPartSize) {
        throw s3Error('EntityTooSmall', `Part ${p.partNumber} is ${p.layout.size} bytes; every part but the last must be at least ${this.opts.minPartSize} bytes.`);
      }
    });
    const size = parts.reduce((a, p) => a + p.layout.size, 0);
    if (size > this.opts.maxObjectSize) throw s3Error('EntityTooLarge');
    const md5s = Buffer.concat(parts.map((p) => Buffer.from(p.layout.md5, 'hex')));
    const version = nextVersion();
    const id = newId(version, freshRandom(8));
    const meta: ObjectMeta = {
      id,
      version,
      tenant,
      bucket,
      key,
      policy: u.policy,
      storageClass: u.storageClass,
      size,
      etag: `"${createHash('md5').update(md5s).digest('hex')}-${parts.length}"`,
      lastModified: Date.now(),
      contentType: u.contentType,
      userMeta: u.userMeta,
      parts: parts.map((p) => p.layout),
    };
    // Metadata copies on the object's own placement, then visibility, then the upload's bookkeeping.
    const copy = await this.metaCopy(meta);
    const copyNodes = placeFragments(id, this.nodeIds, Math.min(this.nodeIds.length, policyWidth(parsePolicy(u.policy))));
    await Promise.allSettled(copyNodes.map((n) => this.byId.get(n)!.put([{ key: metaCopyKey(id), value: copy }])));
    const all = [...this.opts.meta.uploadParts.getRange({ start: partKey(uploadId, 0), end: partKey(uploadId, 10001) })].map((e) => e.value);
    const used = new Set(parts.map((p) => p.partNumber));
    const metaDb = this.opts.meta;
    await metaDb.transaction(() => {
      metaDb.uploads.remove(uploadId);
      for (const p of all) metaDb.uploadParts.remove(partKey(uploadId, p.partNumber));
    });
    await this.commit([{ bucket, key, meta }]);
    for (const p of all) if (!used.has(p.partNumber)) void this.removePartFragments(p.layout);
    return meta;
  }

  async abortUpload(tenant: string, bucket: string, key: string, uploadId: string): Promise<void> {
    this.upload(tenant, bucket, key, uploadId);
    const meta = this.opts.meta;
    const parts = [...meta.uploadParts.getRange({ start: partKey(uploadId, 0), end: partKey(uploadId, 10001) })].map((e) => e.value);
    await meta.transaction(() => {
      meta.uploads.remove(uploadId);
      for (const p of parts) {
        meta.uploadParts.remove(partKey(uploadId, p.partNumber));
        meta.ids.remove(p.layout.id);
      }
    });
    for (const p of parts) void this.removePartFragments(p.layout);
  }

  private async removePartFragments(part: PartLayout): Promise<void> {
    await Promise.allSettled(part.nodes.map((n, fi) => this.byId.get(n)?.delete(part.stripes.map((_s, si) => fragKey(part.id, si, fi)))));
  }

  // ---------------------------------------------------------------- batch (securegrid extension)

  /**
   * Many small puts, gets and deletes in one call. Gets see the state before the batch; all puts and deletes
   * become visible together in one transaction, or none does. Fragments are grouped per node: one node
   * request per node per batch, however many objects.
   */
  async batch(tenant: string, bucket: string, ops: BatchOp[]): Promise<BatchResult[]> {
    const b = this.bucket(tenant, bucket);
    const results: BatchResult[] = new Array(ops.length);
    // Reads first, against the current state, grouped per node.
    const gets = ops.map((o, i) => ({ o, i })).filter((x) => x.o.op === 'get');
    if (gets.length > 0) {
      const found = gets.map((g) => ({ g, meta: this.opts.meta.objects.get(objectKey(bucket, g.o.key)) }));
      for (const f of found) if (!f.meta) results[f.g.i] = { ok: false, code: 'NoSuchKey', message: 'The specified key does not exist.' };
      const present = found.filter((f): f is { g: (typeof gets)[number]; meta: ObjectMeta } => f.meta !== undefined);
      try {
        const values = await this.readValues(present.map((f) => f.meta));
        present.forEach((f, j) => (results[f.g.i] = { ok: true, value: values[j]! }));
      } catch (err) {
        const e = err as S3Error;
        for (const f of present) results[f.g.i] = { ok: false, code: e.code ?? 'InternalError', message: e.message };
      }
    }
    const writes = ops.map((o, i) => ({ o, i })).filter((x) => x.o.op !== 'get');
    if (writes.length === 0) return results;
    const { policy, storageClass } = this.policyFor(b);
    const policyText = formatPolicy(policy);
    const changes: Array<{ bucket: string; key: string; meta?: ObjectMeta; encoded?: Buffer }> = [];
    const perNode = new Map<string, FragmentEntry[]>();
    const master = await this.opts.keys.tenantKey(tenant, { create: true });
    const metaKey = await this.opts.keys.serviceKey('object-meta');
    const width = policyWidth(policy);
    const roles = fragmentRoles(policy);
    const placed: Array<{ nodes: string[] }> = [];
    const newPacks: PackRecord[] = [];
    const addEntries = (nodes: string[], frags: Buffer[][], id: string, copy: Buffer) => {
      nodes.forEach((n, fi) => {
        let l = perNode.get(n);
        if (!l) perNode.set(n, (l = []));
        frags.forEach((fr, si) => l!.push({ key: fragKey(id, si, fi), value: fr[fi]! }));
        l.push({ key: metaCopyKey(id), value: copy });
      });
      placed.push({ nodes });
    };
    // Small values go into packs (one data key, placement, metadata copy and set of fragments per pack).
    let group: Array<{ key: string; value: Buffer; version: number; at: number }> = [];
    let groupBytes = 0;
    const flushPack = async () => {
      if (group.length === 0) return;
      const members = group;
      group = [];
      groupBytes = 0;
      const p = await this.preparePack(tenant, bucket, policy, storageClass, master, metaKey, members);
      addEntries(p.rec.layout.nodes, p.frags, p.rec.id, p.copy);
      newPacks.push(p.rec);
      p.metas.forEach((m, j) => (changes[members[j]!.at] = { bucket, key: m.key, meta: m, encoded: p.entries[j] }));
    };
    for (const { o } of writes) {
      if (o.op === 'delete') {
        changes.push({ bucket, key: o.key });
        continue;
      }
      if (o.op !== 'put') continue;
      if (o.value.length > this.opts.maxObjectSize) throw s3Error('EntityTooLarge');
      const version = nextVersion();
      if (o.value.length <= PACK_MAX_VALUE) {
        if (groupBytes + o.value.length > PACK_MAX_BYTES) await flushPack();
        group.push({ key: o.key, value: o.value, version, at: changes.length });
        groupBytes += o.value.length;
        changes.push({ bucket, key: o.key }); // placeholder, filled in when the pack is built
        continue;
      }
      const id = newId(version, freshRandom(8));
      const nodes = placeFragments(id, this.nodeIds, width);
      const dek = newDataKey();
      const aad = partAad(id);
      const part: PartLayout = { id, nodes, size: o.value.length, wrappedKey: wrapKey(master, dek, wrapAad(tenant, id)), stripes: [], md5: createHash('md5').update(o.value).digest('hex') };
      // Larger values: encrypted and encoded in memory, stripe by stripe, as objects of their own.
      const enc = new ChunkEncryptor(dek, aad);
      const sealed = [...enc.push(o.value), enc.final()];
      const cipherStripes: Buffer[] = [];
      for (let c = 0; c < sealed.length; c += STRIPE_CHUNKS) cipherStripes.push(Buffer.concat(sealed.slice(c, c + STRIPE_CHUNKS)));
      const { infos, frags } = await encodeStripes(policy, cipherStripes);
      part.stripes = infos;
      const meta: ObjectMeta = {
        id,
        version,
        tenant,
        bucket,
        key: o.key,
        policy: policyText,
        storageClass,
        size: o.value.length,
        etag: `"${part.md5}"`,
        lastModified: Date.now(),
        parts: [part],
      };
      addEntries(nodes, frags, id, seal(metaKey, pack(meta), Buffer.from(`securegrid/meta/${id}`)));
      changes.push({ bucket, key: o.key, meta });
    }
    await flushPack();
    const failedNodes = new Set<string>();
    await Promise.all(
      [...perNode].map(async ([n, entries]) => {
        try {
          await this.byId.get(n)!.put(entries);
          this.m.fragmentWrites.inc(entries.length);
        } catch (err) {
          failedNodes.add(n);
          this.m.fragmentFailures.inc({ kind: 'write' });
          this.opts.log.warn({ node: n, err: (err as Error).message }, 'batch fragment write failed');
        }
      }),
    );
    const need = writeQuorum(policy);
    for (const p of placed) {
      const ok = roles.quorum.filter((i) => !failedNodes.has(p.nodes[i]!)).length;
      if (ok < need) {
        void Promise.allSettled([...perNode].map(([n, entries]) => this.byId.get(n)!.delete(entries.map((e) => e.key))));
        throw this.quorumError('write', ok, need, policy);
      }
    }
    await this.commit(changes, newPacks);
    for (const { i } of writes) results[i] = { ok: true };
    return results;
  }

  /**
   * A pack of small values, sealed, encoded and placed, with its members' index entries and its sealed metadata
   * copy, ready to be written (nothing is written here).
   */
  private async preparePack(
    tenant: string,
    bucket: string,
    policy: Policy,
    storageClass: string,
    master: Buffer,
    metaKey: Buffer,
    members: ReadonlyArray<PackMemberInput>,
  ): Promise<{ rec: PackRecord; metas: ObjectMeta[]; entries: Buffer[]; frags: Buffer[][]; copy: Buffer }> {
    const policyText = formatPolicy(policy);
    const id = newId(nextVersion(), freshRandom(8));
    const nodes = placeFragments(id, this.nodeIds, policyWidth(policy));
    const dek = newDataKey();
    const built = buildPack(dek, id, members.map((m) => m.value), STRIPE_CIPHER);
    const { infos, frags } = await encodeStripes(policy, built.stripes);
    let size = 0;
    for (const m of members) size += m.value.length;
    const layout: PartLayout = { id, nodes, size, wrappedKey: wrapKey(master, dek, wrapAad(tenant, id)), stripes: infos, md5: '' };
    const now = Date.now();
    const digests: Buffer[] = new Array(members.length);
    const metas = members.map((m, j): ObjectMeta => {
      const d = (digests[j] = m.md5 ?? (hash('md5', m.value, 'buffer') as unknown as Buffer));
      const r = built.refs[j]!;
      const ref: PackRef = { id, s: r.s, bo: r.bo, bl: r.bl, bn: r.bn, o: r.o, n: r.n };
      const meta: ObjectMeta = {
        id: `${id}-${j}`,
        version: m.version,
        tenant,
        bucket,
        key: m.key,
        policy: policyText,
        storageClass,
        size: m.value.length,
        etag: `"${d.toString('hex')}"`,
        lastModified: now,
        parts: [],
        pack: ref,
      };
      if (m.contentType !== undefined) meta.contentType = m.contentType;
      if (m.userMeta !== undefined) meta.userMeta = m.userMeta;
      return meta;
    });
    const rec: PackRecord = { id, tenant, bucket, policy: policyText, created: now, layout, members: metas.length, live: metas.length, liveBytes: size };
    this.rememberKey(id, dek);
    // The sealed copy beside the fragments lists every member: enough to rebuild their index entries.
    // Compact entries are self-delimiting: the copy carries them as one blob (one copy, not one msgpack item each).
    const enc = encodePackMemberBlob(metas, digests);
    const copy = seal(metaKey, pack(enc.blob ? { pack: rec, blob: enc.blob } : { pack: rec, members: enc.entries }), Buffer.from(`securegrid/meta/${id}`));
    return { rec, metas, entries: enc.entries, frags, copy };
  }

  /** preparePack, then its fragments written to a write quorum (compaction; a batch writes its packs itself). */
  private async writePackFragments(
    tenant: string,
    bucket: string,
    policy: Policy,
    storageClass: string,
    members: ReadonlyArray<PackMemberInput>,
  ): Promise<{ rec: PackRecord; metas: ObjectMeta[]; entries: Buffer[] }> {
    const master = await this.opts.keys.tenantKey(tenant, { create: true });
    const metaKey = await this.opts.keys.serviceKey('object-meta');
    const p = await this.preparePack(tenant, bucket, policy, storageClass, master, metaKey, members);
    const nodes = p.rec.layout.nodes;
    const failed = new Set<number>();
    await Promise.all(
      nodes.map(async (n, fi) => {
        try {
          await this.byId.get(n)!.put([...p.frags.map((fr, si) => ({ key: fragKey(p.rec.id, si, fi), value: fr[fi]! })), { key: metaCopyKey(p.rec.id), value: p.copy }]);
          this.m.fragmentWrites.inc(p.frags.length);
        } catch {
          failed.add(fi);
          this.m.fragmentFailures.inc({ kind: 'write' });
        }
      }),
    );
    const ok = fragmentRoles(policy).quorum.filter((i) => !failed.has(i)).length;
    const need = writeQuorum(policy);
    if (ok < need) {
      void this.removePackFragments(p.rec);
      throw this.quorumError('write', ok, need, policy);
    }
    return p;
  }

  // ---------------------------------------------------------------- healing

  /** Objects whose reads found a missing or corrupt fragment since the last drain. */
  takeHealQueue(): string[] {
    const ids = [...this.healQueue];
    this.healQueue.clear();
    return ids;
  }

  /** Checks every fragment of one object against its checksum and rebuilds what is missing or corrupt. */
  async healObject(meta: ObjectMeta, report: HealReport = emptyHealReport()): Promise<HealReport> {
    if (meta.pack) {
      const rec = this.opts.meta.packs.get(meta.pack.id);
      if (rec) await this.healPack(rec, report);
      return report;
    }
    const policy = parsePolicy(meta.policy);
    const width = policyWidth(policy);
    report.objects++;
    let copy: Buffer | undefined;
    for (const part of meta.parts) await this.healPart(policy, part, report);
    // The metadata copies beside the fragments.
    const copyNodes = meta.parts.length === 1 && meta.parts[0]!.id === meta.id ? meta.parts[0]!.nodes : placeFragments(meta.id, this.nodeIds, Math.min(this.nodeIds.length, width));
    await Promise.all(
      copyNodes.map(async (n) => {
        const node = this.byId.get(n);
        if (!node) return;
        try {
          const have = await node.get(metaCopyKey(meta.id));
          let fine = false;
          if (have) {
            try {
              fine = (await this.readMetaCopy(meta.id, have)).version === meta.version;
            } catch {
              fine = false;
            }
          }
          if (!fine) {
            copy ??= await this.metaCopy(meta);
            await node.put([{ key: metaCopyKey(meta.id), value: copy }]);
          }
        } catch (err) {
          if (!(err instanceof NodeUnavailableError)) throw err;
        }
      }),
    );
    return report;
  }

  /** The sealed metadata copy of a pack: the pack record and every member's index entry as written. */
  async readPackCopy(packId: string, sealed: Buffer): Promise<{ pack: PackRecord; members: ObjectMeta[] }> {
    const key = await this.opts.keys.serviceKey('object-meta');
    const c = unpack(unseal(key, sealed, Buffer.from(`securegrid/meta/${packId}`))) as { pack: PackRecord; members?: Buffer[]; blob?: Buffer };
    return { pack: c.pack, members: c.blob ? decodePackMemberBlob(c.blob) : (c.members ?? []).map((b) => decodeObjectMeta(b)) };
  }

  /** Checks every fragment of a pack, rebuilds what is missing or corrupt, and restores its metadata copies from a good one. */
  async healPack(rec: PackRecord, report: HealReport = emptyHealReport()): Promise<HealReport> {
    report.objects++;
    await this.healPart(parsePolicy(rec.policy), rec.layout, report);
    const copies = await Promise.all(
      rec.layout.nodes.map(async (n) => {
        try {
          const have = await this.byId.get(n)?.get(metaCopyKey(rec.id));
          if (!have) return { n, ok: false as const };
          try {
            return (await this.readPackCopy(rec.id, have)).pack.id === rec.id ? { n, ok: true as const, have } : { n, ok: false as const };
          } catch {
            return { n, ok: false as const };
          }
        } catch (err) {
          if (!(err instanceof NodeUnavailableError)) throw err;
          return { n, ok: true as const, have: undefined };
        }
      }),
    );
    const good = copies.find((c) => c.ok && c.have)?.have;
    if (!good) {
      if (copies.some((c) => !c.ok)) this.opts.log.error({ pack: rec.id }, 'no readable metadata copy of the pack is left (its index entries are intact)');
      return report;
    }
    await Promise.all(
      copies
        .filter((c) => !c.ok)
        .map(async (c) => {
          try {
            await this.byId.get(c.n)!.put([{ key: metaCopyKey(rec.id), value: good }]);
          } catch (err) {
            if (!(err instanceof NodeUnavailableError)) throw err;
          }
        }),
    );
    return report;
  }

  /** Checks every fragment of one part against its checksum and rebuilds what is missing or corrupt. */
  private async healPart(policy: Policy, part: PartLayout, report: HealReport): Promise<void> {
    const width = policyWidth(policy);
    {
      for (let s = 0; s < part.stripes.length; s++) {
        const info = part.stripes[s]!;
        const frags: (Buffer | undefined)[] = [];
        const bad: number[] = [];
        await Promise.all(
          Array.from({ length: width }, async (_, i) => {
            report.fragmentsChecked++;
            const node = this.byId.get(part.nodes[i]!);
            let buf: Buffer | undefined;
            try {
              buf = node ? await node.get(fragKey(part.id, s, i)) : undefined;
            } catch (err) {
              if (!(err instanceof NodeUnavailableError)) throw err;
              report.unreachable++;
              return;
            }
            if (!buf) {
              report.missing++;
              bad.push(i);
            } else if (!sum16(buf).equals(info.sums.subarray(i * SUM_LEN, (i + 1) * SUM_LEN))) {
              report.corrupt++;
              this.m.corruptFragments.inc();
              bad.push(i);
            } else {
              frags[i] = buf;
            }
          }),
        );
        if (bad.length === 0) continue;
        const present = Array.from({ length: width }, (_, i) => frags[i] !== undefined);
        if (!readQuorumMet(policy, present)) {
          report.unrecoverable += bad.length;
          this.opts.log.error({ object: part.id }, 'object has too few healthy fragments to heal');
          continue;
        }
        bad.sort((x, y) => x - y);
        const rebuilt = await rebuildFragments(policy, frags, info.shard, info.len, bad);
        await Promise.all(
          bad.map(async (i, j) => {
            try {
              await this.byId.get(part.nodes[i]!)!.put([{ key: fragKey(part.id, s, i), value: rebuilt[j]! }]);
              report.rebuilt++;
              this.m.healed.inc();
            } catch (err) {
              if (!(err instanceof NodeUnavailableError)) throw err;
              report.unreachable++;
            }
          }),
        );
      }
    }
  }

  /** Every object in the index and every pack (once each), then compaction of mostly-dead packs, then orphaned fragments. */
  async healAll(onProgress?: (done: number, report: HealReport) => void): Promise<HealReport> {
    const report = emptyHealReport();
    let done = 0;
    for (const { value } of this.opts.meta.objects.getRange({})) {
      if (value.pack) continue;
      await this.healObject(value, report);
      onProgress?.(++done, report);
    }
    for (const { value } of this.opts.meta.packs.getRange({})) {
      await this.healPack(value, report);
      onProgress?.(++done, report);
    }
    this.healQueue.clear();
    report.packsCompacted = await this.compactPacks();
    report.orphansRemoved = await this.collectOrphans();
    return report;
  }

  /**
   * Rewrites the live members of packs that are mostly garbage (live bytes below `threshold` of the pack) into
   * new packs, and drops the old ones. A member overwritten or deleted meanwhile is left as it is. Returns how
   * many packs were compacted.
   */
  async compactPacks(threshold = 0.5): Promise<number> {
    const candidates: PackRecord[] = [];
    for (const { value } of this.opts.meta.packs.getRange({})) if (value.liveBytes < value.layout.size * threshold) candidates.push(value);
    let compacted = 0;
    for (const rec of candidates) {
      try {
        if (await this.compactPack(rec)) compacted++;
      } catch (err) {
        this.opts.log.warn({ pack: rec.id, err: (err as Error).message }, 'pack compaction failed; will retry on the next scrub');
      }
    }
    return compacted;
  }

  private async compactPack(rec: PackRecord): Promise<boolean> {
    // The live members: those whose index entry still points into this pack (the sealed copy lists all of them).
    let listed: ObjectMeta[] | undefined;
    for (const n of rec.layout.nodes) {
      try {
        const have = await this.byId.get(n)?.get(metaCopyKey(rec.id));
        if (have) {
          listed = (await this.readPackCopy(rec.id, have)).members;
          break;
        }
      } catch {
        // another copy
      }
    }
    if (!listed) return false;
    const live = listed
      .map((l) => ({ l, m: this.opts.meta.objects.get(objectKey(l.bucket, l.key)) }))
      .filter((x) => x.m !== undefined && x.m.pack?.id === rec.id && x.m.version === x.l.version)
      .map((x) => x.m!);
    if (live.length > 0) {
      const values = await this.readValues(live);
      // Content type, user metadata and ETag travel along, so that the new pack's sealed copy still has them.
      const ops = live.map((m, j): PackMemberInput => ({ key: m.key, value: values[j]!, version: m.version, md5: Buffer.from(m.etag.slice(1, 33), 'hex'), contentType: m.contentType, userMeta: m.userMeta }));
      await this.rewritePacked(rec.tenant, rec.bucket, rec.policy, live, ops);
    }
    // Whatever still points into the old pack now (nothing, unless a rewrite lost a race) keeps it alive.
    const meta = this.opts.meta;
    const dropped = await meta.transaction(() => {
      const cur = meta.packs.get(rec.id);
      if (!cur || cur.live > 0) return undefined;
      meta.packs.remove(rec.id);
      meta.ids.remove(rec.id);
      return cur;
    });
    if (dropped) await this.removePackFragments(dropped);
    return true;
  }

  /**
   * Writes values into a fresh pack under the same keys and versions and repoints each index entry that still
   * refers to `old[j]` (same version, same pack); the old pack's live count drops by the members moved.
   */
  private async rewritePacked(tenant: string, bucket: string, policyText: string, old: ObjectMeta[], ops: PackMemberInput[]): Promise<void> {
    const built = await this.writePackFragments(tenant, bucket, parsePolicy(policyText), old[0]!.storageClass, ops);
    const meta = this.opts.meta;
    const deadPacks: PackRecord[] = [];
    await meta.transaction(() => {
      meta.packs.put(built.rec.id, built.rec);
      meta.ids.put(built.rec.id, { pack: built.rec.id });
      const released = new Map<string, { n: number; bytes: number }>();
      let unused = 0;
      let unusedBytes = 0;
      built.metas.forEach((m, j) => {
        const k = objectKey(bucket, m.key);
        const cur = meta.objects.get(k);
        const was = old[j]!;
        if (!cur || cur.version !== was.version || cur.pack?.id !== was.pack!.id) {
          unused++;
          unusedBytes += m.size;
          return;
        }
        meta.objects.put(k, { ...m, etag: cur.etag, lastModified: cur.lastModified, contentType: cur.contentType, userMeta: cur.userMeta });
        const r = released.get(was.pack!.id) ?? { n: 0, bytes: 0 };
        r.n++;
        r.bytes += was.size;
        released.set(was.pack!.id, r);
      });
      if (unused > 0) {
        built.rec.live -= unused;
        built.rec.liveBytes -= unusedBytes;
        if (built.rec.live <= 0) {
          meta.packs.remove(built.rec.id);
          meta.ids.remove(built.rec.id);
          deadPacks.push(built.rec);
        } else meta.packs.put(built.rec.id, built.rec);
      }
      for (const [id, r] of released) {
        const rec = meta.packs.get(id);
        if (!rec) continue;
        rec.live -= r.n;
        rec.liveBytes -= r.bytes;
        if (rec.live <= 0) {
          meta.packs.remove(id);
          meta.ids.remove(id);
          deadPacks.push(rec);
        } else meta.packs.put(id, rec);
      }
    });
    for (const p of deadPacks) void this.removePackFragments(p).catch(() => undefined);
  }

  /** Heals the objects that reads flagged. */
  async healQueued(): Promise<HealReport> {
    const report = emptyHealReport();
    const ids = this.takeHealQueue();
    for (const id of ids) {
      const owner = this.opts.meta.ids.get(id);
      if (owner && 'pack' in owner) {
        const rec = this.opts.meta.packs.get(owner.pack);
        if (rec) await this.healPack(rec, report);
        continue;
      }
      if (!owner || !('key' in owner)) continue;
      const meta = this.opts.meta.objects.get(objectKey(owner.bucket, owner.key));
      if (meta) await this.healObject(meta, report);
    }
    return report;
  }

  /** Removes fragments no object or upload refers to, once they are older than the grace period. */
  async collectOrphans(now = Date.now()): Promise<number> {
    let removed = 0;
    for (const node of this.opts.nodes) {
      let after: string | undefined;
      try {
        do {
          const page = await node.list({ after, limit: 1000 });
          const dead = page.keys
            .map((k) => k.key)
            .filter((k) => {
              const id = k.slice(0, k.indexOf('.'));
              return id.length === 32 && now - idTime(id) > ORPHAN_GRACE_MS && !this.opts.meta.ids.get(id);
            });
          if (dead.length) {
            await node.delete(dead);
            removed += dead.length;
          }
          after = page.next;
        } while (after);
      } catch (err) {
        if (!(err instanceof NodeUnavailableError)) throw err;
      }
    }
    return removed;
  }

  /** A single object written from a Buffer (for our own services and the demo). */
  putBuffer(tenant: string, bucket: string, key: string, value: Buffer, o: PutOptions = {}): Promise<ObjectMeta> {
    return this.putObject(tenant, bucket, key, once(value), o);
  }

  async getBuffer(tenant: string, bucket: string, key: string): Promise<Buffer> {
    const meta = this.head(tenant, bucket, key);
    const chunks: Buffer[] = [];
    for await (const c of this.read(meta)) chunks.push(c);
    return Buffer.concat(chunks);
  }
}
