// Image transforms end to end: prepared image folders and Hugging Face-layout Parquet, train and
// eval pipelines from JS and the CLI, pixels against a reference decode, resume, bad images.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, mkdir, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { prepDataset } from '../../src/dataset/prep.js';
import { loadManifest } from '../../src/dataset/manifest.js';
import { LocalStore } from '../../src/storage/local.js';
import { Loader, type LoaderOptions } from '../../src/pipeline/loader.js';
import { isVarColumn } from '../../src/index.js';
import { imageChoice } from '../../src/transforms/image-decode.js';
import { resolveImageOptions, type ImageTransformOptions } from '../../src/transforms/image-options.js';
import { jpegFastAvailable } from '../../src/transforms/jpeg-fast.js';
import type { CropBox } from '../../src/transforms/crop.js';
import { syntheticImage, writeImageFolder } from '../../benchmarks/image-dataset.js';
import { pythonHas } from '../helpers/python-modules.js';
import { cliArgv } from '../helpers/cli-command.js';

const run = promisify(execFile);
let dir = '';
/** Files of the image folder in sample-id order (classes sorted, then files sorted). */
let files: string[] = [];
let folderDs = '';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gpufeed-images-'));
  files = await writeImageFolder(join(dir, 'folder'), ['ant', 'bee'], 9, 96, 72, 3);
  folderDs = join(dir, 'folder-ds');
  // A small shard size: several shards, so batches cross shards.
  await prepDataset([join(dir, 'folder')], { out: folderDs, images: true, shardSize: 40_000, workers: 1, progress: false });
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Row {
  id: number;
  pixels: Uint8Array;
  label?: number;
}

async function readAll(ds: string, options: LoaderOptions, column = 'image'): Promise<Row[][]> {
  const loader = await Loader.open(ds, options);
  const batches: Row[][] = [];
  try {
    for await (const b of loader) {
      const [, ...row] = b.shape(column);
      const rowLen = row.reduce((a, c) => a * c, 1);
      const data = b.columns[column] as Uint8Array;
      const labels = b.columns.label as Int32Array | BigInt64Array | undefined;
      batches.push(b.ids.map((id, i) => ({ id, pixels: data.slice(i * rowLen, (i + 1) * rowLen), ...(labels ? { label: Number(labels[i]) } : {}) })));
      b.release();
    }
  } finally {
    await loader.close();
  }
  return batches;
}

/** Reference: the whole image decoded by sharp, then the box cut, resized and flipped, as HWC. */
async function reference(bytes: Buffer, box: CropBox, flip: boolean, size: number, channels: 1 | 3): Promise<Uint8Array> {
  // Gray is converted after the resize, as the transform does (b-w conversion is not linear).
  const { data, info } = await sharp(bytes).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  let img = sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels as 1 | 3 } }).extract(box).resize(size, size, { fit: 'fill', kernel: 'linear' });
  if (flip) img = img.flop();
  if (channels === 1) img = img.toColourspace('b-w');
  return new Uint8Array(await img.raw().toBuffer());
}

function chwToHwc(chw: Uint8Array, size: number): Uint8Array {
  const plane = size * size;
  const out = new Uint8Array(plane * 3);
  for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) out[p * 3 + c] = chw[c * plane + p]!;
  return out;
}

function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
}

async function dims(bytes: Buffer): Promise<{ width: number; height: number }> {
  const m = await sharp(bytes).metadata();
  return { width: m.width!, height: m.height! };
}

const TRAIN: ImageTransformOptions = { kind: 'train', size: 24, layout: 'CHW' };

test('prep --images: rows of (image bytes, label, path), classes sorted in the manifest', async () => {
  const manifest = await loadManifest(new LocalStore(folderDs));
  assert.deepEqual(manifest.classes, ['ant', 'bee']);
  assert.deepEqual(manifest.schema.map((c) => [c.name, c.kind, c.dtype]), [['image', 'bytes', 'binary'], ['label', 'scalar', 'int32'], ['path', 'bytes', 'string']]);
  assert.equal(manifest.rows, 18);
  assert.ok(manifest.shards.length > 1, `several shards (${manifest.shards.length})`);
  const rows = await readAll(folderDs, { batchSize: 18, epochs: 1, shuffle: 'none', workers: 1, columns: ['label'] }, 'label');
  assert.deepEqual(rows.flat().map((r) => r.label), [...Array(9).fill(0), ...Array(9).fill(1)]);
});

