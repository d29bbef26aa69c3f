// Encoding of one stripe (a run of ciphertext bytes) into a policy's fragments, and back.
// Reed-Solomon via @ronomon/reed-solomon: equal shards whose size is a multiple of 8, so data is zero-padded
// and the caller records the true length.
//
// The library only encodes asynchronously (native work on the libuv threadpool, no synchronous entry point),
// so encodeStripe, decodeStripe and rebuildFragments return Promises. Pure replication never touches the
// threadpool (those Promises resolve at once).
//
// Memory: encodeStripe allocates one buffer holding all K+M shards and returns subarray views of it;
// decoding with missing data shards allocates one scratch buffer of K+M shards and returns a view of it;
// decoding with every data shard present copies once (or not at all when the shards are adjacent views of
// one buffer, as encodeStripe returns them). Returned buffers may therefore alias the inputs.

import { createRequire } from 'node:module';
import type { Policy } from './policy.js';

type ReedSolomonApi = typeof import('@ronomon/reed-solomon');
// The package's main is a native binding.node, which ESM `import` cannot load; require() can.
const ReedSolomon = createRequire(import.meta.url)('@ronomon/reed-solomon') as ReedSolomonApi;

export interface ShardSpan {
  fragment: number; // fragment index within the stripe
  offset: number; // byte offset inside that fragment
  length: number;
}

export type ErasureErrorCode = 'InsufficientFragments' | 'BadFragment' | 'BadInput';

/** Thrown by the codec; `code` is stable. */
export class ErasureError extends Error {
  readonly code: ErasureErrorCode;
  constructor(code: ErasureErrorCode, message: string) {
    super(message);
    this.name = 'ErasureError';
    this.code = code;
  }
}

const contexts = new Map<number, Buffer>();

/** Reed-Solomon context for (k, m), created once per pair and reused (contexts are safe to share). */
function rsContext(k: number, m: number): Buffer {
  const key = k * 64 + m;
  let ctx = contexts.get(key);
  if (ctx === undefined) {
    ctx = ReedSolomon.create(k, m);
    contexts.set(key, ctx);
  }
  return ctx;
}

/** Runs the library over `buf` = K data shards then M parity shards, each shardLen bytes. */
function rsEncode(k: number, m: number, buf: Buffer, shardLen: number, sources: number, targets: number): Promise<void> {
  const ctx = rsContext(k, m);
  return new Promise<void>((resolve, reject) => {
    ReedSolomon.encode(ctx, sources, targets, buf, 0, k * shardLen, buf, k * shardLen, m * shardLen, (error?: Error) => {
      if (error) reject(error);
      else resolve();
    });
  });
}

interface EcShape {
  base: number; // fragment index of data shard 0
  k: number;
  m: number;
}

function ecShape(p: Policy): EcShape | undefined {
  switch (p.kind) {
    case 'replicate':
      return undefined;
    case 'ec':
      return { base: 0, k: p.k, m: p.m };
    case 'hybrid':
      return { base: p.r, k: p.k, m: p.n - p.k };
  }
}

function width(p: Policy): number {
  switch (p.kind) {
    case 'replicate':
      return p.n;
    case 'ec':
      return p.k + p.m;
    case 'hybrid':
      return p.r + p.n;
  }
}

function checkLength(name: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new ErasureError('BadInput', `${name} must be a non-negative integer, got ${n}`);
}

function checkShardLen(k: number, shardLen: number, dataLen: number): void {
  if (!Number.isSafeInteger(shardLen) || shardLen < 8 || shardLen % 8 !== 0) {
    throw new ErasureError('BadInput', `shardLen must be a positive multiple of 8, got ${shardLen}`);
  }
  if (shardLen * k < dataLen) {
    throw new ErasureError('BadInput', `shardLen ${shardLen} × ${k} data shards cannot hold ${dataLen} bytes`);
  }
}

