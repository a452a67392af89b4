// The packed loader (PACKING.md): a loader of documents (loader.ts, following the document feed
// of plan/packing.ts instead of the sample plan) and, on this thread, the packers that cut the
// documents of each partition this rank reads into rows of exactly `length` tokens, written into
// batch slots of their own: [batchSize, length] tokens, [batchSize, length] position_ids and the
// rows' segment lengths (seq_lens). The rows' places depend only on the documents' order, so any
// world size resumes from the carries of a state exactly.
import { ErrorCodes, GpufeedError, invalidOption } from '../errors.js';
import { openDataset } from '../dataset/open-dataset.js';
import type { ColumnSpec, ManifestV1, NumericDType } from '../dataset/types.js';
import {
  adoptResumeOptions, layoutFor, mixtureChanged, mixtureLayout, mixtureResumePoint, mixtureResumeState, resolveOrderOptions, resolveWorld, resumePoint, resumeState,
  type OrderOptions, type ResolvedStream, type ResumeState, type World,
} from '../plan/index.js';
import { isMixturePackLayout, mixturePackLayout, type MixtureFeed } from '../plan/mixture-packing.js';
import { openMixture, streamsOfIds, type DatasetInput } from './mixture-source.js';
import {
  checkPackOptions, packLayout, packPartitionCount, packResumePoint, packResumeState, RankPacker, rankFeed, rankRuns,
  type FeedSpec, type PackCarry, type PackLayout, type PackOptions, type PackShard, type RankRun,
} from '../plan/packing.js';
import { computeBatchLayout, maxRowBytes, type BatchLayout, type ColumnRegion } from './batch-layout.js';
import { VAR_MEAN_ROW_FACTOR, VAR_ROW_FLOOR_BYTES } from './memory-budget.js';
import { BatchRing } from './batch-ring.js';
import { ARRAY_CTORS, Batch, isVarColumn, type NumericArray } from './batch.js';
import { Loader, type LoaderInternalOptions, type LoaderOptions, type PackedLoaderOptions } from './loader.js';
import type { LoaderStatsSnapshot } from './stats.js';

/** The extra output columns. */
export const POSITION_IDS = 'position_ids';
export const SEQ_LENS = 'seq_lens';

/** Packing figures per epoch, over all ranks (the same on every rank), and this rank's so far. */
export interface PackStats {
  length: number;
  stepsPerEpoch: number;
  tokensPerEpoch: number;
  droppedTokensPerEpoch: number;
  paddedTokensPerEpoch: number;
  /** Rows this rank delivered. */
  rows: number;
  /** Tokens of documents this rank's packers consumed past their last rows (their share of the drop). */
  droppedTokens: number;
  /** Padding tokens in the rows this rank's packers cut (pad, or a mixture's partition running short). */
  paddedTokens: number;
  /** Mixtures: tokensPerEpoch, droppedTokensPerEpoch and paddedTokensPerEpoch are expectations (documents are chosen per epoch). */
  expected: boolean;
}

/** Output slots by default: the consumer may hold a few while the next one is packed. */
const DEFAULT_PACKED_SLOTS = 4;

export interface PackedRowsInfo {
  /** Per row, its segments as [documentId, tokenOffset, count, ...]; documentId -1 is padding. */
  segments: number[][];
}

/** The plan's view of the manifest's shards for packing; names the shard that lacks token counts. */
export function packShards(manifest: ManifestV1, column: string): PackShard[] {
  return manifest.shards.map((s) => {
    const tokens = s.pieceValues?.[column];
    if (!tokens) {
      throw invalidOption('pack', `shard ${s.path} records no token counts for column ${column} (pieceValues): packing needs them to give every rank the same steps; write the dataset with gpufeed prep`, { shard: s.path, column });
    }
    const pieceRows = s.layout.kind === 'arrow' ? s.layout.batches.map((b) => b.rows) : s.layout.rowGroups.map((g) => g.rows);
    return { rows: s.rows, bytes: s.bytes, hash: s.hash, pieceRows, pieceTokens: tokens };
  });
}

