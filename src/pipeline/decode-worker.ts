// Decode worker logic: fills one batch slot from the shard files a task names. Runs inside a
// piscina worker (workers/decode.ts); attaches its own view of the slab by id.
import { performance } from 'node:perf_hooks';
import { ErrorCodes, GpufeedError, serializeError } from '../errors.js';
import { slabView } from '../memory/index.js';
import { loadNative } from '../memory/native.js';
import type { BatchLayout } from './batch-layout.js';
import { readRun, runCount } from './row-runs.js';
import { closeArrowShard, copyArrowRun, openArrowShard, type ArrowShardHandle, type CopyOps, type SlotTarget } from './arrow-unit.js';
import { closeParquetShard, copyParquetRun, openParquetShard, type ParquetShardHandle } from './parquet-unit.js';
import type { DecodeReply, DecodeTask, RowRun, ShardRef } from './decode-messages.js';

type Handle = { kind: 'arrow'; h: ArrowShardHandle } | { kind: 'parquet'; h: ParquetShardHandle };

// Open shard files, most recently used last. Bounded so a long shuffled epoch never runs out of fds.
const MAX_OPEN_SHARDS = 32;
const open = new Map<string, Handle>();

function handleFor(ref: ShardRef): Handle {
  const key = `${ref.file}\0${ref.bytes}`;
  const hit = open.get(key);
  if (hit) {
    open.delete(key);
    open.set(key, hit);
    return hit;
  }
  const handle: Handle = ref.format === 'arrow' ? { kind: 'arrow', h: openArrowShard(ref) } : { kind: 'parquet', h: openParquetShard(ref) };
  open.set(key, handle);
  if (open.size > MAX_OPEN_SHARDS) {
    const [oldKey, old] = open.entries().next().value as [string, Handle];
    open.delete(oldKey);
    if (old.kind === 'arrow') closeArrowShard(old.h);
    else closeParquetShard(old.h);
  }
  return handle;
}

let scratchBuf = new Uint8Array(64 * 1024);

// Parsed layouts by their JSON text: a loader's layout never changes, so this holds one or two.
const layouts = new Map<string, BatchLayout>();
function layoutOf(json: string): BatchLayout {
  let l = layouts.get(json);
  if (!l) {
    if (layouts.size > 8) layouts.clear();
    layouts.set(json, (l = JSON.parse(json) as BatchLayout));
  }
  return l;
}

const run: RowRun = { shard: 0, unit: 0, row: 0, count: 0, slotRow: 0 };

export async function decodeBatch(task: DecodeTask): Promise<DecodeReply> {
  try {
    const t0 = performance.now();
    const layout = layoutOf(task.layoutJson);
    const view = slabView(task.slabId);
    if (view.byteLength < layout.slotBytes) throw new GpufeedError(ErrorCodes.INTERNAL, `slab ${task.slabId} has ${view.byteLength} bytes, the layout needs ${layout.slotBytes}`);
    const bytes = new Uint8Array(view, 0, layout.slotBytes);
    // The addon's pread straight into the slab; the slab API's per-call validation (a native
    // lookup per call) is done once above, and the addon still bounds-checks every range.
    const native = loadNative();
    let readMs = 0;
    const ops: CopyOps = {
      bytesRead: 0,
      preadIntoSlot(fd, position, slotOffset, length, where) {
        const r0 = performance.now();
        const n = native.pread(fd, position, task.slabId, slotOffset, length);
        readMs += performance.now() - r0;
        if (n !== length) throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${where.name}: file ends before byte ${position + length} (read ${n} of ${length} bytes at ${position})`, { shard: where.name, path: where.file });
      },
      scratch(n) {
        if (scratchBuf.length < n) scratchBuf = new Uint8Array(Math.max(n, scratchBuf.length * 2));
        return scratchBuf.subarray(0, n);
      },
    };
    const targets: SlotTarget[] = layout.columns.map((region) => ({ region, bytes, cursor: 0 }));
    const n = runCount(task.runs);
    for (let i = 0; i < n; i++) {
      readRun(task.runs, i, run);
      const ref = task.shards.find((s) => s.index === run.shard);
      if (!ref) throw new GpufeedError(ErrorCodes.INTERNAL, `run names shard ${run.shard}, which the task does not carry`);
      const handle = handleFor(ref);
      if (handle.kind === 'arrow') for (const t of targets) copyArrowRun(handle.h, run, t, ops);
      else await copyParquetRun(handle.h, run, targets, ops);
    }
    // Variable-length columns: an empty batch still has a valid offsets[0].
    for (const t of targets) {
      if (t.region.offsetsOffset >= 0 && task.rows === 0) new Int32Array(bytes.buffer, bytes.byteOffset + t.region.offsetsOffset, 1)[0] = 0;
    }
    const total = performance.now() - t0;
    return {
      ok: true,
      stats: { rows: task.rows, bytesRead: ops.bytesRead, readNs: Math.round(readMs * 1e6), decodeNs: Math.round((total - readMs) * 1e6) },
    };
  } catch (err) {
    return { ok: false, error: serializeError(err) };
  }
}