test('train pipeline (JS): [B, 3, S, S] uint8 with the seeded crop and flip of each sample, pixels equal to a reference decode', async () => {
  const seed = 11;
  const batches = await readAll(folderDs, { batchSize: 5, seed, shuffle: 'naive', epochs: 2, workers: 2, transforms: { image: TRAIN } });
  const t = resolveImageOptions('t', TRAIN);
  let worstRight = 0;
  let bestWrong = Infinity;
  let flips = 0;
  const perEpoch = Math.ceil(18 / 5);
  for (let b = 0; b < batches.length; b++) {
    const epoch = Math.floor(b / perEpoch);
    for (const row of batches[b]!) {
      assert.equal(row.pixels.length, 3 * 24 * 24);
      const bytes = await readFile(files[row.id]!);
      const { width, height } = await dims(bytes);
      const choice = imageChoice(t, width, height, seed, epoch, row.id);
      if (choice.flip) flips++;
      const got = chwToHwc(row.pixels, 24);
      worstRight = Math.max(worstRight, meanAbsDiff(got, await reference(bytes, choice.box, choice.flip, 24, 3)));
      // A control: the box moved by a few pixels must look different, or this check could not fail.
      const moved = { ...choice.box, left: choice.box.left === 0 ? 4 : 0 };
      if (moved.left + moved.width <= width) bestWrong = Math.min(bestWrong, meanAbsDiff(got, await reference(bytes, moved, choice.flip, 24, 3)));
    }
  }
  assert.equal(batches.flat().length, 36, 'two epochs of 18');
  assert.ok(flips > 0 && flips < 36, `some flipped (${flips})`);
  assert.ok(worstRight <= 0.5, `worst mean |diff| vs the reference ${worstRight.toFixed(3)}`);
  assert.ok(bestWrong > 2 * Math.max(worstRight, 0.5), `a moved box differs clearly (${bestWrong.toFixed(3)})`);
});

test('the same crops whatever the worker count, and a resumed epoch reproduces them pixel for pixel', async () => {
  const options: LoaderOptions = { batchSize: 4, seed: 5, shuffle: 'window', shuffleWindow: 8, epochs: 2, transforms: { image: TRAIN } };
  const one = await readAll(folderDs, { ...options, workers: 1 });
  const three = await readAll(folderDs, { ...options, workers: 3 });
  assert.deepEqual(three.map((b) => b.map((r) => r.id)), one.map((b) => b.map((r) => r.id)));
  for (let b = 0; b < one.length; b++) for (let i = 0; i < one[b]!.length; i++) assert.deepEqual(three[b]![i]!.pixels, one[b]![i]!.pixels, `batch ${b} row ${i}`);
  // Resume after 6 batches (inside epoch 1): the rest equals the uninterrupted run's rest.
  const loader = await Loader.open(folderDs, { ...options, workers: 2 });
  let state;
  let n = 0;
  for await (const b of loader) {
    b.release();
    if (++n === 6) {
      state = loader.state();
      break;
    }
  }
  await loader.close();
  const rest = await readAll(folderDs, { ...options, workers: 2, resume: state });
  assert.equal(rest.length, one.length - 6);
  for (let b = 0; b < rest.length; b++) {
    assert.deepEqual(rest[b]!.map((r) => r.id), one[b + 6]!.map((r) => r.id));
    for (let i = 0; i < rest[b]!.length; i++) assert.deepEqual(rest[b]![i]!.pixels, one[b + 6]![i]!.pixels, `resumed batch ${b} row ${i}`);
  }
  // Another epoch draws other crops of the same sample.
  const epoch0 = new Map(one.slice(0, 5).flat().map((r) => [r.id, r.pixels]));
  const epoch1 = new Map(one.slice(5).flat().map((r) => [r.id, r.pixels]));
  let differ = 0;
  for (const [id, px] of epoch0) if (Buffer.compare(Buffer.from(px), Buffer.from(epoch1.get(id)!)) !== 0) differ++;
  assert.ok(differ >= 15, `epoch 1 crops differ from epoch 0 for ${differ} of 18 samples`);
});

