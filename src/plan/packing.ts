// Sequence packing, the pure part (design: PACKING.md). A list column of tokens is cut into rows of
// exactly `length` tokens along each canonical partition's document order, which does not depend
// on the world size: partition p's documents, in its epoch order, make one token stream, and its
// packed row k is tokens [k*L, (k+1)*L) of it. Global step s takes rows [s*c_p, (s+1)*c_p) of every
// partition, exactly as the sample plan takes samples (partition.ts), and rank r its positions.
//
// Partitions are whole pieces (record batches, row groups) chosen so each holds tokens in
// proportion to its share c_p; the manifest's per-piece token counts (ShardEntry.pieceValues) then
// give every partition's tokens exactly, so every rank computes the same step count from the
// manifest alone, with no message between ranks.
import { ErrorCodes, GpufeedError, invalidOption } from '../errors.js';
import { epochKey } from './order.js';
import type { OrderOptions } from './options.js';
import { deriveKey } from './prng.js';
import { type ShardSize, samplesToShards } from './samples.js';
import { partitionOrder, type PartitionOrder } from './shuffle.js';
import type { World } from './world.js';
import type { ResumeState } from './state.js';
import { MixtureDocuments, type MixtureFeed } from './mixture-packing.js';

export interface PackOptions {
  /** The list column whose values (tokens) are packed. */
  column: string;
  /** Tokens per packed row. */
  length: number;
  /** Value of padding tokens (only with pad). Default 0. */
  padToken?: number;
}

/** At most this many tokens per row (position ids and segment lengths stay small). */
export const MAX_PACK_LENGTH = 1 << 24;

/** A shard as packing sees it: its rows and, per piece, rows and tokens of the packed column. */
export interface PackShard extends ShardSize {
  pieceRows: readonly number[];
  pieceTokens: readonly number[];
}

export interface PackPartition {
  /** First global sample id. */
  start: number;
  /** Documents. */
  size: number;
  /** Tokens of those documents. */
  tokens: number;
  /** c_p: rows per global step. */
  share: number;
  /** C_p: first position of the partition in a global batch. */
  shareStart: number;
}

export interface PackLayout {
  length: number;
  /** Packed rows per global step (batchSize x worldSize). */
  globalBatch: number;
  partitions: PackPartition[];
  pad: boolean;
  /** Steps per epoch, the same on every rank. */
  steps: number;
  /** Tokens in the dataset. */
  tokens: number;
  /** Tokens of each epoch not delivered (the partitions' tails past steps x c_p rows; without pad). */
  droppedTokens: number;
  /** Padding tokens each epoch (pad: rows past a partition's tokens). */
  paddedTokens: number;
}

export function checkPackOptions(pack: unknown): PackOptions {
  if (!pack || typeof pack !== 'object') throw invalidOption('pack', 'must be { column, length } (e.g. { column: "input_ids", length: 2048 })');
  const p = pack as Partial<PackOptions>;
  if (typeof p.column !== 'string' || p.column.length === 0) throw invalidOption('pack', `pack.column must name a list column, got ${JSON.stringify(p.column)}`);
  if (typeof p.length !== 'number' || !Number.isSafeInteger(p.length) || p.length < 1 || p.length > MAX_PACK_LENGTH) {
    throw invalidOption('pack', `pack.length must be an integer from 1 to ${MAX_PACK_LENGTH}, got ${String(p.length)}`);
  }
  const padToken = p.padToken ?? 0;
  if (typeof padToken !== 'number' || !Number.isSafeInteger(padToken)) throw invalidOption('pack', `pack.padToken must be an integer, got ${String(p.padToken)}`);
  for (const k of Object.keys(p)) if (k !== 'column' && k !== 'length' && k !== 'padToken') throw invalidOption('pack', `pack.${k} is not a packing option (column, length, padToken)`);
  return { column: p.column, length: p.length, padToken };
}

/** Partitions of the packed layout: as layoutFor, `naive` is one partition. */
export function packPartitionCount(world: World, options: OrderOptions): number {
  return options.shuffle === 'naive' ? 1 : (options.partitions ?? world.worldSize);
}

