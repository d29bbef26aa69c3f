// Versions are microsecond timestamps from a monotonic hybrid clock: never equal, never going backwards
// within a gateway, close to wall time across gateways, so the newest write wins and a stale fragment never does.
let last = 0;

export function nextVersion(): number {
  const now = Date.now() * 1000;
  last = now > last ? now : last + 1;
  return last;
}

/** Object and part ids: 8 bytes of version (so age is readable, for garbage collection) ‖ 8 random bytes, hex. */
export function newId(version: number, random: Buffer): string {
  return version.toString(16).padStart(16, '0') + random.toString('hex');
}

export function idTime(id: string): number {
  return Math.floor(parseInt(id.slice(0, 16), 16) / 1000);
}
