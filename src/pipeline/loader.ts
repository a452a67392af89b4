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
import { selectColumns } from '../dataset/manifest.js';
import { openDataset } from '../dataset/open-dataset.js';
import type { ColumnSpec, ManifestV1 } from '../dataset/types.js';
import type { Store, StoreOptions } from '../storage/index.js';
import { workerEntry } from '../package-root.js';
import {
  adoptResumeOptions, layoutFor, planRankEpoch, resolveOrderOptions, resolveWorld, resumePoint, resumeState, sharedWindowsFor,
  type OrderOptions, type RankEpochPlan, type ResumeState, type ShuffleAlgo, type World,
} from '../plan/index.js';
import { createShardSource, InPlaceShardSource, PrefetchingShardSource, type ShardSourceOptions } from './prefetcher.js';
import type { CacheSharing } from '../cache/budget.js';
import type { ShardSource } from './shard-source.js';
import { KEPT_IDLE_LEASES, LeaseTable } from './lease-table.js';
import { maxLeasedShards } from './lease-bound.js';
import { pieceFlagLayout } from './piece-check.js';
import type { BatchLayout } from './batch-layout.js';
import { planSlotMemory, resolveMemoryBytes } from './memory-budget.js';
import { BatchRing } from './batch-ring.js';
import { Batch } from './batch.js';
import { SampleLocator } from './sample-locator.js';
import { maxWorkers, usableCpus } from './cpus.js';
import { checkLoaderOptionTypes } from './loader-option-types.js';
import { defaultReadMode, detachSlab, freeSlab, slabView, type ReadMode } from '../memory/index.js';
import { LoaderStats, type LoaderStatsSnapshot } from './stats.js';
import { ControlBlock, FILLING, FREE, HELD, READY, STAT_BATCHES, STAT_BYTES, STAT_DECODE_NS, STAT_READ_NS, STAT_ROWS, STAT_SHARD_WAIT_NS } from './control-block.js';
import type { DecodeLoopResult, DecodeLoopTask, LeaseReply, WorkerMessage } from './decode-messages.js';
import { createRowGroupCache, DEFAULT_DECODE_CACHE_BYTES, planDecodeCache, type RowGroupCacheBuffers } from '../formats/parquet/row-group-cache.js';
import { startupMark } from './startup-trace.js';
import { createQuarantineBuffers, entriesFromState, QuarantineLedger, resolveQuarantineOptions, type OnCorrupt, type QuarantineBuffers } from './quarantine.js';
import { RESUME_VERSION_QUARANTINE } from '../plan/state.js';

const NO_ROWS: readonly number[] = Object.freeze([]);
import { LoaderObservers } from '../metrics/observers.js';
import { resolveMetricsOptions, type MetricsOptions } from '../metrics/options.js';
import type { StallReport } from '../metrics/stall.js';
import type { RequestLog } from '../storage/request-log.js';
import type { StoreCounters } from '../metrics/probe.js';
import { resolveImageColumns, type TransformsOption } from '../transforms/image-options.js';
import type { ImageTask } from '../transforms/image-stage.js';
import { feedPlan, type FeedSpec, type PackOptions } from '../plan/packing.js';
import { openPackedLoader, type PackedLoader } from './packed-loader.js';
import { type DatasetInput, openMixture, streamsOfIds } from './mixture-source.js';
import { mixtureLayout, mixtureResumePoint, mixtureResumeState, planMixtureRankEpoch, type MixtureChange, type ResolvedStream } from '../plan/index.js';

