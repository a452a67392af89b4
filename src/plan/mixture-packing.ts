// Packing over a weighted mixture (PACKING.md, "Mixtures"). The documents are the mixture's plan
// with m document positions per packed row of a global step (G = batchSize x worldSize): a
// document step has m G positions, and packing partition p owns positions [m C_p, m C_{p+1}) of
// every one, m c_p documents for its c_p rows, so each partition's documents are in proportion to
// its rows. Partition p's document stream is its positions over the document steps in order (the
// interleaved global order: every stretch of it holds the mixture's proportions up to one document
// per stream per document step); its packed row k is tokens [k L, (k+1) L) of that stream, as for
// one dataset. m makes a partition's share of a document step at least DOC_STEP_SHARE documents,
// so the one-document rounding of each step weighs little in a partition's tokens (with m = 1 the
// interleave's rounding repeats at the same positions every step and the partitions' stream mixes
// drift apart by up to 1/(c_p w_k)). All of it is world-size independent (it depends on G and P),
// so carries resume on any world size with the same global batch and partitions.
//
// What is not known in advance is a partition's tokens: a mixture chooses its documents per epoch
// (subsampled, repeated), and the manifest holds tokens per piece, not per document. The step
// count comes from each partition's expected tokens (its documents per stream x the stream's mean
// document length, from the pieces' token counts) less a margin of two standard deviations
// (taking a document length's deviation as its mean, as for exponential-like lengths), so it is
// the same on every rank without a message. A partition with more tokens drops its tail, one that
// runs short pads its last rows: both counted as they happen (stats().pack, the dump's stderr).
import { ErrorCodes, GpufeedError } from '../errors.js';
import { MixtureEpoch } from './mixture.js';
import type { ResolvedStream } from './mixture-spec.js';
import type { OrderOptions } from './options.js';
import type { PackLayout, PackPartition } from './packing.js';

/** What the decode workers need to follow a packed mixture's document feed (plain data). */
export interface MixtureFeed {
  streams: ResolvedStream[];
  /** Packed rows per global step (G). */
  globalBatch: number;
  partitions: number;
  /** m: document positions per packed row of a step (a document step has m G positions). */
  docsPerRow: number;
}

/** Documents of a partition's share of one document step, at least (m c_p >= this). */
export const DOC_STEP_SHARE = 1024;
/** A document step's positions, at most (the mixture interleave's bound). */
const MAX_DOC_STEP = 1 << 24;

/** m for a packed global batch G over P partitions: the smallest share c_p times m reaches DOC_STEP_SHARE. */
export function docsPerRow(globalBatch: number, partitions: number): number {
  const minShare = Math.max(1, Math.floor(globalBatch / partitions));
  return Math.max(1, Math.min(Math.ceil(DOC_STEP_SHARE / minShare), Math.floor(MAX_DOC_STEP / globalBatch)));
}

/** Standard deviations of a partition's tokens kept back from its expected tokens. */
export const MIXTURE_PACK_MARGIN_SIGMAS = 2;

/** The order options the document plan of a packed mixture uses: no padding or dropping of documents. */
export function mixtureDocOptions(options: OrderOptions, partitions: number): OrderOptions {
  return { ...options, partitions, pad: false, dropLast: false };
}

/** A packed mixture's layout: PackLayout with expected token figures, and each partition's documents per stream. */
export interface MixturePackLayout extends PackLayout {
  expected: true;
  /** Per partition, per stream: its documents in an epoch. */
  streamDocs: number[][];
  /** m: document positions per packed row of a step. */
  docsPerRow: number;
  /** Per stream: tokens of the whole stream (pieceValues) and its mean document length. */
  streamTokens: number[];
}

/**
 * The layout of a packed mixture: partitions' documents per stream, expected tokens, steps.
 * `streamTokens[k]`: tokens of stream k's rows (the manifest's pieceValues).
 */
