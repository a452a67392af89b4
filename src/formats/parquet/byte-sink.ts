// A growable byte buffer for the Parquet writer: page bodies, page headers, the footer.

export class ByteSink {
  private buf: Uint8Array;
  length = 0;

  constructor(capacity = 1024) {
    this.buf = new Uint8Array(Math.max(16, capacity));
  }

  /** Room for `n` more bytes; returns the buffer to write them into at `length`. */
  reserve(n: number): Uint8Array {
    const need = this.length + n;
    if (need > this.buf.length) {
      const grown = new Uint8Array(Math.max(need, this.buf.length * 2));
      grown.set(this.buf.subarray(0, this.length));
      this.buf = grown;
    }
    return this.buf;
  }

  byte(b: number): void {
    this.reserve(1)[this.length++] = b;
  }

  bytes(b: Uint8Array): void {
    this.reserve(b.length).set(b, this.length);
    this.length += b.length;
  }

  u32le(v: number): void {
    const buf = this.reserve(4);
    buf[this.length] = v & 0xff;
    buf[this.length + 1] = (v >>> 8) & 0xff;
    buf[this.length + 2] = (v >>> 16) & 0xff;
    buf[this.length + 3] = (v >>> 24) & 0xff;
    this.length += 4;
  }

  /** Overwrites 4 bytes at `at` (a length written before what it measures). */
  patchU32le(at: number, v: number): void {
    this.buf[at] = v & 0xff;
    this.buf[at + 1] = (v >>> 8) & 0xff;
    this.buf[at + 2] = (v >>> 16) & 0xff;
    this.buf[at + 3] = (v >>> 24) & 0xff;
  }

  /** Unsigned LEB128 of a non-negative safe integer. */
  varint(v: number): void {
    const buf = this.reserve(10);
    while (v >= 0x80) {
      buf[this.length++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    buf[this.length++] = v;
  }

  /** The bytes written so far (a view; the sink must not be written after). */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}
