// `npm run bench` section 9 (GPUFEED_BENCH_ONLY=9 runs it alone; `node dist/benchmarks/images.js`
// too): the train transform (RandomResizedCrop 224 + flip, CHW uint8) in gpufeed's decode pool
// against a PyTorch-style baseline (Pillow in a torch DataLoader with as many worker processes as
// gpufeed has threads; benchmarks/images_baseline.py), on one generated dataset of photo-like
// ~500x375 JPEGs at quality 90, measured in this one run. Also a pixel check: gpufeed's crops of
// a sample against Pillow's decode of the same boxes.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { Loader } from '../src/pipeline/loader.js';
import { prepDataset } from '../src/dataset/prep.js';
import { measureLoader } from '../src/pipeline/throughput.js';
import { usableCpus } from '../src/pipeline/cpus.js';
import { imageChoice } from '../src/transforms/image-decode.js';
import { resolveImageOptions, type ImageTransformOptions } from '../src/transforms/image-options.js';
import { syntheticImage } from './image-dataset.js';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
/** The baseline script sits in benchmarks/ beside this file's source (dist/ has only the .js). */
const BASELINE = join(here, '..', '..', 'benchmarks', 'images_baseline.py');
const IMAGES = Number(process.env.GPUFEED_BENCH_IMAGES ?? 1500);
/** Distinct images generated; the dataset repeats them (decode cost is per sample, libvips caches nothing). */
const DISTINCT = Math.min(IMAGES, 120);
const SIZE = 224;
const BATCH = 64;
const SECONDS = Number(process.env.GPUFEED_BENCH_IMAGE_SECONDS ?? 6);
const CHECK = 32;
const GOAL = 2;

export interface ImageBenchRow { name: string; gpufeed: string; reference: string; ratio: number | null; goal: string; pass: boolean | null; note?: string }

async function writeDataset(root: string): Promise<{ files: string[]; ds: string }> {
  const distinct: Buffer[] = [];
  for (let i = 0; i < DISTINCT; i++) distinct.push(await syntheticImage(500 + ((i * 37) % 41) - 20, 375 + ((i * 53) % 31) - 15, 1000 + i, 'jpeg', 90));
  const files: string[] = [];
  const classes = 10;
  for (let c = 0; c < classes; c++) await mkdir(join(root, 'train', `c${c}`), { recursive: true });
  for (let i = 0; i < IMAGES; i++) {
    const file = join(root, 'train', `c${i % classes}`, `${String(i).padStart(6, '0')}.JPEG`);
    await writeFile(file, distinct[i % DISTINCT]!);
    files.push(file);
  }
  const ds = join(root, 'ds');
  await prepDataset([join(root, 'train')], { out: ds, images: true, progress: false });
  // Sample-id order: classes sorted, files sorted within each.
  const ordered = files.slice().sort((a, b) => {
    const ca = a.split('/').at(-2)!;
    const cb = b.split('/').at(-2)!;
    return ca < cb ? -1 : ca > cb ? 1 : a < b ? -1 : a > b ? 1 : 0;
  });
  return { files: ordered, ds };
}

