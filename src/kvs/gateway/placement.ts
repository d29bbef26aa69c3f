// Rendezvous (highest-random-weight) hashing: an object's fragments go to the `width` nodes with the highest
// weight(objectId, nodeId), in that order, so every gateway computes the same placement and adding a node
// moves only the objects it now wins. The object id is hashed once (SHA-256); each node has a fixed seed;
// the weight mixes the two with MurmurHash3's 32-bit finalizer (a mixing step, not cryptography).
import { createHash } from 'node:crypto';

const seeds = new Map<string, [number, number]>();

function seedOf(nodeId: string): [number, number] {
  let s = seeds.get(nodeId);
  if (!s) {
    const h = createHash('sha256').update(`securegrid/node/${nodeId}`).digest();
    s = [h.readUInt32BE(0), h.readUInt32BE(4)];
    seeds.set(nodeId, s);
  }
  return s;
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function rankNodes(objectId: string, nodeIds: readonly string[]): string[] {
  const h = createHash('sha256').update(objectId).digest();
  const a = h.readUInt32BE(0);
  const b = h.readUInt32BE(4);
  return nodeIds
    .map((id) => {
      const [s1, s2] = seedOf(id);
      return { id, w: fmix32(a ^ s1) * 4294967296 + fmix32(b ^ s2) };
    })
    .sort((x, y) => (x.w === y.w ? (x.id < y.id ? -1 : 1) : y.w - x.w))
    .map((x) => x.id);
}

export function placeFragments(objectId: string, nodeIds: readonly string[], width: number): string[] {
  if (width > nodeIds.length) {
    throw new Error(`policy needs ${width} distinct storage nodes but only ${nodeIds.length} are configured`);
  }
  return rankNodes(objectId, nodeIds).slice(0, width);
}
