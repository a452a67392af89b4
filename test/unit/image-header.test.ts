import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { readImageHeader } from '../../src/transforms/image-header.js';
import { syntheticPixels } from '../../benchmarks/image-dataset.js';

/** Encodings of one w x h image in the formats and variants the parser reads. */
async function encodings(w: number, h: number, seed: number): Promise<[string, Buffer][]> {
  const px = syntheticPixels(w, h, seed);
  const rgb = () => sharp(px, { raw: { width: w, height: h, channels: 3 } });
  const rgba = () => rgb().ensureAlpha(0.5);
  return [
    ['jpeg baseline', await rgb().jpeg({ quality: 90 }).toBuffer()],
    ['jpeg progressive', await rgb().jpeg({ quality: 80, progressive: true }).toBuffer()],
    ['jpeg 4:4:4 with EXIF', await rgb().jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).withMetadata({ orientation: 6 }).toBuffer()],
    ['jpeg gray', await rgb().grayscale().jpeg().toBuffer()],
    ['png rgb', await rgb().png().toBuffer()],
    ['png rgba', await rgba().png().toBuffer()],
    ['png gray 16-bit', await rgb().grayscale().toColourspace('grey16').png().toBuffer()],
    ['webp lossy', await rgb().webp({ quality: 80 }).toBuffer()],
    ['webp lossy with alpha (VP8X)', await rgba().webp({ quality: 80 }).toBuffer()],
    ['webp lossless', await rgb().webp({ lossless: true }).toBuffer()],
    ['webp lossless with alpha', await rgba().webp({ lossless: true }).toBuffer()],
  ];
}

test('image headers: JPEG, PNG and WebP sizes equal what libvips reports, over sizes and variants', async () => {
  for (const [w, h] of [[1, 1], [17, 5], [500, 375], [333, 1024], [16383, 2]] as const) {
    for (const [name, bytes] of await encodings(w, h, w * 7 + h)) {
      const m = await sharp(bytes).metadata();
      const got = readImageHeader(bytes);
      assert.ok(got, `${name} ${w}x${h}: header read`);
      assert.deepEqual(got, { width: m.width, height: m.height, format: m.format }, `${name} ${w}x${h}`);
    }
  }
});

test('image headers: anything else, or a header cut short, is left to libvips (undefined), never a wrong size', async () => {
  const jpeg = await sharp(syntheticPixels(40, 30, 1), { raw: { width: 40, height: 30, channels: 3 } }).jpeg().toBuffer();
  const png = await sharp(syntheticPixels(40, 30, 1), { raw: { width: 40, height: 30, channels: 3 } }).png().toBuffer();
  const webp = await sharp(syntheticPixels(40, 30, 1), { raw: { width: 40, height: 30, channels: 3 } }).webp().toBuffer();
  const gif = await sharp(syntheticPixels(40, 30, 1), { raw: { width: 40, height: 30, channels: 3 } }).gif().toBuffer();
  assert.equal(readImageHeader(gif), undefined, 'GIF: not parsed here');
  assert.equal(readImageHeader(new Uint8Array(0)), undefined);
  assert.equal(readImageHeader(Buffer.from('not an image at all, just text')), undefined);
  for (const [name, full] of [['jpeg', jpeg], ['png', png], ['webp', webp]] as const) {
    const whole = readImageHeader(full);
    assert.deepEqual(whole && [whole.width, whole.height], [40, 30], name);
    // Every prefix either gives the true size or nothing.
    for (let n = 0; n < Math.min(full.length, 700); n++) {
      const got = readImageHeader(full.subarray(0, n));
      if (got) assert.deepEqual([got.width, got.height], [40, 30], `${name} cut to ${n} bytes`);
    }
  }
  // A JPEG whose frame header says height 0 (the size comes later, in a DNL marker): libvips decides.
  const sof = jpeg.indexOf(Buffer.from([0xff, 0xc0]));
  assert.ok(sof > 0);
  const dnl = Buffer.from(jpeg);
  dnl[sof + 5] = 0;
  dnl[sof + 6] = 0;
  assert.equal(readImageHeader(dnl), undefined);
  // Markers that are not a JPEG's after the start: undefined, not a guess.
  // (The first segment after SOI is APP0/DQT; the byte after it must start the next marker.)
  const broken = Buffer.from(jpeg);
  broken[4 + broken.readUInt16BE(4)] = 0x00;
  assert.equal(readImageHeader(broken), undefined);
});
