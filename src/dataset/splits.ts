// Hugging Face split names in file layouts: `data/train-00000-of-00003.parquet`, `data/test/x.parquet`,
// `squad-validation.arrow`. A folder holding several splits is refused rather than merged, since
// silently training on test rows is worse than an error; `--split NAME` picks one.
import { ErrorCodes, GpufeedError, invalidOption } from '../errors.js';

/** The split names the Hub recognizes (and their usual spellings). */
export const SPLIT_NAMES = ['train', 'training', 'validation', 'valid', 'val', 'dev', 'test', 'testing', 'eval', 'evaluation'] as const;

const NAMES = SPLIT_NAMES.join('|');
// File stem forms: `train`, `train-00000-of-00003`, `train_0`, `squad-train`, `squad-train-00000-of-00002`.
const STEM_START = new RegExp(`^(${NAMES})(?:[-_.]|$)`, 'i');
const STEM_AFTER_NAME = new RegExp(`[-_](${NAMES})(?:$|[-_.]\\d)`, 'i');

/**
 * The split a file's relative path names, or undefined. A folder component named like a split wins
 * over the file name (`data/test/train-0.parquet` is test), the nearest folder first.
 */
export function splitOf(relPath: string): string | undefined {
  const parts = relPath.split('/').filter((p) => p.length > 0);
  const name = parts.pop();
  for (let i = parts.length - 1; i >= 0; i--) {
    const p = parts[i]!.toLowerCase();
    if ((SPLIT_NAMES as readonly string[]).includes(p)) return p;
  }
  if (!name) return undefined;
  const stem = name.replace(/(\.[a-z0-9]+)+$/i, '');
  const m = STEM_START.exec(stem) ?? STEM_AFTER_NAME.exec(stem);
  return m ? m[1]!.toLowerCase() : undefined;
}

/**
 * Keeps the files of `split` (when given), or refuses a set holding several splits. `what` names
 * the inputs in messages; `paths` are relative to where the split names are read from.
 */
export function selectSplit<T>(files: readonly T[], pathOf: (f: T) => string, split: string | undefined, what: string): T[] {
  const bySplit = new Map<string, number>();
  for (const f of files) {
    const s = splitOf(pathOf(f));
    if (s !== undefined) bySplit.set(s, (bySplit.get(s) ?? 0) + 1);
  }
  const found = [...bySplit.entries()].map(([s, n]) => `${s} (${n} file${n === 1 ? '' : 's'})`).join(', ');
  if (split !== undefined) {
    const want = split.toLowerCase();
    const kept = files.filter((f) => splitOf(pathOf(f)) === want);
    if (kept.length === 0) {
      throw invalidOption('split', `${what}: no files of split ${JSON.stringify(split)}; ${bySplit.size > 0 ? `found ${found}` : 'no split names found in the file names'}`);
    }
    return kept;
  }
  if (bySplit.size > 1) {
    throw new GpufeedError(ErrorCodes.BAD_INPUT, `${what}: holds several splits, ${found}; pass --split NAME to pick one (they are not merged)`, {
      path: what, splits: [...bySplit.keys()],
    });
  }
  return files.slice();
}
