// Snappy compression (the raw format Parquet uses: a varint of the length, then literals and
// back-references), the writing half of snappy.ts. Greedy matching over a hash of the next 4
// bytes, in blocks of 64 KiB so every back-reference fits a 2-byte offset. Where no match turns up
// the scan steps faster (one more byte per 32 bytes without one), so incompressible pages (random
// token ids) cost little more than a copy.

const BLOCK = 1 << 16;
const HASH_BITS = 14;
const table = new Int32Array(1 << HASH_BITS);

export function snappyCompress(input: Uint8Array): Uint8Array {
  const n = input.length;
  const out = new Uint8Array(32 + n + Math.ceil(n / 6));
  let o = 0;
  for (let v = n; ; v = Math.floor(v / 128)) {
    if (v < 128) {
      out[o++] = v;
      break;
    }
    out[o++] = (v % 128) | 0x80;
  }
  for (let start = 0; start < n; start += BLOCK) o = compressBlock(input, start, Math.min(n, start + BLOCK), out, o);
  return out.slice(0, o);
}

function load32(b: Uint8Array, i: number): number {
  return b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
}

function compressBlock(input: Uint8Array, start: number, end: number, out: Uint8Array, o: number): number {
  let lit = start;
  if (end - start >= 16) {
    table.fill(-1);
    const last = end - 4;
    let ip = start;
    while (ip <= last) {
      const seq = load32(input, ip);
      const h = Math.imul(seq, 0x1e35a7bd) >>> (32 - HASH_BITS);
      const cand = table[h]!;
      table[h] = ip;
      if (cand < 0 || load32(input, cand) !== seq) {
        ip += 1 + ((ip - lit) >> 5);
        continue;
      }
      let len = 4;
      while (ip + len < end && input[cand + len] === input[ip + len]) len++;
      if (ip > lit) o = literal(input, lit, ip, out, o);
      o = copy(ip - cand, len, out, o);
      ip += len;
      lit = ip;
      // The position before the next scan start, so a run that continues right away is found.
      if (ip - 1 <= last) table[Math.imul(load32(input, ip - 1), 0x1e35a7bd) >>> (32 - HASH_BITS)] = ip - 1;
    }
  }
  if (end > lit) o = literal(input, lit, end, out, o);
  return o;
}

function literal(input: Uint8Array, from: number, to: number, out: Uint8Array, o: number): number {
  const n = to - from - 1;
  if (n < 60) out[o++] = n << 2;
  else if (n < 0x100) {
    out[o++] = 60 << 2;
    out[o++] = n;
  } else if (n < 0x10000) {
    out[o++] = 61 << 2;
    out[o++] = n & 0xff;
    out[o++] = n >>> 8;
  } else {
    out[o++] = 62 << 2;
    out[o++] = n & 0xff;
    out[o++] = (n >>> 8) & 0xff;
    out[o++] = n >>> 16;
  }
  if (to - from < 16) for (let i = from; i < to; i++) out[o++] = input[i]!;
  else {
    out.set(input.subarray(from, to), o);
    o += to - from;
  }
  return o;
}

function copy(offset: number, len: number, out: Uint8Array, o: number): number {
  // 2-byte-offset copies hold at most 64 bytes; keep the remainder at 4 or more for a 1-byte form.
  while (len >= 68) {
    o = copy2(offset, 64, out, o);
    len -= 64;
  }
  if (len > 64) {
    o = copy2(offset, 60, out, o);
    len -= 60;
  }
  if (len <= 11 && offset < 2048) {
    out[o++] = 1 | ((len - 4) << 2) | ((offset >>> 8) << 5);
    out[o++] = offset & 0xff;
    return o;
  }
  return copy2(offset, len, out, o);
}

function copy2(offset: number, len: number, out: Uint8Array, o: number): number {
  out[o++] = 2 | ((len - 1) << 2);
  out[o++] = offset & 0xff;
  out[o++] = offset >>> 8;
  return o;
}
