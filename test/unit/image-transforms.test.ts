import { test } from 'node:test';
import assert from 'node:assert/strict';
import { centerCropBox, randomResizedCropBox, sampleRng } from '../../src/transforms/crop.js';
import { imageChoice, writeRow } from '../../src/transforms/image-decode.js';
import { resolveImageColumns, resolveImageOptions, type ResolvedImageTransform } from '../../src/transforms/image-options.js';
import { parseImageSpec, transformsFromFlags } from '../../src/transforms/image-spec.js';
import { selectColumns } from '../../src/dataset/columns.js';
import { halfToNumber } from '../../src/dataset/float16.js';
import type { ManifestV1 } from '../../src/dataset/types.js';
import { invalidOptionNaming } from '../helpers/expect-error.js';

test('RandomResizedCrop boxes: inside the image, area and aspect within the ranges, a pure function of (seed, epoch, id)', () => {
  const scale: [number, number] = [0.08, 1];
  const ratio: [number, number] = [3 / 4, 4 / 3];
  let fallbacks = 0;
  const seen = new Set<string>();
  for (let id = 0; id < 2000; id++) {
    const W = 200 + (id % 300);
    const H = 150 + ((id * 7) % 250);
    const box = randomResizedCropBox(W, H, scale, ratio, sampleRng(5, 2, id));
    assert.deepEqual(randomResizedCropBox(W, H, scale, ratio, sampleRng(5, 2, id)), box, 'same inputs, same box');
    assert.ok(box.left >= 0 && box.top >= 0 && box.width >= 1 && box.height >= 1);
    assert.ok(box.left + box.width <= W && box.top + box.height <= H, `box ${JSON.stringify(box)} inside ${W}x${H}`);
    const area = (box.width * box.height) / (W * H);
    const aspect = box.width / box.height;
    // Rounding to whole pixels moves area and aspect a little past the drawn values.
    const slack = 2 / Math.min(box.width, box.height);
    const inRange = area >= scale[0] * (1 - 2 * slack) && area <= 1 && aspect >= ratio[0] * (1 - slack) && aspect <= ratio[1] * (1 + slack);
    if (!inRange) fallbacks++;
    seen.add(`${box.left},${box.top},${box.width},${box.height}`);
  }
  assert.equal(fallbacks, 0, 'every box from these ranges fits the ranges');
  assert.ok(seen.size > 1900, `boxes vary across samples (${seen.size} distinct of 2000)`);
  // Other epochs and seeds give other boxes.
  const b0 = randomResizedCropBox(500, 375, scale, ratio, sampleRng(5, 2, 7));
  assert.notDeepEqual(randomResizedCropBox(500, 375, scale, ratio, sampleRng(5, 3, 7)), b0);
  assert.notDeepEqual(randomResizedCropBox(500, 375, scale, ratio, sampleRng(6, 2, 7)), b0);
});

test('RandomResizedCrop falls back to a centered crop clamped to the ratio range (torchvision)', () => {
  // scale > what any in-ratio box can reach on a very wide image: all 10 attempts fail.
  const box = randomResizedCropBox(1000, 100, [0.9, 1], [1, 1], sampleRng(1, 0, 0));
  assert.deepEqual(box, { left: 450, top: 0, width: 100, height: 100 });
  const tall = randomResizedCropBox(100, 1000, [0.9, 1], [3 / 4, 4 / 3], sampleRng(1, 0, 0));
  // in_ratio 0.1 < 3/4: w = W, h = round(W / (3/4)) = 133, centered.
  assert.deepEqual(tall, { left: 0, top: 433, width: 100, height: 133 });
  // An image inside the ratio range falls back to the whole image.
  assert.deepEqual(randomResizedCropBox(120, 100, [1, 1], [1, 1.5], sampleRng(1, 0, 0)), { left: 0, top: 0, width: 120, height: 100 });
});

test('eval box: the source region of Resize(resize) + CenterCrop(size)', () => {
  // 500x375, resize 256, crop 224: the square side is 224/256 of the shorter side.
  assert.deepEqual(centerCropBox(500, 375, 256, 224), { left: 86, top: 24, width: 328, height: 328 });
  assert.deepEqual(centerCropBox(100, 300, 100, 100), { left: 0, top: 100, width: 100, height: 100 });
  const t = resolveImageOptions('t', { kind: 'eval', size: 224 });
  assert.equal(t.resize, 256);
  assert.deepEqual(imageChoice(t, 500, 375, 1, 0, 0), imageChoice(t, 500, 375, 99, 5, 123), 'eval ignores seed, epoch and id');
  assert.equal(imageChoice(t, 500, 375, 1, 0, 0).flip, false);
});

