// `securegrid meters`: a simulated fleet reporting over TCP field links to aggregators, and
// `securegrid meters directory`: the fleet's registration directory only (what the utility provisions).
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseSuite, type SuiteName } from '../crypto/index.js';
import { connectFieldLink, type FieldLinkClient } from '../aggregator/index.js';
import { FileCounterStore, MemoryCounterStore, type CounterStore } from '../protocol/index.js';
import {
  LOCAL_OFFSET_MS,
  DAY_MS,
  LabelWriter,
  MAX_FLEET,
  Simulator,
  THEFT_TYPES,
  checkRsaBudget,
  createFleet,
  dayOfIso,
  loadFleet,
  saveFleet,
  speedForDaySeconds,
  writeDirectory,
  writeTheftLabels,
  type Fleet,
  type FleetOptions,
  type TheftType,
} from '../meter/index.js';
import { setLogLevel } from '../observe/index.js';
import { intFlag, parseFlags, usage, UsageError, type FlagSpec } from './args.js';
import { progress } from './progress.js';

const FLEET_SPEC: Record<string, FlagSpec> = {
  count: { type: 'string', default: '1000', help: `meters in the fleet (1..${MAX_FLEET})` },
  seed: { type: 'string', default: 'securegrid', help: 'fleet seed: every meter, reading and (EC) key derives from it — keep it secret' },
  start: { type: 'string', default: '2026-11-01', help: 'first local day (yyyy-mm-dd, Brazil UTC−3) or an ISO time' },
  days: { type: 'string', default: '1', help: 'simulated days' },
  suite: { type: 'string', default: 'x25519-ed25519-aes256gcm', help: 'cipher suite, or a mix like p256-aes128gcm=1,x25519-ed25519-aes256gcm=3' },
  'aggregator-ids': { type: 'string', help: 'aggregator ids, comma-separated (default agg-001, agg-002, … one per aggregator)' },
  'large-fraction': { type: 'string', default: '0.02', help: 'fraction of large (13.8 / 69 kV industrial) customers' },
  'commercial-fraction': { type: 'string', default: '0.1', help: 'fraction of low-voltage customers that are commercial' },
  'theft-fraction': { type: 'string', default: '0', help: 'fraction of customers that steal (Jokar et al. h1–h6)' },
  'theft-types': { type: 'string', help: 'attack types to draw from, e.g. h1,h3,h6 (default all)' },
  'theft-variant': { type: 'string', default: 'mixed', help: 'tampering | bypass | mixed' },
};

const RUN_SPEC: Record<string, FlagSpec> = {
  ...FLEET_SPEC,
  aggregator: { type: 'string', default: 'tcp://127.0.0.1:7001', help: 'aggregator field links, comma-separated tcp://host:port' },
  keys: { type: 'string', help: 'ingest key directory: the collector public keys are read from it (no private key is read)' },
  'collector-keys': { type: 'string', help: 'JSON file {"collector":{"<suite>":"<base64 SPKI>"}} instead of --keys' },
  'tamper-rate': { type: 'string', default: '0', help: 'probability per report of a labelled frame attack (drop, duplicate, alter, replay, forge)' },
  labels: { type: 'string', help: 'write ground-truth labels (thieves, frame attacks, summary) here as JSON lines' },
  directory: { type: 'string', help: 'also write the registration directory here (.csv for CSV, else JSON lines)' },
  state: { type: 'string', help: 'state directory: counter file (restarts never reuse an IV) and the fleet file' },
  speed: { type: 'string', default: '0', help: 'simulated time per real time (96 = a day in 15 min); 0 = as fast as the aggregators take it' },
  'day-seconds': { type: 'string', help: 'alternative to --speed: one simulated day per this many real seconds' },
  concurrency: { type: 'string', default: '2000', help: 'handshakes in flight' },
};

const DIR_SPEC: Record<string, FlagSpec> = {
  ...FLEET_SPEC,
  aggregators: { type: 'string', default: '1', help: 'number of aggregators (ids agg-001…) when --aggregator-ids is not given' },
  out: { type: 'string', help: 'output file (.csv for CSV, else JSON lines) (required)' },
};

function fraction(v: string | boolean | undefined, name: string): number {
  const n = Number(v);
  if (typeof v !== 'string' || !(n >= 0 && n <= 1)) throw new UsageError(`--${name} must be a number between 0 and 1, got '${v}'`);
  return n;
}

function parseStart(v: string): number {
  if (/^\d{4}-\d{2}-\d{2}$/.test(v)) return dayOfIso(v) * DAY_MS - LOCAL_OFFSET_MS; // local midnight
  const ms = Date.parse(v);
  if (!Number.isFinite(ms)) throw new UsageError(`--start must be yyyy-mm-dd or an ISO time, got '${v}'`);
  return ms;
}