/**
 * The packed epoch layout: world-size independent (it depends on the pieces' tokens, the global
 * batch, the partitions, the length and pad). Partition boundaries are piece boundaries nearest
 * to each partition's token share.
 */
export function packLayout(shards: readonly PackShard[], globalBatch: number, partitionCount: number, length: number, pad: boolean): PackLayout {
  const cumRows: number[] = [0];
  const cumTokens: number[] = [0];
  shards.forEach((s, i) => {
    if (s.pieceRows.length !== s.pieceTokens.length) throw new GpufeedError(ErrorCodes.INTERNAL, `shard ${i}: ${s.pieceRows.length} pieces, ${s.pieceTokens.length} token counts`);
    let rows = 0;
    for (let k = 0; k < s.pieceRows.length; k++) {
      rows += s.pieceRows[k]!;
      cumRows.push(cumRows[cumRows.length - 1]! + s.pieceRows[k]!);
      cumTokens.push(cumTokens[cumTokens.length - 1]! + s.pieceTokens[k]!);
    }
    if (rows !== s.rows) throw new GpufeedError(ErrorCodes.INTERNAL, `shard ${i}: pieces hold ${rows} rows, the shard ${s.rows}`);
  });
  const pieces = cumRows.length - 1;
  const total = cumTokens[pieces]!;
  const P = partitionCount;
  const G = globalBatch;
  const shareStart = (p: number): number => Math.ceil((p * G) / P);
  // Boundary b_p: the piece boundary nearest to total x C_p / G, never before b_{p-1}.
  const bounds: number[] = [0];
  for (let p = 1; p < P; p++) {
    const target = (total * shareStart(p)) / G;
    let lo = bounds[p - 1]!;
    let hi = pieces;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (cumTokens[mid]! <= target) lo = mid;
      else hi = mid - 1;
    }
    const next = Math.min(pieces, lo + 1);
    bounds.push(target - cumTokens[lo]! <= cumTokens[next]! - target ? lo : next);
  }
  bounds.push(pieces);
  const partitions: PackPartition[] = [];
  for (let p = 0; p < P; p++) {
    const a = bounds[p]!;
    const b = bounds[p + 1]!;
    partitions.push({ start: cumRows[a]!, size: cumRows[b]! - cumRows[a]!, tokens: cumTokens[b]! - cumTokens[a]!, share: shareStart(p + 1) - shareStart(p), shareStart: shareStart(p) });
  }
  let steps = pad ? 0 : Infinity;
  for (const part of partitions) {
    const rows = part.tokens / (part.share * length);
    steps = pad ? Math.max(steps, Math.ceil(rows)) : Math.min(steps, Math.floor(rows));
  }
  if (!Number.isFinite(steps)) steps = 0;
  let droppedTokens = 0;
  let paddedTokens = 0;
  for (const part of partitions) {
    const delivered = steps * part.share * length;
    droppedTokens += Math.max(0, part.tokens - delivered);
    paddedTokens += Math.max(0, delivered - part.tokens);
  }
  return { length, globalBatch: G, partitions, pad, steps, tokens: total, droppedTokens, paddedTokens };
}

/** The rows a rank writes at every step: per partition it touches, rows [step*c_p + from, step*c_p + to). */
export interface RankRun {
  partition: number;
  /** Offsets within the partition's c_p rows of a step. */
  from: number;
  to: number;
}

export function rankRuns(layout: PackLayout, rank: number, batchSize: number): RankRun[] {
  const first = rank * batchSize;
  const end = first + batchSize;
  const runs: RankRun[] = [];
  layout.partitions.forEach((part, p) => {
    const a = Math.max(first, part.shareStart);
    const b = Math.min(end, part.shareStart + part.share);
    if (a < b) runs.push({ partition: p, from: a - part.shareStart, to: b - part.shareStart });
  });
  return runs;
}