test('eval pipeline: HWC grayscale and float32 CHW normalized; opt-in shrink-on-load for large images stays close to the exact decode', async () => {
  const ev: ImageTransformOptions = { kind: 'eval', size: 16, layout: 'HWC', color: 'gray' };
  const [batch] = await readAll(folderDs, { batchSize: 18, epochs: 1, shuffle: 'none', workers: 2, transforms: { image: ev } });
  const t = resolveImageOptions('t', ev);
  for (const row of batch!) {
    const bytes = await readFile(files[row.id]!);
    const { width, height } = await dims(bytes);
    const { box } = imageChoice(t, width, height, 0, 0, row.id);
    const r = await reference(bytes, box, false, 16, 1);
    // Gray: libvips converts to b-w at another point of the pipeline than this reference does.
    const d = meanAbsDiff(row.pixels, r);
    assert.ok(d <= 1, `gray sample ${row.id}: mean |diff| ${d.toFixed(3)}`);
  }
  const f32 = await Loader.open(folderDs, { batchSize: 2, epochs: 1, shuffle: 'none', workers: 1, transforms: { image: { kind: 'eval', size: 16, dtype: 'float32', mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] } } });
  try {
    for await (const b of f32) {
      assert.deepEqual(b.shape('image'), [2, 3, 16, 16]);
      const v = b.columns.image as Float32Array;
      assert.ok(v instanceof Float32Array, 'float32 column');
      const u8 = await readAll(folderDs, { batchSize: 2, epochs: 1, shuffle: 'none', workers: 1, transforms: { image: { kind: 'eval', size: 16 } } });
      const first = u8[0]![0]!.pixels;
      for (let i = 0; i < first.length; i++) assert.ok(Math.abs(v[i]! - (first[i]! / 255 - 0.5) / 0.25) < 1e-5, `value ${i}`);
      b.release();
      break;
    }
  } finally {
    await f32.close();
  }
  // Large photos: the eval box is > 3x the output, so JPEG decodes at reduced size (shrink-on-load).
  const bigDir = join(dir, 'big');
  await mkdir(join(bigDir, 'x'), { recursive: true });
  for (let i = 0; i < 4; i++) await writeFile(join(bigDir, 'x', `${i}.jpg`), await syntheticImage(640 + i * 8, 480, 90 + i));
  const bigDs = join(dir, 'big-ds');
  await prepDataset([bigDir], { out: bigDs, images: true, workers: 0, progress: false });
  const evBig: ImageTransformOptions = { kind: 'eval', size: 32 };
  const fast = (await readAll(bigDs, { batchSize: 4, epochs: 1, shuffle: 'none', workers: 1, transforms: { image: { ...evBig, shrinkOnLoad: true } } })).flat();
  const exact = (await readAll(bigDs, { batchSize: 4, epochs: 1, shuffle: 'none', workers: 1, transforms: { image: evBig } })).flat();
  let anyDiff = false;
  for (let i = 0; i < 4; i++) {
    const d = meanAbsDiff(fast[i]!.pixels, exact[i]!.pixels);
    // The reduced decode plus a box up to half an output pixel off: close on this noisy content, not equal.
    assert.ok(d < 8, `shrink-on-load close to the exact decode (${d.toFixed(2)})`);
    if (d > 0) anyDiff = true;
  }
  assert.ok(anyDiff, 'the reduced decode was taken (its pixels are not bit-identical to the full decode)');
});

/**
 * Prepares a folder of `good` of the test's images with `bad` written as image `badRow`, reads it
 * with the train transform (batches of 2, in order, 2 workers) and returns the error the read ends
 * with, the ids delivered before it and the first shard's path.
 */
