// Decode worker logic. Each worker runs one long-lived task (runDecodeLoop) that schedules itself
// from the loader's control block: take a free slot, claim the next seq, compute that batch's ids
// from the plan, read and decode its rows into the slot, publish it. Runs inside a piscina worker
// (workers/decode.ts); attaches its own view of each slab by id.
import { performance } from 'node:perf_hooks';
import { ErrorCodes, GpufeedError, deserializeError, serializeError } from '../errors.js';
import { slabView, type ReadMode } from '../memory/index.js';
import type { BatchLayout } from './batch-layout.js';
import { readRun, runCount } from './row-runs.js';
import { ArrowTaskReads, closeArrowShard, openArrowShard, type ArrowShardHandle, type CopyOps, type SlotTarget } from '../formats/arrow/load-unit.js';
import type { ParquetShardHandle, SharedDecoded } from '../formats/parquet/load-unit.js';
import { RowGroupCache } from '../formats/parquet/row-group-cache.js';
import type { DecodeLoopResult, DecodeLoopTask, DecodeStats, LeaseReply, RowRun, ShardRef, WorkerMessage } from './decode-messages.js';
import { BUSY_DECODE, BUSY_SHARDS, ControlBlock, STAT_BATCHES, STAT_BUSY_PHASE, STAT_BUSY_SEQ, STAT_BUSY_SINCE, STAT_BYTES, STAT_DECODE_NS, STAT_READ_NS, STAT_ROWS, STAT_SHARD_WAIT_NS } from './control-block.js';
import { planMixtureRankEpoch, planRankEpoch, SharedWindows, type RankEpochPlan } from '../plan/index.js';
import { SampleLocator } from './sample-locator.js';
import { feedPlan } from '../plan/packing.js';
import { decodeOversize } from './oversize-batch.js';
import { buildRuns } from './row-runs.js';
import { checkFooterChecksum, checkOpenedShard, fileIdentity, pathIdentity, PieceVerifier, runsVerified, shardDecodeError, sharedPieceFlags, type DeferredPiece, type SharedPieceFlags } from './piece-check.js';
import type { ManifestV1 } from '../dataset/types.js';
import { decodeQuarantined, leaseFailure, QuarantineFlags, ShardFailure } from './quarantine.js';
import { startupMark } from './startup-trace.js';
import type { ImageStage } from '../transforms/image-stage.js';

// Everything above is loaded and evaluated by now (benchmarks/startup.ts).
startupMark('modules-loaded');
/** Marks this worker's first batch's phases once (startup-trace.ts). */
let firstBatchTraced = false;

// The Parquet reader (hyparquet and its codecs, gpufeed's page decoder) is imported when this
// worker first opens a Parquet shard: a worker over Arrow shards starts without loading it.
let parquetUnit: typeof import('../formats/parquet/load-unit.js') | undefined;

/** The Parquet unit, once a Parquet shard was opened (every Parquet handle comes from openHandle). */
function parquet(): typeof import('../formats/parquet/load-unit.js') {
  if (!parquetUnit) throw new GpufeedError(ErrorCodes.INTERNAL, 'a Parquet shard is used before the Parquet reader was loaded');
  return parquetUnit;
}

type Handle = { kind: 'arrow'; h: ArrowShardHandle } | { kind: 'parquet'; h: ParquetShardHandle };
/**
 * `users`: tasks holding the handle. A task plans reads by fd and issues them later, so a file in
 * use is never closed (its fd could be reused by another open). `used`: when a task last took it
 * (a counter), so the least recently used is closed first.
 */
type OpenShard = { handle: Handle; users: number; identity: string; used: number };

/** What a task checks its shards against: the manifest, and whether piece checksums are verified. */
interface ShardChecks {
  manifest: ManifestV1;
  verifyPieces: boolean;
  /** Pieces already verified by any of the loader's workers. */
  shared?: SharedPieceFlags;
  /**
   * Shards (index and file identity) this task has checked against its manifest, oldest first:
   * a shuffled epoch reopens shards often (a worker keeps few open). Per task, so per manifest.
   */
  checkedFiles: Set<string>;
}

// This worker's verified pieces, across its tasks and its shards' reopenings.
const pieces = new PieceVerifier();

