// A synthetic dataset for `gpufeed bench --demo` and tests: `input_ids` int32[seqLen] random token
// ids, `label` int64, `text` a short string. Built straight into columnar buffers and encoded on
// the main thread: no JSON, no workers, a few hundred MB in seconds.
import { ErrorCodes, GpufeedError, invalidOption } from '../errors.js';
import { openStore } from '../storage/index.js';
import { parseBytes } from '../util/bytes.js';
import { encodeShard } from './encode-shard.js';
import type { ShardColumns } from '../formats/column-data.js';
import { writeManifest } from './manifest.js';
import { prepareOutput, removeObject, SHARDS_DIR } from './output.js';
import { MANIFEST_FORMAT, MANIFEST_VERSION, type ColumnSpec, type ManifestV1, type ShardEntry, type ShardFormat } from './types.js';

export interface DemoOptions {
  rows: number;
  seqLen: number;
  format?: ShardFormat;
  /** Target shard size (bytes or `64MiB`). Default 64 MiB. */
  shardSize?: number | string;
  /** Token ids are drawn from [0, vocab). Default 50,257. */
  vocab?: number;
  /** label dtype. Default int64. */
  labelType?: 'int64' | 'int32';
  seed?: number;
  overwrite?: boolean;
}

export function demoSchema(seqLen: number, labelType: 'int64' | 'int32' = 'int64'): ColumnSpec[] {
  return [
    { name: 'input_ids', dtype: 'int32', kind: 'fixed', shape: [seqLen], nullable: false },
    { name: 'label', dtype: labelType, kind: 'scalar', nullable: false },
    { name: 'text', dtype: 'string', kind: 'bytes', nullable: false },
  ];
}

/** xorshift32: fast, deterministic from the seed, good enough for synthetic tokens. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

export async function makeDemoDataset(dir: string, options: DemoOptions): Promise<ManifestV1> {
  const { rows, seqLen } = options;
  if (!Number.isSafeInteger(rows) || rows < 0) throw invalidOption('rows', `must be an integer >= 0, got ${rows}`);
  if (!Number.isSafeInteger(seqLen) || seqLen < 1) throw invalidOption('seqLen', `must be an integer >= 1, got ${seqLen}`);
  const format = options.format ?? 'arrow';
  if (format !== 'arrow' && format !== 'parquet') throw invalidOption('format', `expected arrow or parquet, got ${JSON.stringify(format)}`);
  const shardSize = parseBytes(options.shardSize ?? 64 << 20, 'shardSize');
  if (shardSize < 1) throw invalidOption('shardSize', 'must be at least 1 byte');
  const vocab = options.vocab ?? 50_257;
  const labelType = options.labelType ?? 'int64';
  const schema = demoSchema(seqLen, labelType);
  const next = rng(options.seed ?? 1234);
  const rowBytes = seqLen * 4 + 8 + 16;
  const rowsPerShard = Math.max(1, Math.floor(shardSize / rowBytes));

  const store = await openStore(dir);
  const written: string[] = [];
  try {
    const plan = await prepareOutput(store, options.overwrite ?? false);
    const run = Math.floor(Math.random() * 0xffffffff).toString(16).padStart(8, '0');
    const shards: ShardEntry[] = [];
    const enc = new TextEncoder();
    try {
      for (let start = 0, index = 0; start < rows || (rows === 0 && index === 0); start += rowsPerShard, index++) {
        const n = Math.min(rowsPerShard, rows - start);
        const ids = new Int32Array(n * seqLen);
        for (let i = 0; i < ids.length; i++) ids[i] = next() % vocab;
        const labels = labelType === 'int64' ? new BigInt64Array(n) : new Int32Array(n);
        const texts: string[] = [];
        for (let r = 0; r < n; r++) {
          const label = next() % 10;
          labels[r] = (labelType === 'int64' ? BigInt(label) : label) as never;
          texts.push(`demo sample ${start + r} label ${label}`);
        }
        const textBytes = enc.encode(texts.join(''));
        const offsets = new Int32Array(n + 1);
        // The texts are ASCII: one byte per character.
        for (let r = 0, o = 0; r < n; r++) offsets[r + 1] = o += texts[r]!.length;
        const shard: ShardColumns = {
          rows: n,
          columns: [
            { values: ids, nullCount: 0 },
            { values: labels, nullCount: 0 },
            { values: textBytes, offsets, nullCount: 0 },
          ],
        };
        const result = encodeShard({ schema, shard, format });
        const key = `${SHARDS_DIR}/demo-${run}-${String(index).padStart(5, '0')}.${format}`;
        written.push(key);
        await store.put(key, result.bytes);
        const entry: ShardEntry = { path: key, format, rows: n, bytes: result.bytes.byteLength, hash: result.hash, layout: result.layout };
        if (result.maxRowBytes) entry.maxRowBytes = result.maxRowBytes;
        if (result.pieceValues) entry.pieceValues = result.pieceValues;
        shards.push(entry);
        if (rows === 0) break;
      }
    } catch (err) {
      await Promise.allSettled(written.map((k) => removeObject(store, k)));
      throw err;
    }
    const manifest: ManifestV1 = {
      format: MANIFEST_FORMAT, version: MANIFEST_VERSION, schema, shards,
      rows: shards.reduce((a, s) => a + s.rows, 0), bytes: shards.reduce((a, s) => a + s.bytes, 0),
      createdBy: 'gpufeed demo', createdAt: new Date().toISOString(),
    };
    await writeManifest(store, manifest);
    const keep = new Set(shards.map((s) => s.path));
    for (const key of plan.oldKeys) if (!keep.has(key)) await removeObject(store, key).catch(() => false);
    return manifest;
  } catch (err) {
    if (err instanceof GpufeedError) throw err;
    throw new GpufeedError(ErrorCodes.INTERNAL, `demo dataset at ${dir}: ${(err as Error).message}`, { path: dir }, { cause: err });
  } finally {
    await store.close();
  }
}
