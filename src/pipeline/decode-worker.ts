// Decode worker logic: fills one batch slot from the shard files a task names. Runs inside a
// piscina worker (workers/decode.ts); attaches its own view of the slab by id.
import { performance } from 'node:perf_hooks';
import { ErrorCodes, GpufeedError, serializeError } from '../errors.js';
import { slabView } from '../memory/index.js';
import type { BatchLayout } from './batch-layout.js';
import { readRun, runCount } from './row-runs.js';
import { ArrowTaskReads, closeArrowShard, openArrowShard, type ArrowShardHandle, type CopyOps, type SlotTarget } from './arrow-unit.js';
import { closeParquetShard, copyParquetRun, openParquetShard, type ParquetShardHandle } from './parquet-unit.js';
import type { DecodeReply, DecodeTask, RowRun, ShardRef } from './decode-messages.js';

type Handle = { kind: 'arrow'; h: ArrowShardHandle } | { kind: 'parquet'; h: ParquetShardHandle };
/** `users`: tasks holding the handle. A task plans reads by fd and issues them later, so a file in use is never closed (its fd could be reused by another open). */
type OpenShard = { handle: Handle; users: number };

// Open shard files, most recently used last. Bounded so a long shuffled epoch never runs out of
// fds; exceeded only while the tasks in progress hold more than that.
const MAX_OPEN_SHARDS = 32;
const open = new Map<string, OpenShard>();

function closeHandle(handle: Handle): void {
  if (handle.kind === 'arrow') closeArrowShard(handle.h);
  else closeParquetShard(handle.h);
}

function trimOpen(): void {
  for (const [key, o] of open) {
    if (open.size <= MAX_OPEN_SHARDS) return;
    if (o.users > 0) continue;
    open.delete(key);
    closeHandle(o.handle);
  }
}

/** Opens (or reuses) a shard for a task; the task gives it back with releaseHandles. */
function handleFor(ref: ShardRef, held: OpenShard[]): Handle {
  const key = `${ref.file}\0${ref.bytes}`;
  let o = open.get(key);
  if (o) open.delete(key);
  else o = { handle: ref.format === 'arrow' ? { kind: 'arrow', h: openArrowShard(ref) } : { kind: 'parquet', h: openParquetShard(ref) }, users: 0 };
  open.set(key, o);
  if (!held.includes(o)) {
    o.users += 1;
    held.push(o);
  }
  trimOpen();
  return o.handle;
}

function releaseHandles(held: OpenShard[]): void {
  for (const o of held) o.users -= 1;
  trimOpen();
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

// Per-task read lists, reused: a worker may hold more than one task at a time (piscina's
// concurrentTasksPerWorker), and a Parquet decode can yield between them.
const freeReads: ArrowTaskReads[] = [];

/**
 * piscina starts every task already in the worker's port at once (concurrentTasksPerWorker > 1),
 * each as far as its first await, and posts a task's reply a few microtasks after it returns. A
 * task that ran synchronously to the end would let the next one run in between, so its reply
 * would wait for the whole next batch. One macrotask turn first orders them: a task runs, its
 * reply goes out (microtasks drain between immediates), then the next task runs.
 */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export async function decodeBatch(task: DecodeTask): Promise<DecodeReply> {
  await nextTurn();
  const held: OpenShard[] = [];
  const arrowReads = freeReads.pop() ?? new ArrowTaskReads();
  const run: RowRun = { shard: 0, unit: 0, row: 0, count: 0, slotRow: 0 };
  try {
    const t0 = performance.now();
    const layout = layoutOf(task.layoutJson);
    const view = slabView(task.slabId);
    if (view.byteLength < layout.slotBytes) throw new GpufeedError(ErrorCodes.INTERNAL, `slab ${task.slabId} has ${view.byteLength} bytes, the layout needs ${layout.slotBytes}`);
    const bytes = new Uint8Array(view, 0, layout.slotBytes);
    let readMs = 0;
    const ops: CopyOps = {
      bytesRead: 0,
      scratch(n) {
        if (scratchBuf.length < n) scratchBuf = new Uint8Array(Math.max(n, scratchBuf.length * 2));
        return scratchBuf.subarray(0, n);
      },
    };
    const targets: SlotTarget[] = layout.columns.map((region) => ({ region, bytes, cursor: 0 }));
    const n = runCount(task.runs);
    arrowReads.clear();
    for (let i = 0; i < n; i++) {
      readRun(task.runs, i, run);
      const ref = task.shards.find((s) => s.index === run.shard);
      if (!ref) throw new GpufeedError(ErrorCodes.INTERNAL, `run names shard ${run.shard}, which the task does not carry`);
      const handle = handleFor(ref, held);
      // Arrow runs are only planned here and read together below, a few native calls per task.
      if (handle.kind === 'arrow') for (const t of targets) arrowReads.plan(handle.h, run, t);
      else await copyParquetRun(handle.h, run, targets, ops);
    }
    if (!arrowReads.empty) {
      const r0 = performance.now();
      arrowReads.execute(task.slabId, ops);
      readMs += performance.now() - r0;
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
  } finally {
    releaseHandles(held);
    arrowReads.clear();
    freeReads.push(arrowReads);
  }
}