// Open shard files, most recently used last. Bounded so a long shuffled epoch never runs out of
// fds, and small because a mapped shard's touched pages count in RSS until it is unmapped: a
// window shuffle keeps a few shards live per worker, so a handful of open shards is enough and
// memory does not grow with the dataset. Exceeded only while the batch in progress holds more.
// Recency is a counter on each entry, not the map's order: a hit changes no map, so a batch that
// alternates between shards allocates nothing here (a delete and set per hit made garbage that
// lived long enough to reach the old generation, where it piled up between full collections).
// The bound is per stream of a mixture (up to MAX_KEPT_OPEN): each stream's window keeps its own
// few shards live, and trimming a 3-stream mixture to 4 between batches reopened (stat, open,
// map, header, unmap) a shard most batches, the largest cost of a packed mixture
// (benchmarks/packing.ts: 0.4 to 0.8 opens per batch of 14 documents).
const MAX_OPEN_SHARDS = 4;
const MAX_KEPT_OPEN = 16;
let keepOpen = MAX_OPEN_SHARDS;
const open = new Map<string, OpenShard>();
let useClock = 0;

function closeHandle(handle: Handle): void {
  if (handle.kind === 'arrow') closeArrowShard(handle.h);
  else parquet().closeParquetShard(handle.h);
}

function trimOpen(max = keepOpen): void {
  while (open.size > max) {
    let oldestKey: string | undefined;
    let oldest: OpenShard | undefined;
    for (const [key, o] of open) {
      if (o.users === 0 && (!oldest || o.used < oldest.used)) {
        oldestKey = key;
        oldest = o;
      }
    }
    if (!oldest) return;
    open.delete(oldestKey!);
    closeHandle(oldest.handle);
  }
}

