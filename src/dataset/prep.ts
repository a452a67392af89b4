// `gpufeed prep`: streams inputs (JSONL, CSV, Parquet, Arrow) into shards of a target size,
// encoded by a worker pool, written through the Store, manifest last.
//
// Memory stays bounded: rows are read in batches, one shard accumulates in columnar buffers, and
// at most `2 x workers` finished shards wait to be encoded or written.
import { randomBytes } from 'node:crypto';
import { ErrorCodes, GpufeedError } from '../errors.js';
import { openStore } from '../storage/index.js';
import type { Store } from '../storage/store.js';
import { ProgressLine } from '../util/progress.js';
import { ColumnBuilder } from './column-builder.js';
import { createShardEncoder, type ShardEncoder } from './encode-pool.js';
import type { EncodedShardResult } from './encode-shard.js';
import type { ShardColumns } from '../formats/column-data.js';
import { applyHints, inferSchema } from './infer.js';
import { csvCellValue, csvGuess } from './inputs/csv.js';
import { openInput, resolveInputs } from './inputs/resolve.js';
import type { InputFile, InputReader, RowBatch } from './inputs/source.js';
import { writeManifest } from './manifest.js';
import { prepareOutput, removeObject, SHARDS_DIR } from './output.js';
import { listImageFolder } from './inputs/image-folder.js';
import { resolvePrepOptions, type PrepOptions, type ResolvedPrepOptions } from './prep-options.js';
import type { RowRef } from './row-ref.js';
import { MANIFEST_FORMAT, MANIFEST_VERSION, type ColumnSpec, type ManifestV1, type ShardEntry } from './types.js';

export type { PrepOptions } from './prep-options.js';

export interface PrepStats {
  rows: number;
  shards: number;
  bytes: number;
  seconds: number;
}

/** Converts `inputs` into a dataset at `options.out`; resolves to the manifest written. */
export async function prepDataset(inputs: string[], options: PrepOptions, onStats?: (s: PrepStats) => void): Promise<ManifestV1> {
  const started = Date.now();
  const opts = resolvePrepOptions(options);
  const files = opts.images ? await imageFolderInputs(inputs, opts) : await resolveInputs(inputs, opts);
  const store = await openStore(opts.out, opts.storeOptions);
  try {
    const plan = await prepareOutput(store, opts.overwrite);
    const run = randomBytes(4).toString('hex');
    const written: string[] = [];
    const encoder = createShardEncoder(opts.workers);
    let manifest: ManifestV1;
    try {
      manifest = await writeShards(files, opts, store, encoder, run, written);
      if (files[0]?.images) manifest.classes = files[0].images.classes;
    } catch (err) {
      // Nothing of the old dataset was touched; remove what this run wrote.
      await Promise.allSettled(written.map((k) => removeObject(store, k)));
      throw err;
    } finally {
      await encoder.close();
    }
    try {
      await writeManifest(store, manifest);
    } catch (err) {
      // No manifest, no dataset: the old one (if any) is still whole; this run's shards go.
      await Promise.allSettled(written.map((k) => removeObject(store, k)));
      throw err;
    }
    const keep = new Set(manifest.shards.map((s) => s.path));
    for (const key of plan.oldKeys) if (!keep.has(key)) await removeObject(store, key).catch(() => false);
    onStats?.({ rows: manifest.rows, shards: manifest.shards.length, bytes: manifest.bytes, seconds: (Date.now() - started) / 1000 });
    return manifest;
  } finally {
    await store.close();
  }
}