test('the flip is drawn per sample, about half the samples, and off with flip: false', () => {
  const t = resolveImageOptions('t', { kind: 'train', size: 32 });
  let flips = 0;
  for (let id = 0; id < 1000; id++) if (imageChoice(t, 64, 64, 3, 0, id).flip) flips++;
  assert.ok(flips > 430 && flips < 570, `${flips} of 1000 flipped`);
  const noFlip = resolveImageOptions('t', { kind: 'train', size: 32, flip: false });
  for (let id = 0; id < 100; id++) assert.equal(imageChoice(noFlip, 64, 64, 3, 0, id).flip, false);
});

test('image options: errors name the option', () => {
  assert.throws(() => resolveImageOptions('transforms.image', { kind: 'train' }), invalidOptionNaming('transforms.image.size'));
  assert.throws(() => resolveImageOptions('transforms.image', { size: 224 }), invalidOptionNaming('transforms.image.kind'));
  assert.throws(() => resolveImageOptions('transforms.image', { kind: 'crop', size: 224 }), invalidOptionNaming('transforms.image.kind'));
  assert.throws(() => resolveImageOptions('transforms.image', { kind: 'train', size: 0 }), invalidOptionNaming('transforms.image.size'));
  assert.throws(() => resolveImageOptions('transforms.image', { kind: 'train', size: 224, scale: [0.5, 0.1] }), invalidOptionNaming('transforms.image.scale'));
  assert.throws(() => resolveImageOptions('transforms.image', { kind: 'train', size: 224, ratio: [0, 1] }), invalidOptionNaming('transforms.image.ratio'));
  assert.throws(() => resolveImageOptions('transforms.image', { kind: 'train', size: 224, layout: 'NCHW' }), invalidOptionNaming('transforms.image.layout'));
  assert.throws(() => resolveImageOptions('transforms.image', { kind: 'train', size: 224, sise: 3 }), invalidOptionNaming('transforms.image.sise', /did you mean size/));
  assert.throws(() => resolveImageOptions('transforms.image', { kind: 'eval', size: 224, flip: true }), invalidOptionNaming('transforms.image.flip'));
  assert.throws(() => resolveImageOptions('transforms.image', { kind: 'eval', size: 224, resize: 200 }), invalidOptionNaming('transforms.image.resize'));
  assert.throws(() => resolveImageOptions('transforms.image', { kind: 'train', size: 224, mean: [0.5, 0.5, 0.5] }), invalidOptionNaming('transforms.image.mean'));
  assert.throws(() => resolveImageOptions('transforms.image', { kind: 'train', size: 224, dtype: 'float32', std: [1, 0, 1] }), invalidOptionNaming('transforms.image.std'));
  const d = resolveImageOptions('x', { kind: 'train', size: 224 });
  assert.deepEqual([d.scale, d.ratio, d.flip, d.layout, d.dtype, d.channels, d.kernel], [[0.08, 1], [3 / 4, 4 / 3], true, 'CHW', 'uint8', 3, 'linear']);
});

const HF: ManifestV1 = {
  format: 'gpufeed-dataset', version: 1, rows: 0, bytes: 0, shards: [],
  schema: [
    { name: 'image.bytes', dtype: 'binary', kind: 'bytes', nullable: true },
    { name: 'image.path', dtype: 'string', kind: 'bytes', nullable: true },
    { name: 'label', dtype: 'int64', kind: 'scalar', nullable: false },
  ],
};

test('transforms resolve against the dataset: KEY or KEY.bytes, the tensor column in place of the bytes', () => {
  const select = (names?: readonly string[]) => selectColumns(HF, names);
  const r = resolveImageColumns(HF, undefined, { image: { kind: 'train', size: 224 } }, select)!;
  assert.deepEqual(r.columns.map((c) => [c.name, c.kind, c.dtype, c.shape]), [['image', 'fixed', 'uint8', [3, 224, 224]], ['image.path', 'bytes', 'string', undefined], ['label', 'scalar', 'int64', undefined]]);
  assert.equal(r.transforms[0]!.source.name, 'image.bytes');
  assert.equal(r.transforms[0]!.pathColumn?.name, 'image.path');
  const picked = resolveImageColumns(HF, ['label', 'image'], { image: { kind: 'eval', size: 8, layout: 'HWC', color: 'gray' } }, select)!;
  assert.deepEqual(picked.columns.map((c) => [c.name, c.shape]), [['label', undefined], ['image', [8, 8, 1]]]);
  assert.throws(() => resolveImageColumns(HF, ['label'], { image: { kind: 'eval', size: 8 } }, select), invalidOptionNaming('transforms.image'));
  assert.throws(() => resolveImageColumns(HF, undefined, { label: { kind: 'eval', size: 8 } }, select), (e: unknown) => (e as { code: string }).code === 'GPUFEED_UNSUPPORTED_TYPE');
  assert.throws(() => resolveImageColumns(HF, undefined, { img: { kind: 'eval', size: 8 } }, select), (e: unknown) => (e as { code: string }).code === 'GPUFEED_UNKNOWN_COLUMN' && /transforms\.img/.test((e as Error).message));
  assert.equal(resolveImageColumns(HF, undefined, undefined, select), undefined);
});

