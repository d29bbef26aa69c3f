// The ingest service's keys behind one seam (IngestKeys): today a sealed key directory, later CAS.
// Symmetric keys come from the project's SealedFileKeyProvider; the asymmetric ones (collector identity per
// suite, metrology key) are kept in <dir>/ingest-keys.json sealed under a service key of that provider.
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  generateIdentity,
  generateMetrologyKey,
  metrologyKeyFromPem,
  parseSuite,
  publicKeyFromDer,
  seal,
  unseal,
  SealedFileKeyProvider,
  type IdentityKey,
  type KeyProvider,
  type MetrologyKey,
  type SuiteName,
} from '../crypto/index.js';
import { IngestError } from './errors.js';

export interface IngestKeys {
  /** Suites the collector has an identity for (meters of other suites cannot hand-shake). */
  suites(): Promise<SuiteName[]>;
  collectorIdentity(suite: SuiteName): Promise<IdentityKey>;
  /** 32 bytes shared by every ingest instance: seals the stateless handshake cookie. */
  cookieKey(): Promise<Buffer>;
  /** 32 bytes shared by every ingest instance: seals session state in `meter_session`. */
  sessionKey(): Promise<Buffer>;
  metrologyKey(): Promise<MetrologyKey>;
  close(): Promise<void>;
}

const FORMAT = 'securegrid-ingest-keys/1';
const FILE = 'ingest-keys.json';

interface SealedEntry {
  /** SPKI DER, base64 (public: safe to print). */
  publicKey: string;
  /** seal(wrap key, private key bytes, AAD = FORMAT ‖ 0 ‖ name), base64. */
  sealed: string;
}

interface KeysFile {
  format: string;
  collector: Record<string, SealedEntry>;
  metrology?: SealedEntry & { keyId: string };
}

const aad = (name: string) => Buffer.from(`${FORMAT}\0${name}`, 'utf8');

async function readKeysFile(dir: string): Promise<KeysFile> {
  const file = path.join(dir, FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return { format: FORMAT, collector: {} };
    throw err;
  }
  let f: KeysFile;
  try {
    f = JSON.parse(text) as KeysFile;
  } catch {
    throw new IngestError('no-keys', `${file} is not valid JSON; restore it from backup or run 'securegrid ingest keys init' in a new directory`);
  }
  if (f.format !== FORMAT || typeof f.collector !== 'object' || f.collector === null) throw new IngestError('no-keys', `${file} is not a ${FORMAT} file`);
  return f;
}

async function writeKeysFile(dir: string, f: KeysFile): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(tmp, `${JSON.stringify(f, null, 1)}\n`, { mode: 0o600 });
  await fs.rename(tmp, file);
}

/** The public half of the key directory: what meters are provisioned with and what auditors pin. */
export interface PublicIngestKeys {
  collector: Partial<Record<SuiteName, string>>;
  metrology?: { publicKey: string; keyId: string };
}

/**
 * Creates the collector identities for `suites` that are missing, the metrology key, the cookie key and the
 * session key (existing keys are kept: re-running is safe). RSA keygen takes a second or two per suite.
 */
export async function initIngestKeys(dir: string, suites: readonly SuiteName[]): Promise<PublicIngestKeys> {
  const provider = new SealedFileKeyProvider(dir);
  try {
    const wrap = await provider.serviceKey('ingest-wrap');
    await provider.serviceKey('ingest-cookie');
    await provider.serviceKey('ingest-session');
    const f = await readKeysFile(dir);
    for (const s of suites) {
      const suite = parseSuite(s);
      if (f.collector[suite]) continue;
      const id = generateIdentity(suite);
      const der = id.privateKey.export({ type: 'pkcs8', format: 'der' });
      f.collector[suite] = { publicKey: id.publicKey.toString('base64'), sealed: seal(wrap, der, aad(`collector:${suite}`)).toString('base64') };
      der.fill(0);
    }
    if (!f.metrology) {
      const m = generateMetrologyKey();
      f.metrology = { publicKey: m.publicKey.toString('base64'), keyId: m.keyId, sealed: seal(wrap, Buffer.from(m.toPem(), 'utf8'), aad('metrology')).toString('base64') };
    }
    wrap.fill(0);
    await writeKeysFile(dir, f);
    return publicOf(f);
  } finally {
    await provider.close();
  }
}

