// The `transforms` Loader option: which binary column is decoded as an image, and how it becomes
// a fixed-shape tensor. Validated here on the main thread, with errors naming the option; what
// crosses to the decode workers is the resolved, plain-data form (ResolvedImageTransform).
import { ErrorCodes, GpufeedError, invalidOption } from '../errors.js';
import { nearestName } from '../util/nearest-name.js';
import type { ColumnSpec, ManifestV1 } from '../dataset/types.js';

export type ImageTransformKind = 'train' | 'eval';
export type ImageLayout = 'CHW' | 'HWC';
export type ImageColor = 'rgb' | 'gray';
export type ImageDType = 'uint8' | 'float16' | 'float32';
export type ImageKernel = 'linear' | 'cubic' | 'lanczos3';

/** One image column's transform (README.md, "Images"). */
export interface ImageTransformOptions {
  /** `train`: RandomResizedCrop + horizontal flip; `eval`: resize the shorter side, center crop. */
  kind: ImageTransformKind;
  /** Output height and width in pixels (square). */
  size: number;
  /** eval: the shorter side before the center crop. Default round(size / 0.875) (256 for 224). */
  resize?: number;
  /** train: bounds of the crop's area as a fraction of the image's. Default [0.08, 1]. */
  scale?: [number, number];
  /** train: bounds of the crop's width / height. Default [3/4, 4/3]. */
  ratio?: [number, number];
  /** train: flip horizontally with probability 1/2. Default true. */
  flip?: boolean;
  /** `rgb` (3 channels, the default) or `gray` (1 channel). */
  color?: ImageColor;
  /** `CHW` (the default, what torch models take) or `HWC`. */
  layout?: ImageLayout;
  /** `uint8` (the default: 0..255, normalize on the GPU), or float16/float32 normalized with mean/std. */
  dtype?: ImageDType;
  /** Float output: per-channel mean and std on the 0..1 scale. Default ImageNet's. */
  mean?: number[];
  std?: number[];
  /** Resampling kernel. Default `linear` (antialiased bilinear, as torchvision and Pillow). */
  kernel?: ImageKernel;
  /**
   * Decode JPEG/WebP at a reduced size when the crop is at least 3x the output (sharp path,
   * image-decode.ts; the JPEG fast path uses 1x instead of 2x the DCT factor, jpeg-fast.ts):
   * much faster on large photos, less exact. Default false.
   */
  shrinkOnLoad?: boolean;
}

/** The `transforms` option: output column name -> its transform. */
export type TransformsOption = Record<string, ImageTransformOptions>;

/** What a decode worker needs for one image column: plain data. */
export interface ResolvedImageTransform {
  /** The batch column the tensor goes to (the transforms key). */
  output: string;
  /** The binary column holding the encoded image. */
  source: ColumnSpec;
  /** A string column naming each image's file, for error messages (HF `image.path`, prep's `path`). */
  pathColumn?: ColumnSpec;
  kind: ImageTransformKind;
  size: number;
  resize: number;
  scale: [number, number];
  ratio: [number, number];
  flip: boolean;
  channels: 1 | 3;
  layout: ImageLayout;
  dtype: ImageDType;
  mean: number[];
  std: number[];
  kernel: ImageKernel;
  shrinkOnLoad: boolean;
}

const KEYS: readonly (keyof ImageTransformOptions)[] = ['kind', 'size', 'resize', 'scale', 'ratio', 'flip', 'color', 'layout', 'dtype', 'mean', 'std', 'kernel', 'shrinkOnLoad'];
const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];
/** Largest output side: a [B, 3, size, size] region must stay far below a slab's 4 GiB. */
const MAX_SIZE = 8192;

