// CRC-16/ARC (poly 0x8005 reflected = 0xA001, init 0, no final xor): the ABNT NBR 14522 frame check.

const TABLE = (() => {
  const t = new Uint16Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** CRC-16/ARC of buf[start, end); check("123456789") = 0xBB3D. Frames store it LSB first. */
export function crc16(buf: Uint8Array, start = 0, end = buf.length): number {
  // Bounds are the caller's arithmetic, not input bytes: a bad range is a bug, so RangeError.
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > buf.length || start > end) {
    throw new RangeError(`crc16: bad range [${start}, ${end}) of ${buf.length} bytes`);
  }
  let crc = 0;
  for (let i = start; i < end; i++) crc = (crc >>> 8) ^ TABLE[(crc ^ buf[i]!) & 0xff]!;
  return crc;
}