function publicOf(f: KeysFile): PublicIngestKeys {
  const collector: Partial<Record<SuiteName, string>> = {};
  for (const [s, e] of Object.entries(f.collector)) collector[s as SuiteName] = e.publicKey;
  return { collector, ...(f.metrology ? { metrology: { publicKey: f.metrology.publicKey, keyId: f.metrology.keyId } } : {}) };
}

/** The public keys of a key directory (no private material is read). */
export async function publicIngestKeys(dir: string): Promise<PublicIngestKeys> {
  const f = await readKeysFile(dir);
  if (Object.keys(f.collector).length === 0 && !f.metrology) throw new IngestError('no-keys', `no ingest keys in ${dir}; run 'securegrid ingest keys init --data ${dir}'`);
  return publicOf(f);
}

/** IngestKeys from a key directory made by initIngestKeys (root key: SECUREGRID_ROOT_KEY or <dir>/root.key). */
export class FileIngestKeys implements IngestKeys {
  private readonly provider: KeyProvider;
  private file: Promise<KeysFile> | undefined;
  private readonly identities = new Map<SuiteName, IdentityKey>();
  private metrology: MetrologyKey | undefined;

  constructor(private readonly dir: string) {
    this.provider = new SealedFileKeyProvider(dir);
  }

  private keysFile(): Promise<KeysFile> {
    this.file ??= readKeysFile(this.dir);
    return this.file;
  }

  private async unsealEntry(name: string, e: SealedEntry): Promise<Buffer> {
    const wrap = await this.provider.serviceKey('ingest-wrap');
    try {
      return unseal(wrap, Buffer.from(e.sealed, 'base64'), aad(name));
    } catch {
      throw new IngestError('no-keys', `cannot unseal ${name} in ${path.join(this.dir, FILE)}: wrong root key or a damaged file`);
    } finally {
      wrap.fill(0);
    }
  }

  async suites(): Promise<SuiteName[]> {
    return Object.keys((await this.keysFile()).collector).map(parseSuite);
  }

  async collectorIdentity(suite: SuiteName): Promise<IdentityKey> {
    const hit = this.identities.get(suite);
    if (hit) return hit;
    const e = (await this.keysFile()).collector[suite];
    if (!e) throw new IngestError('no-keys', `no collector identity for ${suite} in ${this.dir}; run 'securegrid ingest keys init --data ${this.dir} --suites ${suite}'`);
    const der = await this.unsealEntry(`collector:${suite}`, e);
    const privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    der.fill(0);
    const publicKey = Buffer.from(e.publicKey, 'base64');
    publicKeyFromDer(suite, publicKey); // the stored public key must be of the suite …
    if (!createPublicKey(privateKey).export({ type: 'spki', format: 'der' }).equals(publicKey)) {
      throw new IngestError('no-keys', `the ${suite} collector key pair in ${this.dir} does not match; restore the key directory`); // … and of this private key
    }
    const id: IdentityKey = { suite, publicKey, privateKey };
    this.identities.set(suite, id);
    return id;
  }

  cookieKey(): Promise<Buffer> {
    return this.provider.serviceKey('ingest-cookie');
  }

  sessionKey(): Promise<Buffer> {
    return this.provider.serviceKey('ingest-session');
  }

  async metrologyKey(): Promise<MetrologyKey> {
    if (this.metrology) return this.metrology;
    const e = (await this.keysFile()).metrology;
    if (!e) throw new IngestError('no-keys', `no metrology key in ${this.dir}; run 'securegrid ingest keys init --data ${this.dir}'`);
    const pem = await this.unsealEntry('metrology', e);
    this.metrology = metrologyKeyFromPem(pem.toString('utf8'));
    pem.fill(0);
    return this.metrology;
  }

  async close(): Promise<void> {
    this.identities.clear();
    this.metrology = undefined;
    await this.provider.close();
  }
}
