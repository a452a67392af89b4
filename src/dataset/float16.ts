// IEEE 754 half precision <-> JS numbers. gpufeed keeps float16 columns as their 16 bits (Arrow
// Float16 and Parquet FLOAT16 store exactly those), so converting is only needed where values
// arrive as numbers (JSON, CSV, readers that widen); a half widens to a double exactly, and a
// double narrows to the nearest half (ties to even), as numpy does.

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
// Little- or big-endian word order of the double's high half.
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;

export function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

export function numberToHalf(x: number): number {
  f64[0] = x;
  const hi = u32[HI]!;
  const lo = u32[1 - HI]!;
  const sign = (hi >>> 16) & 0x8000;
  const exp = (hi >>> 20) & 0x7ff;
  if (exp === 0x7ff) return sign | 0x7c00 | (((hi & 0xfffff) | lo) !== 0 ? 0x200 : 0); // Inf, NaN
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00; // rounds past the largest half (65504)
  if (a <= 2 ** -25) return sign; // at most half the smallest subnormal: ties to even (zero)
  // Scale so the half's last kept bit is the integer's unit, then round half to even.
  // Math.log2 can be off by one near powers of two; fix ee so that 2^ee <= a < 2^(ee+1).
  let ee = Math.floor(Math.log2(a));
  if (2 ** ee > a) ee--;
  else if (2 ** (ee + 1) <= a) ee++;
  const q = a / 2 ** (Math.max(ee, -14) - 10); // exact: a power-of-two scaling
  let m = Math.floor(q);
  const rest = q - m;
  if (rest > 0.5 || (rest === 0.5 && (m & 1) === 1)) m++;
  let halfExp = Math.max(ee, -14) + 15;
  if (ee < -14 || m < 1024) {
    // Subnormal (exponent field 0): m counts units of 2^-24; m reaching 1024 is the smallest normal.
    return sign | m;
  }
  if (m >= 2048) {
    m >>= 1;
    halfExp++;
  }
  if (halfExp >= 31) return sign | 0x7c00;
  return sign | (halfExp << 10) | (m - 1024);
}
