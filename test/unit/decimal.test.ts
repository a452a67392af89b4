import { test } from 'node:test';
import assert from 'node:assert/strict';
import { arrowDecimalsToFloat64, bigEndianInteger, decimalToFloat64, littleEndianInteger, storedDecimalToFloat64 } from '../../src/formats/decimal.js';

/** Two's complement bytes of x, `n` long, big-endian. */
function beBytes(x: bigint, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let v = BigInt.asUintN(n * 8, x);
  for (let i = n - 1; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

test('decimalToFloat64: the nearest double to unscaled / 10^scale (as parsing the decimal string rounds)', () => {
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  for (let k = 0; k < 2000; k++) {
    const digits = 1 + (rand() % 38);
    let s = '';
    for (let d = 0; d < digits; d++) s += String(rand() % 10);
    const x = (rand() % 2 ? -1n : 1n) * BigInt(s);
    const scale = rand() % 30;
    assert.equal(decimalToFloat64(x, scale), Number(`${x}e-${scale}`), `${x} scale ${scale}`);
  }
  assert.equal(decimalToFloat64(5n, 1), 0.5);
  assert.equal(decimalToFloat64(-123456789n, 2), -1234567.89);
  assert.equal(decimalToFloat64(12n, -3), 12000);
  // Past 2^53 a division of the rounded integer could round twice; the string path does not.
  const big = 2n ** 60n + 1n;
  assert.equal(decimalToFloat64(big, 3), Number(`${big}e-3`));
});

test('stored decimals: big-endian bytes (FIXED_LEN_BYTE_ARRAY, BYTE_ARRAY of any length), int32, int64', () => {
  for (const x of [0n, 1n, -1n, 127n, -128n, 255n, 256n, -12345678901234567890n, 2n ** 100n - 3n, -(2n ** 120n)]) {
    for (const n of [9, 16, 17]) {
      if (x >= 2n ** BigInt(n * 8 - 1) || x < -(2n ** BigInt(n * 8 - 1))) continue;
      assert.equal(bigEndianInteger(beBytes(x, n), 0, n), x, `${x} in ${n} bytes`);
      assert.equal(storedDecimalToFloat64(beBytes(x, n), 2), Number(`${x}e-2`));
    }
  }
  // Short arrays (a BYTE_ARRAY decimal uses as few bytes as the value needs).
  assert.equal(bigEndianInteger(Uint8Array.of(0xff, 0x85), 0, 2), -123n);
  assert.equal(bigEndianInteger(Uint8Array.of(0x7b), 0, 1), 123n);
  assert.equal(bigEndianInteger(new Uint8Array(0), 0, 0), 0n);
  assert.equal(storedDecimalToFloat64(-5, 1), -0.5);
  assert.equal(storedDecimalToFloat64(-1234567890123n, 4), -123456789.0123);
});

test('arrowDecimalsToFloat64: little-endian 16- and 32-byte values into float64 slot bytes', () => {
  const values = [0n, 5n, -5n, 2n ** 64n + 7n, -(2n ** 70n) - 1n, 2n ** 63n - 1n, -(2n ** 63n)];
  for (const width of [4, 8, 16, 32]) {
    const fit = values.filter((v) => v >= -(2n ** BigInt(width * 8 - 1)) && v < 2n ** BigInt(width * 8 - 1));
    const src = new Uint8Array(3 + fit.length * width);
    fit.forEach((v, i) => src.set(beBytes(v, width).reverse(), 3 + i * width));
    fit.forEach((v, i) => assert.equal(littleEndianInteger(src, 3 + i * width, width), v));
    const out = new Uint8Array(8 + fit.length * 8);
    arrowDecimalsToFloat64(src, 3, fit.length, width, 3, out, 8);
    const got = Array.from(new Float64Array(out.buffer, 8, fit.length));
    assert.deepEqual(got, fit.map((v) => Number(`${v}e-3`)), `width ${width}`);
  }
});