/** Shard length for `dataLen` bytes under policy (ec / hybrid): ceil(dataLen / K) rounded up to a multiple of 8 (min 8). For replicate: dataLen. */
export function shardLength(p: Policy, dataLen: number): number {
  checkLength('dataLen', dataLen);
  const ec = ecShape(p);
  if (ec === undefined) return dataLen;
  const perShard = Math.ceil(dataLen / ec.k);
  return Math.max(8, Math.ceil(perShard / 8) * 8);
}

/** Encodes data into the K+M shards of one buffer (zero-padded to K × shardLen); returns views. */
async function encodeEc(k: number, m: number, data: Buffer, shardLen: number): Promise<Buffer[]> {
  const buf = Buffer.allocUnsafe((k + m) * shardLen);
  data.copy(buf, 0);
  buf.fill(0, data.length, k * shardLen);
  await rsEncode(k, m, buf, shardLen, (1 << k) - 1, ((1 << m) - 1) << k);
  const shards = new Array<Buffer>(k + m);
  for (let i = 0; i < k + m; i++) shards[i] = buf.subarray(i * shardLen, (i + 1) * shardLen);
  return shards;
}

/**
 * All fragments of the stripe, index = fragment number (see policy.ts). Replicas share one Buffer: `data` itself.
 * Async because the Reed-Solomon library only encodes on the threadpool.
 */
export async function encodeStripe(p: Policy, data: Buffer): Promise<{ shardLen: number; fragments: Buffer[] }> {
  const shardLen = shardLength(p, data.length);
  switch (p.kind) {
    case 'replicate':
      return { shardLen, fragments: new Array<Buffer>(p.n).fill(data) };
    case 'ec':
      return { shardLen, fragments: await encodeEc(p.k, p.m, data, shardLen) };
    case 'hybrid': {
      const shards = await encodeEc(p.k, p.n - p.k, data, shardLen);
      const fragments = new Array<Buffer>(p.r).fill(data);
      for (const s of shards) fragments.push(s);
      return { shardLen, fragments };
    }
  }
}

/** The K+M shard slots of an ec / hybrid stripe, validated; undefined = missing. */
function shardSlots(ec: EcShape, fragments: (Buffer | undefined)[], shardLen: number): (Buffer | undefined)[] {
  const slots = new Array<Buffer | undefined>(ec.k + ec.m);
  for (let i = 0; i < ec.k + ec.m; i++) {
    const f = fragments[ec.base + i];
    if (f !== undefined && f !== null) {
      if (f.length !== shardLen) {
        throw new ErasureError('BadFragment', `fragment ${ec.base + i} is ${f.length} bytes, expected ${shardLen}`);
      }
      slots[i] = f;
    }
  }
  return slots;
}

/** A present replica of exactly dataLen bytes, or undefined. Throws BadFragment on a replica of another length. */
function firstReplica(fragments: (Buffer | undefined)[], count: number, dataLen: number): Buffer | undefined {
  for (let i = 0; i < count; i++) {
    const f = fragments[i];
    if (f === undefined || f === null) continue;
    if (f.length !== dataLen) throw new ErasureError('BadFragment', `replica ${i} is ${f.length} bytes, expected ${dataLen}`);
    return f;
  }
  return undefined;
}

function tooFew(p: Policy, have: string): ErasureError {
  return new ErasureError('InsufficientFragments', `cannot recover the stripe: ${have} under ${describe(p)}`);
}

function describe(p: Policy): string {
  switch (p.kind) {
    case 'replicate':
      return `replicate:${p.n} (needs 1 copy)`;
    case 'ec':
      return `ec:${p.k}+${p.m} (needs ${p.k} fragments)`;
    case 'hybrid':
      return `hybrid:${p.r}+${p.k}/${p.n} (needs 1 replica or ${p.k} shards)`;
  }
}

function countPresent(slots: (Buffer | undefined)[]): number {
  let c = 0;
  for (const s of slots) if (s !== undefined) c++;
  return c;
}