function parseSuiteMix(v: string): Partial<Record<SuiteName, number>> {
  const mix: Partial<Record<SuiteName, number>> = {};
  for (const part of v.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [name, w] = part.split('=');
    let suite: SuiteName;
    try {
      suite = parseSuite(name!);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const weight = w === undefined ? 1 : Number(w);
    if (!(weight > 0)) throw new UsageError(`--suite weight for ${suite} must be positive`);
    mix[suite] = weight;
  }
  if (Object.keys(mix).length === 0) throw new UsageError('--suite names no suite');
  return mix;
}

function fleetOptions(f: Record<string, string | boolean | undefined>, aggregators: number | string[]): FleetOptions {
  const theftFraction = fraction(f['theft-fraction'], 'theft-fraction');
  const types = typeof f['theft-types'] === 'string' ? f['theft-types'].split(',').map((s) => s.trim()) : undefined;
  for (const t of types ?? []) if (!THEFT_TYPES.includes(t as TheftType)) throw new UsageError(`--theft-types: unknown type '${t}' (use ${THEFT_TYPES.join(', ')})`);
  const variant = String(f['theft-variant']);
  if (variant !== 'tampering' && variant !== 'bypass' && variant !== 'mixed') throw new UsageError(`--theft-variant must be tampering, bypass or mixed`);
  const days = Number(f.days);
  if (!(days > 0 && days <= 3660)) throw new UsageError(`--days must be a number of days in (0, 3660], got '${f.days}'`);
  return {
    count: intFlag(f.count, 'count', 1, MAX_FLEET),
    seed: String(f.seed),
    suiteMix: parseSuiteMix(String(f.suite)),
    aggregators,
    largeCustomerFraction: fraction(f['large-fraction'], 'large-fraction'),
    commercialFraction: fraction(f['commercial-fraction'], 'commercial-fraction'),
    ...(theftFraction > 0 ? { theft: { fraction: theftFraction, variant, ...(types ? { types: types as TheftType[] } : {}) } } : {}),
    start: parseStart(String(f.start)),
    days,
  };
}

function aggregatorIds(f: Record<string, string | boolean | undefined>, n: number): number | string[] {
  if (typeof f['aggregator-ids'] !== 'string') return n;
  const ids = f['aggregator-ids'].split(',').map((s) => s.trim()).filter(Boolean);
  if (ids.length !== n) throw new UsageError(`--aggregator-ids names ${ids.length} aggregators, --aggregator ${n}`);
  return ids;
}

function makeFleet(opts: FleetOptions): Fleet {
  try {
    const fleet = createFleet(opts);
    checkRsaBudget(fleet);
    return fleet;
  } catch (err) {
    if (err instanceof RangeError) throw new UsageError(err.message);
    throw err;
  }
}

async function collectorKeys(f: Record<string, string | boolean | undefined>): Promise<Partial<Record<SuiteName, Buffer>>> {
  let pub: { collector?: Record<string, string> };
  if (typeof f['collector-keys'] === 'string') {
    try {
      pub = JSON.parse(readFileSync(f['collector-keys'], 'utf8')) as typeof pub;
    } catch (err) {
      throw new UsageError(`cannot read --collector-keys ${f['collector-keys']}: ${(err as Error).message}`);
    }
  } else if (typeof f.keys === 'string') {
    const { publicIngestKeys } = await import('../ingest/index.js');
    pub = (await publicIngestKeys(f.keys)) as typeof pub;
  } else {
    throw new UsageError('the meters need the collector public keys: --keys DIR (the ingest key directory) or --collector-keys FILE');
  }
  const out: Partial<Record<SuiteName, Buffer>> = {};
  for (const [s, b64] of Object.entries(pub.collector ?? {})) out[parseSuite(s)] = Buffer.from(b64, 'base64');
  return out;
}

async function runDirectory(argv: string[]): Promise<number> {
  const f = parseFlags(argv, DIR_SPEC);
  if (f.help) return (console.log(usage('meters directory', 'Writes the registration directory (customers and meters with public keys) of a simulated fleet.', DIR_SPEC)), 0);
  if (typeof f.out !== 'string') throw new UsageError('--out FILE is required');
  const n = intFlag(f.aggregators, 'aggregators', 1, 10_000);
  const ids = typeof f['aggregator-ids'] === 'string' ? f['aggregator-ids'].split(',').map((x) => x.trim()).filter(Boolean) : undefined;
  const fleet = makeFleet(fleetOptions(f, ids && ids.length > 0 ? ids : n));
  const t0 = Date.now();
  console.log(`securegrid meters directory: ${fleet.count} meters (seed not shown), aggregators ${fleet.aggregatorIds.join(', ')}`);
  const written = writeDirectory(fleet, f.out, (done, total) => progress('directory', done, total));
  console.log(`wrote ${written} entries to ${f.out} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return 0;
}

export async function runMeters(argv: string[]): Promise<number> {
  if (argv[0] === 'directory') return runDirectory(argv.slice(1));
  const f = parseFlags(argv, RUN_SPEC);
  if (f.help) return (console.log(usage('meters', 'Simulates a fleet of smart meters reporting every 15 minutes to aggregators over TCP field links. Subcommand: meters directory.', RUN_SPEC)), 0);
  setLogLevel(process.env.SECUREGRID_LOG_LEVEL ?? 'warn');
  const urls = String(f.aggregator).split(',').map((s) => s.trim()).filter(Boolean);
  if (urls.length === 0) throw new UsageError('--aggregator needs at least one tcp://host:port');
  const opts = fleetOptions(f, aggregatorIds(f, urls.length));
  const tamperRate = fraction(f['tamper-rate'], 'tamper-rate');
  const speed = typeof f['day-seconds'] === 'string' ? speedForDaySeconds(Number(f['day-seconds'])) : Number(f.speed);
  if (!(speed >= 0)) throw new UsageError(`--speed must be ≥ 0, got '${f.speed}'`);
  const keys = await collectorKeys(f);

  let fleet: Fleet;
  let counters: CounterStore;
  if (typeof f.state === 'string') {
    mkdirSync(f.state, { recursive: true, mode: 0o700 });
    const fleetFile = path.join(f.state, 'fleet.json');
    if (existsSync(fleetFile)) {
      fleet = loadFleet(fleetFile);
      if (fleet.seed !== opts.seed || fleet.count !== opts.count) throw new UsageError(`${fleetFile} holds another fleet (seed or count differ); use another --state directory`);
    } else {
      fleet = makeFleet(opts);
      saveFleet(fleet, fleetFile);
    }
    counters = FileCounterStore.open(path.join(f.state, 'counters.json'));
  } else {
    fleet = makeFleet(opts);
    counters = new MemoryCounterStore();
  }
  for (const suite of Object.keys(fleet.options.suiteMix ?? {}) as SuiteName[]) if (!keys[suite]) throw new UsageError(`the collector keys have no ${suite} key`);

  console.log(`securegrid meters: ${fleet.count} meters, ${fleet.days} day(s) from ${new Date(fleet.start).toISOString()}, ${speed > 0 ? `speed ×${speed.toFixed(0)}` : 'as fast as the aggregators take it'}`);
  for (let i = 0; i < urls.length; i++) console.log(`  aggregator ${fleet.aggregatorIds[i]} at ${urls[i]}`);

  if (typeof f.directory === 'string') {
    const n = writeDirectory(fleet, f.directory, (done, total) => progress('directory', done, total));
    console.log(`  wrote the registration directory (${n} meters) to ${f.directory}`);
  }
  const labels = typeof f.labels === 'string' ? new LabelWriter(f.labels) : undefined;
  if (labels) console.log(`  ${writeTheftLabels(fleet, labels)} stealing customers labelled in ${f.labels}`);

  const links: FieldLinkClient[] = urls.map((u) => {
    try {
      return connectFieldLink(u);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  });
  const t0 = Date.now();
  const sim = new Simulator({
    fleet,
    links,
    collectorKeys: keys,
    counters,
    ...(labels ? { labels } : {}),
    ...(tamperRate > 0 ? { tamper: { rate: tamperRate } } : {}),
    speed,
    handshakeConcurrency: intFlag(f.concurrency, 'concurrency', 1, 100_000),
    onProgress: (p) => {
      if (p.phase === 'handshake') progress('handshakes', p.done, p.total);
      else if (p.phase === 'reporting') progress('intervals', p.done, p.total);
    },
  });
  const stop = () => sim.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await Promise.all(links.map((l) => l.whenConnected()));
    console.log('  connected; handshaking');
    const stats = await sim.run();
    const s = (Date.now() - t0) / 1000;
    console.log(
      `sent ${stats.reportsSent} reports (${(stats.reportsSent / s).toFixed(0)}/s) in ${s.toFixed(1)} s; handshakes ${stats.handshakes}, retries ${stats.handshakeRetries}, failed ${stats.handshakeFailures}, re-keys ${stats.rekeys}, commands ${stats.commands}, alerts ${stats.alerts}`,
    );
    if (tamperRate > 0) console.log(`frame attacks: ${Object.entries(stats.tamper).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    return stats.handshakeFailures > 0 ? 1 : 0;
  } finally {
    sim.close();
    labels?.close();
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await Promise.all(links.map((l) => l.close()));
    counters.close();
  }
}
