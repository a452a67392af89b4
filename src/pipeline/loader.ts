// The loader: plan -> shard source -> decode pool -> batch ring -> consumer. It schedules the
// batches of this rank's plan ahead, as far as free slots allow, and hands them out in plan order.
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Piscina } from 'piscina';
import { ErrorCodes, GpufeedError, deserializeError, invalidOption } from '../errors.js';
import { loadManifest, selectColumns } from '../dataset/manifest.js';
import type { ColumnSpec, ManifestV1 } from '../dataset/types.js';
import { openStore, type Store, type StoreOptions } from '../storage/index.js';
import { workerEntry } from '../package-root.js';
import {
  planRankEpoch, resolveOrderOptions, resolveWorld, resumePoint, resumeState,
  type OrderOptions, type RankEpochPlan, type ResumeState, type ShuffleAlgo, type World,
} from '../plan/index.js';
import { createShardSource, type ShardSourceOptions } from './prefetcher.js';
import type { ShardLease, ShardSource } from './shard-source.js';
import { LeaseTable } from './lease-table.js';
import { computeBatchLayout, type BatchLayout } from './batch-layout.js';
import { BatchRing, type Slot } from './batch-ring.js';
import { Batch } from './batch.js';
import { SampleLocator } from './sample-locator.js';
import { buildRuns } from './row-runs.js';
import { usableCpus } from './cpus.js';
import { LoaderStats, type LoaderStatsSnapshot } from './stats.js';
import type { DecodeReply, DecodeTask, ShardRef } from './decode-messages.js';

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
}

interface Scheduled {
  epoch: number;
  step: number;
  ids: number[];
  promise: Promise<Batch>;
}

/** Tasks posted to each decode worker at once (see the pool options). */
const TASKS_PER_WORKER = 2;

