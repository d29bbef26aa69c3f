// Tenant master keys reach trusted services only through a KeyProvider. Today: a sealed key file.
// A later issue plugs in the configuration and attestation service (CAS) behind the same interface.

import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { seal, unseal } from './envelope.js';

export interface KeyProvider {
  /** The tenant's 32-byte master key; created on first use when create is true, else throws if absent. */
  tenantKey(tenant: string, opts?: { create?: boolean }): Promise<Buffer>;
  /** A 32-byte key for the service's own records (e.g. API-key secrets, metadata copies), named by purpose. */
  serviceKey(purpose: string): Promise<Buffer>;
  close(): Promise<void>;
}

export type KeyProviderErrorCode = 'NoSuchTenantKey' | 'BadRootKey' | 'KeyFileCorrupt' | 'KeyFileLocked' | 'Closed' | 'BadInput';

/** Errors from a KeyProvider; `code` is stable. Messages never contain key material. */
export class KeyProviderError extends Error {
  readonly code: KeyProviderErrorCode;
  constructor(code: KeyProviderErrorCode, message: string) {
    super(message);
    this.name = 'KeyProviderError';
    this.code = code;
  }
}

const KEY_SIZE = 32;
const FORMAT = 'securegrid-keys/1';
const ROOT_ENV = 'SECUREGRID_ROOT_KEY';
const HEX64 = /^[0-9a-fA-F]{64}$/;
const LOCK_STALE_MS = 30_000;
const LOCK_TIMEOUT_MS = 15_000;

interface KeyFile {
  format: string;
  /** entry name ("tenant:<name>" | "service:<purpose>") → base64(iv ‖ sealed key ‖ tag), AAD = FORMAT ‖ 0 ‖ name */
  keys: Record<string, string>;
}

function entryAad(name: string): Buffer {
  return Buffer.from(`${FORMAT}\0${name}`, 'utf8');
}

function isErrno(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === code;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Best-effort fsync of a directory so a rename survives a crash. */
async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await fs.open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // not supported everywhere (e.g. some filesystems); the rename itself is still atomic
  }
}

