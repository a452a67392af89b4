import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CodecError, decodeLz4Frame } from '../../src/formats/arrow/codecs.js';
import { halfToNumber, numberToHalf } from '../../src/dataset/float16.js';

const ascii = (s: string): number[] => Array.from(s, (c) => c.charCodeAt(0));
const u32 = (n: number): number[] => [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255];

/** An LZ4 frame (linked blocks, 64 KiB max, a content checksum) around the given raw blocks. */
function frame(blocks: { bytes: number[]; stored?: boolean }[]): Uint8Array {
  const out = [...u32(0x184d2204), 0x44, 0x40, 0x00]; // FLG: version 1, content checksum; BD: 64 KiB; header checksum (not checked)
  for (const b of blocks) out.push(...u32(b.bytes.length | (b.stored ? 0x80000000 : 0)), ...b.bytes);
  out.push(...u32(0), ...u32(0xdeadbeef)); // end mark, content checksum
  return new Uint8Array(out);
}

test('lz4 frame: literals, overlapping matches, stored blocks, and matches reaching into an earlier block', () => {
  const data = frame([
    // 4 literals "abcd", then a match of 8 at offset 4 (overlaps itself), then the last literal "e".
    { bytes: [0x44, ...ascii('abcd'), 4, 0, 0x10, ...ascii('e')] },
    { bytes: ascii('xyz'), stored: true },
    // No literals, a match of 4 at offset 3 (into the stored block), then "!" (linked blocks).
    { bytes: [0x00, 3, 0, 0x10, ...ascii('!')] },
  ]);
  assert.equal(Buffer.from(decodeLz4Frame(data)).toString('latin1'), 'abcdabcdabcdexyzxyzx!');
  // Long literal and match lengths use the 255-continued extra bytes.
  const lit = 'q'.repeat(15 + 255 + 3);
  const long = frame([{ bytes: [0xf0, 255, 3, ...ascii(lit)] }]);
  assert.equal(Buffer.from(decodeLz4Frame(long)).toString('latin1'), lit);
});

test('lz4 frame: damage is a CodecError, not a crash or a wrong length', () => {
  assert.throws(() => decodeLz4Frame(frame([{ bytes: [0x04, 9, 0] }])), CodecError); // offset past the output
  assert.throws(() => decodeLz4Frame(new Uint8Array([1, 2, 3, 4, 5, 6, 7])), CodecError);
  const good = frame([{ bytes: ascii('hello'), stored: true }]);
  assert.throws(() => decodeLz4Frame(good.subarray(0, good.length - 10)), CodecError); // truncated
});

test('float16: every half round-trips through a number; doubles round to the nearest half, ties to even', () => {
  for (let b = 0; b < 0x10000; b++) {
    const x = halfToNumber(b);
    if (Number.isNaN(x)) assert.ok(Number.isNaN(halfToNumber(numberToHalf(x))));
    else assert.equal(numberToHalf(x), b, `bits 0x${b.toString(16)}`);
  }
  for (let b = 0; b < 0x7bff; b += 7) {
    const mid = (halfToNumber(b) + halfToNumber(b + 1)) / 2;
    assert.equal(numberToHalf(mid), b & 1 ? b + 1 : b, `midpoint above 0x${b.toString(16)}`);
  }
  assert.equal(numberToHalf(0.1), 0x2e66); // numpy.float16(0.1)
  assert.equal(numberToHalf(65520), 0x7c00); // past the largest half: infinity
  assert.equal(numberToHalf(-0), 0x8000);
});
