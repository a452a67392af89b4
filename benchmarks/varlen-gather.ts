// The decode workers' gather on one thread (`npm run bench`, section varlen; alone: `npx tsx
// benchmarks/varlen-gather.ts`): shuffled batches of rows from one Arrow shard into a slot, as
// fillSlot does it (runs planned per row, then read together), for a list<int32> column of
// documents of random lengths against a fixed [2048] int32 column holding the same tokens. Reports
// value bytes per CPU second of each and their ratio: the cost of variable length per byte.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeShard } from '../src/dataset/encode-shard.js';
import { MANIFEST_FORMAT, MANIFEST_VERSION, type ColumnSpec, type ManifestV1 } from '../src/dataset/types.js';
import type { ShardColumns } from '../src/formats/column-data.js';
import { ArrowTaskReads, closeArrowShard, openArrowShard, type CopyOps, type SlotTarget } from '../src/formats/arrow/load-unit.js';
import { computeBatchLayout } from '../src/pipeline/batch-layout.js';
import { buildRuns, readRun, runCount } from '../src/pipeline/row-runs.js';
import { SampleLocator } from '../src/pipeline/sample-locator.js';
import type { RowRun, ShardRef } from '../src/pipeline/decode-messages.js';
import { allocSlab, freeSlab, slabView, defaultReadMode, type ReadMode } from '../src/memory/index.js';

const ROW_TOKENS = 2048;

export interface GatherSide {
  /** Value bytes gathered per CPU second. */
  bytes_per_cpu_s: number;
  rows_per_cpu_s: number;
  batches: number;
}

export interface VarlenGatherBench {
  read: ReadMode;
  tokens: number;
  documents: number;
  list: GatherSide;
  fixed: GatherSide;
  /** list bytes/CPU-s over fixed bytes/CPU-s. */
  ratio: number;
}

function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

interface Side {
  manifest: ManifestV1;
  ref: ShardRef;
  rows: number;
  /** Rows per batch: about the same value bytes per batch on both sides. */
  batchRows: number;
}

async function writeSide(dir: string, name: string, schema: ColumnSpec[], shard: ShardColumns, batchRows: number): Promise<Side> {
  const r = encodeShard({ schema, shard, format: 'arrow' });
  const file = join(dir, `${name}.arrow`);
  await writeFile(file, r.bytes);
  const entry = { path: `${name}.arrow`, format: 'arrow' as const, rows: r.rows, bytes: r.bytes.byteLength, hash: r.hash, layout: r.layout, ...(r.maxRowBytes ? { maxRowBytes: r.maxRowBytes } : {}) };
  const manifest: ManifestV1 = { format: MANIFEST_FORMAT, version: MANIFEST_VERSION, schema, shards: [entry], rows: r.rows, bytes: entry.bytes, createdBy: 'gpufeed bench' };
  return { manifest, ref: { index: 0, name: entry.path, file, format: 'arrow', bytes: entry.bytes }, rows: r.rows, batchRows };
}

/** Gathers shuffled batches for `seconds` of CPU time; value bytes and rows per CPU second. */
function gatherSide(side: Side, read: ReadMode, seconds: number, seed: number): GatherSide {
  const { manifest } = side;
  const layout = computeBatchLayout(manifest, manifest.schema, side.batchRows);
  const slab = allocSlab(layout.slotBytes, { pin: false });
  const handle = openArrowShard(side.ref, read);
  try {
    const bytes = new Uint8Array(slabView(slab.id), 0, layout.slotBytes);
    const locator = new SampleLocator(manifest);
    const reads = new ArrowTaskReads();
    let scratch = new Uint8Array(64 * 1024);
    const ops: CopyOps = {
      bytesRead: 0,
      scratch(n) {
        if (scratch.length < n) scratch = new Uint8Array(Math.max(n, scratch.length * 2));
        return scratch.subarray(0, n);
      },
    };
    const order = Array.from({ length: side.rows }, (_, i) => i);
    const next = xorshift(seed);
    const run: RowRun = { shard: 0, unit: 0, row: 0, count: 0, slotRow: 0 };
    const region = layout.columns[0]!;
    let valueBytes = 0;
    let rows = 0;
    let batches = 0;
    const c0 = process.cpuUsage();
    let cpu = 0;
    // Bounded by count too: a shard's epoch at most 1,000 times.
    for (let pass = 0; pass < 1000 && cpu < seconds; pass++) {
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      for (let at = 0; at + side.batchRows <= order.length; at += side.batchRows) {
        const ids = order.slice(at, at + side.batchRows);
        const { runs } = buildRuns(ids, locator, manifest);
        const target: SlotTarget = { region, bytes, cursor: 0 };
        reads.clear();
        const n = runCount(runs);
        for (let k = 0; k < n; k++) reads.plan(handle, readRun(runs, k, run), target);
        reads.execute(slab.id, ops);
        valueBytes += region.offsetsOffset >= 0 ? target.cursor * region.elementBytes : ids.length * region.rowBytes;
        rows += ids.length;
        batches += 1;
      }
      const u = process.cpuUsage(c0);
      cpu = (u.user + u.system) / 1e6;
    }
    return { bytes_per_cpu_s: valueBytes / cpu, rows_per_cpu_s: rows / cpu, batches };
  } finally {
    closeArrowShard(handle);
    freeSlab(slab.id);
  }
}

