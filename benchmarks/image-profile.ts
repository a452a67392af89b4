// Where one image's CPU goes, on one thread (`node dist/benchmarks/image-profile.js`; not a bench
// section: it prints per-step costs, no goal). The JPEG fast path (decodeIntoRow) and the sharp
// path (decodeToHwc + writeRow) are both timed. The same photo-like ~500x375 q90 JPEGs as section 9,
// each step timed as process CPU per image (sharp's libuv and libvips threads included), the best
// of a few interleaved rounds so that a busy host disturbs each step alike. Pillow's __getitem__
// (the section 9 baseline) and its decode alone are timed in a python3 child on the same files.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { configureSharp, decodeIntoRow, decodeToHwc, imageChoice, writeRow } from '../src/transforms/image-decode.js';
import { readImageHeader } from '../src/transforms/image-header.js';
import { resolveImageOptions, type ResolvedImageTransform } from '../src/transforms/image-options.js';
import { syntheticImage } from './image-dataset.js';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const DISTINCT = 40;
const PER_ROUND = Number(process.env.GPUFEED_IMAGE_PROFILE_N ?? 100);
const ROUNDS = 5;

const PILLOW = `
import io, sys, time
sys.path.insert(0, sys.argv[1])
from images_baseline import Images
from PIL import Image
files = sys.argv[3:]
n = int(sys.argv[2])
ds = Images(files * (n // len(files) + 1), 224)
data = [open(f, 'rb').read() for f in files]
def decode(i):
    with Image.open(io.BytesIO(data[i % len(data)])) as im:
        im.convert('RGB').load()
steps = {'Pillow: __getitem__ (decode, RandomResizedCrop, flip, CHW array)': lambda i: ds[i], 'Pillow: decode alone': decode}
best = {}
for _ in range(${ROUNDS}):
    for name, f in steps.items():
        t0 = time.process_time()
        for i in range(n):
            f(i)
        best[name] = min(best.get(name, 1e9), (time.process_time() - t0) / n * 1e3)
for name, ms in best.items():
    print(f'{name}\\t{ms:.3f}')
`;

export async function imageProfile(): Promise<{ step: string; ms: number }[]> {
  configureSharp();
  const root = await mkdtemp(join(tmpdir(), 'gpufeed-image-profile-'));
  try {
    const imgs: Buffer[] = [];
    const files: string[] = [];
    for (let i = 0; i < DISTINCT; i++) {
      imgs.push(await syntheticImage(500 + ((i * 37) % 41) - 20, 375 + ((i * 53) % 31) - 15, 1000 + i, 'jpeg', 90));
      files.push(join(root, `${i}.jpg`));
      await writeFile(files[i]!, imgs[i]!);
    }
    const t: ResolvedImageTransform = { output: 'image', source: { name: 'image', dtype: 'binary', kind: 'bytes', nullable: false } as never, ...resolveImageOptions('t', { kind: 'train', size: 224, layout: 'CHW' }) };
    const sizes = imgs.map((b) => readImageHeader(b)!);
    const row = new Uint8Array(224 * 224 * 3);
    const hwc = new Uint8Array(224 * 224 * 3);
    const img = (i: number): Buffer => imgs[i % DISTINCT]!;
    const box = (i: number) => imageChoice(t, sizes[i % DISTINCT]!.width, sizes[i % DISTINCT]!.height, 1, 0, i);
    const steps: [string, (i: number) => unknown][] = [
      ['gpufeed: decodeIntoRow CHW, JPEG fast path (region decode, resize, flip, CHW: all of it)', (i) => decodeIntoRow(img(i), t, 1, 0, i, row)],
      ['gpufeed: decodeToHwc + writeRow CHW, the sharp path (one image, all of it)', async (i) => writeRow((await decodeToHwc(img(i), t, 1, 0, i)).pixels, t, row)],
      ['  header size (image-header.ts)', (i) => readImageHeader(img(i))],
      ['  the same from sharp metadata() (before: a second pipeline per image)', (i) => sharp(img(i), { failOn: 'error' }).metadata()],
      ['  sharp: crop box, resize 224 linear, flip, raw out', (i) => {
        const c = box(i);
        const s = sharp(img(i), { failOn: 'error' }).extract(c.box).resize(224, 224, { fit: 'fill', kernel: 'linear' });
        return (c.flip ? s.flop() : s).raw().toBuffer();
      }],
      ['  the same with kernel lanczos3', (i) => sharp(img(i)).extract(box(i).box).resize(224, 224, { fit: 'fill', kernel: 'lanczos3' }).raw().toBuffer()],
      ['  sharp: decode alone, raw out', (i) => sharp(img(i)).raw().toBuffer()],
      ['  sharp: fixed cost (an 8x8 corner of the JPEG: header, pipeline, threads)', (i) => sharp(img(i)).extract({ left: 0, top: 0, width: 8, height: 8 }).raw().toBuffer()],
      ['  writeRow: HWC -> CHW transpose', () => writeRow(hwc, t, row)],
    ];
    const best = new Map<string, number>();
    for (const [, f] of steps) for (let i = 0; i < 5; i++) await f(i);
    for (let r = 0; r < ROUNDS; r++) {
      for (const [name, f] of steps) {
        const c0 = process.cpuUsage();
        for (let i = 0; i < PER_ROUND; i++) await f(i);
        const c = process.cpuUsage(c0);
        best.set(name, Math.min(best.get(name) ?? Infinity, (c.user + c.system) / 1e3 / PER_ROUND));
      }
    }
    const out = [...best].map(([step, ms]) => ({ step, ms }));
    try {
      const { stdout } = await run('python3', ['-c', PILLOW, join(here, '..', '..', 'benchmarks'), String(PER_ROUND), ...files], { timeout: 300_000 });
      for (const line of stdout.trim().split('\n')) {
        const [step, ms] = line.split('\t');
        if (step && ms) out.push({ step, ms: Number(ms) });
      }
    } catch (err) {
      out.push({ step: `Pillow: not measured (${(err as Error).message.split('\n')[0]})`, ms: NaN });
    }
    return out;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const { step, ms } of await imageProfile()) process.stdout.write(`${step.padEnd(76)} ${Number.isFinite(ms) ? `${ms.toFixed(3)} ms/image` : ''}\n`);
}