export async function imageBench(workers = usableCpus(), log: (m: string) => void = (m) => process.stderr.write(`${m}\n`)): Promise<ImageBenchRow[]> {
  const root = await mkdtemp(join(tmpdir(), 'gpufeed-bench-images-'));
  try {
    log(`9 images: writing ${IMAGES} JPEGs (~500x375, q90, ${DISTINCT} distinct) and prep --images`);
    const { files, ds } = await writeDataset(root);
    const train: ImageTransformOptions = { kind: 'train', size: SIZE, layout: 'CHW' };

    log(`9 images: gpufeed train transform ${SIZE}, ${workers} threads, ${SECONDS} s`);
    const cpu0 = process.cpuUsage();
    const loader = await Loader.open(ds, { batchSize: BATCH, workers, seed: 1, shuffle: 'naive', epochs: Infinity, columns: ['image', 'label'], transforms: { image: train } });
    let g;
    try {
      g = await measureLoader(loader, { maxSeconds: SECONDS });
    } finally {
      await loader.close();
    }
    const cpu = process.cpuUsage(cpu0);
    // Two ways, each the same on both sides: the whole run (open, pool start, batches prefetched
    // but never taken) over the images counted, and the steady window (after the first batch).
    const gCpuPerImage = (cpu.user + cpu.system) / 1e6 / Math.max(1, g.samples);
    const gSteadyImages = g.batches > 1 ? (g.samples * (g.batches - 1)) / g.batches : g.samples;
    const gSteadyCpuPerImage = g.cpu_seconds / Math.max(1, gSteadyImages);

    log(`9 images: Pillow + DataLoader baseline, ${workers} workers, ${SECONDS} s`);
    const list = join(root, 'files.txt');
    await writeFile(list, `${files.join('\n')}\n`);
    const { stdout } = await run('python3', [BASELINE, list, String(SIZE), String(workers), String(BATCH), String(SECONDS)], { timeout: 180_000, maxBuffer: 16 << 20 });
    const base = JSON.parse(stdout.trim().split('\n').pop()!) as { images: number; images_per_s: number; cpu_seconds: number; steady_cpu_seconds: number; how: string };
    const bCpuPerImage = base.cpu_seconds / Math.max(1, base.images);
    const bSteadyCpuPerImage = base.steady_cpu_seconds / Math.max(1, base.images);

    // Pixel check: the first CHECK samples of an unshuffled epoch, against Pillow on the same boxes.
    const t = resolveImageOptions('t', train);
    const check = await Loader.open(ds, { batchSize: CHECK, workers, seed: 3, shuffle: 'none', epochs: 1, columns: ['image'], transforms: { image: { ...train, layout: 'HWC' } } });
    let worst = 0;
    let worstSharp = 0;
    try {
      for await (const b of check) {
        const pixels = b.columns.image as Uint8Array;
        const boxes = [];
        for (const id of b.ids) {
          const m = await sharp(await readFile(files[id]!)).metadata();
          const c = imageChoice(t, m.width!, m.height!, 3, 0, id);
          boxes.push({ ...c.box, flip: c.flip });
        }
        const ref = await run('python3', [BASELINE, '--check', JSON.stringify(boxes), String(SIZE), ...b.ids.map((id) => files[id]!)], { timeout: 120_000, maxBuffer: 256 << 20 });
        const pillow = JSON.parse(ref.stdout) as number[][];
        const row = SIZE * SIZE * 3;
        for (let i = 0; i < b.ids.length; i++) {
          let s = 0;
          for (let k = 0; k < row; k++) s += Math.abs(pixels[i * row + k]! - pillow[i]![k]!);
          worst = Math.max(worst, s / row);
          // The reference decode: the whole JPEG decoded, then the seeded box cut, resized, flipped.
          const bytes = await readFile(files[b.ids[i]!]!);
          const full = await sharp(bytes).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
          let ref = sharp(full.data, { raw: { width: full.info.width, height: full.info.height, channels: 3 } }).extract(boxes[i]!).resize(SIZE, SIZE, { fit: 'fill', kernel: 'linear' });
          if (boxes[i]!.flip) ref = ref.flop();
          const r = await ref.raw().toBuffer();
          let s2 = 0;
          for (let k = 0; k < row; k++) s2 += Math.abs(pixels[i * row + k]! - r[k]!);
          worstSharp = Math.max(worstSharp, s2 / row);
        }
        b.release();
        break;
      }
    } finally {
      await check.close();
    }

    const perCore = (x: number): string => `${(x / workers).toFixed(0)} images/s/core`;
    const ratio = g.samples_per_s / base.images_per_s;
    return [
      {
        name: `Images: train RandomResizedCrop ${SIZE} + flip, ${IMAGES} JPEGs ~500x375 q90, ${workers} threads vs ${workers} workers`,
        gpufeed: `${perCore(g.samples_per_s)} (${g.samples_per_s.toFixed(0)}/s)`, reference: `${perCore(base.images_per_s)} (${base.images_per_s.toFixed(0)}/s, Pillow + ${base.how})`,
        ratio, goal: `>= ${GOAL}`, pass: ratio >= GOAL,
      },
      {
        name: 'Images: CPU per image, steady window after the first batch (process and children, all threads)', gpufeed: `${(gSteadyCpuPerImage * 1e3).toFixed(2)} ms`,
        reference: `${(bSteadyCpuPerImage * 1e3).toFixed(2)} ms`, ratio: bSteadyCpuPerImage / gSteadyCpuPerImage, goal: 'report', pass: null,
      },
      {
        name: 'Images: CPU per image, whole run (open, worker start, torch import, unused prefetch included)', gpufeed: `${(gCpuPerImage * 1e3).toFixed(2)} ms`,
        reference: `${(bCpuPerImage * 1e3).toFixed(2)} ms`, ratio: bCpuPerImage / gCpuPerImage, goal: 'report', pass: null,
      },
      {
        name: `Images: pixel check, ${CHECK} samples vs a full decode cut to the seeded boxes (worst mean |diff|)`, gpufeed: worstSharp.toFixed(3), reference: 'tolerance 0.5',
        ratio: worstSharp / 0.5, goal: '<= 1', pass: worstSharp <= 0.5,
      },
      {
        // Pillow's decoder agrees with libvips' bit for bit on these JPEGs; its bilinear resampler
        // differs from libvips' most near 1:1 scales and when enlarging, on this noisy content.
        name: `Images: pixel check, the same ${CHECK} samples vs Pillow (decode + bilinear) on the same boxes (worst mean |diff|)`, gpufeed: worst.toFixed(3), reference: 'Pillow',
        ratio: null, goal: 'report', pass: null,
      },
    ];
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

// Alone: `node dist/benchmarks/images.js`.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const rows = await imageBench();
  for (const r of rows) process.stdout.write(`${r.name}\n  gpufeed ${r.gpufeed} | reference ${r.reference} | ratio ${r.ratio === null ? '-' : r.ratio.toFixed(3)} | goal ${r.goal} | ${r.pass === null ? 'info' : r.pass ? 'PASS' : 'FAIL'}\n`);
}
