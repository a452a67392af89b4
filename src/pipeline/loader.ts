// The loader: plan -> shard source -> decode workers -> batch ring -> consumer. The decode workers
// schedule themselves (decode-worker.ts, control-block.ts): each takes a free slot, claims the next
// batch of the plan, computes its sample ids, decodes it and publishes it. The main thread only
// waits for the next batch in plan order, hands it out and frees its slot when it comes back; for a
// remote dataset it also answers the workers' shard lease requests and hints the prefetcher.
import { pathToFileURL } from 'node:url';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { Piscina } from 'piscina';
import { ErrorCodes, GpufeedError, deserializeError, invalidOption, reviveError, serializeError, type SerializedError } from '../errors.js';
import { loadManifest, selectColumns } from '../dataset/manifest.js';
import type { ColumnSpec, ManifestV1 } from '../dataset/types.js';
import { openStore, type Store, type StoreOptions } from '../storage/index.js';
import { workerEntry } from '../package-root.js';
import {
  layoutFor, planRankEpoch, resolveOrderOptions, resolveWorld, resumePoint, resumeState,
  type OrderOptions, type RankEpochPlan, type ResumeState, type ShuffleAlgo, type World,
} from '../plan/index.js';
import { createShardSource, InPlaceShardSource, type ShardSourceOptions } from './prefetcher.js';
import type { ShardSource } from './shard-source.js';
import { LeaseTable } from './lease-table.js';
import { computeBatchLayout, type BatchLayout } from './batch-layout.js';
import { BatchRing } from './batch-ring.js';
import { Batch } from './batch.js';
import { SampleLocator } from './sample-locator.js';
import { usableCpus } from './cpus.js';
import { defaultReadMode, type ReadMode } from '../memory/index.js';
import { LoaderStats, type LoaderStatsSnapshot } from './stats.js';
import { ControlBlock, FILLING, FREE, HELD, READY, STAT_BATCHES, STAT_BYTES, STAT_DECODE_NS, STAT_READ_NS, STAT_ROWS, STAT_SHARD_WAIT_NS } from './control-block.js';
import type { DecodeLoopResult, DecodeLoopTask, LeaseReply, WorkerMessage } from './decode-messages.js';
import { createRowGroupCache, DEFAULT_DECODE_CACHE_BYTES, planDecodeCache, type RowGroupCacheBuffers } from './row-group-cache.js';

export interface LoaderOptions extends StoreOptions, ShardSourceOptions {
  /** Rows per batch on this rank. */
  batchSize: number;
  /** Columns to load; all columns when absent. */
  columns?: string[];
  seed?: number;
  shuffle?: ShuffleAlgo;
  shuffleWindow?: number;
  partitions?: number;
  dropLast?: boolean;
  /** Fill the last step with repeated samples so every batch is full (not with dropLast). */
  pad?: boolean;
  /** Epochs to run; Infinity for an endless stream. Default 1. */
  epochs?: number;
  rank?: number;
  worldSize?: number;
  localRank?: number;
  localWorldSize?: number;
  /** Continue from a state returned by loader.state(). */
  resume?: ResumeState;
  /** Decode threads. Default: the CPUs this process may use. */
  workers?: number;
  /** Batch slots in the ring (batches decoded ahead plus those the consumer holds). Default 2 x workers + 2. */
  slots?: number;
  /** Page-lock batch memory (default true; GPUFEED_PIN=0 also turns it off). */
  pin?: boolean;
  /** Bytes of one row assumed for variable-length columns whose manifest has no maxRowBytes. */
  varRowBytes?: number;
  /**
   * How decode workers read Arrow shards: 'mmap' copies rows from a read-only mapping of the file
   * (one memcpy each), 'pread' reads them with pread. Default: GPUFEED_READ, else mmap on Linux.
   */
  read?: ReadMode;
  /**
   * Bytes of decoded Parquet columns the decode workers share (row-group-cache.ts): the cache takes
   * what the shuffle plan keeps live, up to this. Default 1 GiB.
   */
  decodeCacheBytes?: number;
}

/**
 * Default slots per worker (plus 2): each worker fills one slot while the batches it decoded
 * before wait for the consumer, so it keeps decoding while the main thread is blocked.
 */
const SLOTS_PER_WORKER = 2;

function checkPositiveInt(name: string, v: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw invalidOption(name, `must be an integer from 1 to ${max}, got ${String(v)}`);
  return v;
}

