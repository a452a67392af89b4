// `gpufeed prep ROOT --images`: an ImageNet-style folder (`ROOT/<class>/<file>.JPEG`) read as rows
// of (image bytes, label, path). Classes are the sub-folder names sorted by code point, labels their
// index (as torchvision's ImageFolder numbers them); files within a class are sorted too, so the
// same folder always gives the same dataset. The bytes are stored as they are (not re-encoded);
// decoding happens in the loader's transforms. Local disk only.
import { open, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import type { ColumnSpec } from '../types.js';
import type { InputFile, InputReader, RowBatch } from './source.js';

/** Extensions taken as images (case-insensitive); other files are skipped and counted. */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp'];

export interface ImageFolderListing {
  root: string;
  classes: string[];
  files: { rel: string; label: number; size: number }[];
}

export const IMAGE_FOLDER_COLUMNS: readonly ColumnSpec[] = [
  { name: 'image', dtype: 'binary', kind: 'bytes', nullable: false },
  { name: 'label', dtype: 'int32', kind: 'scalar', nullable: false },
  { name: 'path', dtype: 'string', kind: 'bytes', nullable: false },
];

const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Lists `root`'s classes and images (one level of class folders; files below them, recursively). */
export async function listImageFolder(root: string, warn: (line: string) => void): Promise<ImageFolderListing> {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(root) && !root.startsWith('file://')) {
    throw new GpufeedError(ErrorCodes.INVALID_OPTION, `option images: ${root}: prep --images reads a local folder; copy the images to local disk first`, { option: 'images', path: root });
  }
  const dir = root.startsWith('file://') ? new URL(root).pathname : root;
  let top;
  try {
    top = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    const code = (err as { code?: string }).code;
    throw new GpufeedError(ErrorCodes.BAD_INPUT, `${root}: cannot list the image folder (${code ?? (err as Error).message}); prep --images expects ROOT/<class>/<image>`, { path: root });
  }
  const classes = top.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort(byCodePoint);
  if (classes.length === 0) {
    throw new GpufeedError(ErrorCodes.BAD_INPUT, `${root}: no class folders; prep --images expects ROOT/<class>/<image> (ImageNet style)`, { path: root });
  }
  const files: ImageFolderListing['files'] = [];
  let skipped = 0;
  for (let label = 0; label < classes.length; label++) {
    const found: { rel: string; size: number }[] = [];
    const walk = async (rel: string): Promise<void> => {
      const entries = await readdir(path.join(dir, rel), { withFileTypes: true });
      for (const e of entries) {
        if (e.name.startsWith('.')) continue; // hidden files and editor droppings
        const childRel = `${rel}/${e.name}`;
        if (e.isDirectory()) await walk(childRel);
        else if (IMAGE_EXTENSIONS.includes(path.extname(e.name).toLowerCase())) found.push({ rel: childRel, size: (await stat(path.join(dir, childRel))).size });
        else skipped++;
      }
    };
    await walk(classes[label]!);
    found.sort((a, b) => byCodePoint(a.rel, b.rel));
    for (const f of found) files.push({ ...f, label });
  }
  if (skipped > 0) warn(`${root}: skipped ${skipped} file(s) that are not ${IMAGE_EXTENSIONS.join('/')}`);
  if (files.length === 0) throw new GpufeedError(ErrorCodes.BAD_INPUT, `${root}: no images (${IMAGE_EXTENSIONS.join(', ')}) under its class folders`, { path: root });
  return { root: dir, classes, files };
}

/** Images read at once: enough to hide disk latency, few enough to bound memory. */
const READS_IN_FLIGHT = 16;
const BATCH_ROWS = 64;

export class ImageFolderReader implements InputReader {
  readonly unit = 'row' as const;
  bytesRead = 0;

  constructor(readonly file: InputFile, readonly listing: ImageFolderListing) {}

  async declaredColumns(): Promise<ColumnSpec[]> {
    return IMAGE_FOLDER_COLUMNS.map((c) => ({ ...c }));
  }

  async *batches(): AsyncIterable<RowBatch> {
    const { files, root } = this.listing;
    for (let start = 0; start < files.length; start += BATCH_ROWS) {
      const chunk = files.slice(start, start + BATCH_ROWS);
      const images: Uint8Array[] = new Array(chunk.length);
      let next = 0;
      const readOne = async (): Promise<void> => {
        while (next < chunk.length) {
          const i = next++;
          images[i] = await readImage(path.join(root, chunk[i]!.rel), chunk[i]!.rel);
        }
      };
      await Promise.all(Array.from({ length: Math.min(READS_IN_FLIGHT, chunk.length) }, readOne));
      const rows = chunk.map((f, i) => ({ image: images[i]!, label: f.label, path: f.rel }));
      for (const img of images) this.bytesRead += img.byteLength;
      yield { rows, refs: chunk.map((_, i) => start + i + 1) };
    }
  }
}

async function readImage(file: string, rel: string): Promise<Uint8Array> {
  const fh = await open(file, 'r').catch((err: unknown) => {
    throw new GpufeedError(ErrorCodes.BAD_INPUT, `${rel}: cannot read the image (${(err as { code?: string }).code ?? (err as Error).message})`, { path: file });
  });
  try {
    return new Uint8Array(await fh.readFile());
  } finally {
    await fh.close();
  }
}