async function writeShards(files: InputFile[], opts: ResolvedPrepOptions, store: Store, encoder: ShardEncoder, run: string, written: string[]): Promise<ManifestV1> {
  const progress = new ProgressLine('prep', process.stderr, opts.progress);
  const inputTotal = files.reduce((a, f) => a + f.size, 0);
  let inputDone = 0;
  let rows = 0;
  let bytesOut = 0;
  const entries: ShardEntry[] = [];
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  const maxInFlight = Math.max(2, encoder.concurrency * 2);

  const ext = opts.format === 'arrow' ? 'arrow' : 'parquet';
  let schema: ColumnSpec[] | undefined;
  let builders: ColumnBuilder[] = [];
  let shardRows = 0;
  let shardIndex = 0;

  const flush = async (): Promise<void> => {
    if (!schema || shardRows === 0) return;
    const shard: ShardColumns = { rows: shardRows, columns: builders.map((b) => b.finish()) };
    shardRows = 0;
    const index = shardIndex++;
    const key = `${SHARDS_DIR}/${run}-${String(index).padStart(5, '0')}.${ext}`;
    const job = { schema, shard, format: opts.format, compression: opts.compression, targetBatchBytes: opts.targetBatchBytes, maxBatchRows: opts.maxBatchRows };
    const task = (async () => {
      const result: EncodedShardResult = await encoder.encode(job);
      written.push(key);
      await store.put(key, result.bytes);
      const entry: ShardEntry = { path: key, format: opts.format, rows: result.rows, bytes: result.bytes.byteLength, hash: result.hash, layout: result.layout };
      if (result.maxRowBytes) entry.maxRowBytes = result.maxRowBytes;
      if (result.pieceValues) entry.pieceValues = result.pieceValues;
      entries[index] = entry;
      bytesOut += entry.bytes;
    })().catch((err: unknown) => {
      failure ??= err;
    });
    inFlight.add(task);
    void task.finally(() => inFlight.delete(task));
    // Back-pressure: wait while too many shards are being encoded or written.
    while (inFlight.size >= maxInFlight) await Promise.race(inFlight);
    if (failure) throw failure;
  };

  try {
    let first = true;
    for (const file of files) {
      const reader = openInput(file);
      const unit = reader.unit;
      let batches: AsyncIterable<RowBatch> = reader.batches();
      if (first) {
        first = false;
        const r = await decideSchema(reader, opts);
        schema = r.schema;
        batches = r.batches;
        builders = schema.map((c) => new ColumnBuilder(c));
      }
      const cols = schema!;
      const isCsv = file.kind === 'csv';
      const known = new Set(cols.map((c) => c.name));
      const at: RowRef = { file: file.path, row: 0, unit };
      for await (const batch of batches) {
        for (let i = 0; i < batch.rows.length; i++) {
          const row = batch.rows[i]!;
          at.row = batch.refs[i]!;
          for (const key in row) {
            if (!known.has(key)) {
              throw new GpufeedError(ErrorCodes.BAD_INPUT, `${file.path}, ${unit} ${at.row}: column ${JSON.stringify(key)} is not in the schema (${cols.map((c) => c.name).join(', ')}), which comes from ${files[0]!.path}`, { path: file.path, row: at.row, column: key });
            }
          }
          for (let c = 0; c < cols.length; c++) {
            const col = cols[c]!;
            const raw = row[col.name];
            builders[c]!.append(isCsv ? csvCellValue(raw, col) : raw, at);
          }
          shardRows++;
          rows++;
          if (shardBytes(builders) >= opts.shardSize) await flush();
        }
        progress.update({ rows, bytes: bytesOut, shards: entries.length, inputDone: inputDone + reader.bytesRead, inputTotal });
      }
      inputDone += file.size;
    }
    await flush();
    await Promise.all(inFlight);
    if (failure) throw failure;
  } catch (err) {
    await Promise.allSettled(inFlight);
    throw err;
  } finally {
    progress.update({ rows, bytes: bytesOut, shards: entries.length, inputDone, inputTotal }, true);
    progress.done();
  }
  if (!schema) throw new GpufeedError(ErrorCodes.INTERNAL, 'no schema after reading inputs');
  if (entries.length === 0) {
    // No rows at all: still a valid (empty) dataset with one empty shard carrying the schema.
    await flushEmpty(schema, opts, store, encoder, run, written, entries);
  }
  return {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    schema,
    shards: entries,
    rows: entries.reduce((a, s) => a + s.rows, 0),
    bytes: entries.reduce((a, s) => a + s.bytes, 0),
    createdBy: 'gpufeed prep',
    createdAt: new Date().toISOString(),
  };
}

