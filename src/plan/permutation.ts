// A keyed bijection on [0, n) that maps any index in O(1) without materializing anything: a
// balanced Feistel network on the smallest even-bit power of two >= n, with cycle walking to stay
// inside [0, n). The `naive` shuffle uses it so that one rank's share of a 100-million-sample
// permutation costs only that share.
import { ErrorCodes, GpufeedError } from '../errors.js';
import { deriveKey, hashU32, type Key64 } from './prng.js';

const ROUNDS = 6;

export class FeistelPermutation {
  readonly size: number;
  private readonly halfBits: number;
  private readonly halfSize: number;
  private readonly mask: number;
  private readonly roundKeys: Key64[];

  constructor(size: number, key: Key64) {
    if (!Number.isSafeInteger(size) || size < 0 || size > 2 ** 52) {
      throw new GpufeedError(ErrorCodes.INTERNAL, `permutation size out of range: ${size}`);
    }
    this.size = size;
    let bits = 0;
    while (2 ** bits < size) bits++;
    // Each half gets ceil(bits/2) >= 1 bits, so the domain is at most 4x the size: cycle walking
    // takes under 4 rounds on average.
    this.halfBits = Math.max(1, Math.ceil(bits / 2));
    this.halfSize = 2 ** this.halfBits;
    this.mask = this.halfSize - 1;
    this.roundKeys = Array.from({ length: ROUNDS }, (_, r) => deriveKey(key, r));
  }

  /** The image of `index` (0 <= index < size). */
  at(index: number): number {
    let x = this.encrypt(index);
    // A permutation's cycle through `index` returns into [0, size), so this ends; the bound is a guard.
    for (let guard = 0; x >= this.size; guard++) {
      if (guard > 4 * this.halfSize * this.halfSize) {
        throw new GpufeedError(ErrorCodes.INTERNAL, 'Feistel cycle walk did not end');
      }
      x = this.encrypt(x);
    }
    return x;
  }

  private encrypt(x: number): number {
    let left = Math.floor(x / this.halfSize);
    let right = x - left * this.halfSize;
    const mask = this.mask;
    for (const key of this.roundKeys) {
      // halfBits <= 26, so the XOR of 32-bit values masked to halfBits stays exact.
      const next = (left ^ (hashU32(key, right) & mask)) >>> 0;
      left = right;
      right = next;
    }
    return left * this.halfSize + right;
  }
}
