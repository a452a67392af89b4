// Synthetic photo-like images written by sharp, for the image benchmark and tests: smooth color
// gradients with seeded blobs and a little noise, so JPEG sizes and decode costs resemble photos
// (not flat colors, not pure noise). No download.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { deriveKey, ROOT_KEY, Sfc32 } from '../src/plan/prng.js';

/** Raw RGB pixels of a `width` x `height` synthetic image from `seed`. */
export function syntheticPixels(width: number, height: number, seed: number): Buffer {
  const rng = new Sfc32(deriveKey(ROOT_KEY, seed));
  const rnd = (): number => rng.nextUnit();
  const px = Buffer.alloc(width * height * 3);
  const blobs = Array.from({ length: 6 }, () => ({ x: rnd() * width, y: rnd() * height, r: (0.1 + 0.3 * rnd()) * Math.min(width, height), c: [rnd() * 255, rnd() * 255, rnd() * 255] }));
  const base = [rnd() * 255, rnd() * 255, rnd() * 255];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let r = base[0]! * (x / width);
      let g = base[1]! * (y / height);
      let b = base[2]! * (1 - x / width);
      for (const blob of blobs) {
        const d = Math.hypot(x - blob.x, y - blob.y) / blob.r;
        if (d < 1) {
          const w = 1 - d * d;
          r = r * (1 - w) + blob.c[0]! * w;
          g = g * (1 - w) + blob.c[1]! * w;
          b = b * (1 - w) + blob.c[2]! * w;
        }
      }
      const n = (rnd() - 0.5) * 24;
      const i = (y * width + x) * 3;
      px[i] = Math.max(0, Math.min(255, r + n));
      px[i + 1] = Math.max(0, Math.min(255, g + n));
      px[i + 2] = Math.max(0, Math.min(255, b + n));
    }
  }
  return px;
}

export type SyntheticFormat = 'jpeg' | 'png' | 'webp';

/** An encoded synthetic image. */
export async function syntheticImage(width: number, height: number, seed: number, format: SyntheticFormat = 'jpeg', quality = 90): Promise<Buffer> {
  const img = sharp(syntheticPixels(width, height, seed), { raw: { width, height, channels: 3 } });
  if (format === 'png') return img.png().toBuffer();
  if (format === 'webp') return img.webp({ quality }).toBuffer();
  return img.jpeg({ quality }).toBuffer();
}

/**
 * Writes an ImageNet-style folder: `root/<class>/<n>.JPEG`, `perClass` images in each of
 * `classes` classes, sizes varying around width x height. Returns the files written, in order.
 */
export async function writeImageFolder(root: string, classes: string[], perClass: number, width = 500, height = 375, seed = 1): Promise<string[]> {
  const files: string[] = [];
  let n = 0;
  for (const c of classes) {
    await mkdir(path.join(root, c), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const s = seed * 100_003 + n++;
      const w = width + ((s * 37) % 41) - 20;
      const h = height + ((s * 53) % 31) - 15;
      const file = path.join(root, c, `${c}_${String(i).padStart(5, '0')}.JPEG`);
      await writeFile(file, await syntheticImage(w, h, s));
      files.push(file);
    }
  }
  return files;
}