// The cache-sharing figures come from the world and the plan (set by the loader), not from the user.
export interface LoaderOptions extends StoreOptions, MetricsOptions, Omit<ShardSourceOptions, keyof CacheSharing> {
  /** Rows per batch on this rank. */
  batchSize: number;
  /** Columns to load; all columns when absent. */
  columns?: string[];
  /** Image columns decoded and augmented into fixed-shape tensors (README.md, "Images"). */
  transforms?: TransformsOption;
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
  /**
   * Mixtures: what to do with a resume state taken on another mixture (other streams, weights or
   * counts): 'refuse' (default, GPUFEED_RESUME_MISMATCH field mixture) or 'next-epoch' (the new
   * mixture starts at the next epoch not yet begun; the rest of the interrupted one is skipped).
   */
  mixtureChange?: MixtureChange;
  /** Weighted mixtures: samples per epoch over all streams. Default: the streams' rows. */
  epochSamples?: number;
  /** Decode threads. Default: the CPUs this process may use; at most 4 per usable CPU (and 256). */
  workers?: number;
  /** Batch slots in the ring (batches decoded ahead plus those the consumer holds). Default 2 x workers + 2. */
  slots?: number;
  /**
   * Bytes of pinned batch memory in all: the slots, plus the one-off allocations of batches whose
   * variable-length rows do not fit a slot (memory-budget.ts). Default: a quarter of the machine's
   * memory, from 256 MiB to 32 GiB.
   */
  memoryBytes?: number;
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
   * Check every piece (Arrow record batch, Parquet column chunk, footer) against the manifest's
   * checksum before its rows reach a batch: GPUFEED_HASH_MISMATCH names the shard and piece.
   * Default true; the manifest-against-file checks at open run either way.
   */
  verifyPieces?: boolean;
  /**
   * Bytes of decoded Parquet columns the decode workers share (row-group-cache.ts): the cache takes
   * what the shuffle plan keeps live, up to this. Default 1 GiB.
   */
  decodeCacheBytes?: number;
  /**
   * What a corrupt piece or shard does (README, "Quarantine"): 'fail' (default) ends the run with
   * its error; 'skip' quarantines its rows, replaced in their batches by other rows of the batch
   * (batch.quarantined lists them), and logs it once.
   */
  onCorrupt?: OnCorrupt;
  /** With 'skip': replaced rows per epoch on this rank before GPUFEED_QUARANTINE_LIMIT, a count or a fraction (< 1) of the epoch's rows. Default: no limit. */
  maxQuarantined?: number;
  /** With 'skip': a JSON Lines file each quarantine event is appended to. */
  quarantineLog?: string;
}

/**
 * Options of a packed loader (PACKING.md): `pack` cuts the list column's tokens into rows of
 * exactly `length` tokens, with position_ids and seq_lens; Loader.open then gives a PackedLoader.
 */
export interface PackedLoaderOptions extends LoaderOptions {
  pack: PackOptions;
}

/**
 * Default slots per worker (plus 2): each worker fills one slot while the batches it decoded
 * before wait for the consumer, so it keeps decoding while the main thread is blocked.
 */
const SLOTS_PER_WORKER = 2;

/**
 * Young generation of each decode thread, in MiB (V8's nursery: two semi-spaces and room for new
 * large objects, so semi-spaces under 3 MiB). At V8's default it grows to 8 MiB semi-spaces whose
 * pages become resident a scavenge at a time over the first thousands of batches, part of the RSS
 * rise of the first epochs (README, "Performance"). Measured over 100 epochs: 8 MiB lowers RSS by
 * 10-15 MiB and its rise a little; 3 MiB made more objects live through two scavenges into the
 * old generation, and the server's RSS then climbed faster.
 */
const DECODE_YOUNG_GENERATION_MB = 8;

function checkPositiveInt(name: string, v: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw invalidOption(name, `must be an integer from 1 to ${max}, got ${String(v)}`);
  return v;
}

function checkWorkers(v: number): number {
  const cpus = usableCpus();
  const max = maxWorkers(cpus);
  if (typeof v === 'number' && Number.isInteger(v) && v > max) {
    throw invalidOption('workers', `must be at most ${max} (4 per usable CPU, ${cpus} here, and at most 256), got ${v}: each decode thread costs start-up time and memory`, { max });
  }
  return checkPositiveInt('workers', v, max);
}

/** Settings of gpufeed's own entry points, not user options. */
export interface LoaderInternalOptions {
  /**
   * Slots sized for the dataset's largest rows, so no batch goes to a one-off slot: the bridge
   * (`gpufeed serve`) needs it, since its consumer maps only the ring's slabs.
   */
  slotsHoldLargestRows?: boolean;
  /** A packed loader's document feed (packed-loader.ts), from the manifest: the plan the workers follow instead of planRankEpoch. */
  feed?: (manifest: ManifestV1, world: World, order: OrderOptions) => FeedSpec;
  /** A packed loader's tokens per feed batch, at least (default FEED_BATCH_TOKENS, packed-loader.ts); 0: one step's documents. Tests. */
  packFeedTokens?: number;
}