function oneOf<T extends string>(option: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw invalidOption(option, `must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

function positiveInt(option: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw invalidOption(option, `must be an integer from 1 to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function range(option: string, value: unknown, fallback: [number, number], check: (lo: number, hi: number) => string | undefined): [number, number] {
  if (value === undefined) return fallback;
  if (!Array.isArray(value) || value.length !== 2 || !value.every((v) => typeof v === 'number' && Number.isFinite(v))) {
    throw invalidOption(option, `must be two finite numbers [low, high], got ${JSON.stringify(value)}`);
  }
  const [lo, hi] = value as [number, number];
  const why = check(lo, hi);
  if (why) throw invalidOption(option, `${why}, got [${lo}, ${hi}]`);
  return [lo, hi];
}

function perChannel(option: string, value: unknown, channels: number, fallback: number[], positive: boolean): number[] {
  if (value === undefined) return channels === 3 ? fallback : [fallback.reduce((a, b) => a + b, 0) / 3];
  if (!Array.isArray(value) || value.length !== channels || !value.every((v) => typeof v === 'number' && Number.isFinite(v) && (!positive || v > 0))) {
    throw invalidOption(option, `must be ${channels} finite${positive ? ' positive' : ''} numbers (one per channel), got ${JSON.stringify(value)}`);
  }
  return value as number[];
}

/** Validates one transform's options; `where` is its option path (`transforms.image`). */
export function resolveImageOptions(where: string, raw: unknown): Omit<ResolvedImageTransform, 'output' | 'source' | 'pathColumn'> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw invalidOption(where, `must be an object like { kind: 'train', size: 224 }, got ${JSON.stringify(raw)}`);
  const o = raw as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!(KEYS as readonly string[]).includes(key)) {
      const near = nearestName(key, KEYS);
      throw invalidOption(`${where}.${key}`, `is not an image transform option${near ? `; did you mean ${near}?` : ''} (valid: ${KEYS.join(', ')})`);
    }
  }
  if (o.kind === undefined) throw invalidOption(`${where}.kind`, "is required: 'train' or 'eval'");
  const kind = oneOf<ImageTransformKind>(`${where}.kind`, o.kind, ['train', 'eval'], 'train');
  if (o.size === undefined) throw invalidOption(`${where}.size`, 'is required (output side in pixels, e.g. 224)');
  const size = positiveInt(`${where}.size`, o.size, MAX_SIZE);
  const trainOnly = ['scale', 'ratio', 'flip'] as const;
  for (const k of trainOnly) if (kind === 'eval' && o[k] !== undefined) throw invalidOption(`${where}.${k}`, "applies to kind 'train' only");
  if (kind === 'train' && o.resize !== undefined) throw invalidOption(`${where}.resize`, "applies to kind 'eval' only");
  const resize = o.resize === undefined ? Math.round(size / 0.875) : positiveInt(`${where}.resize`, o.resize, 4 * MAX_SIZE);
  if (resize < size) throw invalidOption(`${where}.resize`, `must be at least size (${size}), got ${resize}`);
  const scale = range(`${where}.scale`, o.scale, [0.08, 1], (lo, hi) => (lo <= 0 || hi > 1 || lo > hi ? 'must satisfy 0 < low <= high <= 1' : undefined));
  const ratio = range(`${where}.ratio`, o.ratio, [3 / 4, 4 / 3], (lo, hi) => (lo <= 0 || lo > hi ? 'must satisfy 0 < low <= high' : undefined));
  if (o.flip !== undefined && typeof o.flip !== 'boolean') throw invalidOption(`${where}.flip`, `must be a boolean, got ${JSON.stringify(o.flip)}`);
  if (o.shrinkOnLoad !== undefined && typeof o.shrinkOnLoad !== 'boolean') throw invalidOption(`${where}.shrinkOnLoad`, `must be a boolean, got ${JSON.stringify(o.shrinkOnLoad)}`);
  const channels = oneOf<ImageColor>(`${where}.color`, o.color, ['rgb', 'gray'], 'rgb') === 'rgb' ? 3 : 1;
  const dtype = oneOf<ImageDType>(`${where}.dtype`, o.dtype, ['uint8', 'float16', 'float32'], 'uint8');
  if (dtype === 'uint8' && (o.mean !== undefined || o.std !== undefined)) {
    throw invalidOption(`${where}.${o.mean !== undefined ? 'mean' : 'std'}`, 'applies to float16/float32 output only (uint8 output is normalized on the GPU; README.md, "Images")');
  }
  return {
    kind, size, resize, scale, ratio, flip: kind === 'train' && o.flip !== false, channels,
    layout: oneOf<ImageLayout>(`${where}.layout`, o.layout, ['CHW', 'HWC'], 'CHW'),
    dtype,
    mean: perChannel(`${where}.mean`, o.mean, channels, IMAGENET_MEAN, false),
    std: perChannel(`${where}.std`, o.std, channels, IMAGENET_STD, true),
    kernel: oneOf<ImageKernel>(`${where}.kernel`, o.kernel, ['linear', 'cubic', 'lanczos3'], 'linear'),
    shrinkOnLoad: o.shrinkOnLoad === true,
  };
}

