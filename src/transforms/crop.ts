// Crop boxes of the image transforms: pure functions of the image size and a seeded generator, so
// a sample's crop depends only on (seed, epoch, sample id) and never on which worker decodes it or
// when. RandomResizedCrop follows torchvision's definition (transforms.RandomResizedCrop.get_params):
// up to 10 draws of (area scale, log-uniform aspect ratio), the first box that fits wins, else a
// center crop clamped to the ratio range.
import { deriveKey, ROOT_KEY, Sfc32 } from '../plan/prng.js';

/** A crop box in source pixels: left, top, width, height. */
export interface CropBox {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** Tag that keeps the transform's random stream apart from the plan's (prng.ts deriveKey). */
const IMAGE_TRANSFORM_TAG = 0x1a6e;

/** The generator of one sample's random choices: a pure function of (seed, epoch, sample id). */
export function sampleRng(seed: number, epoch: number, sampleId: number): Sfc32 {
  return new Sfc32(deriveKey(ROOT_KEY, IMAGE_TRANSFORM_TAG, seed, epoch, sampleId));
}

/** Python's round(): half to even, as torchvision's int(round(x)) does. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function uniform(rng: Sfc32, lo: number, hi: number): number {
  return lo + (hi - lo) * rng.nextUnit();
}

/**
 * torchvision's RandomResizedCrop box for a `width` x `height` image. `scale` bounds the crop's
 * area as a fraction of the image's, `ratio` its width / height.
 */
export function randomResizedCropBox(width: number, height: number, scale: readonly [number, number], ratio: readonly [number, number], rng: Sfc32): CropBox {
  const area = width * height;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * uniform(rng, scale[0], scale[1]);
    const aspect = Math.exp(uniform(rng, logLo, logHi));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = rng.below(height - h + 1);
      const left = rng.below(width - w + 1);
      return { left, top, width: w, height: h };
    }
  }
  // Fallback: the whole image, cut to the nearest allowed aspect ratio, centered.
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < Math.min(ratio[0], ratio[1])) {
    h = roundHalfEven(w / Math.min(ratio[0], ratio[1]));
  } else if (inRatio > Math.max(ratio[0], ratio[1])) {
    w = roundHalfEven(h * Math.max(ratio[0], ratio[1]));
  }
  w = Math.max(1, Math.min(width, w));
  h = Math.max(1, Math.min(height, h));
  return { left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2), width: w, height: h };
}

/**
 * The eval box: the source region that becomes a `size` x `size` center crop after the shorter side
 * is resized to `resize` (torchvision's Resize(resize) then CenterCrop(size), expressed in source
 * pixels so one resample does both).
 */
export function centerCropBox(width: number, height: number, resize: number, size: number): CropBox {
  const shorter = Math.min(width, height);
  // Side of the square crop in source pixels; never past the image (size > resize crops nothing off).
  const side = Math.min(shorter, (size * shorter) / resize);
  const w = Math.max(1, Math.min(width, Math.round(side)));
  const h = Math.max(1, Math.min(height, Math.round(side)));
  // torchvision's CenterCrop rounds the offset: int(round((H - h) / 2)).
  return { left: roundHalfEven((width - w) / 2), top: roundHalfEven((height - h) / 2), width: w, height: h };
}