/** The main thread's end of one worker's port, with the shard leases it holds for that worker. */
interface WorkerLink {
  port: MessagePort;
  /** Shard -> leases held for the worker (released when it says so, or at close). */
  leases: Map<number, number>;
  /** Lease requests not yet answered: id -> answer now (used by close). */
  pending: Map<number, (reply: LeaseReply) => void>;
}

export class Loader implements AsyncIterable<Batch> {
  readonly uri: string;
  readonly manifest: ManifestV1;
  readonly columns: readonly ColumnSpec[];
  readonly world: World;
  readonly order: OrderOptions;
  readonly layout: BatchLayout;
  readonly ring: BatchRing;
  readonly workers: number;

  readonly #store: Store;
  readonly #source: ShardSource;
  readonly #leases: LeaseTable;
  readonly #layoutJson: string;
  readonly #read: ReadMode;
  /** Flat step from which the shard source was last hinted. */
  #hintedAt = -Infinity;
  readonly #pool: Piscina;
  readonly #locator: SampleLocator;
  readonly #shardSizes: { rows: number; bytes: number }[];
  /** Plans of the main thread, for the prefetch hints of remote datasets only. */
  readonly #plans = new Map<number, RankEpochPlan>();
  readonly #stats = new LoaderStats();
  readonly #control: ControlBlock;
  /** Decoded Parquet chunks shared by the workers (row-group-cache.ts), when the dataset has any to share. */
  readonly rowGroupCache: RowGroupCacheBuffers | undefined;
  /** Steps of every epoch on this rank (the same each epoch). */
  readonly #stepsPerEpoch: number;
  /** Flat step (epoch * stepsPerEpoch + step) of seq 0: the start or resume point. */
  readonly #startStep: number;
  /** First seq past the run; Infinity for endless epochs. */
  readonly #endSeq: number;
  /** Next seq to hand out. */
  #consumed = 0;
  /** Seq after the last batch delivered: what state() describes (a failed batch is not delivered). */
  #delivered = 0;
  /** Slots the consumer holds (handed out, not released). */
  #held = 0;
  #closed = false;
  #iterating = false;
  #loops: Promise<unknown>[] | undefined;
  #links: WorkerLink[] = [];
  #linksClosed = false;
  /** A worker loop that died (not a batch error: those arrive per seq). */
  #fatal: unknown;
  readonly #errors = new Map<number, SerializedError>();
  readonly #errorWaiters = new Map<number, (e: SerializedError) => void>();

