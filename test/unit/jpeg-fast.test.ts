import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { jpegCropInto, jpegFastAvailable, type JpegFastRequest } from '../../src/transforms/jpeg-fast.js';
import { imageChoice } from '../../src/transforms/image-decode.js';
import { resolveImageOptions } from '../../src/transforms/image-options.js';
import type { CropBox } from '../../src/transforms/crop.js';
import { syntheticImage } from '../../benchmarks/image-dataset.js';

const skip = jpegFastAvailable() ? false : 'the addon was built without libjpeg';

/** The reference: the whole JPEG decoded by sharp, the box cut, resized (linear), flipped; HWC. */
async function reference(jpg: Buffer, box: CropBox, flip: boolean, size: number): Promise<Buffer> {
  const full = await sharp(jpg).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  let img = sharp(full.data, { raw: { width: full.info.width, height: full.info.height, channels: 3 } }).extract(box).resize(size, size, { fit: 'fill', kernel: 'linear' });
  if (flip) img = img.flop();
  return img.raw().toBuffer();
}

function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
}

function request(width: number, height: number, box: CropBox, size: number, over: Partial<JpegFastRequest> = {}): JpegFastRequest {
  return { width, height, box, size, flip: false, layout: 'HWC', maxDenom: 1, gap: 2, ...over };
}

test('JPEG fast path: seeded train crops equal a full decode cut to the box (mean |diff| <= 0.5), flipped or not, CHW the transpose of HWC', { skip }, async () => {
  for (const [W, H, size] of [[500, 375, 224], [96, 72, 24], [123, 301, 64]] as const) {
    const t = resolveImageOptions('t', { kind: 'train', size });
    const jpg = await syntheticImage(W, H, W + H, 'jpeg', 90);
    let worst = 0;
    let bestWrong = Infinity;
    for (let id = 0; id < 12; id++) {
      const { box, flip } = imageChoice(t, W, H, 7, 0, id);
      const hwc = new Uint8Array(size * size * 3);
      assert.equal(jpegCropInto(jpg, hwc, request(W, H, box, size, { flip })), 1);
      worst = Math.max(worst, meanAbsDiff(hwc, await reference(jpg, box, flip, size)));
      const chw = new Uint8Array(size * size * 3);
      jpegCropInto(jpg, chw, request(W, H, box, size, { flip, layout: 'CHW' }));
      const plane = size * size;
      for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) if (chw[c * plane + p] !== hwc[p * 3 + c]) assert.fail(`CHW ${c},${p} differs from HWC`);
      // A control: the box moved by a few pixels looks different, so this check can fail.
      const moved = { ...box, left: box.left >= 4 ? box.left - 4 : box.left + 4 };
      if (moved.left + moved.width <= W) bestWrong = Math.min(bestWrong, meanAbsDiff(hwc, await reference(jpg, moved, flip, size)));
    }
    assert.ok(worst <= 0.5, `${W}x${H} -> ${size}: worst mean |diff| ${worst.toFixed(3)}`);
    assert.ok(bestWrong > 2 * Math.max(worst, 0.5), `${W}x${H}: a moved box differs clearly (${bestWrong.toFixed(3)})`);
  }
});

test('JPEG fast path: a box the size of the output is the full decode\'s pixels, byte for byte, wherever it starts and stops (4:2:0, 4:4:4, progressive)', { skip }, async () => {
  const W = 333;
  const H = 250;
  const px = await sharp(await syntheticImage(W, H, 17, 'png')).raw().toBuffer();
  const raw = { raw: { width: W, height: H, channels: 3 as const } };
  const variants: [string, Buffer][] = [
    ['4:2:0', await sharp(px, raw).jpeg({ quality: 85 }).toBuffer()],
    ['4:4:4', await sharp(px, raw).jpeg({ quality: 85, chromaSubsampling: '4:4:4' }).toBuffer()],
    ['progressive', await sharp(px, raw).jpeg({ quality: 85, progressive: true }).toBuffer()],
  ];
  const Q = 40;
  for (const [name, jpg] of variants) {
    const full = await sharp(jpg).raw().toBuffer();
    // Starts and ends on and off the 8- and 16-pixel block rows and columns, and the image's edges.
    for (const top of [0, 1, 7, 8, 15, 16, 17, 33, 100, H - Q - 1, H - Q]) {
      for (const left of [0, 3, 16, 17, 150, W - Q]) {
        const box = { left, top, width: Q, height: Q };
        const out = new Uint8Array(Q * Q * 3);
        assert.equal(jpegCropInto(jpg, out, request(W, H, box, Q)), 1);
        for (let y = 0; y < Q; y++) {
          for (let x = 0; x < Q * 3; x++) {
            const want = full[((top + y) * W + left) * 3 + x]!;
            if (out[y * Q * 3 + x] !== want) assert.fail(`${name}, box ${JSON.stringify(box)}: byte ${y},${x} is ${out[y * Q * 3 + x]}, the full decode has ${want}`);
          }
        }
      }
    }
  }
});

test('JPEG fast path: a grayscale JPEG comes out as RGB equal to sharp\'s decode of it', { skip }, async () => {
  const W = 150;
  const H = 120;
  const jpg = await sharp(await syntheticImage(W, H, 9, 'png')).toColourspace('b-w').jpeg({ quality: 90 }).toBuffer();
  assert.equal((await sharp(jpg).metadata()).channels, 1, 'a one-component JPEG');
  const box = { left: 10, top: 20, width: 100, height: 90 };
  const out = new Uint8Array(32 * 32 * 3);
  assert.equal(jpegCropInto(jpg, out, request(W, H, box, 32, { flip: true })), 1);
  const d = meanAbsDiff(out, await reference(jpg, box, true, 32));
  assert.ok(d <= 0.5, `mean |diff| ${d.toFixed(3)}`);
});