/** The packed column's spec, checked: a list of integers. */
export function packColumnSpec(manifest: ManifestV1, pack: PackOptions): ColumnSpec {
  const col = manifest.schema.find((c) => c.name === pack.column);
  if (!col) throw new GpufeedError(ErrorCodes.UNKNOWN_COLUMN, `pack.column: the dataset has no column ${pack.column} (columns: ${manifest.schema.map((c) => c.name).join(', ')})`, { column: pack.column, option: 'pack' });
  if (col.kind !== 'list' || !/^u?int(8|16|32|64)$/.test(col.dtype)) {
    throw invalidOption('pack', `pack.column ${pack.column} must be a list of integers (token ids), got ${col.kind} of ${col.dtype}`, { column: pack.column });
  }
  if (pack.column === POSITION_IDS || pack.column === SEQ_LENS) throw invalidOption('pack', `pack.column must not be named ${pack.column}: packing adds a column of that name`);
  return col;
}

/** Everything a packed run's plan fixes, from the manifest and options; shared by the loader and `gpufeed plan`. */
export interface PackSetup {
  pack: PackOptions;
  world: World;
  order: OrderOptions;
  shards: PackShard[];
  layout: PackLayout;
  runs: RankRun[];
  start: { epoch: number; step: number; carry: Map<number, [number, number]> };
  /** A packed mixture: its streams and the document feed's plan. */
  streams?: ResolvedStream[];
  mixtureFeed?: MixtureFeed;
}

/** World and order options of a packed run, the resume state's plan parameters adopted. */
function packWorldOrder(options: PackedLoaderOptions): { world: World; order: OrderOptions } {
  const world = resolveWorld(
    Object.fromEntries(
      Object.entries({ rank: options.rank, worldSize: options.worldSize, localRank: options.localRank, localWorldSize: options.localWorldSize }).filter(([, v]) => v !== undefined),
    ) as Partial<World>,
  );
  const partial: Partial<OrderOptions> = { batchSize: options.batchSize };
  for (const k of ['seed', 'shuffle', 'shuffleWindow', 'partitions', 'pad', 'epochs'] as const) {
    if (options[k] !== undefined) (partial as Record<string, unknown>)[k] = options[k];
  }
  if (options.dropLast) throw invalidOption('dropLast', 'does not apply to packing: the tail past the last full step is dropped unless pad is set');
  const order = resolveOrderOptions(options.resume ? adoptResumeOptions(partial, options.resume, world) : partial, world);
  return { world, order };
}

export function packSetup(manifest: ManifestV1, options: PackedLoaderOptions): PackSetup {
  const pack = checkPackOptions(options.pack);
  packColumnSpec(manifest, pack);
  const { world, order } = packWorldOrder(options);
  const shards = packShards(manifest, pack.column);
  const layout = packLayout(shards, order.batchSize * world.worldSize, packPartitionCount(world, order), pack.length, order.pad);
  let start: PackSetup['start'] = { epoch: 0, step: 0, carry: new Map() };
  if (options.resume) {
    const state = options.resume;
    // The sample plan's checks (dataset, global batch, partitions, seed, shuffle, pad), on the state's step boundary 0.
    const sampleSteps = layoutFor(shards, world, order).steps;
    resumePoint({ ...state, stepsPerEpoch: sampleSteps, stepsDone: 0 }, shards, world, order);
    start = packResumePoint(state, layout, pack, order.epochs);
  }
  return { pack, world, order, shards, layout, runs: rankRuns(layout, world.rank, order.batchSize), start };
}

/**
 * The packed setup of a mixture (mixture-packing.ts): `manifest` is the combined one (openMixture),
 * `streams` its resolved streams. Every stream must hold the packed column as a list of integers
 * (openMixture checks the column's presence and agreement, naming the stream) and per-piece token
 * counts (named by stream and shard here).
 */