async function readWithBadImage(name: string, good: number, badRow: number, bad: Buffer): Promise<{ err: Error & { code?: string; details?: Record<string, unknown> }; got: number[]; shard: string }> {
  const folder = join(dir, name);
  await mkdir(join(folder, 'c'), { recursive: true });
  for (let i = 0; i < good; i++) await copyFile(files[i]!, join(folder, 'c', `${i}.JPEG`));
  await writeFile(join(folder, 'c', `${badRow}.JPEG`), bad);
  const ds = join(dir, `${name}-ds`);
  await prepDataset([folder], { out: ds, images: true, workers: 0, progress: false });
  const manifest = await loadManifest(new LocalStore(ds));
  const loader = await Loader.open(ds, { batchSize: 2, epochs: 1, shuffle: 'none', workers: 2, transforms: { image: TRAIN } });
  const got: number[] = [];
  let err: unknown;
  try {
    for await (const b of loader) {
      got.push(...b.ids);
      b.release();
    }
  } catch (e) {
    err = e;
  } finally {
    await loader.close();
  }
  assert.ok(err instanceof Error, `reading ${name} fails`);
  return { err, got, shard: manifest.shards[0]!.path };
}

test('a file that does not decode: GPUFEED_BAD_INPUT naming shard, row and path; the pool survives', async () => {
  // Row 3: a JPEG header followed by garbage.
  const { err, got, shard } = await readWithBadImage('bad', 3, 3, Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(200, 7)]));
  assert.equal(err.code, 'GPUFEED_BAD_INPUT');
  assert.match(err.message, new RegExp(`shard ${shard}, row 3`));
  assert.match(err.message, /c\/3\.JPEG/);
  assert.equal(err.details?.row, 3);
  assert.equal(err.details?.path, 'c/3.JPEG');
  assert.deepEqual(got, [0, 1], 'the good batch came first');
  // The process and a new pool still decode.
  const again = await readAll(folderDs, { batchSize: 4, epochs: 1, workers: 2, transforms: { image: TRAIN } });
  assert.equal(again.flat().length, 18);
});

const fastPath = jpegFastAvailable();

test('JPEG fast path in the pool: the same pixels as the sharp path within tolerance, and not bit-identical (it was taken); a truncated JPEG is GPUFEED_BAD_INPUT naming shard and row', async () => {
  const options: LoaderOptions = { batchSize: 6, seed: 9, shuffle: 'naive', epochs: 1, workers: 2, transforms: { image: TRAIN } };
  const saved = process.env.GPUFEED_JPEG;
  let viaSharp: Row[][];
  // Worker threads copy process.env when they start: this pool decodes with sharp only.
  process.env.GPUFEED_JPEG = 'sharp';
  try {
    viaSharp = await readAll(folderDs, options);
  } finally {
    if (saved === undefined) delete process.env.GPUFEED_JPEG;
    else process.env.GPUFEED_JPEG = saved;
  }
  const fast = await readAll(folderDs, options);
  let worst = 0;
  let same = 0;
  for (let b = 0; b < fast.length; b++) {
    for (let i = 0; i < fast[b]!.length; i++) {
      assert.equal(fast[b]![i]!.id, viaSharp[b]![i]!.id);
      const d = meanAbsDiff(fast[b]![i]!.pixels, viaSharp[b]![i]!.pixels);
      worst = Math.max(worst, d);
      if (d === 0) same++;
    }
  }
  assert.ok(worst <= 0.5, `worst mean |fast - sharp| ${worst.toFixed(3)}`);
  // Without libjpeg in the addon (or with GPUFEED_JPEG=sharp) both runs are sharp's.
  if (fastPath) assert.ok(same < 18, `the fast path decoded (${same} of 18 rows bit-identical to sharp's)`);
  else assert.equal(same, 18);

  // Row 2: a JPEG cut at 70% (its header parses; the fast path meets the end of its data).
  const whole = await readFile(files[5]!);
  const { err, got, shard } = await readWithBadImage('cut', 4, 2, whole.subarray(0, Math.floor(whole.length * 0.7)));
  assert.equal(err.code, 'GPUFEED_BAD_INPUT');
  assert.match(err.message, new RegExp(`shard ${shard}, row 2`));
  assert.match(err.message, /c\/2\.JPEG/);
  if (fastPath) assert.match(err.message, /libjpeg/);
  assert.deepEqual(got, [0, 1], 'the good batch came first');
});