test('JPEG fast path: DCT scaling for large boxes stays within the tolerance of the full decode', { skip }, async () => {
  const W = 1600;
  const H = 1200;
  const jpg = await syntheticImage(W, H, 5, 'jpeg', 90);
  const box = { left: 100, top: 50, width: 1400, height: 1100 };
  const out = new Uint8Array(64 * 64 * 3);
  const denom = jpegCropInto(jpg, out, request(W, H, box, 64, { maxDenom: 8 }));
  // 1100 >= 2 * 8 * 64: decoded at 1/8.
  assert.equal(denom, 8);
  const d = meanAbsDiff(out, await reference(jpg, box, false, 64));
  assert.ok(d <= 0.5, `mean |diff| ${d.toFixed(3)}`);
  assert.equal(jpegCropInto(jpg, out, request(W, H, box, 64, { maxDenom: 1 })), 1, 'maxDenom 1: full resolution');
});

test('JPEG fast path: truncated and garbage JPEGs throw GPUFEED_BAD_INPUT (whatever the box), CMYK is left to sharp', { skip }, async () => {
  const W = 200;
  const H = 160;
  const jpg = await syntheticImage(W, H, 3, 'jpeg', 90);
  const out = new Uint8Array(32 * 32 * 3);
  const top = { left: 0, top: 0, width: 40, height: 40 };
  const bad = (err: Error & { code?: string }): boolean => err.code === 'GPUFEED_BAD_INPUT' && /libjpeg/.test(err.message);
  // Cut at 60%: the box at the top is decoded before the cut, and the rest is still checked.
  const cut = jpg.subarray(0, Math.floor(jpg.length * 0.6));
  assert.throws(() => jpegCropInto(cut, out, request(W, H, top, 32)), bad);
  assert.throws(() => jpegCropInto(cut, out, request(W, H, { left: 150, top: 110, width: 50, height: 50 }, 32)), bad);
  // Cut inside the headers.
  assert.throws(() => jpegCropInto(jpg.subarray(0, 200), out, request(W, H, top, 32)), bad);
  // SOI and garbage.
  assert.throws(() => jpegCropInto(Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xdb]), Buffer.alloc(300, 0x5a)]), out, request(W, H, top, 32)), bad);
  // The entropy-coded data replaced by noise: an error or a warning (then 0: sharp decides), never a crash.
  const sos = jpg.indexOf(Buffer.from([0xff, 0xda]));
  const noisy = Buffer.from(jpg);
  for (let i = sos + 20; i < noisy.length - 2; i++) noisy[i] = (i * 7919) & 0xff;
  try {
    assert.ok([0, 1].includes(jpegCropInto(noisy, out, request(W, H, top, 32))));
  } catch (err) {
    assert.ok(bad(err as Error), String(err));
  }
  // A frame size other than the caller's: declined, not decoded with the wrong box.
  assert.equal(jpegCropInto(jpg, out, request(W + 8, H, top, 32)), 0);
  const cmyk = await sharp(await sharp(jpg).raw().toBuffer(), { raw: { width: W, height: H, channels: 3 } }).toColourspace('cmyk').jpeg().toBuffer();
  assert.equal(jpegCropInto(cmyk, out, request(W, H, top, 32)), 0, 'CMYK: left to sharp');
  // The good file still decodes on this thread after all that.
  assert.equal(jpegCropInto(jpg, out, request(W, H, top, 32)), 1);
});

test('JPEG fast path: arguments are checked before the addon sees them', { skip }, async () => {
  const jpg = await syntheticImage(64, 48, 1, 'jpeg', 90);
  const out = new Uint8Array(16 * 16 * 3);
  const internal = (err: Error & { code?: string }): boolean => err.code === 'GPUFEED_INTERNAL';
  assert.throws(() => jpegCropInto(jpg, out, request(64, 48, { left: 30, top: 0, width: 40, height: 10 }, 16)), internal);
  assert.throws(() => jpegCropInto(jpg, out, request(64, 48, { left: 0, top: 0, width: 10.5, height: 10 }, 16)), internal);
  assert.throws(() => jpegCropInto(jpg, new Uint8Array(10), request(64, 48, { left: 0, top: 0, width: 10, height: 10 }, 16)), internal);
  assert.throws(() => jpegCropInto(jpg, out, request(64, 48, { left: 0, top: 0, width: 10, height: 10 }, 16, { maxDenom: 3 as 2 })), internal);
});

test('JPEG fast path: the SIMD resize loops (SSSE3, AVX2) write the same bytes as the scalar loop', { skip }, () => {
  const child = fileURLToPath(new URL('../fixtures/jpeg-simd-child.ts', import.meta.url));
  const run = (cap: string | undefined): { n: number; sha256: string } => {
    const env = { ...process.env };
    if (cap === undefined) delete env.GPUFEED_JPEG_SIMD;
    else env.GPUFEED_JPEG_SIMD = cap;
    const r = spawnSync(process.execPath, ['--import', 'tsx', child], { env, encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as { n: number; sha256: string };
  };
  const scalar = run('scalar');
  assert.equal(scalar.n, 3 * 5 * 8 * 4);
  assert.deepEqual(run('ssse3'), scalar);
  assert.deepEqual(run(undefined), scalar);
});