/** Writes `data` to a fresh 0600 temp file next to `target`, fsyncs it, and returns its path. */
async function writeTemp(target: string, data: string | Buffer): Promise<string> {
  const tmp = `${target}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fh = await fs.open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await fs.rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  return tmp;
}

/**
 * Keys kept in `<dir>/keys.sealed`, a JSON file whose key material is AES-256-GCM-sealed under a root key.
 * The root key comes from the SECUREGRID_ROOT_KEY environment variable (64 hex chars) or else from
 * `<dir>/root.key` (created 0600 at first start). On SGX the root key would be the enclave sealing key;
 * here it is an ordinary file, and the README says so.
 * Safe for several processes: re-reads the file when a key is missing; writes via temp file + rename.
 *
 * File: {"format":"securegrid-keys/1","keys":{"tenant:<name>":"<base64>","service:<purpose>":"<base64>"}},
 * each value iv ‖ ciphertext ‖ tag (seal() from envelope.ts) with AAD "securegrid-keys/1\0<entry name>", so an
 * entry cannot be moved to another name. Creating a key happens under `<dir>/keys.sealed.lock` (O_EXCL lock
 * file; one older than 30 s is taken as stale): re-read, add, write temp file, fsync, rename. Without the lock
 * two processes adding different keys at once could each rename over the other's addition.
 * Keys are cached in memory; callers get copies. tenantKey creates a missing key only with { create: true }.
 */
export class SealedFileKeyProvider implements KeyProvider {
  readonly #dir: string;
  readonly #file: string;
  readonly #lockFile: string;
  readonly #cache = new Map<string, Buffer>();
  #root: Promise<Buffer> | undefined;
  #closed = false;
  #mutex: Promise<unknown> = Promise.resolve();

  constructor(dir: string) {
    if (typeof dir !== 'string' || dir.length === 0) throw new KeyProviderError('BadInput', 'SealedFileKeyProvider needs a directory');
    this.#dir = path.resolve(dir);
    this.#file = path.join(this.#dir, 'keys.sealed');
    this.#lockFile = `${this.#file}.lock`;
  }

  async tenantKey(tenant: string, opts?: { create?: boolean }): Promise<Buffer> {
    if (typeof tenant !== 'string' || tenant.length === 0) throw new KeyProviderError('BadInput', 'tenant must be a non-empty string');
    const key = await this.#get(`tenant:${tenant}`, opts?.create === true);
    if (key === undefined) {
      throw new KeyProviderError(
        'NoSuchTenantKey',
        `no master key for tenant ${JSON.stringify(tenant)} in ${this.#file}; create the tenant first (tenantKey with create: true)`,
      );
    }
    return key;
  }

  async serviceKey(purpose: string): Promise<Buffer> {
    if (typeof purpose !== 'string' || purpose.length === 0) throw new KeyProviderError('BadInput', 'purpose must be a non-empty string');
    return (await this.#get(`service:${purpose}`, true))!;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#mutex.catch(() => undefined);
    for (const k of this.#cache.values()) k.fill(0);
    this.#cache.clear();
    const root = this.#root;
    this.#root = undefined;
    if (root !== undefined) {
      try {
        (await root).fill(0);
      } catch {
        // root key never loaded
      }
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new KeyProviderError('Closed', 'the key provider is closed');
  }

  async #get(name: string, create: boolean): Promise<Buffer | undefined> {
    this.#checkOpen();
    const cached = this.#cache.get(name);
    if (cached !== undefined) return Buffer.from(cached);
    const root = await this.#rootKey();
    // Another process may have added the key since we last looked: re-read before deciding it is missing.
    const found = this.#unsealEntry(root, name, await this.#readFile());
    if (found !== undefined) return this.#remember(name, found);
    if (!create) return undefined;
    return this.#serialized(async () => {
      this.#checkOpen();
      const again = this.#cache.get(name);
      if (again !== undefined) return Buffer.from(again);
      return this.#withFileLock(async () => {
        const file = await this.#readFile();
        const existing = this.#unsealEntry(root, name, file);
        if (existing !== undefined) return this.#remember(name, existing);
        const fresh = randomBytes(KEY_SIZE);
        file.keys[name] = seal(root, fresh, entryAad(name)).toString('base64');
        await this.#writeFile(file);
        return this.#remember(name, fresh);
      });
    });
  }

  #remember(name: string, key: Buffer): Buffer {
    this.#cache.set(name, key);
    return Buffer.from(key);
  }

  /** Runs fn after every earlier fn of this instance has finished (in-process mutual exclusion). */
  #serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#mutex.then(fn, fn);
    this.#mutex = run.catch(() => undefined);
    return run;
  }

  #unsealEntry(root: Buffer, name: string, file: KeyFile): Buffer | undefined {
    if (!Object.prototype.hasOwnProperty.call(file.keys, name)) return undefined;
    const value = file.keys[name];
    let key: Buffer;
    try {
      if (typeof value !== 'string') throw new Error('not a string');
      key = unseal(root, Buffer.from(value, 'base64'), entryAad(name));
    } catch {
      throw new KeyProviderError(
        'BadRootKey',
        `cannot unseal ${JSON.stringify(name)} in ${this.#file}: the root key is not the one the file was sealed with ` +
          `(check ${ROOT_ENV} or ${path.join(this.#dir, 'root.key')}), or the entry is damaged`,
      );
    }
    if (key.length !== KEY_SIZE) {
      throw new KeyProviderError('KeyFileCorrupt', `entry ${JSON.stringify(name)} in ${this.#file} is not a ${KEY_SIZE}-byte key`);
    }
    return key;
  }

  #rootKey(): Promise<Buffer> {
    if (this.#root === undefined) {
      const p = this.#loadRootKey();
      this.#root = p;
      // a failed load is retried on the next call (e.g. after the operator fixes the variable)
      p.catch(() => {
        if (this.#root === p) this.#root = undefined;
      });
    }
    return this.#root;
  }

  async #loadRootKey(): Promise<Buffer> {
    const env = process.env[ROOT_ENV];
    if (env !== undefined && env !== '') {
      if (!HEX64.test(env.trim())) {
        throw new KeyProviderError('BadRootKey', `${ROOT_ENV} must be exactly 64 hex characters (32 bytes); unset it to use ${path.join(this.#dir, 'root.key')}`);
      }
      return Buffer.from(env.trim(), 'hex');
    }
    await fs.mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const rootFile = path.join(this.#dir, 'root.key');
    const existing = await this.#readRootFile(rootFile);
    if (existing !== undefined) return existing;
    // Create it atomically: write a complete temp file, then link it into place (fails if another process won).
    const fresh = randomBytes(KEY_SIZE);
    const tmp = await writeTemp(rootFile, `${fresh.toString('hex')}\n`);
    try {
      await fs.link(tmp, rootFile);
      await syncDir(this.#dir);
      return fresh;
    } catch (e) {
      if (!isErrno(e, 'EEXIST')) throw e;
      fresh.fill(0);
      const theirs = await this.#readRootFile(rootFile);
      if (theirs === undefined) throw new KeyProviderError('BadRootKey', `${rootFile} vanished while starting; retry`);
      return theirs;
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  async #readRootFile(rootFile: string): Promise<Buffer | undefined> {
    let text: string;
    try {
      text = await fs.readFile(rootFile, 'utf8');
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return undefined;
      throw e;
    }
    const hex = text.trim();
    if (!HEX64.test(hex)) {
      throw new KeyProviderError('BadRootKey', `${rootFile} must hold 64 hex characters (32 bytes); restore it from backup or set ${ROOT_ENV}`);
    }
    return Buffer.from(hex, 'hex');
  }

  async #readFile(): Promise<KeyFile> {
    let text: string;
    try {
      text = await fs.readFile(this.#file, 'utf8');
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return { format: FORMAT, keys: {} };
      throw e;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new KeyProviderError('KeyFileCorrupt', `${this.#file} is not valid JSON; restore it from backup`);
    }
    const f = parsed as Partial<KeyFile> | null;
    if (typeof f !== 'object' || f === null || f.format !== FORMAT || typeof f.keys !== 'object' || f.keys === null || Array.isArray(f.keys)) {
      throw new KeyProviderError('KeyFileCorrupt', `${this.#file} is not a ${FORMAT} key file; restore it from backup`);
    }
    return { format: FORMAT, keys: { ...f.keys } };
  }

  async #writeFile(file: KeyFile): Promise<void> {
    await fs.mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const tmp = await writeTemp(this.#file, `${JSON.stringify(file, null, 1)}\n`);
    try {
      await fs.rename(tmp, this.#file);
    } catch (e) {
      await fs.rm(tmp, { force: true });
      throw e;
    }
    await syncDir(this.#dir);
  }

  /** Cross-process exclusion for read-modify-write of keys.sealed. */
  async #withFileLock<T>(fn: () => Promise<T>): Promise<T> {
    await fs.mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const deadline = Date.now() + LOCK_TIMEOUT_MS;
    let delay = 2;
    for (;;) {
      try {
        const fh = await fs.open(this.#lockFile, 'wx', 0o600);
        try {
          await fh.writeFile(`${process.pid} ${new Date().toISOString()}\n`);
        } finally {
          await fh.close();
        }
        break;
      } catch (e) {
        if (!isErrno(e, 'EEXIST')) throw e;
      }
      try {
        const st = await fs.stat(this.#lockFile);
        if (Date.now() - st.mtimeMs > LOCK_STALE_MS) {
          await fs.rm(this.#lockFile, { force: true });
          continue;
        }
      } catch (e) {
        if (isErrno(e, 'ENOENT')) continue;
        throw e;
      }
      if (Date.now() > deadline) {
        throw new KeyProviderError(
          'KeyFileLocked',
          `${this.#lockFile} has been held for over ${LOCK_TIMEOUT_MS / 1000} s; remove it if no securegrid process is running`,
        );
      }
      await sleep(delay + Math.random() * delay);
      delay = Math.min(delay * 2, 50);
    }
    try {
      return await fn();
    } finally {
      await fs.rm(this.#lockFile, { force: true });
    }
  }
}