test('CLI: prep --images, dump --image gives the pixels the JS loader gives', async () => {
  const out = join(dir, 'cli-ds');
  await run(process.execPath, [...cliArgv(), 'prep', join(dir, 'folder'), '--out', out, '--images', '--workers', '0']);
  const { stdout } = await run(process.execPath, [...cliArgv(), 'dump', out, '--image', 'image=train:12:hwc', '--batch-size', '6', '--seed', '4', '--epochs', '1', '--workers', '2', '--columns', 'image,label'], { maxBuffer: 64 << 20 });
  const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as { ids: number[]; columns: { image: number[]; label: number[] } });
  const js = await readAll(out, { batchSize: 6, seed: 4, epochs: 1, workers: 1, columns: ['image', 'label'], transforms: { image: { kind: 'train', size: 12, layout: 'HWC' } } });
  assert.equal(lines.length, js.length);
  for (let b = 0; b < js.length; b++) {
    assert.deepEqual(lines[b]!.ids, js[b]!.map((r) => r.id));
    assert.deepEqual(lines[b]!.columns.image, js[b]!.flatMap((r) => [...r.pixels]));
    assert.deepEqual(lines[b]!.columns.label, js[b]!.map((r) => r.label));
  }
  const bad = await run(process.execPath, [...cliArgv(), 'dump', out, '--image', 'image=train:12:nope', '--batch-size', '2']).catch((e: { stderr: string; code: number }) => e);
  assert.notEqual((bad as { code: number }).code, 0);
  assert.match((bad as { stderr: string }).stderr, /--image/);
});

const hasPyarrow = pythonHas('pyarrow');
const hasPillow = pythonHas('PIL', 'numpy');

test('Hugging Face layout (image: struct<bytes, path>) via pyarrow: train and eval; eval pixels against Pillow', { skip: hasPyarrow ? false : 'pyarrow is not installed' }, async () => {
  const parquet = join(dir, 'hf.parquet');
  const script = [
    'import sys, pathlib, pyarrow as pa, pyarrow.parquet as pq',
    'files = sys.argv[2:]',
    "imgs = [{'bytes': pathlib.Path(f).read_bytes(), 'path': pathlib.Path(f).name} for f in files]",
    "t = pa.table({'image': pa.array(imgs, type=pa.struct([('bytes', pa.binary()), ('path', pa.string())])), 'label': pa.array([i % 3 for i in range(len(files))], pa.int64())})",
    'pq.write_table(t, sys.argv[1], row_group_size=5)',
  ].join('\n');
  execFileSync('python3', ['-c', script, parquet, ...files]);
  const hfDs = join(dir, 'hf-ds');
  await prepDataset([parquet], { out: hfDs, format: 'parquet', workers: 0, progress: false });
  const train = await readAll(hfDs, { batchSize: 4, seed: 2, epochs: 1, workers: 2, transforms: { image: TRAIN } });
  const t = resolveImageOptions('t', TRAIN);
  for (const row of train.flat()) {
    const bytes = await readFile(files[row.id]!);
    const { width, height } = await dims(bytes);
    const c = imageChoice(t, width, height, 2, 0, row.id);
    const d = meanAbsDiff(chwToHwc(row.pixels, 24), await reference(bytes, c.box, c.flip, 24, 3));
    assert.ok(d <= 0.5, `sample ${row.id}: mean |diff| ${d.toFixed(3)}`);
    assert.equal(row.label, row.id % 3);
  }
  if (!hasPillow) return;
  // Size 24 of 96x72 images: a crop under 3x the output, so the exact path (no shrink-on-load).
  const ev: ImageTransformOptions = { kind: 'eval', size: 24, layout: 'HWC' };
  const [batch] = await readAll(hfDs, { batchSize: 18, epochs: 1, shuffle: 'none', workers: 1, transforms: { image: ev } });
  const te = resolveImageOptions('t', ev);
  const boxes = [];
  for (const row of batch!) {
    const { width, height } = await dims(await readFile(files[row.id]!));
    boxes.push(imageChoice(te, width, height, 0, 0, row.id).box);
  }
  // Pillow: decode, crop the same box, bilinear (antialiased) resize: the torchvision reference.
  const py = [
    'import sys, json, io, numpy as np',
    'from PIL import Image',
    'boxes = json.loads(sys.argv[1]); files = sys.argv[2:]',
    'out = []',
    'for f, b in zip(files, boxes):',
    "    im = Image.open(f).convert('RGB').crop((b['left'], b['top'], b['left'] + b['width'], b['top'] + b['height'])).resize((24, 24), Image.BILINEAR)",
    '    out.append(np.asarray(im).reshape(-1).tolist())',
    'print(json.dumps(out))',
  ].join('\n');
  const { stdout } = await run('python3', ['-c', py, JSON.stringify(boxes), ...batch!.map((r) => files[r.id]!)], { maxBuffer: 64 << 20 });
  const pillow = JSON.parse(stdout) as number[][];
  for (let i = 0; i < batch!.length; i++) {
    const d = meanAbsDiff(batch![i]!.pixels, Uint8Array.from(pillow[i]!));
    assert.ok(d < 1.5, `row ${i}: mean |gpufeed - Pillow| ${d.toFixed(2)} within JPEG decoder and resampler tolerance`);
  }
});

