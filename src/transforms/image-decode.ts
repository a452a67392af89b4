// Decodes one encoded image and writes the transformed pixels into a batch row. Runs in the decode
// workers. JPEGs take the native fast path where it applies (jpeg-fast.ts: region decode, bilinear
// resize, straight into the row); everything else (PNG, WebP, anything libvips reads, and what the
// fast path declines) is decoded with sharp.
//
// Shrink-on-load (opt-in, shrinkOnLoad: true): sharp decodes a JPEG at 1/2, 1/4 or 1/8 size (libjpeg DCT scaling; WebP has the
// same) only when nothing is cut out before the resize. So when the crop box is at least 3x the
// output on both sides (where sharp would shrink on load at all), the whole image is resized so
// that the box becomes size x size and the box is then cut from the result: libvips computes only
// that region, from the reduced decode. The box lands within half an output pixel of where the
// seeded rule puts it. Otherwise the box is cut first and resized: exact.
import sharp from 'sharp';
import { ErrorCodes, GpufeedError } from '../errors.js';
import { numberToHalf } from '../dataset/float16.js';
import { readImageHeader } from './image-header.js';
import { centerCropBox, randomResizedCropBox, sampleRng, type CropBox } from './crop.js';
import type { ResolvedImageTransform } from './image-options.js';
import { jpegCropInto, jpegFastAvailable, jpegFastFits } from './jpeg-fast.js';

let configured = false;

/**
 * Once per thread (the settings are process-wide in libvips): no operation cache, whose memory
 * grows with the images seen and which a stream of distinct images never hits; and one libvips
 * thread per image, because the decode pool already runs one image per worker thread.
 */
export function configureSharp(): void {
  if (configured) return;
  configured = true;
  sharp.cache(false);
  sharp.concurrency(1);
}

/** What the seeded rule chose for one sample: its box in source pixels and whether it is flipped. */
export interface ImageChoice {
  box: CropBox;
  flip: boolean;
}

/** A sample's crop and flip: a pure function of (transform, image size, seed, epoch, sample id). */
export function imageChoice(t: Pick<ResolvedImageTransform, 'kind' | 'size' | 'resize' | 'scale' | 'ratio' | 'flip'>, width: number, height: number, seed: number, epoch: number, sampleId: number): ImageChoice {
  if (t.kind === 'eval') return { box: centerCropBox(width, height, t.resize, t.size), flip: false };
  const rng = sampleRng(seed, epoch, sampleId);
  // The flip first, so it does not depend on how many crop attempts the box took.
  const flip = t.flip && rng.nextUnit() < 0.5;
  return { box: randomResizedCropBox(width, height, t.scale, t.ratio, rng), flip };
}

/** Bytes one output row of `t` takes. */
export function outputRowBytes(t: Pick<ResolvedImageTransform, 'size' | 'channels' | 'dtype'>): number {
  return t.size * t.size * t.channels * (t.dtype === 'uint8' ? 1 : t.dtype === 'float16' ? 2 : 4);
}

/** Why an image could not be decoded, as a message fragment (sharp's own words, trimmed). */
function why(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  return m.length > 300 ? `${m.slice(0, 300)}...` : m;
}

/**
 * The source size and format of an encoded image, from its header: read here for JPEG, PNG and
 * WebP (image-header.ts), so that one libvips pipeline per image does the work; sharp's metadata()
 * for anything else.
 */
async function probe(input: Buffer): Promise<{ width: number; height: number; format: string }> {
  const header = readImageHeader(input);
  if (header) return header;
  const m = await sharp(input, { failOn: 'error' }).metadata();
  if (!m.width || !m.height) throw new Error('the image has no width or height');
  return { width: m.width, height: m.height, format: m.format ?? 'unknown' };
}

/** Smallest crop-to-output ratio at which sharp decodes JPEG/WebP at reduced size (see above). */
const SHRINK_ON_LOAD_MIN = 3;