/** The order of partition p's documents in an epoch (offsets from its start). */
export function packPartitionOrder(shards: readonly ShardSize[], layout: PackLayout, options: OrderOptions, epoch: number, p: number): PartitionOrder {
  const part = layout.partitions[p]!;
  const key = deriveKey(epochKey(options, epoch), p);
  return partitionOrder(options.shuffle, { start: part.start, size: part.size }, samplesToShards(shards), key, options.shuffleWindow);
}

/** Where a partition's row `row` starts: document `doc` (position in the epoch order), token `offset` of it. */
export interface PackCarry {
  doc: number;
  offset: number;
  row: number;
}

/**
 * The document feed of one rank: the documents of its partitions in their epoch orders, cut into
 * `steps` feed batches per epoch. Feed step f takes from partition q the documents
 * [from + floor(f*n/steps), from + floor((f+1)*n/steps)), n = size - from: every partition is read
 * at the pace of its own document count, so the packer's backlog stays small. `from` is the
 * resume carry's document in the first epoch, 0 after. Plain data: it crosses to the decode workers.
 */
export interface FeedSpec {
  parts: { partition: number; start: number; size: number; from: number }[];
  firstEpoch: number;
  steps: number;
  /** A packed mixture: partition documents come from its document plan (mixture-packing.ts), not from the shards' ranges. */
  mixture?: MixtureFeed;
}

/** The slice [a, b) of partition entry q at feed step f of epoch. */
export function feedSlice(spec: FeedSpec, q: number, epoch: number, f: number): [number, number] {
  const part = spec.parts[q]!;
  const from = epoch === spec.firstEpoch ? part.from : 0;
  const n = part.size - from;
  return [from + Math.floor((f * n) / spec.steps), from + Math.floor(((f + 1) * n) / spec.steps)];
}

/** The feed's batches as a plan the loader's decode workers follow (global ids, partitions in turn). */
export function feedPlan(shards: readonly ShardSize[], spec: FeedSpec, options: OrderOptions, epoch: number): { epoch: number; steps: number; batchIds(step: number): number[] } {
  // The global id of position t of the feed's part q: a mixture's documents, or a partition's order.
  let idAt: (q: number, t: number) => number;
  if (spec.mixture) {
    const docs = new MixtureDocuments(spec.mixture, options, epoch);
    idAt = (q, t) => docs.at(spec.parts[q]!.partition, t).id;
  } else {
    const locator = samplesToShards(shards);
    const key = epochKey(options, epoch);
    const orders = spec.parts.map((part) => partitionOrder(options.shuffle, { start: part.start, size: part.size }, locator, deriveKey(key, part.partition), options.shuffleWindow));
    idAt = (q, t) => spec.parts[q]!.start + orders[q]!.at(t);
  }
  return {
    epoch,
    steps: spec.steps,
    batchIds(step: number): number[] {
      const ids: number[] = [];
      for (let q = 0; q < spec.parts.length; q++) {
        const [from, to] = feedSlice(spec, q, epoch, step);
        for (let t = from; t < to; t++) ids.push(idAt(q, t));
      }
      return ids;
    },
  };
}

/** Feed batches per epoch for documents of the rank's partitions, about `perStep` documents each. */
export function feedSteps(docs: number, perStep: number): number {
  return Math.max(1, Math.ceil(docs / Math.max(1, perStep)));
}

/** One piece of a packed row: `count` tokens of a document from token `offset`; doc undefined = padding. */
export interface Segment<D> {
  doc: D | undefined;
  offset: number;
  count: number;
}

interface Queued<D> {
  t: number;
  length: number;
  doc: D;
}

/**
 * Cuts one partition's documents, pushed in its epoch order, into rows of `length` tokens, from a
 * carry. Rows before `skipTo` (other ranks' rows, or rows already delivered before a resume
 * without the carry) are consumed without being returned. Generic over the document payload.
 */
