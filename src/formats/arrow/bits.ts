// Arrow validity and bool buffers are bit-packed, least significant bit first.

/** One byte per value (0/1) -> bits. */
export function packBits(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array((bytes.length + 7) >> 3);
  for (let i = 0; i < bytes.length; i++) if (bytes[i]) out[i >> 3]! |= 1 << (i & 7);
  return out;
}

/** Bits -> one byte per value (0/1). `offset` is in bits, as Arrow Data carries it. */
export function unpackBits(bits: Uint8Array, length: number, offset = 0): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    const j = i + offset;
    out[i] = (bits[j >> 3]! >> (j & 7)) & 1;
  }
  return out;
}
