// API keys (the paper's per-client keys), in the gateway's LMDB: access key id → tenant and the secret,
// sealed under a service key from the KeyProvider (SigV4 needs the secret itself, so it cannot be a hash).
// `securegrid kvs keys create` writes here while the gateway runs: lookups that miss re-read LMDB.
import { randomBytes } from 'node:crypto';
import { seal, unseal, type KeyProvider } from '../../crypto/index.js';
import type { MetaStore } from './meta-store.js';

const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const TENANT_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export interface AccessKey {
  accessKeyId: string;
  secretAccessKey: string;
  tenant: string;
}

export function checkTenantName(tenant: string): void {
  if (!TENANT_RE.test(tenant)) {
    throw new Error(`tenant name '${tenant}' is invalid: use 1-63 lower-case letters, digits, '-' or '_', starting with a letter or digit`);
  }
}

export class Accounts {
  private readonly cache = new Map<string, { tenant: string; secret: string }>();

  constructor(private readonly meta: MetaStore, private readonly keys: KeyProvider) {}

  private async sealKey(): Promise<Buffer> {
    return this.keys.serviceKey('api-keys');
  }

  async create(tenant: string): Promise<AccessKey> {
    checkTenantName(tenant);
    const idBytes = randomBytes(16);
    let accessKeyId = 'SG';
    for (let i = 0; i < 18; i++) accessKeyId += ID_ALPHABET[idBytes[i % 16]! % 32];
    const secretAccessKey = randomBytes(30).toString('base64').replace(/\+/g, 'A').replace(/\//g, 'B');
    const sealedSecret = seal(await this.sealKey(), Buffer.from(secretAccessKey), Buffer.from(`securegrid/api-key/${accessKeyId}`));
    await this.keys.tenantKey(tenant, { create: true });
    await this.meta.accessKeys.put(accessKeyId, { tenant, sealedSecret, created: Date.now() });
    return { accessKeyId, secretAccessKey, tenant };
  }

  async lookup(accessKeyId: string): Promise<{ tenant: string; secret: string } | undefined> {
    const hit = this.cache.get(accessKeyId);
    if (hit) return hit;
    if (!/^[A-Z0-9]{16,128}$/.test(accessKeyId)) return undefined;
    const rec = this.meta.accessKeys.get(accessKeyId);
    if (!rec || rec.disabled) return undefined;
    const secret = unseal(await this.sealKey(), Buffer.from(rec.sealedSecret), Buffer.from(`securegrid/api-key/${accessKeyId}`)).toString();
    const entry = { tenant: rec.tenant, secret };
    this.cache.set(accessKeyId, entry);
    return entry;
  }

  list(): Array<{ accessKeyId: string; tenant: string; created: number; disabled: boolean }> {
    return [...this.meta.accessKeys.getRange({})].map(({ key, value }) => ({ accessKeyId: key, tenant: value.tenant, created: value.created, disabled: !!value.disabled }));
  }

  async revoke(accessKeyId: string): Promise<boolean> {
    const rec = this.meta.accessKeys.get(accessKeyId);
    if (!rec) return false;
    await this.meta.accessKeys.put(accessKeyId, { ...rec, disabled: true });
    this.cache.delete(accessKeyId);
    return true;
  }
}
