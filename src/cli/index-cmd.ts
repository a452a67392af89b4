// `gpufeed index <folder-or-prefix> [--overwrite]`: writes index.json for a folder or S3 prefix of
// plain Parquet / Arrow IPC files. Layout and schema come from each file's footer through ranged
// reads. The content hash is the real sha256 of each file, so the manifest validates and caches
// and `gpufeed verify` work as for prepared datasets: that is the one whole-file read per object
// (streamed, never held in memory). Files must share one schema. Per-column maxRowBytes is not
// recorded (it would need a full decode); readers size variable-length slots without it.
import type { Command } from 'commander';
import { ErrorCodes, GpufeedError, invalidOption } from '../errors.js';
import { openStore, type Store } from '../storage/index.js';
import { loadManifest, writeManifest } from '../dataset/manifest.js';
import { hashObject } from '../dataset/hash.js';
import { readArrowLayout } from '../dataset/formats/arrow.js';
import { readParquetLayout } from '../dataset/formats/parquet.js';
import type { RangeReader } from '../dataset/formats/range-reader.js';
import { MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_VERSION, type ColumnSpec, type ManifestV1, type ShardEntry, type ShardFormat } from '../dataset/types.js';
import { forEachBounded } from '../storage/for-each-bounded.js';
import { formatBytes } from '../util/bytes.js';
import { addStorageOptions, storageOptionsFrom, type StorageFlags } from './storage-options.js';

interface IndexFlags extends StorageFlags {
  overwrite?: boolean;
  concurrency?: string;
  json?: boolean;
}

export function formatOfKey(key: string): ShardFormat | undefined {
  if (/\.parquet$/i.test(key)) return 'parquet';
  if (/\.(arrow|feather|ipc)$/i.test(key)) return 'arrow';
  return undefined;
}

/** Builds the manifest of every Parquet/Arrow object in `store` from footers and streamed hashes. */
export async function indexDataset(store: Store, concurrency = 4): Promise<ManifestV1> {
  const objects = (await store.list()).filter((o) => formatOfKey(o.key) !== undefined);
  if (objects.length === 0) {
    throw new GpufeedError(ErrorCodes.BAD_INPUT, `${store.uri}: no .parquet or .arrow files to index`, { path: store.uri });
  }
  const shards: ShardEntry[] = new Array(objects.length);
  const schemas: ColumnSpec[][] = new Array(objects.length);
  await forEachBounded(objects.length, concurrency, async (i) => {
    const obj = objects[i]!;
    const format = formatOfKey(obj.key)!;
    const where = `${store.uri}/${obj.key}`;
    const read: RangeReader = (offset, length) => store.get(obj.key, { offset, length });
    const info = format === 'parquet' ? await readParquetLayout(read, obj.size, where) : await readArrowLayout(read, obj.size, where);
    const hash = await hashObject(store, obj.key, obj.size);
    shards[i] = { path: obj.key, format, rows: info.rows, bytes: obj.size, hash, layout: info.layout };
    schemas[i] = info.columns;
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

export function register(program: Command): void {
  const cmd = program
    .command('index')
    .description('Write index.json for a folder or S3 prefix of Parquet / Arrow IPC files (footers via ranged reads; one streamed read per file for its sha256)')
    .argument('<dataset>', 'folder, file:// or s3://bucket/prefix')
    .option('--overwrite', 'replace an existing index.json', false)
    .option('--concurrency <n>', 'files read at once', '4')
    .option('--json', 'print the manifest summary as JSON', false);
  addStorageOptions(cmd, { cache: false }).action(async (dataset: string, o: IndexFlags) => {
    const concurrency = Number(o.concurrency ?? '4');
    if (!Number.isInteger(concurrency) || concurrency < 1) throw invalidOption('--concurrency', `must be an integer >= 1, got ${JSON.stringify(o.concurrency)}`);
    const store = await openStore(dataset, storageOptionsFrom(o).store);
    try {
      if (!o.overwrite && (await store.head(MANIFEST_FILE))) {
        throw new GpufeedError(ErrorCodes.OUTPUT_NOT_EMPTY, `${store.uri}/${MANIFEST_FILE} already exists; pass --overwrite to replace it`, { path: `${store.uri}/${MANIFEST_FILE}` });
      }
      const manifest = await indexDataset(store, concurrency);
      await writeManifest(store, manifest);
      // Read it back the way loaders will, so a manifest that does not validate never goes unnoticed.
      await loadManifest(store);
      const summary = { uri: store.uri, shards: manifest.shards.length, rows: manifest.rows, bytes: manifest.bytes, columns: manifest.schema.map((c) => c.name) };
      if (o.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      else process.stdout.write(`wrote ${store.uri}/${MANIFEST_FILE}: ${summary.shards} files, ${summary.rows} rows, ${formatBytes(summary.bytes)}; columns ${summary.columns.join(', ')}\n`);
    } finally {
      await store.close();
    }
  });
}
