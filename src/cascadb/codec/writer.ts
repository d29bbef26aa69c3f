// A growable scratch buffer shared by the encoders: values are written in place, then copied out once, so that
// encoding a key or a row costs one allocation whatever its number of columns.

export class Writer {
  buf: Buffer = Buffer.allocUnsafe(1024);
  pos = 0;

  reset(): void {
    this.pos = 0;
  }

  /** Makes room for `n` more bytes. */
  ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** A copy of what was written (the scratch buffer is reused by the next encode, unless one huge value grew it). */
  finish(): Buffer {
    const out = Buffer.allocUnsafe(this.pos);
    this.buf.copy(out, 0, 0, this.pos);
    if (this.buf.length > 1 << 20) this.buf = Buffer.allocUnsafe(1024);
    return out;
  }
}