/** Decodes `input` through `t` to size x size x channels uint8 (HWC), returning the choice made. */
export async function decodeToHwc(input: Buffer, t: ResolvedImageTransform, seed: number, epoch: number, sampleId: number): Promise<{ pixels: Buffer; choice: ImageChoice; reduced: boolean }> {
  const { width, height, format } = await probe(input);
  const choice = imageChoice(t, width, height, seed, epoch, sampleId);
  const { box } = choice;
  const size = t.size;
  let img = sharp(input, { failOn: 'error' });
  const reduced = t.shrinkOnLoad && (format === 'jpeg' || format === 'webp') && Math.min(box.width, box.height) >= SHRINK_ON_LOAD_MIN * size;
  if (reduced) {
    const sx = size / box.width;
    const sy = size / box.height;
    const fullW = Math.max(size, Math.round(width * sx));
    const fullH = Math.max(size, Math.round(height * sy));
    const left = Math.min(fullW - size, Math.round(box.left * sx));
    const top = Math.min(fullH - size, Math.round(box.top * sy));
    img = img.resize(fullW, fullH, { fit: 'fill', kernel: t.kernel }).extract({ left, top, width: size, height: size });
  } else {
    img = img.extract(box).resize(size, size, { fit: 'fill', kernel: t.kernel });
  }
  if (choice.flip) img = img.flop();
  img = img.removeAlpha();
  img = t.channels === 3 ? img.toColourspace('srgb') : img.toColourspace('b-w');
  const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
  if (info.width !== size || info.height !== size || info.channels !== t.channels) {
    throw new Error(`decoded to ${info.width}x${info.height}x${info.channels}, expected ${size}x${size}x${t.channels}`);
  }
  return { pixels: data, choice, reduced };
}

/**
 * DCT scaling of the JPEG fast path: decode at 1/d when the box is at least GAP * d times the
 * output. With the gap 2 a reduction of at least 2x is left to the resize filter, and the pixels
 * stay within the pixel check's tolerance of the full decode (gap 1: about twice the difference
 * on the bench's photos). shrinkOnLoad: true takes gap 1 (faster, less exact, as its sharp path).
 */
const EXACT_GAP = 2;
const SHRINK_GAP = 1;

let hwcScratch: Uint8Array | undefined;

/**
 * Decodes `input` through `t` into `row` (the output row's bytes, in t's layout and dtype): JPEGs
 * through the native fast path (jpeg-fast.ts) where it applies, anything else through sharp.
 */
export async function decodeIntoRow(input: Buffer, t: ResolvedImageTransform, seed: number, epoch: number, sampleId: number, row: Uint8Array): Promise<{ reduced: boolean; native: boolean }> {
  if (jpegFastFits(t) && jpegFastAvailable()) {
    const header = readImageHeader(input);
    if (header?.format === 'jpeg') {
      const { box, flip } = imageChoice(t, header.width, header.height, seed, epoch, sampleId);
      const direct = t.dtype === 'uint8';
      const bytes = t.size * t.size * 3;
      if (!direct && hwcScratch?.length !== bytes) hwcScratch = new Uint8Array(bytes);
      const target = direct ? row : hwcScratch!;
      const denom = jpegCropInto(input, target, {
        width: header.width, height: header.height, box, size: t.size, flip, layout: direct ? t.layout : 'HWC', maxDenom: 8, gap: t.shrinkOnLoad ? SHRINK_GAP : EXACT_GAP,
      });
      if (denom > 0) {
        if (!direct) writeRow(target, t, row);
        return { reduced: denom > 1, native: true };
      }
    }
  }
  const { pixels, reduced } = await decodeToHwc(input, t, seed, epoch, sampleId);
  writeRow(pixels, t, row);
  return { reduced, native: false };
}

const tableCache = new WeakMap<ResolvedImageTransform, { single: Float32Array[]; half: Uint16Array[] }>();