  private constructor(uri: string, store: Store, manifest: ManifestV1, options: LoaderOptions) {
    this.uri = uri;
    this.#store = store;
    this.manifest = manifest;
    this.columns = selectColumns(manifest, options.columns);
    this.world = resolveWorld(
      Object.fromEntries(
        Object.entries({ rank: options.rank, worldSize: options.worldSize, localRank: options.localRank, localWorldSize: options.localWorldSize })
          .filter(([, v]) => v !== undefined),
      ) as Partial<World>,
    );
    const partial: Partial<OrderOptions> = { batchSize: options.batchSize };
    if (options.seed !== undefined) partial.seed = options.seed;
    if (options.shuffle !== undefined) partial.shuffle = options.shuffle;
    if (options.shuffleWindow !== undefined) partial.shuffleWindow = options.shuffleWindow;
    if (options.partitions !== undefined) partial.partitions = options.partitions;
    if (options.dropLast !== undefined) partial.dropLast = options.dropLast;
    if (options.pad !== undefined) partial.pad = options.pad;
    if (options.epochs !== undefined) partial.epochs = options.epochs;
    this.order = resolveOrderOptions(partial, this.world);
    this.#shardSizes = manifest.shards.map((s) => ({ rows: s.rows, bytes: s.bytes }));
    this.#locator = new SampleLocator(manifest);

    this.workers = options.workers === undefined ? usableCpus() : checkPositiveInt('workers', options.workers, 1024);
    const slots = options.slots === undefined ? SLOTS_PER_WORKER * this.workers + 2 : checkPositiveInt('slots', options.slots, 4096);
    if (options.varRowBytes !== undefined) checkPositiveInt('varRowBytes', options.varRowBytes);
    this.layout = computeBatchLayout(manifest, this.columns, this.order.batchSize, options.varRowBytes);
    this.#layoutJson = JSON.stringify(this.layout);
    if (options.read !== undefined && options.read !== 'mmap' && options.read !== 'pread') throw invalidOption('read', `must be mmap or pread, got ${String(options.read)}`);
    this.#read = options.read ?? defaultReadMode();

    this.#stepsPerEpoch = layoutFor(this.#shardSizes, this.world, this.order).steps;
    const start = options.resume ? resumePoint(options.resume, this.#shardSizes, this.world, this.order) : { epoch: 0, step: 0 };
    const S = this.#stepsPerEpoch;
    this.#startStep = start.epoch * S + start.step;
    this.#endSeq = S === 0 ? 0 : this.order.epochs === Infinity ? Infinity : Math.max(0, this.order.epochs * S - this.#startStep);

    this.#source = createShardSource(store, manifest, options);
    this.#leases = new LeaseTable(this.#source);
    this.ring = new BatchRing(slots, this.layout.slotBytes, options.pin === undefined ? {} : { pin: options.pin });
    this.#control = new ControlBlock({ slots, workers: this.workers, batchSize: this.order.batchSize });
    const decodeCacheBytes = options.decodeCacheBytes === undefined ? DEFAULT_DECODE_CACHE_BYTES : checkPositiveInt('decodeCacheBytes', options.decodeCacheBytes);
    const cachePlan = planDecodeCache(manifest, this.layout, this.order, this.workers, decodeCacheBytes);
    if (cachePlan?.warning) process.stderr.write(`${cachePlan.warning}\n`);
    this.rowGroupCache = cachePlan ? createRowGroupCache(cachePlan.entries, cachePlan.arenaBytes) : undefined;
    this.#pool = new Piscina({
      filename: pathToFileURL(workerEntry('decode')).href,
      minThreads: this.workers,
      maxThreads: this.workers,
      idleTimeout: 60_000,
      // One long-lived task per worker: it schedules itself from the control block.
      maxQueue: this.workers,
      concurrentTasksPerWorker: 1,
    });
  }

  /** Opens a dataset (local path, file:// or s3:// URI) and validates every option. */
  static async open(uri: string, options: LoaderOptions): Promise<Loader> {
    if (typeof uri !== 'string' || uri.length === 0) throw invalidOption('uri', 'must be a dataset path or URI');
    if (!options || typeof options !== 'object') throw invalidOption('options', 'must be an object with at least batchSize');
    const store = await openStore(uri, options);
    try {
      const manifest = await loadManifest(store);
      return new Loader(uri, store, manifest, options);
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  #plan(epoch: number): RankEpochPlan {
    let p = this.#plans.get(epoch);
    if (!p) {
      p = planRankEpoch(this.#shardSizes, this.world, this.order, epoch);
      this.#plans.set(epoch, p);
      for (const e of this.#plans.keys()) if (e < epoch - 1) this.#plans.delete(e);
    }
    return p;
  }

  /** Steps of one epoch on this rank (every rank has the same, every epoch). */
  stepsPerEpoch(_epoch?: number): number {
    return this.#stepsPerEpoch;
  }

  /** (epoch, step) of a flat step. */
  #position(flat: number): { epoch: number; step: number } {
    const S = this.#stepsPerEpoch;
    if (S === 0) return { epoch: this.order.epochs === Infinity ? 0 : this.order.epochs, step: 0 };
    const epoch = Math.floor(flat / S);
    return { epoch, step: flat - epoch * S };
  }

  /** Starts one decode loop per worker (once). */
  #start(): void {
    if (this.#loops) return;
    const inPlace = this.#source instanceof InPlaceShardSource;
    const paths = inPlace ? this.manifest.shards.map((s) => this.#store.localPath(s.path)!) : undefined;
    const slabIds = this.ring.slots.map((s) => s.slab.id);
    this.#loops = [];
    for (let w = 0; w < this.workers; w++) {
      const { port1, port2 } = new MessageChannel();
      const link: WorkerLink = { port: port1, leases: new Map(), pending: new Map() };
      port1.on('message', (m: WorkerMessage) => this.#onWorkerMessage(link, m));
      // Only a running loop talks on it, and a running task keeps its worker (and the process)
      // alive; once the loops end, a loader left unclosed must not hold the process.
      port1.unref();
      this.#links.push(link);
      const task: DecodeLoopTask = {
        worker: w, control: this.#control.buffers, slabIds, layoutJson: this.#layoutJson, manifest: this.manifest,
        world: this.world, order: this.order, stepsPerEpoch: this.#stepsPerEpoch, startStep: this.#startStep, endSeq: this.#endSeq,
        port: port2, read: this.#read,
      };
      if (paths) task.paths = paths;
      if (this.rowGroupCache) task.rowGroupCache = this.rowGroupCache;
      const loop = (this.#pool.run(task, { transferList: [port2] }) as Promise<DecodeLoopResult>).catch((err: unknown) => {
        // A loop that dies leaves its claimed batch unpublished: the consumer must not wait for it.
        if (this.#fatal === undefined && !this.#closed) this.#fatal = reviveError(err);
        this.#control.wakeConsumer();
      });
      this.#loops.push(loop);
    }
  }

  #onWorkerMessage(link: WorkerLink, m: WorkerMessage): void {
    if (this.#linksClosed) return;
    if (m.type === 'error') {
      const waiter = this.#errorWaiters.get(m.seq);
      if (waiter) {
        this.#errorWaiters.delete(m.seq);
        waiter(m.error);
      } else {
        this.#errors.set(m.seq, m.error);
      }
    } else if (m.type === 'release') {
      for (const index of m.shards) {
        const n = link.leases.get(index) ?? 0;
        if (n <= 0) continue;
        if (n === 1) link.leases.delete(index);
        else link.leases.set(index, n - 1);
        this.#leases.release(index);
      }
    } else {
      this.#control.requestHandled();
      void this.#answerAcquire(link, m.id, m.shards);
    }
  }

  /** Leases shards for a worker (shared through the lease table) and answers with their paths. */
  async #answerAcquire(link: WorkerLink, id: number, shards: number[]): Promise<void> {
    let answered = false;
    const answer = (reply: LeaseReply): void => {
      if (answered) return;
      answered = true;
      link.pending.delete(id);
      if (!this.#linksClosed) link.port.postMessage(reply);
    };
    if (this.#closed) return answer({ type: 'leases', id, error: serializeError(new GpufeedError(ErrorCodes.CLOSED, 'loader is closed')) });
    link.pending.set(id, answer);
    // In parallel; a shard some batch in flight already holds costs no acquire (lease-table.ts).
    const settled = await Promise.allSettled(shards.map((index) => this.#leases.acquire(index)));
    const got: number[] = [];
    const paths: string[] = [];
    let failure: unknown;
    settled.forEach((r, i) => {
      if (r.status === 'fulfilled') {
        got.push(shards[i]!);
        paths.push(r.value.path);
      } else {
        failure ??= r.reason;
      }
    });
    if (failure !== undefined || answered || this.#linksClosed) {
      // Failed, or close() already answered the worker: give back what was leased.
      for (const index of got) this.#leases.release(index);
      return answer({ type: 'leases', id, error: serializeError(failure ?? new GpufeedError(ErrorCodes.CLOSED, 'loader is closed')) });
    }
    for (const index of got) link.leases.set(index, (link.leases.get(index) ?? 0) + 1);
    answer({ type: 'leases', id, paths });
  }

  #hintAhead(): void {
    // Only a fetching source (it has stats) uses hints; computing them costs the shuffle of
    // 2 x slots steps, on the consumer's thread.
    if (!this.#source.stats) return;
    // Tell the shard source which shards come next. The hint looks 2 x slots steps ahead, so
    // renewing it every `slots` steps keeps it ahead of the workers (at most `slots` batches
    // ahead of the consumer) at a fraction of the cost.
    const slots = this.ring.slots.length;
    const at = this.#startStep + this.#consumed;
    if (at >= this.#hintedAt && at < this.#hintedAt + slots) return;
    this.#hintedAt = at;
    const upcoming: number[] = [];
    const end = Math.min(this.#startStep + this.#endSeq, at + 2 * slots);
    for (let flat = at; flat < end; flat++) {
      const { epoch, step } = this.#position(flat);
      let last = -1;
      for (const id of this.#plan(epoch).batchIds(step)) {
        const s = this.#locator.locate(id).shard;
        if (s !== last) upcoming.push((last = s));
      }
    }
    if (upcoming.length) this.#source.hint(upcoming);
  }

  #errorOf(seq: number): Promise<GpufeedError> {
    const e = this.#errors.get(seq);
    if (e) {
      this.#errors.delete(seq);
      return Promise.resolve(deserializeError(e));
    }
    // The worker posts the error before it publishes the slot; it is on its way.
    return new Promise((resolve) => this.#errorWaiters.set(seq, (s) => resolve(deserializeError(s))));
  }

  #release(slot: number): void {
    if (this.#closed) return;
    this.#held -= 1;
    this.#stats.released();
    this.#control.free(slot);
  }

  /** The run is over: every batch was handed out. Stops the loops (they have nothing left to do). */
  async #finish(): Promise<void> {
    this.#control.stop();
    if (this.#loops) await Promise.allSettled(this.#loops);
  }

  /** Delivers this rank's batches in plan order. One iteration at a time per loader. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Batch, void, undefined> {
    if (this.#iterating) throw new GpufeedError(ErrorCodes.INVALID_OPTION, 'this loader is already being iterated; open another loader', { option: 'iterate' });
    this.#iterating = true;
    let previous: Batch | undefined;
    const control = this.#control;
    const slots = this.ring.slots;
    try {
      if (this.#closed) return;
      if (this.#stepsPerEpoch === 0 && this.order.epochs === Infinity) throw new GpufeedError(ErrorCodes.INTERNAL, 'no epoch with any step');
      this.#start();
      for (;;) {
        if (this.#closed) return;
        const seq = this.#consumed;
        if (seq >= this.#endSeq) {
          await this.#finish();
          return;
        }
        this.#hintAhead();
        const w0 = performance.now();
        let slot = control.readySlot(seq);
        if (slot < 0) {
          // Every slot is held by the consumer: nothing can be decoded until one comes back.
          if (this.#held >= slots.length) {
            throw new GpufeedError(ErrorCodes.INVALID_OPTION, `all ${slots.length} batch slots are held by the consumer (retained batches); release some or raise the slots option`, { option: 'slots' });
          }
          while (slot < 0) {
            if (this.#fatal !== undefined) throw this.#fatal;
            await control.waitReady(seq);
            if (this.#closed) return;
            slot = control.readySlot(seq);
          }
        }
        // Workers wait on the main thread for shard leases (remote datasets): let their requests in.
        if (control.pendingRequests > 0) await new Promise((resolve) => setImmediate(resolve));
        if (this.#closed) return;
        const { rows, failed } = control.hold(seq, slot);
        this.#consumed = seq + 1;
        if (failed) {
          control.free(slot);
          throw await this.#errorOf(seq);
        }
        this.#held += 1;
        const ids = Array.from(control.idsOf(slot).subarray(0, rows));
        const { epoch, step } = this.#position(this.#startStep + seq);
        const s = slots[slot]!;
        this.#delivered = seq + 1;
        const batch = new Batch({ epoch, step, ids, slabId: s.slab.id, layout: this.layout, buffer: s.buffer, release: () => this.#release(slot) });
        this.#stats.waited(performance.now() - w0);
        yield batch;
        previous = batch;
        previous.releaseUnlessRetained();
      }
    } finally {
      this.#iterating = false;
      previous?.releaseUnlessRetained();
    }
  }

  /**
   * The resume state after the last delivered batch: JSON, the same on every rank at the same
   * step, so rank 0's copy resumes the whole job (also with another world size).
   */
  state(): ResumeState {
    const pos = this.#position(this.#startStep + this.#delivered);
    return resumeState(this.#shardSizes, this.world, this.order, pos.epoch, pos.step);
  }

  stats(): LoaderStatsSnapshot {
    const t = this.#control.totals();
    this.#stats.setDecode({
      batches: t[STAT_BATCHES]!, rows: t[STAT_ROWS]!, bytesRead: t[STAT_BYTES]!, readNs: t[STAT_READ_NS]!, decodeNs: t[STAT_DECODE_NS]!, shardWaitNs: t[STAT_SHARD_WAIT_NS]!,
    });
    const c = this.#control;
    return this.#stats.snapshot({ queued: c.count(READY), filling: c.count(FILLING), freeSlots: c.count(FREE), held: c.count(HELD), slots: this.ring.slots.length }, this.#source.stats);
  }

  /** Stops decoding, waits for the workers' loops to end, frees pinned memory and closes storage. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#control.stop();
    // Workers waiting for a shard lease get their answer now; a lease that arrives later is given back.
    const closed = serializeError(new GpufeedError(ErrorCodes.CLOSED, 'loader is closed'));
    for (const link of this.#links) for (const [id, answer] of [...link.pending]) answer({ type: 'leases', id, error: closed });
    if (this.#loops) await Promise.allSettled(this.#loops);
    // No worker writes a slot any more; only now may the slabs go.
    await this.#pool.destroy();
    this.#linksClosed = true;
    for (const link of this.#links) {
      link.port.close();
      for (const [index, n] of link.leases) for (let i = 0; i < n; i++) this.#leases.release(index);
      link.leases.clear();
    }
    this.#leases.close();
    this.ring.close();
    await this.#source.close();
    await this.#store.close();
  }
}