/** List against fixed, alternately, best of `rounds` rounds of `seconds` CPU seconds each. */
export async function varlenGatherBench(opts: { tokens?: number; seconds?: number; rounds?: number; fixedBatchRows?: number; read?: ReadMode } = {}): Promise<VarlenGatherBench> {
  const tokens = opts.tokens ?? 8 << 20;
  const seconds = opts.seconds ?? 1;
  const rounds = opts.rounds ?? 3;
  const fixedBatchRows = opts.fixedBatchRows ?? 64;
  const read = opts.read ?? defaultReadMode();
  const next = xorshift(91);
  const lengths: number[] = [];
  let total = 0;
  // Mostly short documents, a long tail (as in the packing bench).
  while (total < tokens) {
    const n = next() < 0.85 ? 1 + Math.floor(next() * 1024) : 1 + Math.floor(next() * 5 * ROW_TOKENS);
    lengths.push(n);
    total += n;
  }
  const rowsFixed = Math.floor(total / ROW_TOKENS);
  const values = new Int32Array(total);
  for (let i = 0; i < total; i++) values[i] = (i * 2654435761) % 50257;
  const offsets = new Int32Array(lengths.length + 1);
  for (let i = 0; i < lengths.length; i++) offsets[i + 1] = offsets[i]! + lengths[i]!;
  const dir = await mkdtemp(join(tmpdir(), 'gpufeed-bench-varlen-'));
  try {
    const docRows = Math.max(1, Math.round((fixedBatchRows * ROW_TOKENS * lengths.length) / total));
    const list = await writeSide(dir, 'list', [{ name: 'tokens', dtype: 'int32', kind: 'list', nullable: false }], { rows: lengths.length, columns: [{ values, offsets, nullCount: 0 }] }, docRows);
    const fixed = await writeSide(dir, 'fixed', [{ name: 'tokens', dtype: 'int32', kind: 'fixed', shape: [ROW_TOKENS], nullable: false }], { rows: rowsFixed, columns: [{ values: values.subarray(0, rowsFixed * ROW_TOKENS), nullCount: 0 }] }, fixedBatchRows);
    let bestList: GatherSide | undefined;
    let bestFixed: GatherSide | undefined;
    for (let r = 0; r < rounds; r++) {
      const a = gatherSide(list, read, seconds, 7 + r);
      if (!bestList || a.bytes_per_cpu_s > bestList.bytes_per_cpu_s) bestList = a;
      const b = gatherSide(fixed, read, seconds, 7 + r);
      if (!bestFixed || b.bytes_per_cpu_s > bestFixed.bytes_per_cpu_s) bestFixed = b;
    }
    return { read, tokens: total, documents: lengths.length, list: bestList!, fixed: bestFixed!, ratio: bestList!.bytes_per_cpu_s / bestFixed!.bytes_per_cpu_s };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await varlenGatherBench({ seconds: Number(process.env.GPUFEED_BENCH_SECONDS ?? 1) });
  const mb = (x: number): string => `${(x / 1e6).toFixed(0)} MB`;
  process.stdout.write(`gather (${r.read}), one thread, shuffled rows: list<int32> ${r.documents} documents ${mb(r.list.bytes_per_cpu_s)}/CPU-s (${r.list.rows_per_cpu_s.toFixed(0)} rows); fixed [2048] ${mb(r.fixed.bytes_per_cpu_s)}/CPU-s; ratio ${r.ratio.toFixed(3)}\n`);
}