test('CLI specs parse to the same option a JS caller writes', () => {
  assert.deepEqual(parseImageSpec('image=train:224:chw'), ['image', { kind: 'train', size: 224, layout: 'CHW' }]);
  assert.deepEqual(parseImageSpec('image.bytes=eval:160:hwc:gray:resize=182:float16'), ['image.bytes', { kind: 'eval', size: 160, layout: 'HWC', color: 'gray', resize: 182, dtype: 'float16' }]);
  assert.deepEqual(parseImageSpec('x=train:32:scale=0.5,1:ratio=1,1:noflip:noshrink:kernel=cubic'), ['x', { kind: 'train', size: 32, scale: [0.5, 1], ratio: [1, 1], flip: false, shrinkOnLoad: false, kernel: 'cubic' }]);
  assert.throws(() => parseImageSpec('image=train'), invalidOptionNaming('--image'));
  assert.throws(() => parseImageSpec('image=train:224:bogus'), invalidOptionNaming('--image', /bogus/));
  assert.deepEqual(transformsFromFlags(['a=eval:8'], '{"b":{"kind":"train","size":4}}'), { b: { kind: 'train', size: 4 }, a: { kind: 'eval', size: 8 } });
  assert.throws(() => transformsFromFlags(undefined, '{nope'), invalidOptionNaming('--transforms'));
});

test('rows are written in the asked layout and dtype', () => {
  const base = { output: 'i', source: HF.schema[0]!, ...resolveImageOptions('t', { kind: 'eval', size: 2 }) } as ResolvedImageTransform;
  // 2x2 RGB, HWC: pixel p has channels (10p, 10p+1, 10p+2).
  const hwc = Uint8Array.from([0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32]);
  const chw = new Uint8Array(12);
  writeRow(hwc, base, chw);
  assert.deepEqual([...chw], [0, 10, 20, 30, 1, 11, 21, 31, 2, 12, 22, 32]);
  const same = new Uint8Array(12);
  writeRow(hwc, { ...base, layout: 'HWC' }, same);
  assert.deepEqual([...same], [...hwc]);
  const f32 = new Uint8Array(48);
  const ft = { ...base, dtype: 'float32', mean: [0, 0.5, 0], std: [1, 0.5, 2] } as ResolvedImageTransform;
  writeRow(hwc, ft, f32);
  const out = new Float32Array(f32.buffer);
  assert.ok(Math.abs(out[1]! - 10 / 255) < 1e-6, 'channel 0, pixel 1');
  assert.ok(Math.abs(out[4]! - (1 / 255 - 0.5) / 0.5) < 1e-6, 'channel 1, pixel 0');
  assert.ok(Math.abs(out[11]! - 32 / 255 / 2) < 1e-6, 'channel 2, pixel 3');
  const f16 = new Uint8Array(24);
  writeRow(hwc, { ...ft, dtype: 'float16' }, f16);
  const h = new Uint16Array(f16.buffer);
  assert.ok(Math.abs(halfToNumber(h[4]!) - (1 / 255 - 0.5) / 0.5) < 2e-3);
});

test('CHW rows: the word-at-a-time transpose equals the per-byte rule, aligned or not, any size', () => {
  const hf = HF.schema[0]!;
  for (const size of [1, 2, 3, 5, 8, 17, 64]) {
    const t = { output: 'i', source: hf, ...resolveImageOptions('t', { kind: 'eval', size }) } as ResolvedImageTransform;
    const plane = size * size;
    for (const [srcShift, dstShift] of [[0, 0], [1, 0], [0, 3], [2, 2]] as const) {
      const srcBuf = new Uint8Array(plane * 3 + 8);
      for (let k = 0; k < srcBuf.length; k++) srcBuf[k] = (k * 131 + size) & 0xff;
      const hwc = srcBuf.subarray(srcShift, srcShift + plane * 3);
      const dstBuf = new Uint8Array(plane * 3 + 8).fill(0xee);
      const row = dstBuf.subarray(dstShift, dstShift + plane * 3);
      writeRow(hwc, t, row);
      for (let p = 0; p < plane; p++) {
        for (let c = 0; c < 3; c++) {
          if (row[c * plane + p] !== hwc[p * 3 + c]) assert.fail(`size ${size}, shifts ${srcShift}/${dstShift}: channel ${c} pixel ${p}`);
        }
      }
      // Nothing written outside the row.
      assert.ok(dstBuf.subarray(0, dstShift).every((v) => v === 0xee) && dstBuf.subarray(dstShift + plane * 3).every((v) => v === 0xee), `size ${size}: bytes around the row untouched`);
    }
  }
});
