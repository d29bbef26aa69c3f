// The gateway's own trusted state, in LMDB under <data>/gateway/meta: buckets, the ordered object index
// (the namespace; storage nodes never see a name), API keys, multipart uploads, and the id → owner map used
// to collect orphaned fragments. Several processes (the gateway and `securegrid kvs keys create`) may open it.
import { open, type Database, type RootDatabase } from 'lmdb';
import { mkdirSync } from 'node:fs';

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
  parts: PartLayout[];
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
export type IdOwner = { bucket: string; key: string } | { upload: string };

const SEP = 0;

export function objectKey(bucket: string, key: string): Buffer {
  return Buffer.concat([Buffer.from(bucket, 'utf8'), Buffer.from([SEP]), Buffer.from(key, 'utf8')]);
}

export function partKey(uploadId: string, partNumber: number): Buffer {
  const b = Buffer.alloc(Buffer.byteLength(uploadId) + 5);
  b.write(uploadId, 0, 'utf8');
  b[b.length - 5] = SEP;
  b.writeUInt32BE(partNumber, b.length - 4);
  return b;
}

export class MetaStore {
  readonly root: RootDatabase;
  readonly buckets: Database<BucketRecord, string>;
  readonly objects: Database<ObjectMeta, Buffer>;
  readonly accessKeys: Database<AccessKeyRecord, string>;
  readonly uploads: Database<UploadRecord, string>;
  readonly uploadParts: Database<UploadPartRecord, Buffer>;
  readonly ids: Database<IdOwner, string>;
  readonly settings: Database<unknown, string>;

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true });
    // overlappingSync off: a commit resolves only after it is flushed, so an acknowledged write survives a crash.
    this.root = open({ path: dir, maxDbs: 16, compression: false, overlappingSync: false, noSync: false, noMetaSync: false });
    this.buckets = this.root.openDB({ name: 'buckets' });
    this.objects = this.root.openDB({ name: 'objects', keyEncoding: 'binary' });
    this.accessKeys = this.root.openDB({ name: 'access-keys' });
    this.uploads = this.root.openDB({ name: 'uploads' });
    this.uploadParts = this.root.openDB({ name: 'upload-parts', keyEncoding: 'binary' });
    this.ids = this.root.openDB({ name: 'ids' });
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
