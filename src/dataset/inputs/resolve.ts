// Turns prep's input arguments (files, folders, globs, mixed) into an ordered list of input files.
// Order is the order given; a folder or glob expands to its files sorted by path.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import { globFiles, hasGlobMagic } from '../../util/glob.js';
import { ArrowInputReader } from './arrow.js';
import { CsvReader } from './csv.js';
import { JsonlReader } from './jsonl.js';
import { ParquetInputReader } from './parquet.js';
import type { InputFile, InputKind, InputReader } from './source.js';

const EXTENSIONS: [RegExp, InputKind, boolean][] = [
  [/\.(jsonl|ndjson|json)$/i, 'jsonl', false],
  [/\.(jsonl|ndjson|json)\.gz$/i, 'jsonl', true],
  [/\.csv$/i, 'csv', false],
  [/\.csv\.gz$/i, 'csv', true],
  [/\.(parquet|pq)$/i, 'parquet', false],
  [/\.(arrow|feather|ipc|arrows)$/i, 'arrow', false],
];

/** The input kind a file name implies, or undefined for names prep does not read. */
export function inputKindOf(path: string): { kind: InputKind; gzip: boolean } | undefined {
  for (const [re, kind, gzip] of EXTENSIONS) if (re.test(path)) return { kind, gzip };
  // A bare `.gz` is taken as gzipped JSON Lines.
  if (/\.gz$/i.test(path)) return { kind: 'jsonl', gzip: true };
  return undefined;
}

export async function resolveInputs(args: readonly string[]): Promise<InputFile[]> {
  if (args.length === 0) throw new GpufeedError(ErrorCodes.INVALID_OPTION, 'option inputs: give at least one input file, folder or glob', { option: 'inputs' });
  const out: InputFile[] = [];
  const seen = new Set<string>();
  const add = (path: string, size: number, explicit: boolean): void => {
    const k = inputKindOf(path);
    if (!k) {
      if (explicit) {
        throw new GpufeedError(ErrorCodes.BAD_INPUT, `${path}: unknown input type; prep reads .jsonl/.ndjson/.json (JSON Lines), .csv, .parquet, .arrow/.feather/.arrows, optionally .gz for text`, { path });
      }
      return;
    }
    if (seen.has(path)) return;
    seen.add(path);
    out.push({ path, size, ...k });
  };
  for (const arg of args) {
    let st;
    try {
      st = await stat(arg);
    } catch {
      st = undefined;
    }
    if (st?.isFile()) {
      add(arg, st.size, true);
    } else if (st?.isDirectory()) {
      const files = await walk(arg);
      const before = out.length;
      for (const f of files) add(f.path, f.size, false);
      if (out.length === before) throw new GpufeedError(ErrorCodes.BAD_INPUT, `${arg}: folder holds no input files prep reads (.jsonl, .csv, .parquet, .arrow, .gz)`, { path: arg });
    } else if (hasGlobMagic(arg)) {
      const files = await globFiles(arg);
      const before = out.length;
      for (const f of files) {
        const s = await stat(f);
        add(f, s.size, false);
      }
      if (out.length === before) throw new GpufeedError(ErrorCodes.BAD_INPUT, `${arg}: glob matches no input files`, { path: arg });
    } else {
      throw new GpufeedError(ErrorCodes.BAD_INPUT, `${arg}: no such file or folder`, { path: arg });
    }
  }
  return out;
}

async function walk(dir: string): Promise<{ path: string; size: number }[]> {
  const out: { path: string; size: number }[] = [];
  const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (e.name.startsWith('.')) continue; // hidden files and editor droppings
    const full = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(full)));
    else if (e.isFile()) out.push({ path: full, size: (await stat(full)).size });
  }
  return out;
}

export function openInput(file: InputFile): InputReader {
  switch (file.kind) {
    case 'jsonl': return new JsonlReader(file);
    case 'csv': return new CsvReader(file);
    case 'parquet': return new ParquetInputReader(file);
    case 'arrow': return new ArrowInputReader(file);
  }
}
