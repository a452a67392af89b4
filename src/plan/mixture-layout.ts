// How a mixture's epoch is laid out over global batches: which stream each position of each
// global batch takes, and how many positions each stream has in each canonical partition. A pure
// function of (per-epoch counts n_k, global batch G, partitions P, dropLast/pad), never of the world
// size, so another world size with the same G and P continues an epoch exactly.
//
// Steps. With T = sum n_k, the epoch has F = floor(T/G) full steps and, unless dropLast, a last
// step of r = T mod G real samples (padded to G positions, the padding left out unless pad). The
// last step's (or, with dropLast, the dropped) r samples are split over streams in proportion to
// n_k (ell_k); the full steps hold the other n'_k = n_k - ell_k.
//
// Stream counts per full step ("stripes"). Stream k has b_k = floor(n'_k/F) positions in every
// full step plus one extra in L_k = n'_k - F b_k of them. Lay the L_k extras of all streams end to
// end on a line (stream k at [A_k, A_k + L_k), A_k = L_0 + ... + L_{k-1}) and give extra m to step
// (m mod F): since L_k < F, no step gets two extras of one stream, and each step gets exactly
// G - sum b_k. So every full step holds floor or ceil of each stream's rate, the totals are exact,
// and whether step s has stream k's extra is O(1): s lies in a cyclic run of residues. The step
// counts change only at the runs' ends, so the steps fall into at most 2K + 1 segments of constant
// composition, and any cumulative count is a sum over segments.
//
// Positions inside a step. Given its composition c, the G positions are the merge of the streams'
// items by the key (i + 1/2) / c_k (ties to the lower stream), so any run of positions (a
// partition's share, a rank's batch) holds each stream within one sample of its proportion.
//
// Partitions. Partition p owns positions [C_p, C_{p+1}) of every step (partition.ts). Stream k's
// positions in partition p, over the epoch, are its slots there; stream k's epoch items are cut
// into contiguous ranges, one per partition, sized to those slots (less the partition's share of
// the last step's padding, so padding falls in the last step only).
import { ErrorCodes, GpufeedError } from '../errors.js';
import { apportionCounts } from './mixture-spec.js';
import { epochLayout, type EpochLayout, shareStart } from './partition.js';

export interface MixtureLayout {
  /** Per-epoch count of each stream (n_k). */
  readonly counts: readonly number[];
  /** Samples per epoch (T). */
  readonly samples: number;
  readonly globalBatch: number;
  readonly partitions: number;
  readonly dropLast: boolean;
  /** Steps in the epoch, the same on every rank. */
  readonly steps: number;
  /** Steps whose G positions all hold real samples. */
  readonly fullSteps: number;
  /** Whether the last step is a partial one (padded to G positions). */
  readonly hasLast: boolean;
  /** Real samples of each stream in the last step (or dropped by dropLast). */
  readonly lastReal: readonly number[];
  /** Padding positions of each stream in the last step. */
  readonly lastPad: readonly number[];
  /** The partition layout of a single dataset of T samples (for positions and partitions). */
  readonly base: EpochLayout;
}

export function mixtureLayout(counts: readonly number[], globalBatch: number, partitions: number, dropLast: boolean): MixtureLayout {
  const samples = counts.reduce((a, b) => a + b, 0);
  const base = epochLayout(samples, globalBatch, partitions, dropLast);
  const fullSteps = Math.floor(samples / globalBatch);
  const remainder = samples - fullSteps * globalBatch;
  const hasLast = !dropLast && remainder > 0;
  const lastReal = apportionCounts(remainder, counts);
  const lastPad = hasLast ? apportionCounts(globalBatch - remainder, counts) : counts.map(() => 0);
  return { counts: [...counts], samples, globalBatch, partitions, dropLast, steps: base.steps, fullSteps, hasLast, lastReal, lastPad, base };
}

/** A run of steps [from, to) with one composition (positions per stream); the last step is one too. */
export interface StepSegment {
  readonly from: number;
  readonly to: number;
  readonly composition: readonly number[];
  /** Index into the layout's interleave cache. */
  readonly id: number;
}

