// Rendezvous (highest-random-weight) hashing: an object's fragments go to the `width` nodes with the highest
// hash(objectId, nodeId), in that order, so every gateway computes the same placement and adding a node
// moves only the objects it now wins.
import { createHash } from 'node:crypto';

export function rankNodes(objectId: string, nodeIds: readonly string[]): string[] {
  return nodeIds
    .map((id) => ({ id, w: createHash('sha256').update(objectId).update('\0').update(id).digest().readBigUInt64BE(0) }))
    .sort((a, b) => (a.w === b.w ? (a.id < b.id ? -1 : 1) : a.w > b.w ? -1 : 1))
    .map((x) => x.id);
}

export function placeFragments(objectId: string, nodeIds: readonly string[], width: number): string[] {
  if (width > nodeIds.length) {
    throw new Error(`policy needs ${width} distinct storage nodes but only ${nodeIds.length} are configured`);
  }
  return rankNodes(objectId, nodeIds).slice(0, width);
}
