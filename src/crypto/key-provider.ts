// Tenant master keys reach trusted services only through a KeyProvider. Today: a sealed key file.
// A later issue plugs in the configuration and attestation service (CAS) behind the same interface.

export interface KeyProvider {
  /** The tenant's 32-byte master key; created on first use when create is true, else throws if absent. */
  tenantKey(tenant: string, opts?: { create?: boolean }): Promise<Buffer>;
  /** A 32-byte key for the service's own records (e.g. API-key secrets, metadata copies), named by purpose. */
  serviceKey(purpose: string): Promise<Buffer>;
  close(): Promise<void>;
}

/**
 * Keys kept in `<dir>/keys.sealed`, a JSON file whose key material is AES-256-GCM-sealed under a root key.
 * The root key comes from the SECUREGRID_ROOT_KEY environment variable (64 hex chars) or else from
 * `<dir>/root.key` (created 0600 at first start). On SGX the root key would be the enclave sealing key;
 * here it is an ordinary file, and the README says so.
 * Safe for several processes: re-reads the file when a key is missing; writes via temp file + rename.
 */
export declare class SealedFileKeyProvider implements KeyProvider {
  constructor(dir: string);
  tenantKey(tenant: string, opts?: { create?: boolean }): Promise<Buffer>;
  serviceKey(purpose: string): Promise<Buffer>;
  close(): Promise<void>;
}