/** prep --images: the one input folder, listed (inputs/image-folder.ts). */
async function imageFolderInputs(inputs: string[], opts: ResolvedPrepOptions): Promise<InputFile[]> {
  if (inputs.length !== 1) throw new GpufeedError(ErrorCodes.INVALID_OPTION, `option images: give one image folder (ROOT/<class>/<image>), got ${inputs.length} inputs`, { option: 'images' });
  const warn = opts.warn ?? ((line: string) => process.stderr.write(`gpufeed prep: ${line}\n`));
  const listing = await listImageFolder(inputs[0]!, warn);
  return [{ path: inputs[0]!, kind: 'images', gzip: false, size: listing.files.reduce((a, f) => a + f.size, 0), images: listing }];
}

function shardBytes(builders: ColumnBuilder[]): number {
  let n = 0;
  for (const b of builders) n += b.bytes;
  return n;
}

async function flushEmpty(schema: ColumnSpec[], opts: ResolvedPrepOptions, store: Store, encoder: ShardEncoder, run: string, written: string[], entries: ShardEntry[]): Promise<void> {
  const shard: ShardColumns = { rows: 0, columns: schema.map((c) => new ColumnBuilder(c).finish()) };
  const key = `${SHARDS_DIR}/${run}-00000.${opts.format === 'arrow' ? 'arrow' : 'parquet'}`;
  const result = await encoder.encode({ schema, shard, format: opts.format, compression: opts.compression });
  written.push(key);
  await store.put(key, result.bytes);
  entries.push({ path: key, format: opts.format, rows: 0, bytes: result.bytes.byteLength, hash: result.hash, layout: result.layout });
}

/**
 * The schema: a Parquet/Arrow first input's own (with hints applied), or inferred from the first
 * `sampleRows` rows of a JSONL/CSV first input. Returns batches that replay the sampled rows
 * before the rest, so nothing is read twice.
 */
async function decideSchema(reader: InputReader, opts: ResolvedPrepOptions): Promise<{ schema: ColumnSpec[]; batches: AsyncIterable<RowBatch> }> {
  const hints = { shapes: opts.shapes, types: opts.types, nullable: opts.nullable };
  const declared = await reader.declaredColumns();
  if (declared) return { schema: applyHints(declared, hints, reader.file.path), batches: reader.batches() };
  const it = reader.batches()[Symbol.asyncIterator]();
  const buffered: RowBatch[] = [];
  const sample: Record<string, unknown>[] = [];
  const isCsv = reader.file.kind === 'csv';
  while (sample.length < opts.sampleRows) {
    const next = await it.next();
    if (next.done) break;
    buffered.push(next.value);
    for (const row of next.value.rows) {
      if (sample.length >= opts.sampleRows) break;
      if (isCsv) {
        const guessed: Record<string, unknown> = {};
        for (const k in row) guessed[k] = csvGuess(row[k] as string | null);
        sample.push(guessed);
      } else sample.push(row);
    }
  }
  if (sample.length === 0) {
    throw new GpufeedError(ErrorCodes.BAD_INPUT, `${reader.file.path}: no rows to infer a schema from (the first input is empty)`, { path: reader.file.path });
  }
  const schema = inferSchema(sample, hints, reader.file.path, isCsv);
  async function* replay(): AsyncIterable<RowBatch> {
    yield* buffered;
    for (;;) {
      const next = await it.next();
      if (next.done) return;
      yield next.value;
    }
  }
  return { schema, batches: replay() };
}
