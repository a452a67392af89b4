// Turns prep's input arguments (files, folders, globs, mixed) into an ordered list of input files.
// Order is the order given; a folder or glob expands to its data files sorted by path (skipped
// files reported), one Hugging Face split of them at most.
import { ImageFolderReader } from './image-folder.js';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import { globFiles, hasGlobMagic } from '../../util/glob.js';
import { ArrowInputReader } from './arrow.js';
import { CsvReader } from './csv.js';
import { JsonlReader } from './jsonl.js';
import { ParquetInputReader } from './parquet.js';
import { SelectingReader } from './select.js';
import type { InputFile, InputKind, InputReader } from './source.js';
import type { ColumnSelection } from '../column-selection.js';
import { chooseFolderFiles, describeSkipped } from '../folder-layout.js';

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

export interface ResolveInputOptions {
  /** Keep only this Hugging Face split's files of each folder or glob (splits.ts). */
  split?: string;
  /** --columns / --drop, carried on every input file. */
  select?: ColumnSelection;
  /** Told about skipped files, one line per folder or glob (default: stderr). */
  warn?: (line: string) => void;
}

/** Metadata files of Hugging Face and gpufeed folders: never data. */
const METADATA_NAMES = new Set(['dataset_info.json', 'dataset_infos.json', 'dataset_dict.json', 'state.json', 'index.json']);

export async function resolveInputs(args: readonly string[], opts: ResolveInputOptions = {}): Promise<InputFile[]> {
  if (args.length === 0) throw new GpufeedError(ErrorCodes.INVALID_OPTION, 'option inputs: give at least one input file, folder or glob', { option: 'inputs' });
  const warn = opts.warn ?? ((line: string) => process.stderr.write(`gpufeed prep: ${line}\n`));
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
  // A folder or glob: data files by extension, state.json and split names deciding (folder-layout.ts).
  const expand = async (arg: string, root: string, files: { path: string; size: number }[], inFolder: boolean): Promise<number> => {
    const rel = (p: string): string => relative(root, p).split(sep).join('/');
    const byRel = new Map(files.map((f) => [rel(f.path), f]));
    const names = [...byRel.keys()];
    // In a folder, .json files are JSON Lines only when nothing else there is data: beside
    // Parquet, Arrow, CSV or .jsonl files they are metadata.
    const otherData = names.some((n) => inputKindOf(n) && !/\.json$/i.test(n));
    const isData = (n: string): boolean => {
      const base = n.slice(n.lastIndexOf('/') + 1);
      if (METADATA_NAMES.has(base.toLowerCase()) || !inputKindOf(n)) return false;
      return !(inFolder && otherData && /\.json$/i.test(n));
    };
    const choice = await chooseFolderFiles(names, isData, (p) => readFile(join(root, p), 'utf8'), opts.split, arg);
    if (choice.skipped.length > 0) warn(describeSkipped(arg, choice.skipped));
    const before = out.length;
    for (const p of choice.kept) add(byRel.get(p)!.path, byRel.get(p)!.size, false);
    return out.length - before;
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
      if ((await expand(arg, arg, await walk(arg), true)) === 0) {
        throw new GpufeedError(ErrorCodes.BAD_INPUT, `${arg}: folder holds no input files prep reads (.jsonl, .csv, .parquet, .arrow, .gz)`, { path: arg });
      }
    } else if (hasGlobMagic(arg)) {
      const files = [];
      for (const f of await globFiles(arg)) files.push({ path: f, size: (await stat(f)).size });
      if ((await expand(arg, globRoot(arg), files, false)) === 0) throw new GpufeedError(ErrorCodes.BAD_INPUT, `${arg}: glob matches no input files`, { path: arg });
    } else {
      throw new GpufeedError(ErrorCodes.BAD_INPUT, `${arg}: no such file or folder`, { path: arg });
    }
  }
  if (opts.select) {
    out.forEach((f, i) => {
      f.select = opts.select;
      f.checkSelection = i === 0;
    });
  }
  return out;
}

/** The literal folder a glob starts from (split names are read below it). */
function globRoot(pattern: string): string {
  const parts = pattern.split(sep).join('/').split('/');
  const literal: string[] = [];
  for (const p of parts.slice(0, -1)) {
    if (hasGlobMagic(p)) break;
    literal.push(p);
  }
  return literal.length === 0 ? '.' : literal.join('/') || '/';
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
  const reader = openFormat(file);
  return file.select ? new SelectingReader(reader, file.select, file.checkSelection ?? false) : reader;
}

function openFormat(file: InputFile): InputReader {
  switch (file.kind) {
    case 'jsonl': return new JsonlReader(file);
    case 'csv': return new CsvReader(file);
    case 'parquet': return new ParquetInputReader(file);
    case 'arrow': return new ArrowInputReader(file);
    case 'images': return new ImageFolderReader(file, file.images!);
  }
}