export function mixturePackLayout(
  streams: readonly ResolvedStream[], streamTokens: readonly number[], options: OrderOptions, globalBatch: number, partitionCount: number, length: number, pad: boolean,
): MixturePackLayout {
  if (streamTokens.length !== streams.length) throw new GpufeedError(ErrorCodes.INTERNAL, `${streams.length} streams, ${streamTokens.length} token counts`);
  const m = docsPerRow(globalBatch, partitionCount);
  const epoch = new MixtureEpoch(streams, mixtureDocOptions(options, partitionCount), m * globalBatch, 0);
  const P = partitionCount;
  const rowStart = (p: number): number => Math.ceil((p * globalBatch) / P);
  const mean = streams.map((s, k) => (s.rows > 0 ? (streamTokens[k] as number) / s.rows : 0));
  const partitions: PackPartition[] = [];
  const streamDocs: number[][] = [];
  const expected: number[] = [];
  const margins: number[] = [];
  for (let p = 0; p < P; p++) {
    const a = rowStart(p);
    const b = rowStart(p + 1);
    const counts = epoch.rangeStreamCounts(m * a, m * b);
    const size = counts.reduce((a, b) => a + b, 0);
    let e = 0;
    let variance = 0;
    counts.forEach((n, k) => {
      e += n * (mean[k] as number);
      variance += n * (mean[k] as number) ** 2;
    });
    partitions.push({ start: 0, size, tokens: Math.round(e), share: b - a, shareStart: a });
    streamDocs.push(counts);
    expected.push(e);
    margins.push(MIXTURE_PACK_MARGIN_SIGMAS * Math.sqrt(variance));
  }
  let steps = pad ? 0 : Infinity;
  partitions.forEach((part, p) => {
    const rows = part.share * length;
    steps = pad ? Math.max(steps, Math.ceil(((expected[p] as number) + (margins[p] as number)) / rows)) : Math.min(steps, Math.floor(Math.max(0, (expected[p] as number) - (margins[p] as number)) / rows));
  });
  if (!Number.isFinite(steps)) steps = 0;
  let droppedTokens = 0;
  let paddedTokens = 0;
  partitions.forEach((part, p) => {
    const delivered = steps * part.share * length;
    droppedTokens += Math.max(0, (expected[p] as number) - delivered);
    paddedTokens += Math.max(0, delivered - (expected[p] as number));
  });
  const tokens = Math.round(expected.reduce((x, y) => x + y, 0));
  return {
    length, globalBatch, partitions, pad, steps, tokens, droppedTokens: Math.round(droppedTokens), paddedTokens: Math.round(paddedTokens),
    expected: true, streamDocs, docsPerRow: m, streamTokens: [...streamTokens],
  };
}

export function isMixturePackLayout(layout: PackLayout): layout is MixturePackLayout {
  return (layout as Partial<MixturePackLayout>).expected === true;
}

/**
 * Partition documents of a packed mixture's epoch: with s = m c_p, document t of partition p is
 * position (t mod s) of p's share of document step floor(t / s). A rank walks its partitions
 * forward, so the last step's batch of each partition is kept.
 */
export class MixtureDocuments {
  readonly epoch: MixtureEpoch;
  readonly #last = new Map<number, { step: number; ids: number[]; streams: number[] }>();

  constructor(feed: MixtureFeed, options: OrderOptions, epoch: number) {
    this.epoch = new MixtureEpoch(feed.streams, mixtureDocOptions(options, feed.partitions), feed.docsPerRow * feed.globalBatch, epoch);
    this.#feed = feed;
  }

  readonly #feed: MixtureFeed;

  /** Partition p's document positions of every document step. */
  range(p: number): [number, number] {
    const { globalBatch: G, partitions: P, docsPerRow: m } = this.#feed;
    return [m * Math.ceil((p * G) / P), m * Math.ceil(((p + 1) * G) / P)];
  }

  /** Global id and stream of document t of partition p. */
  at(p: number, t: number): { id: number; stream: number } {
    const [from, to] = this.range(p);
    const share = to - from;
    const step = Math.floor(t / share);
    let b = this.#last.get(p);
    if (!b || b.step !== step) {
      if (step >= this.epoch.steps) throw new GpufeedError(ErrorCodes.INTERNAL, `mixture packing: document ${t} of partition ${p} is past the epoch's ${this.epoch.steps} document steps`);
      const batch = this.epoch.positions(step, from, to);
      b = { step, ids: batch.ids, streams: batch.streams };
      this.#last.set(p, b);
    }
    const i = t - step * share;
    if (i >= b.ids.length) throw new GpufeedError(ErrorCodes.INTERNAL, `mixture packing: document ${t} of partition ${p} is past the epoch's documents`);
    return { id: b.ids[i] as number, stream: b.streams[i] as number };
  }
}