/** The steps' compositions: full-step segments in step order, then the last step if partial. */
export function stepSegments(layout: MixtureLayout): StepSegment[] {
  const F = layout.fullSteps;
  const K = layout.counts.length;
  const segments: StepSegment[] = [];
  if (F > 0) {
    const full = layout.counts.map((n, k) => n - (layout.lastReal[k] as number));
    const base = full.map((n) => Math.floor(n / F));
    const extra = full.map((n, k) => n - F * (base[k] as number));
    const first: number[] = [];
    let a = 0;
    for (let k = 0; k < K; k++) {
      first.push(a);
      a += extra[k] as number;
    }
    const cuts = new Set<number>([0, F]);
    for (let k = 0; k < K; k++) {
      cuts.add((first[k] as number) % F);
      cuts.add(((first[k] as number) + (extra[k] as number)) % F);
    }
    const sorted = [...cuts].sort((x, y) => x - y);
    for (let i = 0; i + 1 < sorted.length; i++) {
      const from = sorted[i] as number;
      const composition = base.map((b, k) => b + (hasExtra(from, first[k] as number, extra[k] as number, F) ? 1 : 0));
      segments.push({ from, to: sorted[i + 1] as number, composition, id: segments.length });
    }
  }
  if (layout.hasLast) {
    const composition = layout.lastReal.map((r, k) => r + (layout.lastPad[k] as number));
    segments.push({ from: F, to: F + 1, composition, id: segments.length });
  }
  for (const s of segments) {
    const sum = s.composition.reduce((x, y) => x + y, 0);
    if (sum !== layout.globalBatch) throw new GpufeedError(ErrorCodes.INTERNAL, `mixture step composition sums to ${sum}, not ${layout.globalBatch}`);
  }
  return segments;
}

/** Whether step s (< F) holds stream k's extra: s is in the cyclic residue run [A mod F, +L). */
function hasExtra(s: number, first: number, length: number, F: number): boolean {
  if (length === 0) return false;
  return (s - (first % F) + F) % F < length;
}

/**
 * The stream of every position of a step with a given composition, and the per-stream counts
 * before any position (a checkpoint every 1,024 positions, then a short scan).
 */
export class Interleave {
  readonly streamAt: Uint8Array;
  private readonly checkpoints: Int32Array;
  private readonly streams: number;
  private readonly composition: readonly number[];

  constructor(composition: readonly number[]) {
    const K = composition.length;
    const G = composition.reduce((a, b) => a + b, 0);
    this.streams = K;
    this.composition = [...composition];
    this.streamAt = new Uint8Array(G);
    this.checkpoints = new Int32Array(K * (Math.floor(G / 1024) + 1));
    const taken = new Array<number>(K).fill(0);
    for (let j = 0; j < G; j++) {
      if ((j & 1023) === 0) for (let k = 0; k < K; k++) this.checkpoints[(j >> 10) * K + k] = taken[k] as number;
      // Next item: the smallest key (2 i_k + 1) / (2 c_k); compared as cross products, exact
      // below 2^53 since i_k < c_k <= G <= 2^26.
      let best = -1;
      for (let k = 0; k < K; k++) {
        const c = composition[k] as number;
        const i = taken[k] as number;
        if (i >= c) continue;
        if (best < 0 || (2 * i + 1) * (composition[best] as number) < (2 * (taken[best] as number) + 1) * c) best = k;
      }
      this.streamAt[j] = best;
      taken[best]!++;
    }
    // countsBefore(G) reads checkpoint G/1024 when G is a multiple of 1024: the loop never reaches it.
    if ((G & 1023) === 0) for (let k = 0; k < K; k++) this.checkpoints[(G >> 10) * K + k] = taken[k] as number;
  }

  /** Per-stream counts among positions [0, x). */
  countsBefore(x: number): number[] {
    const K = this.streams;
    // At the step's end: its composition (with G a multiple of 1,024 there is no checkpoint at G).
    if (x >= this.streamAt.length) return [...this.composition];
    const block = x >> 10;
    const out: number[] = [];
    for (let k = 0; k < K; k++) out.push(this.checkpoints[block * K + k] as number);
    for (let j = block << 10; j < x; j++) out[this.streamAt[j] as number]!++;
    return out;
  }
}

/** C_p, as for a single dataset. */
export function positionOfPartition(layout: MixtureLayout, p: number): number {
  return shareStart(layout.base, p);
}