test('Parquet: the image column and the columns read beside it keep their own values (the shared decode cache keys columns by file, not by layout)', { skip: hasPyarrow ? false : 'pyarrow is not installed' }, async () => {
  // The image stage reads the encoded images into a staging layout whose column 0 is the image,
  // while the slot's own read has the path (a string) at 0 and the label at 1: keyed by layout
  // index, the shared cache handed one column's decoded pages to the other (a path with image
  // bytes, or "page 0 holds 0 rows").
  // Larger images than the folder's, several pages each per row group.
  const own = await writeImageFolder(join(dir, 'cache-folder'), ['a'], 40, 320, 240, 4);
  const parquet = join(dir, 'hf-cache.parquet');
  const script = [
    'import sys, pathlib, pyarrow as pa, pyarrow.parquet as pq',
    'files = sys.argv[2:]',
    "imgs = [{'bytes': pathlib.Path(f).read_bytes(), 'path': 'p-%d-' % i + pathlib.Path(f).name} for i, f in enumerate(files)]",
    "t = pa.table({'image': pa.array(imgs, type=pa.struct([('bytes', pa.binary()), ('path', pa.string())])), 'label': pa.array(list(range(len(files))), pa.int64())})",
    'pq.write_table(t, sys.argv[1], row_group_size=10)',
  ].join('\n');
  execFileSync('python3', ['-c', script, parquet, ...own]);
  const ds = join(dir, 'hf-cache-ds');
  await prepDataset([parquet], { out: ds, format: 'parquet', workers: 0, progress: false });
  const t = resolveImageOptions('t', TRAIN);
  for (const workers of [1, 2]) {
    const loader = await Loader.open(ds, { batchSize: 8, seed: 5, epochs: 2, workers, shuffle: 'window', shuffleWindow: 20, columns: ['image.bytes', 'image.path', 'label'], transforms: { 'image.bytes': TRAIN } });
    let rows = 0;
    try {
      for await (const b of loader) {
        const path = b.columns['image.path']!;
        assert.ok(isVarColumn(path));
        const labels = b.columns.label as BigInt64Array;
        const pixels = b.columns['image.bytes'] as Uint8Array;
        const rowLen = pixels.length / b.size;
        for (let i = 0; i < b.size; i++) {
          const id = b.ids[i]!;
          assert.equal(Number(labels[i]), id, `label of sample ${id}`);
          const name = new TextDecoder().decode(path.values.subarray(path.offsets[i]!, path.offsets[i + 1]!) as Uint8Array);
          assert.equal(name, `p-${id}-${own[id]!.split('/').pop()}`, `path of sample ${id} (${workers} workers)`);
          const bytes = await readFile(own[id]!);
          const { width, height } = await dims(bytes);
          const c = imageChoice(t, width, height, 5, b.epoch, id);
          const d = meanAbsDiff(chwToHwc(pixels.subarray(i * rowLen, (i + 1) * rowLen), 24), await reference(bytes, c.box, c.flip, 24, 3));
          // Another image's pixels differ by tens; 320x240 crops to 24 px take the DCT-scaled JPEG path, within ~0.6 of the full decode.
          assert.ok(d <= 1.5, `sample ${id}: mean |diff| ${d.toFixed(3)}`);
          rows += 1;
        }
      }
    } finally {
      await loader.close();
    }
    assert.equal(rows, 2 * own.length);
  }
});
