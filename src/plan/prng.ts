// Seeded, stateless randomness on 32-bit integer math. The plan must be a pure function of its
// inputs, computable for any step in any order, so most randomness is a hash of
// (key, index) rather than a stream: a window shuffle or a Feistel round asks for the value at an
// index without generating everything before it. A small stream generator (sfc32) serves the
// few places that do run sequentially (Fisher-Yates over a partition's shards).

const TWO_32 = 4294967296;

/** A 32-bit finalizer with low bias ("lowbias32", C. Wellons): every input bit affects every output bit. */
export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** A 64-bit key as two 32-bit words: 32 bits alone would make (seed, epoch) collisions plausible. */
export interface Key64 {
  readonly hi: number;
  readonly lo: number;
}

/** Low and high 32-bit words of a non-negative safe integer. */
function words(x: number): [number, number] {
  return [x >>> 0, Math.floor(x / TWO_32) >>> 0];
}

/**
 * Derives a key from a parent key and a list of non-negative safe integers (seed, epoch,
 * partition, purpose tag...). Different lists give independent-looking keys.
 */
export function deriveKey(parent: Key64, ...parts: number[]): Key64 {
  let hi = parent.hi ^ 0x9e3779b9;
  let lo = parent.lo ^ 0x85ebca6b;
  for (const part of parts) {
    const [pl, ph] = words(part);
    lo = mix32((lo + pl) ^ hi);
    hi = mix32((hi + ph + 0x632be5ab) ^ lo);
    lo = mix32(lo ^ Math.imul(hi, 0x27d4eb2f));
  }
  return { hi, lo };
}

export const ROOT_KEY: Key64 = { hi: 0x6a09e667, lo: 0xbb67ae85 };

/** A uniform 32-bit value for (key, index); index is any non-negative safe integer. */
export function hashU32(key: Key64, index: number): number {
  const [il, ih] = words(index);
  let h = mix32(il ^ key.lo);
  h = mix32((h + ih) ^ key.hi);
  return mix32(h + key.lo);
}

/** A uniform double in [0, 1) for (key, index), 32 bits of resolution. */
export function hashUnit(key: Key64, index: number): number {
  return hashU32(key, index) / TWO_32;
}

/** sfc32: a small, fast, well-tested 128-bit-state generator, seeded from a Key64. */
export class Sfc32 {
  private a: number;
  private b: number;
  private c: number;
  private d = 1;

  constructor(key: Key64) {
    this.a = key.hi >>> 0;
    this.b = key.lo >>> 0;
    this.c = mix32(key.hi ^ key.lo ^ 0x5bd1e995);
    // Discard the first outputs: sfc32 needs a few rounds to spread a structured seed.
    for (let i = 0; i < 12; i++) this.nextU32();
  }

  nextU32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A uniform double in [0, 1) with 53 bits. */
  nextUnit(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** A uniform integer in [0, n); bias is below n / 2^53, negligible for any index range. */
  below(n: number): number {
    return Math.floor(this.nextUnit() * n);
  }
}

/** In-place Fisher-Yates shuffle of the first `length` entries. */
export function shuffleInPlace(values: { [i: number]: number; length: number }, rng: Sfc32): void {
  for (let i = values.length - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    const tmp = values[i] as number;
    values[i] = values[j] as number;
    values[j] = tmp;
  }
}