type OneOffMessage = Extract<WorkerMessage, { type: 'oneOff' }>;

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
  /** The pinned-memory cap (option memoryBytes): the ring plus one-off slots of oversize batches. */
  readonly memoryBytes: number;
  /** Of memoryBytes, what one-off slots may take at once (memoryBytes minus the ring). */
  readonly oneOffBytes: number;

  readonly #store: Store;
  readonly #pin: boolean | undefined;
  readonly #source: ShardSource;
  readonly #leases: LeaseTable;
  readonly #layoutJson: string;
  /** Image transforms the workers apply (transforms/), when the transforms option has any. */
  readonly #images: ImageTask | undefined;
  readonly #read: ReadMode;
  readonly #verifyPieces: boolean;
  /** Flat step from which the shard source was last hinted. */
  #hintedAt = -Infinity;
  readonly #pool: Piscina;
  readonly #locator: SampleLocator;
  readonly #shardSizes: { rows: number; bytes: number; hash: string }[];
  /** Plans of the main thread, for the prefetch hints of remote datasets only. */
  readonly #plans = new Map<number, RankEpochPlan>();
  /** A mixture's streams, in stream order (global ids of stream k follow streams 0..k-1); undefined for one dataset. */
  readonly streams: readonly ResolvedStream[] | undefined;
  readonly #stats = new LoaderStats();
  readonly #control: ControlBlock;
  /** Decoded Parquet chunks shared by the workers (row-group-cache.ts), when the dataset has any to share. */
  readonly rowGroupCache: RowGroupCacheBuffers | undefined;
  /** Steps of every epoch on this rank (the same each epoch). */
  readonly #stepsPerEpoch: number;
  /** The packed loader's document feed, when this loader is one. */
  readonly #feed: FeedSpec | undefined;
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
  /** The batch the loop handed out last, until the loop asks for the next (or a new loop starts). */
  #handedOut: Batch | undefined;
  /** Waits of the consumer on a worker in progress (each holds the process alive: #awaitingWorker). */
  #workerWaits = 0;
  #linksClosed = false;
  /** A worker loop that died (not a batch error: those arrive per seq). */
  #fatal: unknown;
  readonly #errors = new Map<number, SerializedError>();
  readonly #errorWaiters = new Map<number, (e: SerializedError) => void>();
  /** One-off slabs of oversize batches, by seq, as the workers announce them. */
  readonly #oneOffs = new Map<number, OneOffMessage>();
  readonly #oneOffWaiters = new Map<number, (m: OneOffMessage) => void>();
  /** onCorrupt 'skip' (quarantine.ts); undefined with 'fail'. */
  readonly #quarantine: { ledger: QuarantineLedger; buffers: QuarantineBuffers } | undefined;
  /** Metrics, stall watch and SIGUSR2 report (src/metrics/). */
  readonly #observers: LoaderObservers;
  /** The seq the consumer is blocked on and since when (Date.now()), for stall reports. */
  #waitingFor: { seq: number; since: number } | undefined;

  private constructor(uri: string, store: Store, manifest: ManifestV1, options: LoaderOptions, internal: LoaderInternalOptions, workers: number, pool: Piscina, streams?: ResolvedStream[]) {
    this.uri = uri;
    this.streams = streams;
    this.#store = store;
    this.manifest = manifest;
    const imageColumns = resolveImageColumns(manifest, options.columns, options.transforms, (names) => selectColumns(manifest, names));
    this.columns = imageColumns ? imageColumns.columns : selectColumns(manifest, options.columns);
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
    this.order = resolveOrderOptions(options.resume ? adoptResumeOptions(partial, options.resume, this.world) : partial, this.world);
    this.#shardSizes = manifest.shards.map((s) => ({ rows: s.rows, bytes: s.bytes, hash: s.hash }));
    this.#images = imageColumns ? { transforms: imageColumns.transforms, seed: this.order.seed } : undefined;
    this.#locator = new SampleLocator(manifest);

    this.workers = workers;
    this.#pool = pool;
    const slots = options.slots === undefined ? SLOTS_PER_WORKER * this.workers + 2 : checkPositiveInt('slots', options.slots, 4096);
    if (options.varRowBytes !== undefined) checkPositiveInt('varRowBytes', options.varRowBytes);
    const memory = planSlotMemory({
      manifest, columns: this.columns, batchSize: this.order.batchSize, slots, memoryBytes: resolveMemoryBytes(options.memoryBytes), fallbackRowBytes: options.varRowBytes,
      largestRows: internal.slotsHoldLargestRows === true,
    });
    this.layout = memory.layout;
    this.memoryBytes = memory.memoryBytes;
    this.oneOffBytes = memory.oneOffBytes;
    this.#pin = options.pin;
    this.#layoutJson = JSON.stringify(this.layout);
    if (options.read !== undefined && options.read !== 'mmap' && options.read !== 'pread') throw invalidOption('read', `must be mmap or pread, got ${String(options.read)}`);
    this.#read = options.read ?? defaultReadMode();
    this.#verifyPieces = options.verifyPieces ?? true;

    this.#feed = internal.feed?.(manifest, this.world, this.order);
    const partitionsOfPlan = this.order.shuffle === 'naive' ? 1 : (this.order.partitions as number);
    this.#stepsPerEpoch = this.#feed ? this.#feed.steps : streams
      ? mixtureLayout(streams.map((s) => s.perEpoch), this.order.batchSize * this.world.worldSize, partitionsOfPlan, this.order.dropLast).steps
      : layoutFor(this.#shardSizes, this.world, this.order).steps;
    const start = this.#feed ? { epoch: this.#feed.firstEpoch, step: 0 } : !options.resume ? { epoch: 0, step: 0 }
      : streams ? mixtureResumePoint(options.resume, streams, this.world, this.order, options.mixtureChange)
        : resumePoint(options.resume, this.#shardSizes, this.world, this.order);
    const S = this.#stepsPerEpoch;
    this.#startStep = start.epoch * S + start.step;
    this.#endSeq = S === 0 ? 0 : this.order.epochs === Infinity ? Infinity : Math.max(0, this.order.epochs * S - this.#startStep);

    // The cache budget must hold the leases and prefetch window of every rank of the node (cache/budget.ts).
    this.#source = createShardSource(store, manifest, {
      ...options,
      ranksSharingCache: this.world.localWorldSize,
      leasedShards: () => maxLeasedShards({
        plan: (e) => this.#plan(e), shardOf: (id) => this.#locator.locate(id).shard, shardCount: manifest.shards.length,
        startEpoch: start.epoch, epochs: this.order.epochs, window: slots + 1, idle: KEPT_IDLE_LEASES,
      }),
    });
    this.#leases = new LeaseTable(this.#source);
    this.ring = new BatchRing(slots, this.layout.slotBytes, options.pin === undefined ? {} : { pin: options.pin });
    this.#control = new ControlBlock({ slots, workers: this.workers, batchSize: this.order.batchSize });
    const decodeCacheBytes = options.decodeCacheBytes === undefined ? DEFAULT_DECODE_CACHE_BYTES : checkPositiveInt('decodeCacheBytes', options.decodeCacheBytes);
    const cachePlan = planDecodeCache(manifest, this.layout, this.order, this.workers, decodeCacheBytes);
    if (cachePlan?.warning) process.stderr.write(`${cachePlan.warning}\n`);
    this.rowGroupCache = cachePlan ? createRowGroupCache(cachePlan.entries, cachePlan.arenaBytes) : undefined;
    const quarantine = resolveQuarantineOptions(options);
    if (quarantine.onCorrupt === 'skip') {
      const buffers = createQuarantineBuffers(manifest, slots, this.order.batchSize);
      const resumed = entriesFromState(manifest, options.resume?.quarantined);
      this.#quarantine = { buffers, ledger: new QuarantineLedger(manifest, buffers, quarantine, { batchSize: this.order.batchSize, rank: this.world.rank, stepsPerEpoch: S, resumed }) };
    }
    this.#observers = this.#makeObservers(options);
    startupMark('planned');
  }

  /** What the metrics and stall reports read (src/metrics/probe.ts): the stages' own counters. */
  #makeObservers(options: LoaderOptions): LoaderObservers {
    const store = this.#store as Store & { requestLog?: RequestLog; stats?: StoreCounters };
    return new LoaderObservers({
      uri: this.uri, manifest: this.manifest, world: this.world,
      stats: () => this.stats(),
      waitHistogram: () => this.#stats.waitHistogram(),
      workerCounters: () => Array.from({ length: this.workers }, (_, w) => this.#control.statsOf(w)),
      waiting: () => this.#waitingFor,
      nextSeq: () => this.#consumed,
      position: (seq) => this.#position(this.#startStep + seq),
      shardsOf: (seq) => {
        if (seq >= this.#endSeq) return [];
        const { epoch, step } = this.#position(this.#startStep + seq);
        return [...new Set(this.#plan(epoch).batchIds(step).map((id) => this.#locator.locate(id).shard))];
      },
      cache: this.#source instanceof PrefetchingShardSource ? this.#source.cache : undefined,
      requestLog: store.requestLog,
      storeCounters: store.stats ? () => store.stats! : undefined,
      fail: (err) => {
        this.#fatal ??= err;
        this.#control.wakeConsumer();
      },
    }, resolveMetricsOptions(options, this.uri));
  }

  /**
   * What the batch the consumer waits for (or takes next) is waiting on: shards, storage requests,
   * cache locks, decode workers (README, "Stalls"). SIGUSR2 prints the same report.
   */
  diagnose(): Promise<StallReport> {
    return this.#observers.diagnose();
  }

  /** The Prometheus metrics as a flat object (README, "Metrics"), with or without metricsPort. */
  metrics(): Promise<Record<string, number>> {
    return this.#observers.metrics();
  }

  /** The metrics in Prometheus text format. */
  metricsText(): Promise<string> {
    return this.#observers.metricsText();
  }

  /** http://host:port/metrics when metricsPort was given, else undefined. */
  metricsAddress(): string | undefined {
    return this.#observers.address;
  }

  /** The decode threads; they start at once (minThreads), each loading the worker's modules. */
  static #decodePool(workers: number): Piscina {
    return new Piscina({
      filename: pathToFileURL(workerEntry('decode')).href,
      minThreads: workers,
      maxThreads: workers,
      idleTimeout: 60_000,
      // One long-lived task per worker: it schedules itself from the control block.
      maxQueue: workers,
      concurrentTasksPerWorker: 1,
      resourceLimits: { maxYoungGenerationSizeMb: DECODE_YOUNG_GENERATION_MB },
    });
  }

  /** Opens a dataset (local path, file:// or s3:// URI) and validates every option. */
  static async open(uri: DatasetInput, options: PackedLoaderOptions, internal?: LoaderInternalOptions): Promise<PackedLoader>;
  static async open(uri: DatasetInput, options: LoaderOptions, internal?: LoaderInternalOptions): Promise<Loader>;
  static async open(uri: DatasetInput, options: LoaderOptions | PackedLoaderOptions, internal?: LoaderInternalOptions): Promise<Loader | PackedLoader>;
  static async open(uri: DatasetInput, options: LoaderOptions | PackedLoaderOptions, internal: LoaderInternalOptions = {}): Promise<Loader | PackedLoader> {
    if (!Array.isArray(uri) && (typeof uri !== 'string' || uri.length === 0)) throw invalidOption('uri', 'must be a dataset path or URI, or an array of mixture streams');
    if (!options || typeof options !== 'object') throw invalidOption('options', 'must be an object with at least batchSize');
    checkLoaderOptionTypes(options);
    if ('pack' in options && options.pack !== undefined) {
      return openPackedLoader(uri, options as PackedLoaderOptions, internal);
    }
    startupMark('open');
    const workers = options.workers === undefined ? usableCpus() : checkWorkers(options.workers);
    // The decode threads start first and load their modules (most of the time to the first batch)
    // while this thread reads the manifest and makes the plan and the ring.
    const pool = Loader.#decodePool(workers);
    let store: Store | undefined;
    try {
      if (typeof uri !== 'string') {
        const mixture = await openMixture(uri, options);
        store = mixture.store;
        startupMark('manifest-read');
        const loader = new Loader(mixture.uris.join(','), store, mixture.manifest, options, internal, workers, pool, mixture.streams);
        startupMark('constructed');
        return loader;
      }
      // Shards come from the manifest's base when it names one (an index written with --out).
      const opened = await openDataset(uri, options);
      store = opened.shards;
      startupMark('manifest-read');
      const loader = new Loader(uri, store, opened.manifest, options, internal, workers, pool);
      try {
        await loader.#observers.start();
      } catch (err) {
        await loader.close();
        throw err;
      }
      startupMark('constructed');
      return loader;
    } catch (err) {
      await pool.destroy();
      await store?.close();
      throw err;
    }
  }

  #plan(epoch: number): RankEpochPlan {
    let p = this.#plans.get(epoch);
    if (!p) {
      p = this.#feed ? feedPlan(this.#shardSizes, this.#feed, this.order, epoch)
        : this.streams ? planMixtureRankEpoch(this.streams, this.world, this.order, epoch) : planRankEpoch(this.#shardSizes, this.world, this.order, epoch);
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
    // Piece checksums verified by one worker count for all (each piece hashed ~once per loader).
    const pieceFlags = this.#verifyPieces ? new SharedArrayBuffer(4 * Math.max(1, pieceFlagLayout(this.manifest).total)) : undefined;
    // Each window-shuffle chunk computed by one worker for all (the workers claim alternate batches).
    const sharedWindows = this.#feed ? undefined : sharedWindowsFor(this.order, this.world.worldSize, this.#locator.total);
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
        port: port2, read: this.#read, verifyPieces: this.#verifyPieces, oneOffBytes: this.oneOffBytes,
      };
      if (this.#pin !== undefined) task.pin = this.#pin;
      if (this.#images) task.images = this.#images;
      if (pieceFlags) task.pieceFlags = pieceFlags;
      if (paths) task.paths = paths;
      if (this.rowGroupCache) task.rowGroupCache = this.rowGroupCache;
      if (sharedWindows) task.sharedWindows = sharedWindows;
      if (this.#quarantine) task.quarantine = this.#quarantine.buffers;
      if (this.#feed) task.feed = this.#feed;
      else if (this.streams) task.mixture = this.streams.map((s) => ({ ...s }));
      const loop = (this.#pool.run(task, { transferList: [port2] }) as Promise<DecodeLoopResult>).catch((err: unknown) => {
        // A loop that dies leaves its claimed batch unpublished: the consumer must not wait for it.
        if (this.#fatal === undefined && !this.#closed) this.#fatal = reviveError(err);
        this.#control.wakeConsumer();
      });
      this.#loops.push(loop);
    }
    startupMark('loops-started');
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
    } else if (m.type === 'oneOff') {
      const waiter = this.#oneOffWaiters.get(m.seq);
      if (waiter) {
        this.#oneOffWaiters.delete(m.seq);
        waiter(m);
      } else {
        this.#oneOffs.set(m.seq, m);
      }
    } else if (m.type === 'quarantine') {
      this.#quarantine?.ledger.record(m.event, m.seq);
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
        // A quarantined shard is never read again: fetching it would only fail again.
        if (s !== last && !this.#quarantine?.ledger.flags.shardBad(s)) upcoming.push(s);
        last = s;
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
    return this.#awaitingWorker(new Promise((resolve) => this.#errorWaiters.set(seq, (s) => resolve(deserializeError(s)))));
  }

  /**
   * `wait`, with the process held alive until it settles. The worker ports are unref'd (a loader
   * left unclosed must not hold the process), and neither a message still on its way on them nor
   * an Atomics.waitAsync keeps Node's event loop alive: once the last decode task has returned,
   * a consumer awaiting the last batch's message (or slot) could otherwise see the process exit
   * under it, with code 0 and the epoch unfinished.
   */
  async #awaitingWorker<T>(wait: Promise<T>): Promise<T> {
    if (this.#workerWaits++ === 0) for (const link of this.#links) link.port.ref();
    try {
      return await wait;
    } finally {
      if (--this.#workerWaits === 0) for (const link of this.#links) link.port.unref();
    }
  }

  /** The one-off slab message of seq (posted before its slot was published; it may still be on its way). */
  #oneOffOf(seq: number): Promise<OneOffMessage> {
    const m = this.#oneOffs.get(seq);
    if (m) {
      this.#oneOffs.delete(seq);
      return Promise.resolve(m);
    }
    return this.#awaitingWorker(new Promise((resolve) => this.#oneOffWaiters.set(seq, resolve)));
  }

  /** Frees a one-off slab and uncounts it (the worker detached its own view already). */
  #freeOneOff(slabId: number, bytes: number): void {
    detachSlab(slabId);
    freeSlab(slabId);
    this.#control.releaseOneOff(bytes);
  }

  #release(slot: number, oneOff?: { slabId: number; bytes: number }): void {
    if (this.#closed) return;
    if (oneOff) this.#freeOneOff(oneOff.slabId, oneOff.bytes);
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
    // A loop left with break kept its last batch (valid until the loop asks for the next one):
    // this loop asking is that moment, so a loader iterated again does not leak a slot per break.
    const left = this.#handedOut;
    this.#handedOut = undefined;
    left?.releaseUnlessRetained();
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
          // Said in the control block: a worker waiting to allocate a one-off slot for this very
          // batch then knows that only retained batches could free room (oversize-batch.ts).
          control.setWaiting(seq);
          this.#waitingFor = { seq, since: Date.now() };
          this.#observers.waitStarted();
          try {
            while (slot < 0) {
              if (this.#fatal !== undefined) throw this.#fatal;
              const ready = control.waitReady(seq);
              if (ready) await this.#awaitingWorker(ready);
              if (this.#closed) return;
              slot = control.readySlot(seq);
            }
          } finally {
            control.setWaiting(-1);
            this.#waitingFor = undefined;
            this.#observers.waitEnded();
          }
        }
        // Workers wait on the main thread for shard leases (remote datasets): let their requests in.
        if (control.pendingRequests > 0) await new Promise((resolve) => setImmediate(resolve));
        if (this.#closed) return;
        const { rows, failed, oneOffSlab } = control.hold(seq, slot);
        this.#consumed = seq + 1;
        if (failed) {
          control.free(slot);
          throw await this.#errorOf(seq);
        }
        const ids = Array.from(control.idsOf(slot).subarray(0, rows));
        const { epoch, step } = this.#position(this.#startStep + seq);
        const quarantined = this.#quarantine ? await this.#quarantinedRows(seq, slot, rows, oneOffSlab, epoch, step) : NO_ROWS;
        if (this.#closed) return;
        const s = slots[slot]!;
        let batch: Batch;
        if (oneOffSlab !== 0) {
          const o = await this.#oneOffOf(seq);
          if (this.#closed) return;
          if (o.slabId !== oneOffSlab) throw new GpufeedError(ErrorCodes.INTERNAL, `batch ${seq}: one-off slab ${o.slabId} announced, ${oneOffSlab} published`);
          const layout = JSON.parse(o.layoutJson) as BatchLayout;
          const oneOff = { slabId: o.slabId, bytes: o.bytes };
          batch = new Batch({ epoch, step, ids, quarantined, slabId: o.slabId, layout, buffer: slabView(o.slabId), release: () => this.#release(slot, oneOff), ...this.#streamOf(ids) });
          this.#stats.oneOff();
        } else {
          batch = new Batch({ epoch, step, ids, quarantined, slabId: s.slab.id, layout: this.layout, buffer: s.buffer, release: () => this.#release(slot), ...this.#streamOf(ids) });
        }
        this.#held += 1;
        this.#delivered = seq + 1;
        this.#stats.waited(performance.now() - w0, ids.length);
        if (seq === 0) startupMark('first-batch');
        this.#handedOut = batch;
        yield batch;
        this.#handedOut = undefined;
        batch.releaseUnlessRetained();
      }
    } finally {
      this.#iterating = false;
    }
  }

  /**
   * The replaced rows of seq's batch in `slot` (quarantine.ts), counted against maxQuarantined:
   * past it the batch is not delivered (its slot and one-off slab go back) and the run ends in
   * GPUFEED_QUARANTINE_LIMIT.
   */
  async #quarantinedRows(seq: number, slot: number, rows: number, oneOffSlab: number, epoch: number, step: number): Promise<readonly number[]> {
    const ledger = this.#quarantine!.ledger;
    // The events met decoding this batch are logged (and counted) before it is delivered.
    const events = ledger.eventsOf(seq, ledger.posted[slot]!);
    if (events) await events;
    if (this.#closed) return NO_ROWS;
    const list = ledger.rowsOf(slot, rows);
    try {
      ledger.delivered(epoch, step, list.length);
    } catch (err) {
      if (oneOffSlab !== 0) {
        const o = await this.#oneOffOf(seq);
        this.#freeOneOff(o.slabId, o.bytes);
      }
      this.#control.free(slot);
      throw err;
    }
    return list.length === 0 ? NO_ROWS : list;
  }

  /**
   * The resume state after the last delivered batch: JSON, the same on every rank at the same
   * step, so rank 0's copy resumes the whole job (also with another world size). With pieces
   * quarantined (onCorrupt 'skip') it is version 3 and lists those this rank found, so the
   * resumed run skips them unread.
   */
  state(): ResumeState {
    const pos = this.#position(this.#startStep + this.#delivered);
    const state = this.streams
      ? mixtureResumeState(this.streams, this.world, this.order, pos.epoch, pos.step)
      : resumeState(this.#shardSizes, this.world, this.order, pos.epoch, pos.step);
    const quarantined = this.#quarantine?.ledger.stateEntries() ?? [];
    return quarantined.length === 0 ? state : { ...state, version: RESUME_VERSION_QUARANTINE, quarantined };
  }

  /** A mixture batch's `stream` (per row, from the ids: each stream's ids are contiguous). */
  #streamOf(ids: readonly number[]): { stream?: Int32Array } {
    return this.streams ? { stream: streamsOfIds(ids, this.streams) } : {};
  }

  stats(): LoaderStatsSnapshot {
    const t = this.#control.totals();
    this.#stats.setDecode({
      batches: t[STAT_BATCHES]!, rows: t[STAT_ROWS]!, bytesRead: t[STAT_BYTES]!, readNs: t[STAT_READ_NS]!, decodeNs: t[STAT_DECODE_NS]!, shardWaitNs: t[STAT_SHARD_WAIT_NS]!,
    });
    const c = this.#control;
    if (this.#quarantine) this.#stats.setQuarantine(this.#quarantine.ledger.samples, this.#quarantine.ledger.events);
    return this.#stats.snapshot({ queued: c.count(READY), filling: c.count(FILLING), freeSlots: c.count(FREE), held: c.count(HELD), slots: this.ring.slots.length }, this.#source.stats);
  }

  /** Stops decoding, waits for the workers' loops to end, frees pinned memory and closes storage. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#observers.close();
    this.#control.stop();
    this.#quarantine?.ledger.stopWaiting();
    // Workers waiting for a shard lease get their answer now; a lease that arrives later is given back.
    const closed = serializeError(new GpufeedError(ErrorCodes.CLOSED, 'loader is closed'));
    for (const link of this.#links) for (const [id, answer] of [...link.pending]) answer({ type: 'leases', id, error: closed });
    if (this.#loops) await Promise.allSettled(this.#loops);
    // No worker writes a slot any more; only now may the slabs go.
    await this.#pool.destroy();
    // One-off slabs of batches published but never released (held, or never taken).
    for (let slot = 0; slot < this.ring.slots.length; slot++) {
      const id = this.#control.oneOffSlabOf(slot);
      if (id !== 0) {
        detachSlab(id);
        freeSlab(id);
      }
    }
    this.#linksClosed = true;
    // A consumer awaiting a message that will now never come resumes (and sees the loader closed).
    for (const waiter of this.#errorWaiters.values()) waiter(closed);
    this.#errorWaiters.clear();
    for (const [seq, waiter] of this.#oneOffWaiters) waiter({ type: 'oneOff', seq, slabId: 0, bytes: 0, layoutJson: '{}' });
    this.#oneOffWaiters.clear();
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
