// `gpufeed index <inputs...> [--out DIR] [--overwrite]`: writes index.json for Parquet / Arrow IPC
// files (file or stream format) given as files, folders, globs or S3 prefixes. Layout and schema
// come from each file's footer (or, for an IPC stream, its message prefixes) through ranged reads.
// The content hash is the real sha256 of each file, so the manifest validates and caches and
// `gpufeed verify` work as for prepared datasets: that is the one whole-file read per object
// (streamed, never held in memory). Files must share one schema. Per-column maxRowBytes is not
// recorded (it would need a full decode); readers size variable-length slots without it.
// index.json goes to the inputs' common folder, or with --out elsewhere, naming that folder as its
// `base` (so read-only data can be indexed).
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { ErrorCodes, GpufeedError, invalidOption } from '../errors.js';
import { isS3Uri, openStore, type Store } from '../storage/index.js';
import type { ObjectInfo } from '../storage/store.js';
import { loadManifest, writeManifest } from '../dataset/manifest.js';
import { hashObject } from '../dataset/hash.js';
import { openDataset } from '../dataset/open-dataset.js';
import { parseColumnList, checkColumnSelection, type ColumnSelection } from '../dataset/column-selection.js';
import { formatOfKey, resolveIndexSources } from '../dataset/index-sources.js';
import { readIndexLayout } from '../dataset/index-layout.js';
import { applyIndexShapes } from '../dataset/index-shapes.js';
import { parseShapeSpec } from '../dataset/prep-options.js';
import type { RangeReader } from '../formats/range-reader.js';
import { MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_VERSION, type ColumnSpec, type ManifestV1, type ShardEntry } from '../dataset/types.js';
import { forEachBounded } from '../storage/for-each-bounded.js';
import { formatBytes } from '../util/bytes.js';
import { addStorageOptions, storageOptionsFrom, type StorageFlags } from './storage-options.js';

export { formatOfKey } from '../dataset/index-sources.js';

interface IndexFlags extends StorageFlags {
  out?: string;
  overwrite?: boolean;
  concurrency?: string;
  json?: boolean;
  split?: string;
  columns?: string[];
  drop?: string[];
  shape?: string[];
}

export interface IndexOptions {
  /** The objects to index (keys relative to the store), in order; default: every data file listed. */
  objects?: ObjectInfo[];
  /** Columns kept (--columns) or dropped (--drop). */
  select?: ColumnSelection;
  /** Fixed shapes declared for list columns, checked against the data (--shape). */
  shapes?: Record<string, number[]>;
}

