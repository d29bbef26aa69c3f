// A simulated fleet: every meter's customer, supply, tariff, habits and identity are a pure function of the
// fleet seed and the meter's index, so a million meters cost nothing until one is asked for.
import { chmodSync, closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { generateIdentity, hkdfSha256, identityFromSeed, parseSuite, suiteInfo, type IdentityKey, type SuiteName } from '../crypto/index.js';
import { MAX_METER_SERIAL } from '../protocol/index.js';
import { Prng, hashKeys, hashString, pickWeighted } from './rng.js';
import { DAY_MS, INTERVAL_MS, LOCAL_OFFSET_MS, ceilInterval, localDay } from './time.js';

export type CustomerClass = 'residential' | 'commercial' | 'industrial';
export type Region = 'norte' | 'nordeste' | 'centro-oeste' | 'sudeste' | 'sul';
/** Jokar et al. 2016 false-data types (theft.ts). */
export type TheftType = 'h1' | 'h2' | 'h3' | 'h4' | 'h5' | 'h6';
export const THEFT_TYPES: readonly TheftType[] = ['h1', 'h2', 'h3', 'h4', 'h5', 'h6'];

export const MAX_FLEET = 1_000_000;
export const DEFAULT_SUITE: SuiteName = 'x25519-ed25519-aes256gcm';
/** RSA identities are generated (0.1–2 s each) and must be stored; above this a fleet should use EC suites. */
export const MAX_RSA_METERS = 5_000;

export interface TheftOptions {
  /** Fraction of customers that steal, 0..1. */
  fraction: number;
  /** Attack types to draw from (uniformly); default all six. */
  types?: TheftType[];
  /** 'tampering' | 'bypass' | 'mixed' (default: h1–h3 thieves bypass with probability ½, h4–h6 always tamper). */
  variant?: 'tampering' | 'bypass' | 'mixed';
  /** Day offsets from the fleet's first day on which thieves steal; default each thief from a random onset in the first half of the window to its end. */
  days?: number[];
}

export interface FleetOptions {
  count: number;
  seed: string | number;
  /** Relative weights of cipher suites; default all x25519-ed25519-aes256gcm. */
  suiteMix?: Partial<Record<SuiteName, number>>;
  /** How many aggregators (ids agg-001…), or their ids. */
  aggregators: number | string[];
  /** Meters per aggregator in consecutive blocks (wrapping); default the fleet split evenly. */
  metersPerAggregator?: number;
  /** Fraction of customers supplied above 1 kV (industrial, 13.8 or 69 kV); default 0.02. */
  largeCustomerFraction?: number;
  /** Fraction of low-voltage customers that are commercial; default 0.10. */
  commercialFraction?: number;
  theft?: TheftOptions;
  /** First instant of the simulated window (rounded up to the 15-minute grid). */
  start: Date | number;
  /** Length of the simulated window in days. */
  days: number;
  /** Serial of meter 0; default 10_000_000 (8 digits). */
  serialBase?: number;
}

/** One meter and its customer: registration data plus the personality the load and phasor models use. */
export interface MeterSpec {
  /** The fleet's seed word: model values are pure functions of (seedWord, serial, ts). */
  seedWord: number;
  index: number;
  serial: number;
  customerId: string;
  customerClass: CustomerClass;
  /** Nominal supply line-to-line voltage, kV: 0.22 low voltage (127/220 V), 13.8 or 69 for large customers. */
  supplyKv: number;
  tariff: string;
  region: Region;
  contractedKw: number;
  aggregatorId: string;
  suite: SuiteName;
  installedAt: number;
  /** Mean consumption of an average month, kWh (the per-customer scale). */
  monthlyKwh: number;
  /** Shift of the customer's habits against the class profile, hours (positive = later). */
  habitShiftH: number;
  /** Industrial: 2 (06–22 h) or 3 (round the clock) shifts; 0 otherwise. */
  shifts: number;
  pfBase: number;
  thdBase: number;
  /** Voltage at the meter's point of supply, per unit of nominal. */
  voltagePu: number;
  /** Share of the load per phase (mean 1). */
  phaseWeights: [number, number, number];
  /** Per-phase deviation of the current angle from the customer's mean, degrees. */
  angleOffsetsDeg: [number, number, number];
  /** The energy register at the start of the window, Wh. */
  registerStartWh: number;
}

const REGIONS: ReadonlyArray<readonly [Region, number]> = [
  ['sudeste', 0.42],
  ['nordeste', 0.27],
  ['sul', 0.14],
  ['norte', 0.09],
  ['centro-oeste', 0.08],
];

// Stream ids keep independent draws independent (attributes, load noise, phasors, theft, tamper…).
export const STREAM = { attrs: 1, day: 2, interval: 3, phasor: 4, theftPlan: 5, theftDay: 6, tamper: 7, grid: 8, voltage: 9 } as const;

function resolveAggregators(a: number | string[]): string[] {
  if (Array.isArray(a)) {
    if (a.length === 0) throw new RangeError('a fleet needs at least one aggregator');
    return [...a];
  }
  if (!Number.isInteger(a) || a < 1) throw new RangeError(`aggregators must be a positive integer, got ${a}`);
  return Array.from({ length: a }, (_, i) => `agg-${String(i + 1).padStart(3, '0')}`);
}

export class Fleet {
  readonly options: Readonly<FleetOptions>;
  readonly count: number;
  readonly seed: string;
  /** The seed as a 32-bit word, the root of every model draw. */
  readonly seedWord: number;
  /** First and last report ts of the window (both on the 15-minute grid). */
  readonly start: number;
  readonly end: number;
  readonly days: number;
  readonly serialBase: number;
  readonly aggregatorIds: readonly string[];
  /** Local day of the window's first interval. */
  readonly firstDay: number;
  readonly #specs: Array<MeterSpec | undefined>;
  readonly #suites: ReadonlyArray<readonly [SuiteName, number]>;
  readonly #generated = new Map<number, IdentityKey>();
  #master: Buffer | undefined;

  constructor(options: FleetOptions, generated?: Map<number, IdentityKey>) {
    const count = options.count;
    if (!Number.isInteger(count) || count < 1 || count > MAX_FLEET) throw new RangeError(`count must be an integer 1..${MAX_FLEET}, got ${count}`);
    if (!Number.isFinite(options.days) || options.days <= 0) throw new RangeError(`days must be positive, got ${options.days}`);
    const serialBase = options.serialBase ?? 10_000_000;
    if (!Number.isInteger(serialBase) || serialBase < 0 || serialBase + count - 1 > MAX_METER_SERIAL) throw new RangeError(`serials ${serialBase}.. do not fit 8 digits`);
    const frac = (v: number | undefined, d: number, what: string): number => {
      const x = v ?? d;
      if (!(x >= 0 && x <= 1)) throw new RangeError(`${what} must be in [0, 1], got ${x}`);
      return x;
    };
    frac(options.largeCustomerFraction, 0.02, 'largeCustomerFraction');
    frac(options.commercialFraction, 0.1, 'commercialFraction');
    if (options.theft) frac(options.theft.fraction, 0, 'theft.fraction');
    this.options = { ...options };
    this.count = count;
    this.seed = String(options.seed);
    this.seedWord = hashString(this.seed);
    this.serialBase = serialBase;
    this.days = options.days;
    this.start = ceilInterval(typeof options.start === 'number' ? options.start : options.start.getTime());
    this.end = this.start + Math.round((options.days * DAY_MS) / INTERVAL_MS) * INTERVAL_MS;
    this.firstDay = localDay(this.start + INTERVAL_MS);
    this.aggregatorIds = resolveAggregators(options.aggregators);
    const mix = Object.entries(options.suiteMix ?? { [DEFAULT_SUITE]: 1 }).filter(([, w]) => (w ?? 0) > 0) as Array<[string, number]>;
    if (mix.length === 0) throw new RangeError('suiteMix has no suite with a positive weight');
    this.#suites = mix.map(([s, w]) => [parseSuite(s), w] as const);
    this.#specs = new Array<MeterSpec | undefined>(count);
    if (generated) for (const [k, v] of generated) this.#generated.set(k, v);
  }

  /** The meter with index i (0 ≤ i < count). */
  meter(i: number): MeterSpec {
    let s = this.#specs[i];
    if (s === undefined) {
      if (!Number.isInteger(i) || i < 0 || i >= this.count) throw new RangeError(`no meter with index ${i}`);
      s = this.#derive(i);
      this.#specs[i] = s;
    }
    return s;
  }

  /** The meter with this serial, or undefined if the fleet has none. */
  bySerial(serial: number): MeterSpec | undefined {
    const i = serial - this.serialBase;
    return Number.isInteger(i) && i >= 0 && i < this.count ? this.meter(i) : undefined;
  }

  /** A serial that is certainly not in the fleet (for forgeries), distinct per k. */
  foreignSerial(k: number): number {
    const above = this.serialBase + this.count + k;
    return above <= MAX_METER_SERIAL ? above : k % this.serialBase;
  }

  *meters(): IterableIterator<MeterSpec> {
    for (let i = 0; i < this.count; i++) yield this.meter(i);
  }

  /** Whether this meter's identity comes from the seed (EC suites) rather than stored generated keys (RSA). */
  derivable(spec: MeterSpec): boolean {
    return suiteInfo(spec.suite).derivable;
  }

  /** The meter's identity key pair: derived from the fleet seed, or generated once and kept (RSA). */
  identity(spec: MeterSpec): IdentityKey {
    if (this.derivable(spec)) return identityFromSeed(spec.suite, this.#meterSeed(spec.serial));
    let id = this.#generated.get(spec.serial);
    if (!id) {
      id = generateIdentity(spec.suite);
      this.#generated.set(spec.serial, id);
    }
    return id;
  }

  /** Generated (RSA) identities made so far, for saveFleet. */
  generatedIdentities(): ReadonlyMap<number, IdentityKey> {
    return this.#generated;
  }

  #meterSeed(serial: number): Buffer {
    // The fleet seed is the secret of a derived fleet: HKDF spreads it into one 32-byte seed per meter.
    this.#master ??= hkdfSha256(Buffer.from(this.seed, 'utf8'), Buffer.from('securegrid-fleet/1'), Buffer.alloc(0), 32);
    const salt = Buffer.alloc(8);
    salt.writeUInt32BE(Math.floor(serial / 0x100000000), 0);
    salt.writeUInt32BE(serial >>> 0, 4);
    return hkdfSha256(this.#master, salt, Buffer.from('securegrid-meter-identity/1'), 32);
  }

  #aggregatorOf(i: number): string {
    const n = this.aggregatorIds.length;
    const per = this.options.metersPerAggregator;
    const k = per !== undefined && per > 0 ? Math.floor(i / per) % n : Math.floor((i * n) / this.count);
    return this.aggregatorIds[k]!;
  }

  #derive(i: number): MeterSpec {
    const r = new Prng(hashKeys(this.seedWord, STREAM.attrs, i));
    const large = r.float() < (this.options.largeCustomerFraction ?? 0.02);
    const commercial = !large && r.float() < (this.options.commercialFraction ?? 0.1);
    const customerClass: CustomerClass = large ? 'industrial' : commercial ? 'commercial' : 'residential';
    const region = pickWeighted(REGIONS, r.float());
    const suite = pickWeighted(this.#suites, r.float());
    const logUniform = (lo: number, hi: number): number => Math.exp(r.uniform(Math.log(lo), Math.log(hi)));
    const u = r.float();
    let supplyKv = 0.22;
    let tariff: string;
    let monthlyKwh: number;
    let contractedKw: number;
    let habitShiftH: number;
    let shifts = 0;
    let pfBase: number;
    let thdBase: number;
    let spread: number;
    let registerMax: number;
    if (customerClass === 'residential') {
      const lowIncome = u < 0.12;
      tariff = lowIncome ? 'B1-baixa-renda' : u < 0.2 ? 'B1-branca' : 'B1-convencional';
      monthlyKwh = lowIncome ? r.uniform(170, 230) : r.uniform(190, 310);
      contractedKw = Math.round(r.uniform(4, 12) * 2) / 2;
      habitShiftH = r.uniform(-1.5, 1.5);
      pfBase = r.uniform(0.93, 0.97);
      thdBase = r.uniform(4, 6.5);
      spread = 0.08;
      registerMax = 60e6;
    } else if (customerClass === 'commercial') {
      tariff = u < 0.2 ? 'B3-branca' : 'B3-convencional';
      monthlyKwh = logUniform(2_800, 14_000);
      contractedKw = Math.round(((monthlyKwh / 730 / 0.35) * r.uniform(1.1, 1.4)) / 5) * 5;
      habitShiftH = r.uniform(-0.75, 0.75);
      pfBase = r.uniform(0.89, 0.95);
      thdBase = r.uniform(3, 6);
      spread = 0.05;
      registerMax = 2e9;
    } else {
      supplyKv = u < 0.2 ? 69 : 13.8;
      tariff = supplyKv === 69 ? 'A3-azul' : r.float() < 0.6 ? 'A4-verde' : 'A4-azul';
      monthlyKwh = logUniform(70_000, 380_000);
      contractedKw = Math.round(((monthlyKwh / 730 / 0.6) * r.uniform(1.1, 1.3)) / 10) * 10;
      habitShiftH = r.uniform(-0.5, 0.5);
      shifts = r.float() < 0.4 ? 3 : 2;
      pfBase = r.uniform(0.86, 0.94);
      thdBase = r.uniform(2.5, 4.5);
      spread = 0.02;
      registerMax = 5e10;
    }
    const w: [number, number, number] = [1 + r.uniform(-spread, spread), 1 + r.uniform(-spread, spread), 1 + r.uniform(-spread, spread)];
    const mean = (w[0] + w[1] + w[2]) / 3;
    const serial = this.serialBase + i;
    // Multiplying by 3^18 (coprime to 10) mod 10^9 is a bijection: customer ids are unique and look unordered.
    const uc = (i * 387_420_489 + 123_456_789) % 1_000_000_000;
    return {
      seedWord: this.seedWord,
      index: i,
      serial,
      customerId: `UC${String(uc).padStart(9, '0')}`,
      customerClass,
      supplyKv,
      tariff,
      region,
      contractedKw,
      aggregatorId: this.#aggregatorOf(i),
      suite,
      installedAt: (this.firstDay - 30 - r.int(3650)) * DAY_MS - LOCAL_OFFSET_MS,
      monthlyKwh,
      habitShiftH,
      shifts,
      pfBase,
      thdBase,
      voltagePu: r.uniform(0.97, 1.03),
      phaseWeights: [w[0] / mean, w[1] / mean, w[2] / mean],
      angleOffsetsDeg: [r.uniform(-1, 1), r.uniform(-1, 1), r.uniform(-1, 1)],
      registerStartWh: Math.floor(r.float() * registerMax),
    };
  }
}

/** A fleet, deterministic from `options.seed`. */
export function createFleet(options: FleetOptions): Fleet {
  return new Fleet(options);
}

// ---- registration directory (public) ----

/** The rows a utility registers (docs/meter-pipeline.md, tables `customer` and `meter`). */
export interface CustomerRow {
  customer_id: string;
  class: CustomerClass;
  tariff: string;
  supply_kv: number;
  region: Region;
  contracted_kw: number;
}
export interface MeterRow {
  meter_id: number;
  customer_id: string;
  suite: SuiteName;
  /** SPKI DER of the meter's identity public key. */
  public_key: Buffer;
  aggregator_id: string;
  /** ISO 8601 UTC. */
  installed_at: string;
}
export interface DirectoryEntry {
  customer: CustomerRow;
  meter: MeterRow;
}

/** The public part of a fleet, one entry per meter (each customer has one meter). */
export function* fleetDirectory(fleet: Fleet): IterableIterator<DirectoryEntry> {
  for (const m of fleet.meters()) yield directoryEntry(fleet, m);
}

export function directoryEntry(fleet: Fleet, m: MeterSpec): DirectoryEntry {
  return {
    customer: { customer_id: m.customerId, class: m.customerClass, tariff: m.tariff, supply_kv: m.supplyKv, region: m.region, contracted_kw: m.contractedKw },
    meter: { meter_id: m.serial, customer_id: m.customerId, suite: m.suite, public_key: fleet.identity(m).publicKey, aggregator_id: m.aggregatorId, installed_at: new Date(m.installedAt).toISOString() },
  };
}

export const DIRECTORY_CSV_HEADER = 'meter_id,customer_id,class,tariff,supply_kv,region,contracted_kw,suite,public_key,aggregator_id,installed_at';

/**
 * One JSON line as the ingest's directory loader reads it (`securegrid ingest provision`): the customer and meter
 * columns flat, public_key as base64 SPKI DER.
 */
export function directoryJsonLine(e: DirectoryEntry): string {
  return JSON.stringify({ ...e.customer, ...e.meter, public_key: e.meter.public_key.toString('base64') });
}

/** One CSV row under DIRECTORY_CSV_HEADER (public key as base64; no field needs quoting). */
export function directoryCsvLine(e: DirectoryEntry): string {
  const c = e.customer;
  const m = e.meter;
  return [m.meter_id, c.customer_id, c.class, c.tariff, c.supply_kv, c.region, c.contracted_kw, m.suite, m.public_key.toString('base64'), m.aggregator_id, m.installed_at].join(',');
}

/** Parses a line written by directoryJsonLine. */
export function parseDirectoryLine(line: string): DirectoryEntry {
  const o = JSON.parse(line) as CustomerRow & Omit<MeterRow, 'public_key'> & { public_key: string };
  return {
    customer: { customer_id: o.customer_id, class: o.class, tariff: o.tariff, supply_kv: o.supply_kv, region: o.region, contracted_kw: o.contracted_kw },
    meter: { meter_id: o.meter_id, customer_id: o.customer_id, suite: o.suite, public_key: Buffer.from(o.public_key, 'base64'), aggregator_id: o.aggregator_id, installed_at: o.installed_at },
  };
}

/** Writes the fleet's directory (JSON lines, or CSV when the path ends in .csv); returns the number of meters. */
export function writeDirectory(fleet: Fleet, path: string, onProgress?: (done: number, total: number) => void): number {
  const csv = path.toLowerCase().endsWith('.csv');
  const fd = openSync(path, 'w', 0o644);
  try {
    let buf: string[] = csv ? [DIRECTORY_CSV_HEADER] : [];
    let n = 0;
    for (const e of fleetDirectory(fleet)) {
      buf.push(csv ? directoryCsvLine(e) : directoryJsonLine(e));
      if (++n % 10_000 === 0 || n === fleet.count) {
        writeSync(fd, `${buf.join('\n')}\n`);
        buf = [];
        onProgress?.(n, fleet.count);
      }
    }
    return n;
  } finally {
    closeSync(fd);
  }
}

// ---- private part ----

interface FleetFile {
  format: 'securegrid-fleet/1';
  options: Omit<FleetOptions, 'start'> & { start: number };
  /** PKCS#8 DER (base64) of generated identities, by serial; derived identities are not stored. */
  keys: Record<string, string>;
}

/**
 * Writes what re-creates the fleet with its private keys: the seed and options (which derive every EC identity)
 * and every generated (RSA) identity, generating any not yet made. Mode 0600: the seed is a secret.
 */
export function saveFleet(fleet: Fleet, path: string): void {
  for (const m of fleet.meters()) if (!fleet.derivable(m)) fleet.identity(m);
  const keys: Record<string, string> = {};
  for (const [serial, id] of fleet.generatedIdentities()) keys[serial] = id.privateKey.export({ type: 'pkcs8', format: 'der' }).toString('base64');
  const file: FleetFile = { format: 'securegrid-fleet/1', options: { ...fleet.options, start: fleet.start }, keys };
  writeFileSync(path, JSON.stringify(file), { mode: 0o600 });
  chmodSync(path, 0o600);
}

/**
 * Reads a fleet written by saveFleet. A file holding generated (RSA) keys needs `importIdentity`
 * (PKCS#8 DER → IdentityKey), which src/crypto does not offer yet; derived fleets need nothing.
 */
export function loadFleet(path: string, importIdentity?: (suite: SuiteName, pkcs8: Buffer) => IdentityKey): Fleet {
  const file = JSON.parse(readFileSync(path, 'utf8')) as FleetFile;
  if (file.format !== 'securegrid-fleet/1') throw new Error(`${path} is not a securegrid fleet file`);
  const probe = new Fleet(file.options);
  const generated = new Map<number, IdentityKey>();
  for (const [serial, b64] of Object.entries(file.keys)) {
    const spec = probe.bySerial(Number(serial));
    if (!spec) throw new Error(`${path}: key for serial ${serial}, which is not in the fleet`);
    if (!importIdentity) throw new Error(`${path} holds generated (RSA) identities; loading them needs an identity importer`);
    generated.set(spec.serial, importIdentity(spec.suite, Buffer.from(b64, 'base64')));
  }
  return new Fleet(file.options, generated);
}

/** Throws if the fleet holds more RSA meters than it is sensible to generate keys for. */
export function checkRsaBudget(fleet: Fleet, limit = MAX_RSA_METERS): void {
  const rsaWeight = [...(Object.entries(fleet.options.suiteMix ?? {}) as Array<[SuiteName, number]>)].filter(([s]) => !suiteInfo(s).derivable).reduce((a, [, w]) => a + w, 0);
  if (rsaWeight === 0) return;
  let n = 0;
  for (const m of fleet.meters()) if (!fleet.derivable(m) && ++n > limit) throw new RangeError(`more than ${limit} RSA meters: RSA identities are generated and stored; use an EC suite for large fleets`);
}