function checkPositiveInt(name: string, v: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw invalidOption(name, `must be an integer from 1 to ${max}, got ${String(v)}`);
  return v;
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
  /** Step (epoch * 2^32 + step) from which the shard source was last hinted. */
  #hintedAt = -Infinity;
  readonly #pool: Piscina;
  readonly #locator: SampleLocator;
  readonly #shardSizes: { rows: number; bytes: number }[];
  readonly #plans = new Map<number, RankEpochPlan>();
  readonly #stats = new LoaderStats();
  #closed = false;
  #iterating = false;
  /** Next (epoch, step) to schedule. */
  #next: { epoch: number; step: number };
  /** Position after the last delivered batch: what state() describes. */
  #delivered: { epoch: number; step: number };
  #queue: Scheduled[] = [];

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
    const slots = options.slots === undefined ? TASKS_PER_WORKER * this.workers + 2 : checkPositiveInt('slots', options.slots, 4096);
    if (options.varRowBytes !== undefined) checkPositiveInt('varRowBytes', options.varRowBytes);
    this.layout = computeBatchLayout(manifest, this.columns, this.order.batchSize, options.varRowBytes);
    this.#layoutJson = JSON.stringify(this.layout);

    const start = options.resume ? resumePoint(options.resume, this.#shardSizes, this.world, this.order) : { epoch: 0, step: 0 };
    this.#next = { ...start };
    this.#delivered = { ...start };

    this.#source = createShardSource(store, manifest, options);
    this.#leases = new LeaseTable(this.#source);
    this.ring = new BatchRing(slots, this.layout.slotBytes, options.pin === undefined ? {} : { pin: options.pin });
    this.#pool = new Piscina({
      filename: pathToFileURL(workerEntry('decode')).href,
      minThreads: this.workers,
      maxThreads: this.workers,
      idleTimeout: 60_000,
      // Tasks are whole batches; the ring already bounds how many are in flight.
      maxQueue: slots + 1,
      // A worker holds its next task before it finishes the current one, so it keeps decoding
      // while the main thread is blocked (a consumer waiting on the GPU) and cannot dispatch.
      concurrentTasksPerWorker: TASKS_PER_WORKER,
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

  /** Steps of one epoch on this rank (every rank has the same). */
  stepsPerEpoch(epoch = this.#delivered.epoch): number {
    return this.#plan(epoch).steps;
  }

  #advance(pos: { epoch: number; step: number }): boolean {
    // Normalizes pos to a real step, moving past the end of epochs; false when the run is over.
    for (let guard = 0; guard < 1_000_000; guard++) {
      if (pos.epoch >= this.order.epochs) return false;
      if (pos.step < this.#plan(pos.epoch).steps) return true;
      pos.epoch += 1;
      pos.step = 0;
    }
    throw new GpufeedError(ErrorCodes.INTERNAL, 'no epoch with any step');
  }

  #pump(): void {
    while (!this.#closed && this.ring.freeCount > 0 && this.#advance(this.#next)) {
      const slot = this.ring.tryAcquire();
      if (!slot) break;
      const { epoch, step } = this.#next;
      const ids = this.#plan(epoch).batchIds(step);
      this.#next = { epoch, step: step + 1 };
      const promise = this.#decode(epoch, step, ids, slot);
      // Errors surface when the consumer reaches this batch; until then, keep them quiet.
      promise.catch(() => {});
      this.#queue.push({ epoch, step, ids, promise });
    }
    this.#hintAhead();
  }

  #hintAhead(): void {
    // Only a fetching source (it has stats) uses hints; computing them costs the shuffle of
    // 2 x slots steps, on the consumer's thread.
    if (!this.#source.stats) return;
    // Tell the shard source which shards come next, beyond what is already scheduled. The hint
    // looks 2 x slots steps ahead, so renewing it every `slots` steps keeps it ahead at a fraction
    // of the cost (each step's ids come from the shuffle).
    const horizon = this.ring.slots.length * 2;
    const at = this.#next.epoch * 2 ** 32 + this.#next.step;
    if (at >= this.#hintedAt && at < this.#hintedAt + this.ring.slots.length) return;
    this.#hintedAt = at;
    const pos = { ...this.#next };
    const upcoming: number[] = [];
    for (let k = 0; k < horizon && this.#advance(pos); k++) {
      let last = -1;
      for (const id of this.#plan(pos.epoch).batchIds(pos.step)) {
        const s = this.#locator.locate(id).shard;
        if (s !== last) upcoming.push((last = s));
      }
      pos.step += 1;
    }
    if (upcoming.length) this.#source.hint(upcoming);
  }

  async #decode(epoch: number, step: number, ids: number[], slot: Slot): Promise<Batch> {
    const held: number[] = [];
    let handedOut = false;
    try {
      const t0 = performance.now();
      const { runs, shards } = buildRuns(ids, this.#locator, this.manifest);
      // Leases are shared by the batches in flight; only a shard no scheduled batch holds yet
      // costs an acquire, and those run in parallel.
      const got: (ShardLease | Promise<ShardLease>)[] = [];
      for (const index of shards) got.push(this.#leases.acquire(index));
      let leases: ShardLease[];
      if (got.some((g) => g instanceof Promise)) {
        const settled = await Promise.allSettled(got);
        settled.forEach((r, i) => { if (r.status === 'fulfilled') held.push(shards[i]!); });
        const failed = settled.find((r) => r.status === 'rejected');
        if (failed) throw failed.reason;
        leases = settled.map((r) => (r as PromiseFulfilledResult<ShardLease>).value);
      } else {
        held.push(...shards);
        leases = got as ShardLease[];
      }
      const refs: ShardRef[] = shards.map((index, i) => {
        const entry = this.manifest.shards[index]!;
        return { index, name: entry.path, file: leases[i]!.path, format: entry.format, bytes: entry.bytes };
      });
      const t1 = performance.now();
      const task: DecodeTask = { slabId: slot.slab.id, layoutJson: this.#layoutJson, rows: ids.length, shards: refs, runs };
      const reply = (await this.#pool.run(task)) as DecodeReply;
      if (!reply.ok) throw deserializeError(reply.error);
      this.#stats.addDecode(reply.stats, t1 - t0);
      const batch = new Batch({
        epoch, step, ids, slabId: slot.slab.id, layout: this.layout, buffer: slot.buffer,
        release: () => {
          this.#stats.released();
          this.ring.release(slot);
          this.#pump();
        },
      });
      handedOut = true;
      return batch;
    } finally {
      for (const index of held) this.#leases.release(index);
      if (!handedOut) this.ring.release(slot);
    }
  }

  /** Delivers this rank's batches in plan order. One iteration at a time per loader. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Batch, void, undefined> {
    if (this.#iterating) throw new GpufeedError(ErrorCodes.INVALID_OPTION, 'this loader is already being iterated; open another loader', { option: 'iterate' });
    this.#iterating = true;
    let previous: Batch | undefined;
    try {
      this.#pump();
      for (;;) {
        if (this.#closed) return;
        const head = this.#queue.shift();
        if (!head) {
          if (!this.#advance(this.#next)) return;
          // Every slot is held by the consumer: nothing can be decoded until one comes back.
          throw new GpufeedError(ErrorCodes.INVALID_OPTION, `all ${this.ring.slots.length} batch slots are held by the consumer (retained batches); release some or raise the slots option`, { option: 'slots' });
        }
        const w0 = performance.now();
        // One event-loop turn even when the batch is ready: the workers' replies are processed
        // only then, and until they are the pool counts those workers busy and holds back the
        // tasks queued for them. Without it a consumer that always finds a batch ready would
        // starve the workers, then wait for all of them at once.
        await new Promise((resolve) => setImmediate(resolve));
        const batch = await head.promise;
        this.#stats.waited(performance.now() - w0);
        this.#delivered = { epoch: head.epoch, step: head.step + 1 };
        this.#pump();
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
    const pos = { ...this.#delivered };
    this.#advance(pos);
    return resumeState(this.#shardSizes, this.world, this.order, pos.epoch, pos.step);
  }

  stats(): LoaderStatsSnapshot {
    return this.#stats.snapshot({ queued: this.#queue.length, freeSlots: this.ring.freeCount, slots: this.ring.slots.length, poolQueue: this.#pool.queueSize }, this.#source.stats);
  }

  /** Stops decoding, waits for in-flight work, frees pinned memory and closes storage. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const pending = this.#queue.splice(0);
    await Promise.allSettled(pending.map((s) => s.promise));
    await this.#pool.destroy();
    this.#leases.close();
    this.ring.close();
    await this.#source.close();
    await this.#store.close();
  }
}