/** Opens a shard file; the format's open checks its size against the manifest. */
function openHandle(ref: ShardRef, read: ReadMode): Handle {
  try {
    return ref.format === 'arrow' ? { kind: 'arrow', h: openArrowShard(ref, read) } : { kind: 'parquet', h: parquet().openParquetShard(ref) };
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new GpufeedError(ErrorCodes.SHARD_MISSING, `shard ${ref.name} is missing: ${ref.file} does not exist`, { shard: ref.name, path: ref.file });
    }
    if (code === 'EISDIR') throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${ref.name}: ${ref.file} is not a file`, { shard: ref.name, path: ref.file });
    throw err;
  }
}

const MAX_CHECKED_FILES = 4096;

/**
 * Opens a shard and checks the manifest against the file before any of its rows is read; a shard
 * that fails is closed again and the error names it.
 */
async function openChecked(ref: ShardRef, read: ReadMode, checks: ShardChecks): Promise<OpenShard> {
  const entry = checks.manifest.shards[ref.index];
  if (!entry) throw new GpufeedError(ErrorCodes.INTERNAL, `no manifest entry for shard ${ref.index}`);
  // The same identity (device, inode, size, mtime) is the same file, checked already: a shuffled
  // epoch reopens shards often (a worker keeps few open).
  const checked = checks.checkedFiles;
  const before = pathIdentity(ref.file);
  if (checks.verifyPieces && !(before !== undefined && checked.has(`${ref.index}\0${before}`))) {
    try {
      await checkFooterChecksum(ref, entry);
    } catch (err) {
      throw shardDecodeError(err, ref, 'the footer');
    }
  }
  if (ref.format === 'parquet') parquetUnit ??= await import('../formats/parquet/load-unit.js');
  const handle = openHandle(ref, read);
  try {
    const identity = fileIdentity(handle.h.fd);
    const checkedKey = `${ref.index}\0${identity}`;
    if (!checked.has(checkedKey)) {
      await checkOpenedShard(handle.h.fd, ref, entry, checks.manifest.schema, checks.verifyPieces);
      if (checked.size >= MAX_CHECKED_FILES) checked.delete(checked.values().next().value!);
      checked.add(checkedKey);
    }
    if (checks.verifyPieces && handle.kind === 'arrow' && entry.layout.kind === 'arrow' && entry.layout.pieceHash !== undefined) {
      handle.h.dictionaryChecks = new Map((entry.layout.dictionaries ?? []).map((d) => [d.offset, d.crc32]));
    }
    return { handle, users: 0, identity, used: 0 };
  } catch (err) {
    closeHandle(handle);
    throw shardDecodeError(err, ref, 'the footer');
  }
}

/** Opens (or reuses) a shard for a task; the task gives it back with releaseHandles. Once per shard per task. */
async function handleFor(ref: ShardRef, held: OpenShard[], read: ReadMode, checks: ShardChecks): Promise<OpenShard> {
  const key = `${ref.file}\0${ref.bytes}\0${read}`;
  let o = open.get(key);
  if (!o) {
    o = await openChecked(ref, read, checks);
    if (!firstBatchTraced) startupMark('shard-opened');
    open.set(key, o);
  }
  o.used = ++useClock;
  if (!held.includes(o)) {
    o.users += 1;
    held.push(o);
  }
  trimOpen();
  return o;
}

/** Index of shard `index` in a task's refs (a loop: a closure per call would be garbage per run). */
function refAt(shards: readonly ShardRef[], index: number): number {
  for (let i = 0; i < shards.length; i++) if (shards[i]!.index === index) return i;
  return -1;
}

function releaseHandles(held: OpenShard[]): void {
  for (const o of held) o.users -= 1;
  trimOpen();
}

let scratchBuf = new Uint8Array(64 * 1024);

const arrowReads = new ArrowTaskReads();
/** Record batches the slot being filled needs that another worker was hashing (checked before the slot is published). */
const deferredPieces: DeferredPiece[] = [];
const run: RowRun = { shard: 0, unit: 0, row: 0, count: 0, slotRow: 0 };

/**
 * Reads and decodes `rows` rows (runs) from `shards` into slab `slabId`. `needs` (bytes of every
 * variable-length column) is set when some column's rows did not fit its region: then the slot
 * holds complete offsets but not all values, and the batch must be decoded again (oversize-batch.ts).
 */
async function fillSlot(slabId: number, layout: BatchLayout, rows: number, shards: readonly ShardRef[], runs: Float64Array, read: ReadMode, checks: ShardChecks, shared?: SharedDecoded): Promise<DecodeStats & { needs?: Record<string, number> }> {
  const held: OpenShard[] = [];
  try {
    const t0 = performance.now();
    const view = slabView(slabId);
    if (view.byteLength < layout.slotBytes) throw new GpufeedError(ErrorCodes.INTERNAL, `slab ${slabId} has ${view.byteLength} bytes, the layout needs ${layout.slotBytes}`);
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
    const n = runCount(runs);
    arrowReads.clear();
    // Each shard's handle once per batch (a shuffled batch's runs alternate between its shards).
    const handles: (OpenShard | undefined)[] = new Array(shards.length);
    let lastShard = -1;
    let shard: OpenShard | undefined;
    let ref: ShardRef | undefined;
    const columnNames = layout.columns.map((c) => c.name);
    // Pieces all verified already (the steady state): no per-run checks, a leaner loop.
    const verify = checks.verifyPieces && !(checks.shared && runsVerified(runs, checks.shared));
    // The planned Arrow reads, done: at the end, and before a Parquet run (a mixture of both
    // formats), which writes at the columns' cursors at once, so each run's rows and
    // variable-length values stay in slot order.
    const flushArrow = (): void => {
      if (arrowReads.empty) return;
      const r0 = performance.now();
      try {
        arrowReads.execute(slabId, ops);
      } catch (err) {
        throw shardDecodeError(err, shards[0]!, `a record batch (of shards ${shards.map((s) => s.name).join(', ')})`);
      }
      arrowReads.clear();
      readMs += performance.now() - r0;
    };
    for (let i = 0; i < n; i++) {
      readRun(runs, i, run);
      if (run.shard !== lastShard || !shard) {
        const k = refAt(shards, run.shard);
        if (k < 0) throw new GpufeedError(ErrorCodes.INTERNAL, `run names shard ${run.shard}, which the batch does not carry`);
        ref = shards[k]!;
        shard = handles[k] ??= await handleFor(ref, held, read, checks);
        lastShard = run.shard;
      }
      const handle = shard.handle;
      const entry = checks.manifest.shards[ref!.index]!;
      // Each piece's checksum before any of its rows is planned or decoded.
      if (handle.kind === 'arrow') {
        if (verify) pieces.arrowBatch(handle.h.fd, shard.identity, ref!, entry, run.unit, checks.shared, handle.h.mapId, deferredPieces);
        // Arrow runs are only planned here and read together below, a few native calls per batch.
        try {
          for (const t of targets) arrowReads.plan(handle.h, run, t);
        } catch (err) {
          throw shardDecodeError(err, ref!, `record batch ${run.unit}`);
        }
      } else {
        if (verify) pieces.parquetChunks(handle.h.fd, shard.identity, ref!, entry, handle.h.metadata, run.unit, columnNames, checks.shared);
        flushArrow();
        try {
          await parquet().copyParquetRun(handle.h, run, targets, ops, shared);
        } catch (err) {
          throw shardDecodeError(err, ref!, `row group ${run.unit} (columns ${columnNames.join(', ')})`);
        }
      }
    }
    flushArrow();
    if (deferredPieces.length) pieces.settleDeferred(deferredPieces, checks.shared);
    // Variable-length columns: an empty batch still has a valid offsets[0].
    for (const t of targets) {
      if (t.region.offsetsOffset >= 0 && rows === 0) new Int32Array(bytes.buffer, bytes.byteOffset + t.region.offsetsOffset, 1)[0] = 0;
    }
    const total = performance.now() - t0;
    const stats = { rows, bytesRead: ops.bytesRead, readNs: Math.round(readMs * 1e6), decodeNs: Math.round((total - readMs) * 1e6) };
    const varTargets = targets.filter((t) => t.region.offsetsOffset >= 0);
    if (varTargets.some((t) => t.cursor * t.region.elementBytes > t.region.valuesBytes)) {
      return { ...stats, needs: Object.fromEntries(varTargets.map((t) => [t.region.name, t.cursor * t.region.elementBytes])) };
    }
    return stats;
  } catch (err) {
    // A piece's mismatch comes first: bad bytes may have failed to decode before their verdict came.
    if (deferredPieces.length) pieces.settleDeferred(deferredPieces, checks.shared);
    throw err;
  } finally {
    deferredPieces.length = 0;
    releaseHandles(held);
    arrowReads.clear();
  }
}

/**
 * Shard leases of a remote dataset, asked of the main thread (its shard source and lease table)
 * over the task's port. A worker keeps the leases of its last batch until the next batch's are
 * known, so consecutive batches on the same shards cost no round trip.
 */
class RemoteLeases {
  readonly #port: DecodeLoopTask['port'];
  readonly #control: ControlBlock;
  readonly #pending = new Map<number, { resolve: (paths: string[]) => void; reject: (e: unknown) => void }>();
  /** Shard -> local path, for the shards this worker holds a lease on. */
  readonly #held = new Map<number, string>();
  #nextId = 1;

  constructor(port: DecodeLoopTask['port'], control: ControlBlock) {
    this.#port = port;
    this.#control = control;
    port.on('message', (m: LeaseReply) => {
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      if ('error' in m) p.reject(deserializeError(m.error));
      else p.resolve(m.paths);
    });
  }

  /** Local paths of `shards`; leases this batch does not need are given back. */
  async acquire(shards: readonly number[]): Promise<string[]> {
    const missing = shards.filter((s) => !this.#held.has(s));
    const unused = [...this.#held.keys()].filter((s) => !shards.includes(s));
    if (unused.length) {
      for (const s of unused) this.#held.delete(s);
      this.#post({ type: 'release', shards: unused });
    }
    if (missing.length) {
      const id = this.#nextId++;
      const got = new Promise<string[]>((resolve, reject) => this.#pending.set(id, { resolve, reject }));
      this.#control.requestPosted();
      this.#post({ type: 'acquire', id, shards: missing });
      const paths = await got;
      missing.forEach((s, i) => this.#held.set(s, paths[i]!));
    }
    return shards.map((s) => this.#held.get(s)!);
  }

  releaseAll(): void {
    if (this.#held.size) this.#post({ type: 'release', shards: [...this.#held.keys()] });
    this.#held.clear();
  }

  #post(m: WorkerMessage): void {
    this.#port.postMessage(m);
  }
}

/** The long-lived task: decodes batches into free slots, in claim order, until stopped or past the end. */
export async function runDecodeLoop(task: DecodeLoopTask): Promise<DecodeLoopResult> {
  const control = new ControlBlock(task.control);
  const { manifest, world, order, stepsPerEpoch, startStep, endSeq, port, paths } = task;
  const read: ReadMode = task.read ?? 'pread';
  const layout = JSON.parse(task.layoutJson) as BatchLayout;
  const locator = new SampleLocator(manifest);
  const shardSizes = manifest.shards.map((s) => ({ rows: s.rows, bytes: s.bytes }));
  const stats = control.statsOf(task.worker);
  const remote = paths ? undefined : new RemoteLeases(port, control);
  const shared: SharedDecoded | undefined = task.rowGroupCache ? { cache: new RowGroupCache(task.rowGroupCache), stopped: () => control.stopped } : undefined;
  const checks: ShardChecks = { manifest, verifyPieces: task.verifyPieces ?? true, checkedFiles: new Set() };
  const quarantine = task.quarantine
    ? { flags: new QuarantineFlags(task.quarantine.flags, manifest), marks: new Uint8Array(task.quarantine.marks), posted: new Int32Array(task.quarantine.posted) }
    : undefined;
  if (task.pieceFlags) checks.shared = sharedPieceFlags(task.pieceFlags, manifest);
  const plans = new Map<number, RankEpochPlan>();
  // Image columns (transforms/): decoded from a staging read into the slot's tensor regions.
  // Imported only then: the stage loads sharp and libvips, which a worker without images does
  // not need (its start-up, test/integration/startup-imports.test.ts).
  const images: ImageStage | undefined = task.images
    ? new (await import('../transforms/image-stage.js')).ImageStage(task.images, manifest, control.batchSize)
    : undefined;
  const sharedWindows = task.sharedWindows ? new SharedWindows(task.sharedWindows) : undefined;
  keepOpen = Math.min(MAX_KEPT_OPEN, MAX_OPEN_SHARDS * Math.max(1, task.mixture?.length ?? task.feed?.mixture?.streams.length ?? 1));
  const planOf = (epoch: number): RankEpochPlan => {
    let p = plans.get(epoch);
    if (!p) {
      p = task.feed ? feedPlan(shardSizes, task.feed, order, epoch)
        : task.mixture ? planMixtureRankEpoch(task.mixture, world, order, epoch, undefined, sharedWindows) : planRankEpoch(shardSizes, world, order, epoch, sharedWindows);
      plans.set(epoch, p);
      for (const e of plans.keys()) if (e < epoch - 1) plans.delete(e);
    }
    return p;
  };
  let batches = 0;
  if (!firstBatchTraced) startupMark('loop-start');
  try {
    for (;;) {
      const slot = control.takeSlot();
      if (slot < 0) break;
      if (control.stopped) {
        control.free(slot);
        break;
      }
      const seq = control.claimSeq();
      if (seq >= endSeq) {
        control.free(slot);
        break;
      }
      let rows = 0;
      stats[STAT_BUSY_SEQ] = seq + 1;
      stats[STAT_BUSY_SINCE] = Date.now();
      stats[STAT_BUSY_PHASE] = BUSY_SHARDS;
      try {
        const flat = startStep + seq;
        const epoch = Math.floor(flat / stepsPerEpoch);
        const ids = planOf(epoch).batchIds(flat - epoch * stepsPerEpoch);
        if (!firstBatchTraced) startupMark('first-ids');
        if (ids.length > control.batchSize) throw new GpufeedError(ErrorCodes.INTERNAL, `step has ${ids.length} ids, the batch holds ${control.batchSize}`);
        control.idsOf(slot).set(ids);
        const slotSlabId = task.slabIds[slot]!;
        let shardWaitMs = 0;
        const refsOf = async (shards: number[]): Promise<ShardRef[]> => {
          const t0 = performance.now();
          stats[STAT_BUSY_SINCE] = Date.now();
          stats[STAT_BUSY_PHASE] = BUSY_SHARDS;
          let files: string[];
          try {
            files = remote ? await remote.acquire(shards) : shards.map((i) => paths![i]!);
          } catch (err) {
            throw quarantine ? leaseFailure(err, shards, manifest) : err;
          } finally {
            shardWaitMs += performance.now() - t0;
            stats[STAT_BUSY_SINCE] = Date.now();
            stats[STAT_BUSY_PHASE] = BUSY_DECODE;
          }
          return shards.map((index, i) => {
            const entry = manifest.shards[index]!;
            return { index, name: entry.path, file: files[i]!, format: entry.format, bytes: entry.bytes };
          });
        };
        const decode = async (source: readonly number[]): Promise<{ s: DecodeStats; oneOffSlab: number }> => {
          const { runs, shards } = buildRuns(source, locator, manifest);
          const refs = await refsOf(shards);
          // Image columns (transforms/image-stage.ts): their encoded bytes are read first, then decoded into the tensor regions.
          const fill = async (id: number, l: BatchLayout): Promise<Awaited<ReturnType<typeof fillSlot>>> => {
            if (!images) return fillSlot(id, l, source.length, refs, runs, read, checks, shared);
            const s0 = await fillSlot(id, images.readLayout(l), source.length, refs, runs, read, checks, shared);
            if (s0.needs) return s0;
            const i0 = performance.now();
            const bytes = await images.fill(id, l, source, epoch, (rawId, rawLayout) => fillSlot(rawId, rawLayout, source.length, refs, runs, read, checks, shared));
            return { ...s0, bytesRead: s0.bytesRead + bytes, decodeNs: s0.decodeNs + Math.round((performance.now() - i0) * 1e6) };
          };
          let s = await fill(slotSlabId, layout);
          let oneOffSlab = 0;
          if (s.needs) {
            const o = await decodeOversize(
              { control, seq, slotSlabId, layout, needs: s.needs, ids: source, limit: task.oneOffBytes, pin: task.pin, manifest, locator },
              fill,
            );
            s = o.result;
            oneOffSlab = o.slabId;
            // The layout first, then the slot: the consumer waits for this message when it sees the slab.
            port.postMessage({ type: 'oneOff', seq, slabId: o.slabId, bytes: o.bytes, layoutJson: JSON.stringify(o.layout) } satisfies WorkerMessage);
          }
          return { s, oneOffSlab };
        };
        let decoded: { s: DecodeStats; oneOffSlab: number };
        if (quarantine) {
          // onCorrupt 'skip' (quarantine.ts): bad pieces' rows are replaced, the rest decoded as usual.
          let posted = 0;
          const q = await decodeQuarantined(ids, locator, quarantine.flags, quarantine.marks.subarray(slot * control.batchSize, (slot + 1) * control.batchSize), {
            fill: decode,
            probe: async (shard, pieceIds) => {
              const { runs, shards } = buildRuns(pieceIds, locator, manifest);
              const held: OpenShard[] = [];
              let refs: ShardRef[];
              try {
                refs = await refsOf(shards);
                await handleFor(refs[0]!, held, read, checks);
              } catch (err) {
                throw err instanceof ShardFailure ? err : new ShardFailure(shard, err);
              } finally {
                releaseHandles(held);
              }
              await fillSlot(slotSlabId, layout, pieceIds.length, refs, runs, read, checks, shared);
            },
            zero: () => new Uint8Array(slabView(slotSlabId), 0, layout.slotBytes).fill(0),
            report: (event) => {
              posted += 1;
              port.postMessage({ type: 'quarantine', seq, event } satisfies WorkerMessage);
            },
          });
          quarantine.posted[slot] = posted;
          decoded = q.result ?? { s: { rows: ids.length, bytesRead: 0, readNs: 0, decodeNs: 0 }, oneOffSlab: 0 };
        } else {
          decoded = await decode(ids);
        }
        const { s, oneOffSlab } = decoded;
        rows = ids.length;
        stats[STAT_BATCHES]! += 1;
        stats[STAT_ROWS]! += s.rows;
        stats[STAT_BYTES]! += s.bytesRead;
        stats[STAT_READ_NS]! += s.readNs;
        stats[STAT_DECODE_NS]! += s.decodeNs;
        stats[STAT_SHARD_WAIT_NS]! += shardWaitMs * 1e6;
        stats[STAT_BUSY_SEQ] = 0;
        control.publish(slot, seq, rows, false, oneOffSlab);
        if (!firstBatchTraced) {
          firstBatchTraced = true;
          startupMark('first-published');
        }
      } catch (err) {
        // The consumer meets this error at this seq, not before: the message goes first, then the
        // slot is published as failed.
        port.postMessage({ type: 'error', seq, error: serializeError(err) } satisfies WorkerMessage);
        stats[STAT_BUSY_SEQ] = 0;
        control.publish(slot, seq, 0, true);
      }
      batches += 1;
    }
  } finally {
    remote?.releaseAll();
    images?.close();
    // The loop is over: close this thread's shard files and mappings (the thread may be torn down
    // next, and a descriptor or mapping left open would outlive it in the process).
    trimOpen(0);
  }
  return { batches };
}
