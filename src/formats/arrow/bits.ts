// Arrow validity and bool buffers are bit-packed, least significant bit first.

/** One byte per value (0/1) -> bits. */
export function packBits(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array((bytes.length + 7) >> 3);
  for (let i = 0; i < bytes.length; i++) if (bytes[i]) out[i >> 3]! |= 1 << (i & 7);
  return out;
}

/** Bits [bitStart, bitStart + count) -> one byte per value (0/1) at out[outStart...]. */
export function unpackBits(bits: Uint8Array, bitStart: number, count: number, out: Uint8Array, outStart: number): void {
  for (let i = 0; i < count; i++) {
    const b = bitStart + i;
    out[outStart + i] = (bits[b >> 3]! >> (b & 7)) & 1;
  }
}
