// Which files of a folder (or S3 prefix, or glob match) are data: chosen by extension, with a
// Hugging Face `save_to_disk` folder's state.json deciding which .arrow files belong to it (the
// cache-*.arrow files `map` leaves beside them do not), and split names kept apart (splits.ts).
import { ErrorCodes, GpufeedError } from '../errors.js';
import { selectSplit } from './splits.js';

export interface FolderChoice {
  /** Data files, relative to the folder, in the order given. */
  kept: string[];
  /** Files passed over (not data by extension, or not listed in their folder's state.json). */
  skipped: string[];
}

const dirOf = (p: string): string => (p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '');
const baseName = (p: string): string => p.slice(p.lastIndexOf('/') + 1);

/** The `_data_files` a `datasets` state.json lists, or undefined when it is not one. */
export function stateDataFiles(text: string): string[] | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  const files = (raw as { _data_files?: unknown } | null)?._data_files;
  if (!Array.isArray(files) || files.length === 0) return undefined;
  const names = files.map((f) => (f as { filename?: unknown } | null)?.filename);
  // Only plain names in the same folder: a state.json never sends the reader elsewhere.
  if (names.some((n) => typeof n !== 'string' || n.length === 0 || n.includes('/') || n.includes('\\') || n === '.' || n === '..')) return undefined;
  return names as string[];
}

/**
 * Picks the data files among `paths` (relative to the folder `what`, '/'-separated). `readText`
 * reads a file of the folder (for state.json). Throws BAD_INPUT when a state.json names a missing
 * file, or (without `split`) when the files hold several splits.
 */
export async function chooseFolderFiles(
  paths: readonly string[], isData: (path: string) => boolean, readText: (path: string) => Promise<string>, split: string | undefined, what: string,
): Promise<FolderChoice> {
  const present = new Set(paths);
  const listed = new Map<string, Set<string>>();
  for (const p of paths) {
    if (baseName(p) !== 'state.json') continue;
    const names = stateDataFiles(await readText(p));
    if (!names) continue;
    const dir = dirOf(p);
    for (const n of names) {
      const full = dir ? `${dir}/${n}` : n;
      if (!present.has(full)) {
        throw new GpufeedError(ErrorCodes.BAD_INPUT, `${what}: ${p} lists data file ${n}, which is missing`, { path: `${what}/${full}` });
      }
    }
    listed.set(dir, new Set(names));
  }
  const kept: string[] = [];
  const skipped: string[] = [];
  for (const p of paths) {
    const own = listed.get(dirOf(p));
    if (isData(p) && (!own || own.has(baseName(p)))) kept.push(p);
    else skipped.push(p);
  }
  return { kept: selectSplit(kept, (p) => p, split, what), skipped };
}

/** One stderr-sized line naming skipped files (the first few, then a count). */
export function describeSkipped(what: string, skipped: readonly string[]): string {
  const shown = skipped.slice(0, 5).join(', ');
  const more = skipped.length > 5 ? ` and ${skipped.length - 5} more` : '';
  return `${what}: skipped ${skipped.length} ${skipped.length === 1 ? 'file that is' : 'files that are'} not data: ${shown}${more}`;
}
