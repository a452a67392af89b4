// The command line's image transform flags, parsed into the `transforms` Loader option:
//   --image COLUMN=KIND:SIZE[:TOKEN...]   e.g. image=train:224:chw, image.bytes=eval:224:hwc:gray
// TOKENs: chw | hwc, rgb | gray, uint8 | float16 | float32, noflip, shrink | noshrink, scale=LO,HI,
// ratio=LO,HI, resize=N, kernel=linear|cubic|lanczos3. Values are checked by resolveImageOptions
// like any JS caller's, so the two spellings cannot drift.
//   --transforms JSON                    the option itself, as JSON (what the Python client sends)
import { invalidOption } from '../errors.js';
import type { ImageTransformOptions, TransformsOption } from './image-options.js';

function numbers(flag: string, key: string, text: string): [number, number] {
  const parts = text.split(',').map((s) => Number(s.trim()));
  if (parts.length !== 2 || parts.some((n) => !Number.isFinite(n))) throw invalidOption(flag, `${key}= takes two numbers LO,HI, got ${JSON.stringify(text)}`);
  return [parts[0]!, parts[1]!];
}

/** `image=train:224:chw` -> ['image', { kind: 'train', size: 224, layout: 'CHW' }]. */
export function parseImageSpec(text: string, flag = '--image'): [string, ImageTransformOptions] {
  const eq = text.indexOf('=');
  const column = eq > 0 ? text.slice(0, eq).trim() : '';
  const [kind, size, ...tokens] = eq > 0 ? text.slice(eq + 1).split(':') : [];
  if (!column || (kind !== 'train' && kind !== 'eval') || !size || !/^\d+$/.test(size)) {
    throw invalidOption(flag, `expected COLUMN=train|eval:SIZE[:chw|hwc][:rgb|gray][:uint8|float16|float32][:noflip][:scale=LO,HI][:ratio=LO,HI][:resize=N], e.g. image=train:224:chw, got ${JSON.stringify(text)}`);
  }
  const o: ImageTransformOptions = { kind, size: Number(size) };
  for (const raw of tokens) {
    const t = raw.trim();
    const lower = t.toLowerCase();
    if (lower === 'chw' || lower === 'hwc') o.layout = lower === 'chw' ? 'CHW' : 'HWC';
    else if (lower === 'rgb' || lower === 'gray') o.color = lower;
    else if (lower === 'uint8' || lower === 'float16' || lower === 'float32') o.dtype = lower;
    else if (lower === 'noflip') o.flip = false;
    else if (lower === 'noshrink') o.shrinkOnLoad = false;
    else if (lower === 'shrink') o.shrinkOnLoad = true;
    else if (lower.startsWith('scale=')) o.scale = numbers(flag, 'scale', t.slice(6));
    else if (lower.startsWith('ratio=')) o.ratio = numbers(flag, 'ratio', t.slice(6));
    else if (lower.startsWith('resize=')) o.resize = Number(t.slice(7));
    else if (lower.startsWith('kernel=')) o.kernel = t.slice(7) as ImageTransformOptions['kernel'];
    else throw invalidOption(flag, `unknown token ${JSON.stringify(t)} in ${JSON.stringify(text)} (chw, hwc, rgb, gray, uint8, float16, float32, noflip, shrink, noshrink, scale=, ratio=, resize=, kernel=)`);
  }
  return [column, o];
}

/** The transforms option from `--image` specs and a `--transforms` JSON text; undefined when neither is given. */
export function transformsFromFlags(images: readonly string[] | undefined, json: string | undefined): TransformsOption | undefined {
  let out: TransformsOption | undefined;
  if (json !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch (err) {
      throw invalidOption('--transforms', `is not JSON: ${(err as Error).message}`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw invalidOption('--transforms', 'must be a JSON object mapping a column to its transform');
    out = { ...(parsed as TransformsOption) };
  }
  for (const spec of images ?? []) {
    const [column, o] = parseImageSpec(spec);
    out ??= {};
    if (Object.hasOwn(out, column)) throw invalidOption('--image', `column ${column} has two transforms`);
    out[column] = o;
  }
  return out;
}