/** Builds the manifest of the Parquet/Arrow objects in `store` from footers and streamed hashes. */
export async function indexDataset(store: Store, concurrency = 4, options: IndexOptions = {}): Promise<ManifestV1> {
  const objects = options.objects ?? (await store.list()).filter((o) => formatOfKey(o.key) !== undefined);
  if (objects.length === 0) {
    throw new GpufeedError(ErrorCodes.BAD_INPUT, `${store.uri}: no .parquet or .arrow files to index`, { path: store.uri });
  }
  const shards: ShardEntry[] = new Array(objects.length);
  const schemas: ColumnSpec[][] = new Array(objects.length);
  await forEachBounded(objects.length, concurrency, async (i) => {
    const obj = objects[i]!;
    const format = formatOfKey(obj.key)!;
    const where = `${store.uri}/${obj.key}`;
    // A copy in a plain Uint8Array: a small Buffer is a view into a shared pool, and the footer
    // decoders take `.buffer`.
    const read: RangeReader = async (offset, length) => new Uint8Array(await store.get(obj.key, { offset, length }));
    const info = await readIndexLayout(format, read, obj.size, where, options.select, { pieceChecksums: true });
    const columns = await applyIndexShapes(info.columns, options.shapes ?? {}, { format, read, size: obj.size, where });
    const hash = await hashObject(store, obj.key, obj.size);
    shards[i] = { path: obj.key, format, rows: info.rows, bytes: obj.size, hash, layout: info.layout };
    schemas[i] = columns;
  });
  const schema = schemas[0]!;
  const want = JSON.stringify(schema);
  schemas.forEach((s, i) => {
    if (JSON.stringify(s) !== want) {
      throw new GpufeedError(ErrorCodes.BAD_INPUT, `${store.uri}/${objects[i]!.key}: schema differs from ${objects[0]!.key}'s; every file of a dataset must have the same columns`, {
        path: `${store.uri}/${objects[i]!.key}`,
      });
    }
  });
  return {
    format: MANIFEST_FORMAT, version: MANIFEST_VERSION, schema, shards,
    rows: shards.reduce((a, s) => a + s.rows, 0), bytes: shards.reduce((a, s) => a + s.bytes, 0),
    createdBy: 'gpufeed index', createdAt: new Date().toISOString(),
  };
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function register(program: Command): void {
  const cmd = program
    .command('index')
    .description('Write index.json for Parquet / Arrow IPC files (file or stream format): files, folders, globs or S3 prefixes (footers via ranged reads; one streamed read per file for its sha256)')
    .argument('<inputs...>', 'files, folders, globs, file:// or s3://bucket/prefix (all on one store)')
    .option('-o, --out <dir>', 'write index.json here instead of beside the data; it names the data folder as its base')
    .option('--overwrite', 'replace an existing index.json', false)
    .option('--split <name>', 'index only the files of this Hugging Face split (train, validation, test, ...)')
    .option('--columns <a,b>', 'keep only these columns (repeatable)', collect)
    .option('--drop <c>', 'leave out these columns (comma-separated, repeatable)', collect)
    .option('--shape <col=dims>', 'declare a list column a fixed shape, e.g. input_ids=2048 (checked against every row; repeatable)', collect)
    .option('--concurrency <n>', 'files read at once', '4')
    .option('--json', 'print the manifest summary as JSON', false);
  addStorageOptions(cmd, { cache: false }).action(async (inputs: string[], o: IndexFlags) => {
    const concurrency = Number(o.concurrency ?? '4');
    if (!Number.isInteger(concurrency) || concurrency < 1) throw invalidOption('--concurrency', `must be an integer >= 1, got ${JSON.stringify(o.concurrency)}`);
    const select: ColumnSelection = {};
    const columns = parseColumnList(o.columns, 'columns');
    const drop = parseColumnList(o.drop, 'drop');
    if (columns) select.columns = columns;
    if (drop) select.drop = drop;
    checkColumnSelection(select);
    const shapes = Object.fromEntries((o.shape ?? []).map(parseShapeSpec));
    if (o.out !== undefined && o.out.length === 0) throw invalidOption('out', 'give the folder or URI to write index.json to');
    const storeOptions = storageOptionsFrom(o).store;
    const sources = await resolveIndexSources(inputs, { storeOptions, split: o.split, warn: (line) => process.stderr.write(`gpufeed index: ${line}\n`) });
    const data = sources.store;
    let target: Store | undefined;
    try {
      target = o.out === undefined ? data : await openStore(o.out, storeOptions);
      const separate = target.uri !== data.uri;
      if (separate && isS3Uri(target.uri) && !isS3Uri(data.uri)) {
        throw invalidOption('out', `${target.uri} is on S3 but the data is on local disk (${data.uri}); a manifest on S3 may only name an S3 base`);
      }
      if (!o.overwrite && (await target.head(MANIFEST_FILE))) {
        throw new GpufeedError(ErrorCodes.OUTPUT_NOT_EMPTY, `${target.uri}/${MANIFEST_FILE} already exists; pass --overwrite to replace it`, { path: `${target.uri}/${MANIFEST_FILE}` });
      }
      const built = await indexDataset(data, concurrency, { objects: sources.objects, select, shapes });
      // An absolute base: the manifest may be copied anywhere and still find its shards.
      const manifest: ManifestV1 = separate ? { ...built, base: baseOf(data) } : built;
      await writeManifest(target, manifest);
      // Read it back the way loaders will (through the base), so a manifest that does not validate,
      // or whose base does not lead to the shards, never goes unnoticed.
      if (separate) {
        const opened = await openDataset(target.uri, storeOptions);
        try {
          const first = manifest.shards[0]!;
          if ((await opened.shards.head(first.path))?.size !== first.bytes) {
            throw new GpufeedError(ErrorCodes.INTERNAL, `${target.uri}/${MANIFEST_FILE}: base ${manifest.base} does not lead to shard ${first.path}`, { path: target.uri });
          }
        } finally {
          await opened.shards.close();
        }
      } else await loadManifest(target);
      const summary = {
        uri: target.uri, ...(separate ? { base: manifest.base } : {}), shards: manifest.shards.length, rows: manifest.rows, bytes: manifest.bytes,
        columns: manifest.schema.map((c) => c.name),
      };
      if (o.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      else process.stdout.write(`wrote ${target.uri}/${MANIFEST_FILE}${separate ? ` (shards in ${manifest.base})` : ''}: ${summary.shards} files, ${summary.rows} rows, ${formatBytes(summary.bytes)}; columns ${summary.columns.join(', ')}\n`);
    } finally {
      if (target && target !== data) await target.close();
      await data.close();
    }
  });
}

/** The base a separate manifest records: an absolute folder path, or the s3:// URI. */
function baseOf(store: Store): string {
  return store.uri.startsWith('file://') ? fileURLToPath(store.uri) : store.uri;
}