/** The binary column a transforms key names: the column itself, or `KEY.bytes` (Hugging Face's image struct, flattened). */
function sourceColumn(manifest: ManifestV1, key: string): ColumnSpec {
  const col = manifest.schema.find((c) => c.name === key) ?? manifest.schema.find((c) => c.name === `${key}.bytes`);
  if (!col) {
    const near = nearestName(key, manifest.schema.map((c) => c.name));
    throw new GpufeedError(ErrorCodes.UNKNOWN_COLUMN, `option transforms.${key}: no column ${JSON.stringify(key)} (nor ${JSON.stringify(`${key}.bytes`)}) in the dataset${near ? `; did you mean ${near}?` : ''}; it has: ${manifest.schema.map((c) => c.name).join(', ')}`, {
      option: `transforms.${key}`, column: key,
    });
  }
  if (col.kind !== 'bytes' || col.dtype !== 'binary') {
    throw new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `option transforms.${key}: column ${col.name} is ${col.kind} ${col.dtype}; an image transform needs a binary column of encoded images (JPEG, PNG, WebP)`, {
      option: `transforms.${key}`, column: col.name,
    });
  }
  return col;
}

/** A string column that names each image's file: `KEY.path` beside `KEY.bytes`, else `path`. */
function pathColumnFor(manifest: ManifestV1, source: ColumnSpec): ColumnSpec | undefined {
  const prefix = source.name.endsWith('.bytes') ? source.name.slice(0, -'.bytes'.length) : undefined;
  const names = prefix ? [`${prefix}.path`, 'path'] : ['path'];
  for (const n of names) {
    const c = manifest.schema.find((s) => s.name === n);
    if (c && c.kind === 'bytes' && c.dtype === 'string') return c;
  }
  return undefined;
}

/** The fixed-shape column a transform writes. */
export function outputColumn(t: Pick<ResolvedImageTransform, 'output' | 'size' | 'channels' | 'layout' | 'dtype'>): ColumnSpec {
  const shape = t.layout === 'CHW' ? [t.channels, t.size, t.size] : [t.size, t.size, t.channels];
  return { name: t.output, dtype: t.dtype, kind: 'fixed', shape, nullable: false };
}

export interface ImageColumns {
  /** The batch's columns: each transformed source column replaced, in place, by its tensor column. */
  columns: ColumnSpec[];
  transforms: ResolvedImageTransform[];
}

/**
 * Resolves `transforms` against the dataset and the `columns` option. `columns` may name a
 * transform's key (`image`) or its source column (`image.bytes`); absent, every column is loaded.
 * Undefined when there is no transform.
 */
export function resolveImageColumns(manifest: ManifestV1, names: readonly string[] | undefined, transforms: unknown, select: (names?: readonly string[]) => ColumnSpec[]): ImageColumns | undefined {
  if (transforms === undefined) return undefined;
  if (transforms === null || typeof transforms !== 'object' || Array.isArray(transforms)) {
    throw invalidOption('transforms', `must be an object mapping a column to its transform, e.g. { image: { kind: 'train', size: 224 } }, got ${JSON.stringify(transforms)}`);
  }
  const entries = Object.entries(transforms as Record<string, unknown>);
  if (entries.length === 0) return undefined;
  const resolved: ResolvedImageTransform[] = [];
  for (const [key, raw] of entries) {
    const source = sourceColumn(manifest, key);
    if (resolved.some((r) => r.source.name === source.name)) throw invalidOption(`transforms.${key}`, `column ${source.name} already has a transform`);
    const pathColumn = pathColumnFor(manifest, source);
    resolved.push({ output: key, source, ...(pathColumn ? { pathColumn } : {}), ...resolveImageOptions(`transforms.${key}`, raw) });
  }
  const byName = (n: string): ResolvedImageTransform | undefined => resolved.find((r) => r.output === n || r.source.name === n);
  let picked: ColumnSpec[];
  if (names && names.length > 0) {
    picked = names.map((n) => {
      const t = byName(n);
      return t ? outputColumn(t) : select([n])[0]!;
    });
    for (const t of resolved) {
      if (!names.some((n) => byName(n) === t)) throw invalidOption(`transforms.${t.output}`, `column ${t.source.name} has a transform but is not in the columns option (${names.join(', ')})`);
    }
  } else {
    picked = select(undefined).map((c) => {
      const t = byName(c.name);
      return t ? outputColumn(t) : c;
    });
  }
  const seen = new Set<string>();
  for (const c of picked) {
    if (seen.has(c.name)) throw invalidOption('transforms', `two batch columns would be named ${c.name}; name the transform after its column or pick columns`);
    seen.add(c.name);
  }
  return { columns: picked, transforms: resolved };
}