/** Recovers dataLen bytes from validated shard slots (at least k present). */
async function decodeEc(k: number, m: number, slots: (Buffer | undefined)[], shardLen: number, dataLen: number): Promise<Buffer> {
  let missingData = 0;
  for (let i = 0; i < k; i++) if (slots[i] === undefined) missingData |= 1 << i;
  if (missingData === 0) {
    const first = slots[0]!;
    let adjacent = true;
    for (let i = 1; i < k && adjacent; i++) {
      const s = slots[i]!;
      adjacent = s.buffer === first.buffer && s.byteOffset === first.byteOffset + i * shardLen;
    }
    if (adjacent) return Buffer.from(first.buffer, first.byteOffset, dataLen);
    const out = Buffer.allocUnsafe(dataLen);
    for (let i = 0, pos = 0; pos < dataLen; i++, pos += shardLen) slots[i]!.copy(out, pos, 0, Math.min(shardLen, dataLen - pos));
    return out;
  }
  const scratch = Buffer.allocUnsafe((k + m) * shardLen);
  let sources = 0;
  for (let i = 0; i < k + m; i++) {
    const s = slots[i];
    if (s === undefined) continue;
    s.copy(scratch, i * shardLen);
    sources |= 1 << i;
  }
  await rsEncode(k, m, scratch, shardLen, sources, missingData);
  return scratch.subarray(0, dataLen);
}

/** Re-creates shard slots `targets` (distinct shard indices, none of them used as a source) from the others. */
async function rebuildEc(
  p: Policy,
  k: number,
  m: number,
  slots: (Buffer | undefined)[],
  shardLen: number,
  targets: number[],
): Promise<Map<number, Buffer>> {
  const out = new Map<number, Buffer>();
  if (targets.length === 0) return out;
  let targetMask = 0;
  for (const t of targets) targetMask |= 1 << t;
  let sources = 0;
  let count = 0;
  for (let i = 0; i < k + m; i++) {
    if (slots[i] !== undefined && (targetMask & (1 << i)) === 0) {
      sources |= 1 << i;
      count++;
    }
  }
  if (count < k) throw tooFew(p, `${count} usable shards`);
  const scratch = Buffer.allocUnsafe((k + m) * shardLen);
  for (let i = 0; i < k + m; i++) if ((sources & (1 << i)) !== 0) slots[i]!.copy(scratch, i * shardLen);
  await rsEncode(k, m, scratch, shardLen, sources, targetMask);
  for (const t of targets) out.set(t, scratch.subarray(t * shardLen, (t + 1) * shardLen));
  return out;
}

/**
 * Recovers the stripe's dataLen bytes from whichever fragments are given (undefined = missing).
 * Throws ErasureError: InsufficientFragments if too few, BadFragment if a given fragment has the wrong length.
 * Async because the Reed-Solomon library only decodes on the threadpool (resolves at once when no shard is rebuilt).
 */
export async function decodeStripe(p: Policy, fragments: (Buffer | undefined)[], shardLen: number, dataLen: number): Promise<Buffer> {
  checkLength('dataLen', dataLen);
  if (p.kind === 'replicate') {
    const r = firstReplica(fragments, p.n, dataLen);
    if (r === undefined) throw tooFew(p, 'no copy');
    return r;
  }
  const ec = ecShape(p)!;
  if (p.kind === 'hybrid') {
    const r = firstReplica(fragments, p.r, dataLen);
    if (r !== undefined) return r;
  }
  checkShardLen(ec.k, shardLen, dataLen);
  const slots = shardSlots(ec, fragments, shardLen);
  const have = countPresent(slots);
  if (have < ec.k) throw tooFew(p, p.kind === 'hybrid' ? `no replica and ${have} shards` : `${have} fragments`);
  return decodeEc(ec.k, ec.m, slots, shardLen, dataLen);
}

/**
 * Re-creates the fragments numbered in `which` from the given ones (result[i] is fragment which[i]).
 * A fragment listed in `which` is never used as a source, even when given. Throws ErasureError if too few.
 * Async because the Reed-Solomon library only encodes on the threadpool.
 */
