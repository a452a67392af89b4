// Parquet's RLE / bit-packed hybrid levels (src/formats/parquet/hybrid-rle.ts): the values and
// the counts readHybrid keeps while it decodes (largest value, values equal to a key), which the
// page decoder uses for non-null values, rows and the level-over-maximum check, against a plain
// recount, for runs of both kinds, every width a level uses, and counts that end mid-group.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { levelStats, readHybrid } from '../../src/formats/parquet/hybrid-rle.js';

/** Encodes `values` as alternating RLE and bit-packed runs (a run's kind from `pattern`). */
function encode(values: number[], width: number, pattern: boolean[]): Uint8Array {
  const out: number[] = [];
  const uleb = (n: number): void => {
    do {
      let b = n & 0x7f;
      n >>>= 7;
      if (n > 0) b |= 0x80;
      out.push(b);
    } while (n > 0);
  };
  let i = 0;
  for (let r = 0; i < values.length; r++) {
    if (pattern[r % pattern.length]) {
      // RLE: a run of the value at i.
      let j = i;
      while (j < values.length && values[j] === values[i] && j - i < 300) j++;
      uleb((j - i) << 1);
      for (let k = 0; k < Math.ceil(width / 8); k++) out.push((values[i]! >> (8 * k)) & 0xff);
      i = j;
    } else {
      // Bit-packed: up to 3 groups of 8 (the last padded with zeros).
      const groups = Math.min(3, Math.ceil((values.length - i) / 8));
      uleb((groups << 1) | 1);
      const bytes = new Uint8Array(groups * width);
      for (let k = 0; k < groups * 8; k++) {
        const v = values[i + k] ?? 0;
        for (let b = 0; b < width; b++) if ((v >> b) & 1) bytes[(k * width + b) >> 3]! |= 1 << ((k * width + b) & 7);
      }
      out.push(...bytes);
      i += groups * 8;
    }
  }
  return Uint8Array.from(out);
}

test('readHybrid counts the maximum and the key while it decodes, for RLE and bit-packed runs', () => {
  let seed = 7;
  const rand = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
  for (const width of [1, 2, 3]) {
    const top = (1 << width) - 1;
    for (const pattern of [[true], [false], [true, false], [false, false, true]]) {
      for (const count of [1, 7, 8, 9, 100, 333]) {
        // Long runs of one value with some noise, so both kinds of run occur.
        const values: number[] = [];
        while (values.length < count) {
          const v = rand(top + 1);
          const len = 1 + rand(rand(2) ? 40 : 3);
          for (let k = 0; k < len && values.length < count; k++) values.push(rand(10) === 0 ? rand(top + 1) : v);
        }
        const bytes = encode(values, width, pattern);
        for (const key of [0, top]) {
          const out = new Uint8Array(count);
          const stats = levelStats(key);
          readHybrid(bytes, 0, bytes.length, width, count, out, stats);
          const what = `width ${width}, runs ${pattern.join('/')}, ${count} values, key ${key}`;
          assert.deepEqual(Array.from(out), values, what);
          assert.equal(stats.max, Math.max(...values), what);
          assert.equal(stats.hits, values.filter((v) => v === key).length, what);
        }
      }
    }
  }
});

test('readHybrid stats count only the values asked for, not a last group\'s padding', () => {
  // One bit-packed group of 8 ones at width 1, of which only 5 are asked for.
  const bytes = Uint8Array.from([0x03, 0xff]);
  const stats = levelStats(1);
  const out = new Uint8Array(5);
  readHybrid(bytes, 0, bytes.length, 1, 5, out, stats);
  assert.deepEqual([stats.max, stats.hits], [1, 5]);
  // An RLE run longer than the count.
  const rle = Uint8Array.from([0xc8, 0x01, 2]); // ULEB128 of 100 << 1, then the value
  const s2 = levelStats(2);
  readHybrid(rle, 0, rle.length, 2, 30, new Uint8Array(30), s2);
  assert.deepEqual([s2.max, s2.hits], [2, 30]);
});

test('readHybrid reads bit-packed runs of width 0 (a one-entry dictionary, as Polars writes it)', () => {
  // Polars' page of a 1-row chunk: bit width byte 0, then one bit-packed group of 8 and no bytes.
  const one = Uint8Array.from([0x03]);
  const out = new Uint32Array(1).fill(7);
  assert.equal(readHybrid(one, 0, one.length, 0, 1, out), 1);
  assert.deepEqual(Array.from(out), [0]);
  // Two width-0 groups then an RLE run: 20 values, every one 0, and the runs end where they should.
  const runs = Uint8Array.from([0x05, 0x08]); // bit-packed, 2 groups (16 values); RLE run of 4 (no value bytes at width 0)
  const many = new Uint32Array(20).fill(9);
  const stats = levelStats(0);
  assert.equal(readHybrid(runs, 0, runs.length, 0, 20, many, stats), 2);
  assert.deepEqual(Array.from(many), new Array(20).fill(0));
  assert.deepEqual([stats.max, stats.hits], [0, 20]);
});
