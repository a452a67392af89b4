// The JPEG fast path (native/src/jpeg-crop.cc): libjpeg-turbo decodes only the crop box's region
// (its columns, its rows, nothing below), a triangle (bilinear) filter resizes it and the addon
// writes uint8 RGB, flipped or not, HWC or CHW, straight into the batch row. One synchronous call
// per image on the decode worker's own thread (sharp's path hops to libuv's pool and back, and
// decodes the whole image). Everything the addon is given is checked here first.
//
// Used for baseline/progressive 8-bit YCbCr, RGB or gray JPEGs with rgb output and the linear
// kernel. The addon answers 0 for anything else it meets (CMYK, 12-bit, a libjpeg warning other
// than truncation, a frame size other than the header's), and the caller then uses sharp, as it
// does for PNG/WebP, gray output, the cubic/lanczos3 kernels, an addon built without libjpeg, or
// GPUFEED_JPEG=sharp.
import { ErrorCodes, GpufeedError, invalidOption } from '../errors.js';
import { loadNative } from '../memory/index.js';
import type { CropBox } from './crop.js';
import type { ResolvedImageTransform } from './image-options.js';

/** Output sides the addon takes (image-options.ts allows up to 8192). */
const MAX_OUT = 65535;

let available: boolean | undefined;

/** Whether this thread may use the fast path: the addon has libjpeg and GPUFEED_JPEG is not `sharp`. */
export function jpegFastAvailable(): boolean {
  if (available !== undefined) return available;
  const env = process.env.GPUFEED_JPEG?.trim().toLowerCase();
  if (env && env !== 'native' && env !== 'sharp') throw invalidOption('GPUFEED_JPEG', `must be native or sharp, got ${JSON.stringify(process.env.GPUFEED_JPEG)}`);
  if (env === 'sharp') return (available = false);
  try {
    available = loadNative().jpegCropAvailable();
  } catch {
    // No addon at all: sharp decodes (the loader needs the addon for its slabs anyway).
    available = false;
  }
  return available;
}

/** Whether transform `t`'s output is one the fast path produces (before looking at the image). */
export function jpegFastFits(t: Pick<ResolvedImageTransform, 'channels' | 'kernel'>): boolean {
  return t.channels === 3 && t.kernel === 'linear';
}

function checkInt(name: string, v: number, lo: number, hi: number): void {
  if (!Number.isInteger(v) || v < lo || v > hi) throw new GpufeedError(ErrorCodes.INTERNAL, `jpeg fast path: ${name} ${v} is not an integer in [${lo}, ${hi}]`);
}

export interface JpegFastRequest {
  /** The size from the image's header; the addon declines a JPEG whose frame says otherwise. */
  width: number;
  height: number;
  box: CropBox;
  size: number;
  flip: boolean;
  layout: 'CHW' | 'HWC';
  /**
   * DCT scaling: decode at 1/d (d = 2, 4, 8, at most maxDenom) when the box is at least
   * gap * d * size on both sides. maxDenom 1: always the full-resolution decode.
   */
  maxDenom: 1 | 2 | 4 | 8;
  gap: number;
}

/**
 * Decodes `input` (a JPEG) through the box into `dst` (size * size * 3 bytes). Returns the DCT
 * scaling used (1 = full resolution), or 0 when this JPEG is not one the fast path decodes.
 * Throws (code GPUFEED_BAD_INPUT, libjpeg's message) when the data does not decode or is cut short.
 */
export function jpegCropInto(input: Uint8Array, dst: Uint8Array, r: JpegFastRequest): number {
  checkInt('size', r.size, 1, MAX_OUT);
  checkInt('width', r.width, 1, 0xffff);
  checkInt('height', r.height, 1, 0xffff);
  checkInt('box.left', r.box.left, 0, r.width - 1);
  checkInt('box.top', r.box.top, 0, r.height - 1);
  checkInt('box.width', r.box.width, 1, r.width - r.box.left);
  checkInt('box.height', r.box.height, 1, r.height - r.box.top);
  checkInt('gap', r.gap, 1, 64);
  if (![1, 2, 4, 8].includes(r.maxDenom)) throw new GpufeedError(ErrorCodes.INTERNAL, `jpeg fast path: maxDenom ${r.maxDenom} is not 1, 2, 4 or 8`);
  if (dst.length !== r.size * r.size * 3) throw new GpufeedError(ErrorCodes.INTERNAL, `jpeg fast path: destination of ${dst.length} bytes, expected ${r.size * r.size * 3}`);
  if (input.length < 4) throw new Error('the image is too short to be a JPEG');
  const flags = (r.flip ? 1 : 0) | (r.layout === 'CHW' ? 2 : 0);
  return loadNative().jpegCropResize(input, dst, r.width, r.height, r.box.left, r.box.top, r.box.width, r.box.height, r.size, flags, r.maxDenom, r.gap);
}
