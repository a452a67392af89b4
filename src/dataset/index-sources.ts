// What `gpufeed index` reads: files, folders (or S3 prefixes) and globs, all local or all in one
// bucket. Their nearest common folder is the base the shard paths are relative to; index.json is
// written there, or with --out elsewhere and then names that base.
import { stat } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCodes, GpufeedError, invalidOption } from '../errors.js';
import { isS3Uri, openStore, type StoreOptions } from '../storage/index.js';
import type { ObjectInfo, Store } from '../storage/store.js';
import { globMatcher, hasGlobMagic } from '../util/glob.js';
import { chooseFolderFiles, describeSkipped } from './folder-layout.js';
import { MANIFEST_FILE, type ShardFormat } from './types.js';

export function formatOfKey(key: string): ShardFormat | undefined {
  if (/\.parquet$/i.test(key)) return 'parquet';
  if (/\.(arrow|feather|ipc|arrows)$/i.test(key)) return 'arrow';
  return undefined;
}

export interface IndexSources {
  /** The store at the base: every object key below is relative to it. */
  store: Store;
  objects: ObjectInfo[];
}

export interface IndexSourceOptions {
  storeOptions?: StoreOptions;
  split?: string;
  /** Told about skipped files, one line per folder or glob. */
  warn?: (line: string) => void;
}

type Arg = { text: string; segments: string[]; mode: 'dir' | 'file' } | { text: string; segments: string[]; mode: 'glob'; pattern: string };

/** Splits an argument into (root, path segments): root '/' for local, 's3://bucket' for S3. */
function locate(arg: string): { root: string; segments: string[] } {
  if (isS3Uri(arg)) {
    const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(arg);
    if (!m) throw invalidOption('dataset', `not an S3 URI: ${arg}`);
    const segments = (m[2] ?? '').split('/').filter((p) => p.length > 0);
    if (segments.some((p) => p === '.' || p === '..')) throw invalidOption('dataset', `S3 URI ${arg}: must not contain "." or ".." segments`);
    return { root: `s3://${m[1]}`, segments };
  }
  if (/^[a-zA-Z][a-zA-Z0-9+.-]+:\/\//.test(arg) && !arg.startsWith('file://')) {
    throw invalidOption('dataset', `unsupported URI scheme: ${arg} (use a local path, file:// or s3://)`);
  }
  const abs = resolve(arg.startsWith('file://') ? fileURLToPath(arg) : arg);
  return { root: '/', segments: abs.split(sep).filter((p) => p.length > 0) };
}

async function classify(arg: string, root: string, segments: string[]): Promise<Arg> {
  const magic = segments.findIndex((s) => hasGlobMagic(s));
  if (magic >= 0) return { text: arg, segments: segments.slice(0, magic), mode: 'glob', pattern: segments.slice(magic).join('/') };
  if (root !== '/') {
    // On S3 a data file name is an object; anything else is a prefix.
    return formatOfKey(segments.at(-1) ?? '') ? { text: arg, segments: segments.slice(0, -1), mode: 'file' } : { text: arg, segments, mode: 'dir' };
  }
  const st = await stat(`/${segments.join('/')}`).catch(() => undefined);
  if (st?.isFile()) return { text: arg, segments: segments.slice(0, -1), mode: 'file' };
  if (st?.isDirectory()) return { text: arg, segments, mode: 'dir' };
  throw new GpufeedError(ErrorCodes.BAD_INPUT, `${arg}: no such file or folder`, { path: arg });
}

function commonPrefix(lists: string[][]): string[] {
  const first = lists[0] ?? [];
  let n = first.length;
  for (const l of lists) {
    let i = 0;
    while (i < n && i < l.length && l[i] === first[i]) i++;
    n = i;
  }
  return first.slice(0, n);
}

/** Resolves index's arguments to a base store and the objects to index under it, in order. */
export async function resolveIndexSources(args: readonly string[], opts: IndexSourceOptions = {}): Promise<IndexSources> {
  if (args.length === 0) throw invalidOption('dataset', 'give at least one file, folder, glob or S3 prefix to index');
  const located = args.map(locate);
  const root = located[0]!.root;
  const other = located.find((l) => l.root !== root);
  if (other) {
    throw invalidOption('dataset', `all inputs must be on one store (local disk or one S3 bucket); got ${root === '/' ? 'local paths' : root} and ${other.root === '/' ? 'local paths' : other.root}`);
  }
  const parsed: Arg[] = [];
  for (let i = 0; i < args.length; i++) parsed.push(await classify(args[i]!, root, located[i]!.segments));
  const base = commonPrefix(parsed.map((p) => p.segments));
  const baseUri = root === '/' ? `/${base.join('/')}` : `${root}/${base.join('/')}`;
  const store = await openStore(baseUri, opts.storeOptions);
  try {
    const objects: ObjectInfo[] = [];
    const seen = new Set<string>();
    const add = (o: ObjectInfo): void => {
      if (seen.has(o.key)) return;
      seen.add(o.key);
      objects.push(o);
    };
    const readText = async (key: string): Promise<string> => new TextDecoder().decode(await store.get(key));
    for (let i = 0; i < parsed.length; i++) {
      const a = parsed[i]!;
      const rel = a.segments.slice(base.length).join('/');
      if (a.mode === 'file') {
        const name = located[i]!.segments.at(-1)!;
        const key = rel ? `${rel}/${name}` : name;
        if (!formatOfKey(key)) throw new GpufeedError(ErrorCodes.BAD_INPUT, `${a.text}: not a .parquet or .arrow/.feather/.ipc file`, { path: a.text });
        const info = await store.head(key);
        if (!info) throw new GpufeedError(ErrorCodes.BAD_INPUT, `${a.text}: no such file`, { path: a.text });
        add(info);
        continue;
      }
      const listed = await store.list(rel ? `${rel}/` : '');
      const under = (k: string): string => (rel ? k.slice(rel.length + 1) : k);
      let inArg = listed.filter((o) => (rel ? o.key.startsWith(`${rel}/`) : true));
      // The manifest itself (at the base) is not an input.
      inArg = inArg.filter((o) => o.key !== MANIFEST_FILE);
      if (a.mode === 'glob') {
        const matches = globMatcher(a.pattern);
        inArg = inArg.filter((o) => matches(under(o.key)));
      }
      const byRel = new Map(inArg.map((o) => [under(o.key), o]));
      const choice = await chooseFolderFiles([...byRel.keys()], (p) => formatOfKey(p) !== undefined, (p) => readText(rel ? `${rel}/${p}` : p), opts.split, a.text);
      if (choice.kept.length === 0) {
        throw new GpufeedError(ErrorCodes.BAD_INPUT, `${a.text}: no .parquet or .arrow files to index${a.mode === 'glob' ? ' match' : ''}`, { path: a.text });
      }
      if (choice.skipped.length > 0) opts.warn?.(describeSkipped(a.text, choice.skipped));
      for (const p of choice.kept) add(byRel.get(p)!);
    }
    return { store, objects };
  } catch (err) {
    await store.close();
    throw err;
  }
}