export class PartitionPacker<D> {
  readonly length: number;
  /** Rows of this partition in the epoch (steps x c_p). */
  readonly rows: number;
  /** Documents in the partition's epoch. */
  readonly docs: number;
  readonly pad: boolean;
  /** Next row to cut. */
  row: number;
  /** Document position of the queue's head (or of the next document to come), and the head's consumed tokens. */
  #doc: number;
  #offset: number;
  #next: number;
  readonly #queue: Queued<D>[] = [];
  #head = 0;
  /** Tokens queued from the head on, less the head's consumed part. */
  #queued = 0;
  /** Tokens of this partition's epoch consumed past the last row (the dropped tail), counted by drain(). */
  droppedTokens = 0;
  /** Padding tokens cut into rows. */
  paddedTokens = 0;
  /** Called once for every pushed document as it leaves the queue (its last token cut, or drained). */
  readonly #done: ((doc: D) => void) | undefined;

  constructor(length: number, rows: number, docs: number, pad: boolean, carry: PackCarry, done?: (doc: D) => void) {
    this.#done = done;
    this.length = length;
    this.rows = rows;
    this.docs = docs;
    this.pad = pad;
    this.row = carry.row;
    this.#doc = carry.doc;
    this.#offset = carry.offset;
    this.#next = carry.doc;
    // The carry's document comes whole; its first `offset` tokens went into earlier rows.
    this.#queued = -carry.offset;
  }