export async function rebuildFragments(
  p: Policy,
  fragments: (Buffer | undefined)[],
  shardLen: number,
  dataLen: number,
  which: number[],
): Promise<Buffer[]> {
  checkLength('dataLen', dataLen);
  const w = width(p);
  for (const i of which) {
    if (!Number.isInteger(i) || i < 0 || i >= w) throw new ErasureError('BadInput', `fragment ${i} does not exist under a ${w}-wide policy`);
  }
  if (which.length === 0) return [];
  const wanted = new Set(which);
  const sourcesOnly = fragments.map((f, i) => (wanted.has(i) ? undefined : f));

  if (p.kind === 'replicate') {
    const r = firstReplica(sourcesOnly, p.n, dataLen);
    if (r === undefined) throw tooFew(p, 'no copy to rebuild from');
    return which.map(() => r);
  }

  const ec = ecShape(p)!;
  checkShardLen(ec.k, shardLen, dataLen);
  const slots = shardSlots(ec, sourcesOnly, shardLen);
  const shardTargets = [...wanted].filter((i) => i >= ec.base).map((i) => i - ec.base);
  const replicaWanted = [...wanted].some((i) => i < ec.base);
  const replica = p.kind === 'hybrid' ? firstReplica(sourcesOnly, p.r, dataLen) : undefined;
  const haveShards = countPresent(slots);

  const rebuilt = new Map<number, Buffer>();
  if (shardTargets.length > 0) {
    if (haveShards >= ec.k || replica === undefined) {
      const shards = await rebuildEc(p, ec.k, ec.m, slots, shardLen, shardTargets);
      for (const [i, b] of shards) rebuilt.set(ec.base + i, b);
    } else {
      // hybrid with too few shards but a replica: re-encode the replica (deterministic, same shardLen).
      const shards = await encodeEc(ec.k, ec.m, replica, shardLen);
      for (const i of shardTargets) rebuilt.set(ec.base + i, shards[i]!);
    }
  }
  if (replicaWanted) {
    let data = replica;
    if (data === undefined) {
      if (haveShards < ec.k) throw tooFew(p, `no replica and ${haveShards} shards to rebuild from`);
      data = await decodeEc(ec.k, ec.m, slots, shardLen, dataLen);
    }
    for (const i of wanted) if (i < ec.base) rebuilt.set(i, data);
  }
  return which.map((i) => rebuilt.get(i)!);
}

/**
 * Where stripe bytes [start, end) sit inside the data shards (ec/hybrid; for replicate: fragment 0, same offsets),
 * so a Range read can fetch only those bytes when the data shards are healthy. For hybrid these are the data
 * shards R..R+K-1 (a caller reading an exact replica uses the stripe offsets directly).
 */
export function dataShardSpans(p: Policy, shardLen: number, start: number, end: number): ShardSpan[] {
  checkLength('start', start);
  checkLength('end', end);
  if (end < start) throw new ErasureError('BadInput', `range end ${end} is before start ${start}`);
  if (end === start) return [];
  const ec = ecShape(p);
  if (ec === undefined) return [{ fragment: 0, offset: start, length: end - start }];
  if (!Number.isSafeInteger(shardLen) || shardLen <= 0) throw new ErasureError('BadInput', `shardLen must be positive, got ${shardLen}`);
  if (end > ec.k * shardLen) {
    throw new ErasureError('BadInput', `range end ${end} is past the ${ec.k} data shards of ${shardLen} bytes`);
  }
  const spans: ShardSpan[] = [];
  let pos = start;
  while (pos < end) {
    const shard = Math.floor(pos / shardLen);
    const offset = pos - shard * shardLen;
    const length = Math.min(shardLen - offset, end - pos);
    spans.push({ fragment: ec.base + shard, offset, length });
    pos += length;
  }
  return spans;
}