/** Float output: (x / 255 - mean) / std per channel, as one 256-entry table per channel. */
function floatTables(t: ResolvedImageTransform): { single: Float32Array[]; half: Uint16Array[] } {
  let tables = tableCache.get(t);
  if (!tables) {
    const single = t.mean.map((m, ch) => Float32Array.from({ length: 256 }, (_, v) => (v / 255 - m) / t.std[ch]!));
    tables = { single, half: single.map((table) => Uint16Array.from(table, (x) => numberToHalf(x))) };
    tableCache.set(t, tables);
  }
  return tables;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * RGBRGB... -> RR..GG..BB.. for `plane` pixels. Four pixels at a time as three 32-bit loads and
 * three 32-bit stores, where both views are 4-byte aligned on a little-endian host: about a third
 * of the memory operations of the byte loop, which costs as much as a tenth of the decode.
 */
function hwcToChw3(pixels: Uint8Array, row: Uint8Array, plane: number): void {
  let p = 0;
  if (LITTLE_ENDIAN && pixels.byteOffset % 4 === 0 && row.byteOffset % 4 === 0 && plane % 4 === 0) {
    const src = new Uint32Array(pixels.buffer, pixels.byteOffset, (plane * 3) / 4);
    const quads = plane / 4;
    const r = new Uint32Array(row.buffer, row.byteOffset, quads);
    const g = new Uint32Array(row.buffer, row.byteOffset + plane, quads);
    const b = new Uint32Array(row.buffer, row.byteOffset + 2 * plane, quads);
    for (let q = 0, s = 0; q < quads; q++, s += 3) {
      // Bytes, low first: w0 = r0 g0 b0 r1, w1 = g1 b1 r2 g2, w2 = b2 r3 g3 b3.
      const w0 = src[s]!;
      const w1 = src[s + 1]!;
      const w2 = src[s + 2]!;
      r[q] = (w0 & 0xff) | ((w0 >>> 24) << 8) | (((w1 >>> 16) & 0xff) << 16) | (((w2 >>> 8) & 0xff) << 24);
      g[q] = ((w0 >>> 8) & 0xff) | ((w1 & 0xff) << 8) | ((w1 >>> 24) << 16) | (((w2 >>> 16) & 0xff) << 24);
      b[q] = ((w0 >>> 16) & 0xff) | (((w1 >>> 8) & 0xff) << 8) | ((w2 & 0xff) << 16) | ((w2 >>> 24) << 24);
    }
    p = quads * 4;
  }
  for (let s = p * 3; p < plane; p++, s += 3) {
    row[p] = pixels[s]!;
    row[plane + p] = pixels[s + 1]!;
    row[2 * plane + p] = pixels[s + 2]!;
  }
}

/** Writes HWC uint8 `pixels` into `row` (the output row's bytes) in t's layout and dtype. */
export function writeRow(pixels: Uint8Array, t: ResolvedImageTransform, row: Uint8Array): void {
  const c = t.channels;
  const plane = t.size * t.size;
  if (t.dtype === 'uint8') {
    if (t.layout === 'HWC' || c === 1) {
      row.set(pixels);
      return;
    }
    hwcToChw3(pixels, row, plane);
    return;
  }
  const tables = floatTables(t);
  const chw = t.layout === 'CHW';
  if (t.dtype === 'float32') {
    const out = new Float32Array(row.buffer, row.byteOffset, plane * c);
    for (let p = 0; p < plane; p++) for (let ch = 0; ch < c; ch++) out[chw ? ch * plane + p : p * c + ch] = tables.single[ch]![pixels[p * c + ch]!]!;
    return;
  }
  const halves = tables.half;
  const out = new Uint16Array(row.buffer, row.byteOffset, plane * c);
  for (let p = 0; p < plane; p++) for (let ch = 0; ch < c; ch++) out[chw ? ch * plane + p : p * c + ch] = halves[ch]![pixels[p * c + ch]!]!;
}

/** Where a bad image sits, for its error. */
export interface ImageWhere {
  shard: string;
  /** Row within the shard. */
  row: number;
  sampleId: number;
  column: string;
  /** The image's file as the dataset names it, when it has a path column. */
  path?: string;
}

/** The error for an image that does not decode: names shard, row, path and column. */
export function badImage(where: ImageWhere, cause: unknown): GpufeedError {
  const path = where.path !== undefined ? `, path ${JSON.stringify(where.path)}` : '';
  return new GpufeedError(
    ErrorCodes.BAD_INPUT,
    `column ${where.column}: the image in shard ${where.shard}, row ${where.row} (sample ${where.sampleId}${path}) does not decode: ${why(cause)}`,
    { shard: where.shard, row: where.row, sample: where.sampleId, column: where.column, ...(where.path !== undefined ? { path: where.path } : {}) },
  );
}