  /** Documents must come in order, starting at the carry's document. */
  push(t: number, length: number, doc: D): void {
    if (t !== this.#next) throw new GpufeedError(ErrorCodes.INTERNAL, `packer: document ${t} pushed, ${this.#next} expected`);
    this.#next += 1;
    this.#queue.push({ t, length, doc });
    this.#queued += length;
  }

  get done(): boolean {
    return this.row >= this.rows;
  }

  /** Every document of the epoch has been pushed. */
  get fed(): boolean {
    return this.#next >= this.docs;
  }


  /** Row `row` can be cut now (its tokens are queued, or the epoch's documents ran out). */
  ready(): boolean {
    if (this.done) return false;
    return this.fed || this.#queued >= this.length;
  }

  /** Where the next row starts. */
  carry(): PackCarry {
    return { doc: this.#doc, offset: this.#offset, row: this.row };
  }

  /** Cuts the next row (ready() must hold). Its segments; padding at the end when the documents ran out. */
  take(): Segment<D>[] {
    if (!this.ready()) throw new GpufeedError(ErrorCodes.INTERNAL, `packer: row ${this.row} is not ready`);
    const segments: Segment<D>[] = [];
    let need = this.length;
    while (need > 0 && this.#head < this.#queue.length) {
      const q = this.#queue[this.#head]!;
      const n = Math.min(need, q.length - this.#offset);
      if (n > 0) segments.push({ doc: q.doc, offset: this.#offset, count: n });
      need -= n;
      this.#queued -= n;
      this.#offset += n;
      if (this.#offset >= q.length) {
        this.#head += 1;
        this.#doc = q.t + 1;
        this.#offset = 0;
        this.#done?.(q.doc);
      }
    }
    if (this.#head > 64 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
    if (need > 0) {
      if (!this.pad) {
        throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `packing: partition rows ran out of tokens at row ${this.row} of ${this.rows}: the manifest's pieceValues claim more tokens than the documents hold`);
      }
      segments.push({ doc: undefined, offset: 0, count: need });
      this.paddedTokens += need;
    }
    this.row += 1;
    return segments;
  }

  /** After the last row: what is left of the epoch's documents is the dropped tail. */
  drain(): void {
    if (this.#done) for (let i = this.#head; i < this.#queue.length; i++) this.#done(this.#queue[i]!.doc);
    this.droppedTokens += this.#queued;
    this.#queued = 0;
    this.#queue.length = 0;
    this.#head = 0;
    this.#offset = 0;
    this.#doc = this.#next;
  }
}

/** The packing part of a resume state: the carry of every partition this rank read (others: replayed). */
export interface PackResume {
  column: string;
  length: number;
  padToken: number;
  tokens: number;
  droppedTokens: number;
  paddedTokens: number;
  /** Partition -> [document position, token offset] where row stepsDone x c_p starts. */
  carry: Record<string, [number, number]>;
}

/**
 * One state from several ranks' states of the same step: their carries together, so every rank
 * resumes from a carry instead of replaying its partitions from the epoch's start.
 */
export function mergePackStates<S extends { pack?: PackResume; epoch: number; stepsDone: number }>(states: readonly S[]): S {
  if (states.length === 0) throw invalidOption('states', 'must hold at least one state');
  const first = states[0]!;
  const carry: Record<string, [number, number]> = {};
  for (const s of states) {
    if (s.epoch !== first.epoch || s.stepsDone !== first.stepsDone) {
      throw new GpufeedError(ErrorCodes.RESUME_MISMATCH, `resume state stepsDone: states of different steps cannot be merged (epoch ${first.epoch} step ${first.stepsDone} and epoch ${s.epoch} step ${s.stepsDone})`, { field: 'stepsDone' });
    }
    if (!s.pack) throw new GpufeedError(ErrorCodes.RESUME_MISMATCH, 'resume state pack: a state without packing cannot be merged with packed ones', { field: 'pack' });
    Object.assign(carry, s.pack.carry);
  }
  return { ...first, pack: { ...first.pack!, carry } };
}

/**
 * The state after `stepsDone` steps of `epoch`: the sample plan's state (state.ts) with the packed
 * step count and the packing fields. `carry` holds the partitions this rank knows.
 */
export function packResumeState(base: ResumeState, layout: PackLayout, pack: PackOptions, carry: Record<string, [number, number]>): ResumeState {
  return {
    ...base,
    stepsPerEpoch: layout.steps,
    pack: {
      column: pack.column, length: pack.length, padToken: pack.padToken ?? 0, tokens: layout.tokens,
      droppedTokens: layout.droppedTokens, paddedTokens: layout.paddedTokens, carry: layout.steps === base.stepsDone ? {} : carry,
    },
  };
}

/**
 * Where a packed run continues, and the carry of each partition the state knows; checks the
 * packing fields (GPUFEED_RESUME_MISMATCH naming the field). The sample plan's checks (dataset,
 * global batch, partitions, seed, shuffle, pad) are resumePoint's, run by the caller.
 */
export function packResumePoint(state: ResumeState, layout: PackLayout, pack: PackOptions, epochs: number): { epoch: number; step: number; carry: Map<number, [number, number]> } {
  const p = state.pack;
  const fail = (field: string, message: string, saved?: unknown, current?: unknown): never => {
    throw new GpufeedError(ErrorCodes.RESUME_MISMATCH, `resume state ${field}: ${message}`, { field, saved, current });
  };
  if (!p || typeof p !== 'object') return fail('pack', `the state was taken without packing; now pack ${pack.column}=${pack.length}`);
  if (p.column !== pack.column) fail('pack.column', `the state packs ${JSON.stringify(p.column)}, now ${JSON.stringify(pack.column)}`, p.column, pack.column);
  if (p.length !== pack.length) fail('pack.length', `the state packs rows of ${p.length} tokens, now ${pack.length}`, p.length, pack.length);
  if (p.padToken !== (pack.padToken ?? 0)) fail('pack.padToken', `the state pads with ${p.padToken}, now ${pack.padToken ?? 0}`, p.padToken, pack.padToken ?? 0);
  if (p.tokens !== layout.tokens) fail('pack.tokens', `the state's dataset holds ${p.tokens} tokens, now ${layout.tokens}`, p.tokens, layout.tokens);
  if (state.stepsPerEpoch !== layout.steps) fail('stepsPerEpoch', `the state has ${state.stepsPerEpoch} packed steps per epoch, now ${layout.steps}`, state.stepsPerEpoch, layout.steps);
  if (!Number.isSafeInteger(state.stepsDone) || state.stepsDone < 0 || state.stepsDone > layout.steps) fail('stepsDone', `must be an integer from 0 to ${layout.steps}, got ${state.stepsDone}`);
  const carry = new Map<number, [number, number]>();
  if (!p.carry || typeof p.carry !== 'object') fail('pack.carry', 'must be an object of partition -> [document, offset]');
  for (const [k, v] of Object.entries(p.carry)) {
    const part = Number(k);
    const ok = Number.isSafeInteger(part) && part >= 0 && part < layout.partitions.length && Array.isArray(v) && v.length === 2 &&
      v.every((x) => Number.isSafeInteger(x) && x >= 0) && v[0] <= layout.partitions[part]!.size;
    if (!ok) fail('pack.carry', `entry ${JSON.stringify(k)}: ${JSON.stringify(v)} is no [document, offset] of a partition of this layout`);
    carry.set(part, [v[0], v[1]]);
  }
  const point = state.stepsDone === layout.steps ? { epoch: state.epoch + 1, step: 0 } : { epoch: state.epoch, step: state.stepsDone };
  if (epochs !== Infinity && layout.steps > 0 && point.epoch >= epochs) {
    fail('epoch', `the state resumes at epoch ${point.epoch} step ${point.step}, past the last epoch of this run (epochs ${epochs}); pass a larger epochs (--epochs) to continue`, state.epoch, epochs);
  }
  return { ...point, carry: point.step === 0 ? new Map() : carry };
}

/**
 * One rank's packing: a packer per partition it reads, fed the feed's batches, cut step by step.
 * At every step it cuts each of its partitions up to the step's end, returning only its own rows,
 * so its carries always stand at a step boundary (what a resume state records). Generic over the
 * document payload: the loader passes tokens, tests pass nothing.
 */
export class RankPacker<D> {
  readonly layout: PackLayout;
  readonly runs: readonly RankRun[];
  readonly spec: FeedSpec;
  epoch: number;
  /** Tokens of documents consumed past their partitions' last rows, this rank (epochs drained so far). */
  droppedTokens = 0;
  /** Padding tokens this rank's packers cut into rows (delivered or not), epochs before the current one. */
  #paddedBefore = 0;
  #packers = new Map<number, PartitionPacker<D>>();
  readonly #done: ((doc: D) => void) | undefined;

  /** `done(doc)`: called once for every document a packer took (feed asked `doc(i)` for), as the packer is through with it. */
  constructor(layout: PackLayout, runs: readonly RankRun[], spec: FeedSpec, carries: ReadonlyMap<number, PackCarry>, startEpoch: number, done?: (doc: D) => void) {
    this.#done = done;
    this.layout = layout;
    this.runs = runs;
    this.spec = spec;
    this.epoch = startEpoch;
    for (const run of runs) this.#packers.set(run.partition, this.#packer(run.partition, carries.get(run.partition) ?? { doc: 0, offset: 0, row: 0 }));
  }

  #packer(p: number, carry: PackCarry): PartitionPacker<D> {
    const part = this.layout.partitions[p]!;
    // A packed mixture's partition may run short of its expected tokens: its last rows are padded.
    const padShort = this.layout.pad || (this.layout as { expected?: boolean }).expected === true;
    return new PartitionPacker<D>(this.layout.length, this.layout.steps * part.share, part.size, padShort, carry, this.#done);
  }

  /**
   * Takes feed batch (epoch, step): its documents in feed order; `length(i)` is the i-th's tokens,
   * `doc(i)` its payload (asked only for documents kept). Returns the documents it held.
   */
  feed(epoch: number, step: number, length: (i: number) => number, doc: (i: number) => D): number {
    if (epoch > this.epoch) throw new GpufeedError(ErrorCodes.INTERNAL, `packing: a document of epoch ${epoch} came during epoch ${this.epoch}`);
    let i = 0;
    this.spec.parts.forEach((part, q) => {
      const [a, b] = feedSlice(this.spec, q, epoch, step);
      const packer = epoch === this.epoch ? this.#packers.get(part.partition) : undefined;
      for (let t = a; t < b; t++, i++) {
        const n = length(i);
        // Documents of a finished epoch, or past a partition's last row: its dropped tail.
        if (!packer || packer.done) this.droppedTokens += n;
        else packer.push(t, n, doc(i));
      }
    });
    return i;
  }

  /**
   * Cuts step `step` of the current epoch: `row(j, segments)` for each of the rank's rows j in
   * order. `pull` brings the next feed batch (false when the feed is over).
   */
  async cut(step: number, pull: () => Promise<boolean>, row: (j: number, segments: Segment<D>[]) => void): Promise<number> {
    let j = 0;
    for (const run of this.runs) {
      const part = this.layout.partitions[run.partition]!;
      const packer = this.#packers.get(run.partition)!;
      const first = step * part.share + run.from;
      const last = step * part.share + run.to;
      const end = (step + 1) * part.share;
      if (packer.row > first) throw new GpufeedError(ErrorCodes.INTERNAL, `packing: partition ${run.partition} is at row ${packer.row}, past step ${step}'s row ${first}`);
      while (packer.row < end) {
        while (!packer.ready()) {
          if (!(await pull())) throw new GpufeedError(ErrorCodes.INTERNAL, `packing: the document feed ended before row ${packer.row} of partition ${run.partition}`);
        }
        const k = packer.row;
        const segments = packer.take();
        if (k >= first && k < last) row(j++, segments);
      }
    }
    return j;
  }

  /** The epoch is over: its tails are dropped; the next epoch's packers start at its first document. */
  nextEpoch(): void {
    this.drain();
    for (const p of this.#packers.values()) this.#paddedBefore += p.paddedTokens;
    this.epoch += 1;
    for (const run of this.runs) this.#packers.set(run.partition, this.#packer(run.partition, { doc: 0, offset: 0, row: 0 }));
  }

  /** The current epoch's queued tails to droppedTokens (at its end, or once its feed is read to the end). */
  drain(): void {
    for (const p of this.#packers.values()) {
      p.drain();
      this.droppedTokens += p.droppedTokens;
      p.droppedTokens = 0;
    }
  }

  /** Padding tokens cut so far (every partition this rank packs). */
  get paddedTokens(): number {
    let n = this.#paddedBefore;
    for (const p of this.#packers.values()) n += p.paddedTokens;
    return n;
  }

  /** The carries of the partitions standing at row stepsDone x c_p of the current epoch. */
  carries(stepsDone: number): Record<string, [number, number]> {
    const out: Record<string, [number, number]> = {};
    for (const run of this.runs) {
      const c = this.#packers.get(run.partition)!.carry();
      if (c.row === stepsDone * this.layout.partitions[run.partition]!.share) out[String(run.partition)] = [c.doc, c.offset];
    }
    return out;
  }
}

/**
 * A rank's feed and starting carries, from the layout and a resume point: documents of the rank's
 * partitions from their carries (from the epoch's first document where none is known: those rows
 * are replayed, cut without being delivered). `perStep`: documents per feed batch wanted.
 */
export function rankFeed(layout: PackLayout, runs: readonly RankRun[], start: { epoch: number; step: number; carry: ReadonlyMap<number, [number, number]> }, perStep: number, mixture?: MixtureFeed): { spec: FeedSpec; carries: Map<number, PackCarry>; batch: number } {
  const carries = new Map<number, PackCarry>();
  for (const run of runs) {
    const part = layout.partitions[run.partition]!;
    const c = start.carry.get(run.partition);
    carries.set(run.partition, c ? { doc: c[0], offset: c[1], row: start.step * part.share } : { doc: 0, offset: 0, row: 0 });
  }
  const docs = runs.reduce((a, r) => a + layout.partitions[r.partition]!.size, 0);
  const steps = feedSteps(docs, perStep);
  const spec: FeedSpec = {
    parts: runs.map((r) => ({ partition: r.partition, start: layout.partitions[r.partition]!.start, size: layout.partitions[r.partition]!.size, from: carries.get(r.partition)!.doc })),
    firstEpoch: start.epoch,
    steps,
  };
  if (mixture) spec.mixture = mixture;
  // A feed batch holds at most ceil(size_q / steps) documents of each partition.
  return { spec, carries, batch: Math.max(1, Math.ceil(docs / steps) + runs.length) };
}