export function packMixtureSetup(manifest: ManifestV1, streams: ResolvedStream[], uris: readonly string[], options: PackedLoaderOptions): PackSetup {
  const pack = checkPackOptions(options.pack);
  packColumnSpec(manifest, pack);
  const { world, order } = packWorldOrder(options);
  const streamTokens: number[] = [];
  let at = 0;
  streams.forEach((stream, k) => {
    let tokens = 0;
    for (let i = 0; i < stream.shards.length; i++) {
      const s = manifest.shards[at + i]!;
      const values = s.pieceValues?.[pack.column];
      if (!values) {
        const path = s.path.replace(/^@\d+\//, '');
        throw invalidOption('pack', `mixture stream ${k} (${uris[k]}): shard ${path} records no token counts for column ${pack.column} (pieceValues): packing needs them to give every rank the same steps; write the dataset with gpufeed prep`, { stream: k, shard: path, column: pack.column });
      }
      for (const v of values) tokens += v;
    }
    at += stream.shards.length;
    streamTokens.push(tokens);
  });
  const shards = packShards(manifest, pack.column);
  const G = order.batchSize * world.worldSize;
  const P = packPartitionCount(world, order);
  const layout = mixturePackLayout(streams, streamTokens, order, G, P, pack.length, order.pad);
  let start: PackSetup['start'] = { epoch: 0, step: 0, carry: new Map() };
  if (options.resume) {
    const state = options.resume;
    // The mixture plan's checks (mixture by name, global batch, partitions, seed, shuffle, pad), on the state's step boundary 0.
    const docSteps = mixtureLayout(streams.map((s) => s.perEpoch), G, P, false).steps;
    const docOrder = { ...order, dropLast: false };
    mixtureResumePoint({ ...state, stepsPerEpoch: docSteps, stepsDone: 0 }, streams, world, docOrder, options.mixtureChange);
    if (!mixtureChanged(state, streams)) start = packResumePoint(state, layout, pack, order.epochs);
    else {
      // mixtureChange 'next-epoch': the new mixture from the next epoch not yet begun, its documents from the start.
      const p = state.pack;
      if (!p || p.column !== pack.column || p.length !== pack.length || p.padToken !== (pack.padToken ?? 0)) {
        packResumePoint(state, { ...layout, tokens: p?.tokens ?? layout.tokens }, pack, Infinity);
      }
      start = { epoch: state.stepsDone === 0 ? state.epoch : state.epoch + 1, step: 0, carry: new Map() };
      if (order.epochs !== Infinity && layout.steps > 0 && start.epoch >= order.epochs) {
        throw new GpufeedError(ErrorCodes.RESUME_MISMATCH, `resume state epoch: the new mixture starts at epoch ${start.epoch}, past the last epoch of this run (epochs ${order.epochs}); pass a larger epochs (--epochs) to continue`, { field: 'epoch', saved: state.epoch, current: order.epochs });
      }
    }
  }
  const mixtureFeed: MixtureFeed = { streams, globalBatch: G, partitions: layout.partitions.length, docsPerRow: layout.docsPerRow };
  return { pack, world, order, shards, layout, runs: rankRuns(layout, world.rank, order.batchSize), start, streams, mixtureFeed };
}

export async function openPackedLoader(uri: DatasetInput, options: PackedLoaderOptions, internal: LoaderInternalOptions): Promise<PackedLoader> {
  if (options.columns !== undefined && (options.columns.length !== 1 || options.columns[0] !== options.pack?.column)) {
    throw invalidOption('columns', `with pack, only the packed column (${options.pack?.column}) is loaded; leave columns unset`);
  }
  let setup: PackSetup;
  let manifest: ManifestV1;
  if (typeof uri === 'string') {
    const opened = await openDataset(uri, options);
    manifest = opened.manifest;
    try {
      setup = packSetup(opened.manifest, options);
    } finally {
      await opened.shards.close();
    }
  } else {
    const column = typeof options.pack?.column === 'string' ? options.pack.column : undefined;
    const mixture = await openMixture(uri, { ...options, ...(column === undefined ? {} : { columns: [column] }) });
    manifest = mixture.manifest;
    try {
      setup = packMixtureSetup(mixture.manifest, mixture.streams, mixture.uris, options);
    } finally {
      await mixture.store.close();
    }
  }
  const { layout, runs, start } = setup;
  const docs = runs.reduce((a, r) => a + layout.partitions[r.partition]!.size, 0);
  const tokens = runs.reduce((a, r) => a + layout.partitions[r.partition]!.tokens, 0);
  const rowsPerStep = runs.reduce((a, r) => a + layout.partitions[r.partition]!.share, 0);
  const meanDoc = docs > 0 ? tokens / docs : 1;
  const perStep = feedBatchDocuments({
    batchSize: options.batchSize, stepTokens: rowsPerStep * setup.pack.length, meanDoc, docRegionBytes: feedDocRegionBytes(manifest, setup.pack.column),
    minTokens: internal.packFeedTokens ?? FEED_BATCH_TOKENS,
  });
  const { spec, carries, batch: innerBatch } = rankFeed(layout, runs, start, perStep, setup.mixtureFeed);
  const { pack: _pack, resume: _resume, columns: _columns, partitions: _partitions, dropLast: _dropLast, mixtureChange: _change, ...rest } = options;
  const inner = await Loader.open(uri, { ...rest, batchSize: innerBatch, columns: [setup.pack.column], seed: setup.order.seed, shuffle: setup.order.shuffle, shuffleWindow: setup.order.shuffleWindow, pad: false, epochs: setup.order.epochs }, {
    // Only the packed ring is ever mapped by another process (the bridge): the feed's slots need
    // not hold the largest documents (larger feed batches would make that a large ring).
    ...internal, slotsHoldLargestRows: false, feed: () => spec,
  });
  try {
    return new PackedLoader(inner, setup, spec, carries, options);
  } catch (err) {
    await inner.close();
    throw err;
  }
}

/**
 * Tokens of a feed batch, at least: fewer, larger feed batches. Each one costs the decode workers
 * and this thread a fixed amount (slot hand-over, plan, shard handles) that one step's documents
 * (8 rows of 2,048 tokens: 14 documents) did not pay for: measured 2x the CPU per packed row
 * (benchmarks/packing.ts, section 11).
 */
export const FEED_BATCH_TOKENS = 1 << 17;
/** A feed slot's documents region stays within this (where one step's documents need no more). */
export const FEED_SLOT_BYTES = 8 << 20;

/**
 * Bytes a feed slot sets aside per document: as the loader's memory plan does (memory-budget.ts),
 * the largest document where it is small, else at least VAR_ROW_FLOOR_BYTES.
 */
export function feedDocRegionBytes(manifest: ManifestV1, column: string): number {
  let rows = 0;
  let bytes = 0;
  for (const s of manifest.shards) {
    rows += s.rows;
    bytes += s.bytes;
  }
  const mean = rows > 0 ? bytes / rows : 0;
  return Math.max(1, Math.min(maxRowBytes(manifest, column, VAR_ROW_FLOOR_BYTES), Math.max(VAR_ROW_FLOOR_BYTES, Math.ceil(VAR_MEAN_ROW_FACTOR * mean))));
}

/**
 * Documents per feed batch: one step's (its tokens over the mean document), raised towards
 * `minTokens` (FEED_BATCH_TOKENS) as long as the slot stays within FEED_SLOT_BYTES; at least batchSize, at most 2^16.
 */
export function feedBatchDocuments(o: { batchSize: number; stepTokens: number; meanDoc: number; docRegionBytes: number; minTokens?: number }): number {
  const meanDoc = Math.max(1, o.meanDoc);
  const step = Math.ceil(o.stepTokens / meanDoc);
  const wanted = Math.min(Math.ceil((o.minTokens ?? FEED_BATCH_TOKENS) / meanDoc), Math.floor(FEED_SLOT_BYTES / Math.max(1, o.docRegionBytes)));
  return Math.max(o.batchSize, Math.min(1 << 16, Math.max(step, wanted)));
}

/** One packed step's rows as #fill wrote them. */
interface Filled {
  ids: number[];
  segments: number[][];
  streams?: number[][];
  rowStreams?: Int32Array;
}

/**
 * One feed batch's tokens as the packers' documents read them: a view of the feed slot, held
 * (Batch.retain) until the packers are done with its last document, so the tokens are copied once,
 * into the packed rows; or, for a feed batch that cannot be held (a one-off slab, too many held),
 * a copy.
 */
interface Chunk {
  tokens: NumericArray;
  /** Documents of it still queued in a packer. */
  live: number;
  /** The feed batch while its slot is held. */
  batch: Batch | undefined;
}

/** A document of the feed as a packer holds it: its id, and where its tokens lie in its feed batch's chunk. */
interface Doc {
  id: number;
  /** Mixtures: the document's stream; 0 for one dataset. */
  stream: number;
  chunk: Chunk;
  /** The document's first token in chunk.tokens. */
  at: number;
}

/** Feed slots held at most: of the feed's slots, at most this share, the rest left to the decode workers. */
const HELD_FEED_SHARE = 0.5;

export class PackedLoader implements AsyncIterable<Batch> {
  readonly uri: string;
  readonly manifest: ManifestV1;
  /** The output columns: the packed tokens, position_ids, seq_lens. */
  readonly columns: readonly ColumnSpec[];
  readonly world: World;
  readonly order: OrderOptions;
  readonly pack: PackOptions;
  readonly packLayout: PackLayout;
  readonly layout: BatchLayout;
  readonly ring: BatchRing;
  readonly workers: number;
  /** The document loader underneath. */
  readonly documents: Loader;
  /** A packed mixture's streams; undefined for one dataset. */
  readonly streams: readonly ResolvedStream[] | undefined;
  readonly #packer: RankPacker<Doc>;
  readonly #shards: PackShard[];
  readonly #start: { epoch: number; step: number };
  /** Packed steps delivered. */
  #delivered = 0;
  #rows = 0;
  #iterating = false;
  #closed = false;
  #drained = false;
  readonly #freeSlots: number[];
  #feed: AsyncIterator<Batch> | undefined;
  /** 0, 1, ..., length - 1: every segment's position ids are a prefix of it. */
  readonly #iota: Int32Array;
  /** The batch the loop handed out last, until the loop asks for the next (or a new loop starts). */
  #handedOut: Batch | undefined;
  /** Its prefixes by length, made on first use: a segment's position ids are one set, no view made per segment. */
  readonly #iotaPrefix: (Int32Array | undefined)[];
  /** Chunks whose feed slot is held, oldest first, and how many may be. */
  readonly #held: Chunk[] = [];
  readonly #maxHeld: number;
  readonly #feedSlabs: ReadonlySet<number>;
  /** Chunks the packers are through with, released once the rows that read them are written. */
  readonly #finished: Chunk[] = [];

  constructor(inner: Loader, setup: PackSetup, spec: FeedSpec, carries: Map<number, PackCarry>, options: LoaderOptions) {
    this.documents = inner;
    this.uri = inner.uri;
    this.manifest = inner.manifest;
    this.world = setup.world;
    this.order = setup.order;
    this.pack = setup.pack;
    this.packLayout = setup.layout;
    this.workers = inner.workers;
    this.#shards = setup.shards;
    this.streams = setup.streams;
    this.#start = { epoch: setup.start.epoch, step: setup.start.step };
    this.#packer = new RankPacker<Doc>(setup.layout, setup.runs, spec, carries, setup.start.epoch, this.#docDone);
    // One feed slot at least stays with the workers (the feed loader fails when the consumer holds all).
    this.#maxHeld = Math.min(inner.ring.slots.length - 1, Math.floor(inner.ring.slots.length * HELD_FEED_SHARE));
    this.#feedSlabs = new Set(inner.ring.slots.map((sl) => sl.slab.id));
    const col = packColumnSpec(inner.manifest, setup.pack);
    const L = setup.pack.length;
    this.#iota = new Int32Array(L);
    for (let i = 0; i < L; i++) this.#iota[i] = i;
    this.#iotaPrefix = new Array<Int32Array | undefined>(L + 1).fill(undefined);
    this.columns = [
      { name: col.name, dtype: col.dtype, kind: 'fixed', shape: [L], nullable: false },
      { name: POSITION_IDS, dtype: 'int32', kind: 'fixed', shape: [L], nullable: false },
      { name: SEQ_LENS, dtype: 'int32', kind: 'list', nullable: false },
    ];
    const B = setup.order.batchSize;
    this.layout = computeBatchLayout(inner.manifest, this.columns, B, 4, { [SEQ_LENS]: B * L * 4 });
    const slots = options.slots ?? DEFAULT_PACKED_SLOTS;
    this.ring = new BatchRing(slots, this.layout.slotBytes, options.pin === undefined ? {} : { pin: options.pin });
    this.#freeSlots = this.ring.slots.map((s) => s.index).reverse();
  }

  /** Packed steps per epoch (every rank, every epoch). */
  stepsPerEpoch(_epoch?: number): number {
    return this.packLayout.steps;
  }

  #position(flat: number): { epoch: number; step: number } {
    const S = this.packLayout.steps;
    if (S === 0) return { epoch: this.order.epochs === Infinity ? 0 : this.order.epochs, step: 0 };
    const epoch = Math.floor(flat / S);
    return { epoch, step: flat - epoch * S };
  }

  /** The next feed batch's documents, to their partitions' packers. False when the feed is over. */
  readonly #pull = async (): Promise<boolean> => {
    this.#feed ??= this.documents[Symbol.asyncIterator]();
    // Every row cut so far is written: the chunks done with can go (their slots to the workers).
    this.#settle();
    const r = await this.#feed.next();
    if (r.done) return false;
    const batch = r.value;
    const data = batch.columns[this.pack.column];
    if (!data || !isVarColumn(data)) throw new GpufeedError(ErrorCodes.INTERNAL, `feed batch lacks list column ${this.pack.column}`);
    const { offsets, values } = data;
    const streams = this.streams ? (batch.stream ?? streamsOfIds(batch.ids, this.streams)) : undefined;
    const first = offsets[0]!;
    const chunk: Chunk = { tokens: values.subarray(first, offsets[batch.size]!) as NumericArray, live: 0, batch: undefined };
    const n = this.#packer.feed(batch.epoch, batch.step, (i) => offsets[i + 1]! - offsets[i]!, (i) => {
      chunk.live += 1;
      return { id: batch.ids[i]!, stream: streams ? streams[i]! : 0, chunk, at: offsets[i]! - first };
    });
    if (chunk.live > 0) {
      // The slot is held past the next pull (the feed releases the previous batch then), unless it
      // is a one-off slab (holding one could starve the next oversize batch) or too many are held.
      if (this.#maxHeld > 0 && this.#feedSlabs.has(batch.slabId)) {
        chunk.batch = batch.retain();
        this.#held.push(chunk);
        if (this.#held.length > this.#maxHeld) this.#copyOut(this.#held.shift()!);
      } else chunk.tokens = chunk.tokens.slice() as NumericArray;
    }
    if (n !== batch.size) throw new GpufeedError(ErrorCodes.INTERNAL, `feed batch of epoch ${batch.epoch} step ${batch.step} holds ${batch.size} documents, the feed planned ${n}`);
    return true;
  };

  /** The packers' documents of a held chunk read a copy from now on; its slot goes back. */
  #copyOut(chunk: Chunk): void {
    chunk.tokens = chunk.tokens.slice() as NumericArray;
    chunk.batch?.release();
    chunk.batch = undefined;
  }

  /** A packer is through with a document; after its chunk's last, the chunk is released at the next #settle. */
  readonly #docDone = (doc: Doc): void => {
    if (--doc.chunk.live === 0) this.#finished.push(doc.chunk);
  };

  /**
   * Releases the slots of the chunks the packers are through with. Only between rows: a
   * document is done as its last row is cut, before that row is written, and a released slot may
   * be refilled by a worker at once.
   */
  #settle(): void {
    for (const chunk of this.#finished) {
      if (!chunk.batch) continue;
      chunk.batch.release();
      chunk.batch = undefined;
      const k = this.#held.indexOf(chunk);
      if (k >= 0) this.#held.splice(k, 1);
    }
    this.#finished.length = 0;
  }

  /** Fills slot `slot` with this rank's rows of step `step`; returns the rows' first documents and segments. */
  async #fill(slot: number, step: number): Promise<Filled> {
    const buffer = this.ring.slots[slot]!.buffer;
    const [tokRegion, posRegion, lenRegion] = this.layout.columns as [ColumnRegion, ColumnRegion, ColumnRegion];
    const L = this.pack.length;
    const B = this.order.batchSize;
    const Ctor = ARRAY_CTORS[tokRegion.dtype as NumericDType];
    const tokens = new Ctor(buffer, tokRegion.valuesOffset, B * L);
    const positions = new Int32Array(buffer, posRegion.valuesOffset, B * L);
    const lenOffsets = new Int32Array(buffer, lenRegion.offsetsOffset, B + 1);
    const lens = new Int32Array(buffer, lenRegion.valuesOffset, B * L);
    const big = tokens instanceof BigInt64Array || tokens instanceof BigUint64Array;
    const padToken = this.pack.padToken ?? 0;
    const ids: number[] = [];
    const segments: number[][] = [];
    const streams: number[][] = [];
    const rowStreams = new Int32Array(B);
    let nLens = 0;
    lenOffsets[0] = 0;
    const iota = this.#iota;
    const prefix = this.#iotaPrefix;
    const rows = await this.#packer.cut(step, this.#pull, (j, segs) => {
      const base = j * L;
      let at = 0;
      const flat: number[] = [];
      const segStreams: number[] = [];
      // Consecutive documents of one feed batch lie end to end in its chunk: a run of segments
      // that continue each other there is copied with one set.
      let run: NumericArray | undefined;
      let runFrom = 0;
      let runTo = 0;
      let runAt = 0;
      for (let k = 0; k < segs.length; k++) {
        const s = segs[k]!;
        const doc = s.doc;
        if (doc) {
          const from = doc.at + s.offset;
          if (doc.chunk.tokens === run && from === runTo) runTo += s.count;
          else {
            if (run) (tokens as Int32Array).set(run.subarray(runFrom, runTo) as Int32Array, runAt);
            run = doc.chunk.tokens;
            runFrom = from;
            runTo = from + s.count;
            runAt = base + at;
          }
          flat.push(doc.id, s.offset, s.count);
          segStreams.push(doc.stream);
        } else {
          (tokens as unknown as { fill(v: number | bigint, a: number, b: number): void }).fill(big ? BigInt(padToken) : padToken, base + at, base + at + s.count);
          flat.push(-1, 0, s.count);
          segStreams.push(-1);
        }
        // Position ids restart at 0 at every segment: a prefix of the 0..L-1 ramp.
        positions.set(prefix[s.count] ?? (prefix[s.count] = iota.subarray(0, s.count)), base + at);
        lens[nLens++] = s.count;
        at += s.count;
      }
      if (run) (tokens as Int32Array).set(run.subarray(runFrom, runTo) as Int32Array, runAt);
      ids.push(segs[0]?.doc?.id ?? -1);
      rowStreams[j] = segs[0]?.doc?.stream ?? -1;
      segments.push(flat);
      streams.push(segStreams);
      lenOffsets[j + 1] = nLens;
    });
    this.#settle();
    if (rows !== B) throw new GpufeedError(ErrorCodes.INTERNAL, `packed step ${step}: ${rows} rows, the batch holds ${B}`);
    return this.streams ? { ids, segments, streams, rowStreams } : { ids, segments };
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Batch, void, undefined> {
    if (this.#iterating) throw new GpufeedError(ErrorCodes.INVALID_OPTION, 'this loader is already being iterated; open another loader', { option: 'iterate' });
    this.#iterating = true;
    // A loop left with break kept its last batch (valid until the loop asks for the next one):
    // this loop asking is that moment, so a loader iterated again does not leak a slot per break.
    const left = this.#handedOut;
    this.#handedOut = undefined;
    left?.releaseUnlessRetained();
    const S = this.packLayout.steps;
    const first = this.#start.epoch * S + this.#start.step;
    const end = S === 0 ? first : this.order.epochs === Infinity ? Infinity : this.order.epochs * S;
    try {
      for (let flat = first + this.#delivered; flat < end; flat++) {
        if (this.#closed) return;
        const { epoch, step } = this.#position(flat);
        if (epoch !== this.#packer.epoch) this.#packer.nextEpoch();
        const slot = this.#freeSlots.pop();
        if (slot === undefined) {
          throw new GpufeedError(ErrorCodes.INVALID_OPTION, `all ${this.ring.slots.length} packed batch slots are held by the consumer (retained batches); release some or raise the slots option`, { option: 'slots' });
        }
        let filled: Filled;
        try {
          filled = await this.#fill(slot, step);
        } catch (err) {
          this.#freeSlots.push(slot);
          throw err;
        }
        if (this.#closed) return;
        const s = this.ring.slots[slot]!;
        const batch = new Batch({
          epoch, step, ids: filled.ids, slabId: s.slab.id, layout: this.layout, buffer: s.buffer,
          pack: filled.streams ? { segments: filled.segments, streams: filled.streams } : { segments: filled.segments },
          ...(filled.rowStreams ? { stream: filled.rowStreams } : {}),
          release: () => {
            if (!this.#closed) this.#freeSlots.push(slot);
          },
        });
        this.#delivered += 1;
        this.#rows += filled.ids.length;
        this.#handedOut = batch;
        yield batch;
        this.#handedOut = undefined;
        batch.releaseUnlessRetained();
      }
      // The run is over: the rest of the last epoch's documents is its dropped tail, read to count it.
      if (end !== Infinity && !this.#closed) {
        await this.#drainFeed();
      }
    } finally {
      this.#iterating = false;
    }
  }

  /** Reads the document feed to its end, each document past the packers' last rows counted as dropped. */
  async #drainFeed(): Promise<void> {
    if (this.packLayout.steps === 0 || this.#drained) return;
    this.#drained = true;
    // A bounded loop: the feed has feedSteps batches per epoch left at most.
    while (!this.#closed && (await this.#pull()));
    this.#packer.drain();
    this.#settle();
  }

  /**
   * The resume state after the last delivered batch. It carries where the next row of each
   * partition this rank read starts; mergePackStates joins several ranks' states, and a partition
   * without a carry is replayed from its epoch's start on resume (exact, only slower).
   */
  state(): ResumeState {
    const pos = this.#position(this.#start.epoch * this.packLayout.steps + this.#start.step + this.#delivered);
    const base = this.streams
      ? mixtureResumeState(this.streams, this.world, { ...this.order, dropLast: false }, pos.epoch, 0)
      : resumeState(this.#shards, this.world, this.order, pos.epoch, 0);
    // At an epoch's end the next epoch starts from its first documents: no carry needed.
    const carry = pos.step > 0 && pos.epoch === this.#packer.epoch ? this.#packer.carries(pos.step) : {};
    return packResumeState({ ...base, stepsDone: pos.step }, this.packLayout, this.pack, carry);
  }

  stats(): LoaderStatsSnapshot & { pack: PackStats } {
    const inner = this.documents.stats();
    return {
      ...inner,
      batches: this.#delivered,
      rows: this.#rows,
      pack: {
        length: this.pack.length, stepsPerEpoch: this.packLayout.steps, tokensPerEpoch: this.packLayout.tokens,
        droppedTokensPerEpoch: this.packLayout.droppedTokens, paddedTokensPerEpoch: this.packLayout.paddedTokens,
        rows: this.#rows, droppedTokens: this.#packer.droppedTokens, paddedTokens: this.#packer.paddedTokens, expected: isMixturePackLayout(this.packLayout),
      },
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.documents.close();
    } finally {
      this.ring.close();
    }
  }
}

/**
 * One line on packing's accounting, for the CLI: steps, tokens, what is dropped or padded per
 * epoch. A mixture's figures are expectations (its documents are chosen per epoch): `~` before
 * them and `over K streams` after the column.
 */
export function packSummary(l: { pack: PackOptions; packLayout: PackLayout }): string {
  const { steps, tokens, droppedTokens, paddedTokens } = l.packLayout;
  const pct = (n: number): string => (tokens > 0 ? ((100 * n) / tokens).toFixed(2) : '0.00');
  if (isMixturePackLayout(l.packLayout)) {
    const K = l.packLayout.streamTokens.length;
    return `pack ${l.pack.column}=${l.pack.length} over ${K} streams: ${steps} steps per epoch, ~${tokens} tokens, ~${droppedTokens} dropped (${pct(droppedTokens)}%), ~${paddedTokens} padding (${pct(paddedTokens)}%) per epoch (expected)`;
  }
  return `pack ${l.pack.column}=${l.pack.length}: ${steps} steps per epoch, ${tokens} tokens, ${droppedTokens} dropped (${pct(droppedTokens)}%), ${paddedTokens} padding (${pct(paddedTokens)}%) per epoch`;
}

/** One line on what this rank's packers dropped and padded so far (exact, for a mixture too). */
export function packRankSummary(l: PackedLoader): string {
  const p = l.stats().pack;
  return `pack rank ${l.world.rank}: ${p.rows} rows, ${p.droppedTokens} tokens dropped, ${p.paddedTokens} padding tokens`;
}
