// EmbeddedKvStore: the KvStore interface straight over a gateway's object layer in the same process
// (`securegrid cascadb --embedded`). Same encryption, policies and durability as over HTTPS; no network hop.
import { fromName, toName, type KvEntry, type KvStore, type KvWrite } from './client/kv-store.js';
import type { ObjectLayer } from './gateway/object-layer.js';
import type { S3Error } from './gateway/s3-xml.js';

export class EmbeddedKvStore implements KvStore {
  constructor(private readonly objects: ObjectLayer, private readonly tenant: string, private readonly bucket: string) {}

  async get(key: Buffer): Promise<Buffer | undefined> {
    return (await this.objects.getValues(this.tenant, this.bucket, [toName(key)]))[0];
  }

  getMany(keys: Buffer[]): Promise<(Buffer | undefined)[]> {
    return this.objects.getValues(this.tenant, this.bucket, keys.map(toName));
  }

  async hasMany(keys: Buffer[]): Promise<boolean[]> {
    return this.objects.hasValues(this.tenant, this.bucket, keys.map(toName));
  }

  async write(ops: KvWrite[]): Promise<void> {
    if (ops.length === 0) return;
    const res = await this.objects.batch(
      this.tenant,
      this.bucket,
      ops.map((o) => (o.op === 'put' ? { op: 'put', key: toName(o.key), value: o.value } : { op: 'delete', key: toName(o.key) })),
    );
    const bad = res.find((r) => !r.ok);
    if (bad && !bad.ok) throw Object.assign(new Error(bad.message), { code: bad.code });
  }

  async *scan(start: Buffer, end?: Buffer, opts: { pageSize?: number } = {}): AsyncGenerator<KvEntry> {
    const page = opts.pageSize ?? 512;
    let from = toName(start);
    const to = end ? toName(end) : undefined;
    while (true) {
      const got = await this.objects.scanValues(this.tenant, this.bucket, from, to, page);
      for (const e of got) yield { key: fromName(e.key), value: e.value };
      if (got.length < page) return;
      // The least name after the last one: continue strictly past it.
      from = `${got[got.length - 1]!.key}\0`;
    }
  }

  async close(): Promise<void> {}
}

export type { S3Error };
