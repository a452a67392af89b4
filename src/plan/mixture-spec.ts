// What a weighted mixture asks of each stream per epoch: its count n_k of chosen samples, from a
// weight (a share of the epoch), an absolute count (`samples`) or an upsampling factor (`repeat`).
// Counts are integers apportioned exactly and deterministically (largest remainder, ties to the
// lower stream index), so every rank and every run derives the same n_k.
import { invalidOption } from '../errors.js';
import { samplesToShards, type ShardSize } from './samples.js';

/** One stream of a mixture, as the plan sees it: its shards and how much of it an epoch takes. */
export interface MixtureStream {
  shards: readonly ShardSize[];
  /** Share of the epoch (weights are normalized over the streams); not with samples or repeat. */
  weight?: number;
  /** Chosen samples per epoch, an absolute count. */
  samples?: number;
  /** Upsampling factor: round(repeat x stream rows) samples per epoch. */
  repeat?: number;
}

export interface MixtureSpecOptions {
  /** Samples per epoch over all streams when the streams have weights; default: all their rows. */
  epochSamples?: number;
}

/** A stream spec resolved: how it was asked for, and what it takes per epoch. */
export interface ResolvedStream {
  shards: readonly ShardSize[];
  /** Rows of the stream (N_k). */
  rows: number;
  /** First global sample id of the stream: the rows of the streams before it. */
  offset: number;
  /** Chosen samples per epoch (n_k). */
  perEpoch: number;
  kind: 'weight' | 'samples' | 'repeat';
  /** The value given (weight as given, not normalized). */
  value: number;
}

function streamError(k: number, message: string): Error {
  return invalidOption('mixture', `stream ${k}: ${message}`, { stream: k });
}

/**
 * n_k for every stream. Weights and absolute counts (samples, repeat) do not mix: a weighted
 * mixture says how an epoch is shared out, an absolute one how big each part is.
 */
export function resolveMixture(streams: readonly MixtureStream[], options: MixtureSpecOptions = {}): ResolvedStream[] {
  if (!Array.isArray(streams) || streams.length === 0) throw invalidOption('mixture', 'needs at least one stream');
  if (streams.length > 255) throw invalidOption('mixture', `at most 255 streams, got ${streams.length}`);
  const kinds = streams.map((s, k) => {
    const given = (['weight', 'samples', 'repeat'] as const).filter((f) => s[f] !== undefined);
    if (given.length > 1) throw streamError(k, `give one of weight, samples, repeat, got ${given.join(' and ')}`);
    return given[0] ?? 'repeat';
  });
  const weighted = kinds.includes('weight');
  if (weighted && kinds.some((kind) => kind !== 'weight')) {
    const k = kinds.findIndex((kind) => kind !== 'weight');
    throw streamError(k, 'has no weight while other streams have one: give every stream a weight, or every stream samples or repeat');
  }
  let offset = 0;
  const rows = streams.map((s) => samplesToShards(s.shards).totalRows);
  const out: ResolvedStream[] = streams.map((s, k) => {
    const kind = kinds[k]!;
    const value = kind === 'repeat' ? (s.repeat ?? 1) : (s[kind] as number);
    const n = rows[k]!;
    const r: ResolvedStream = { shards: s.shards, rows: n, offset, perEpoch: 0, kind, value };
    offset += n;
    if (!Number.isSafeInteger(offset)) throw invalidOption('mixture', `total rows ${offset} is not a safe integer`);
    if (kind === 'samples') {
      if (!Number.isSafeInteger(value) || value < 0) throw streamError(k, `samples must be a non-negative integer, got ${String(value)}`);
      r.perEpoch = value;
    } else if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw streamError(k, `${kind} must be a finite non-negative number, got ${String(value)}`);
    } else if (kind === 'repeat') {
      r.perEpoch = Math.round(value * n);
      if (!Number.isSafeInteger(r.perEpoch)) throw streamError(k, `repeat ${value} x ${n} rows is not a safe integer`);
    }
    return r;
  });
  if (weighted) {
    const total = options.epochSamples ?? rows.reduce((a, b) => a + b, 0);
    if (!Number.isSafeInteger(total) || total < 0) throw invalidOption('epochSamples', `must be a non-negative integer, got ${String(total)}`);
    const weights = out.map((s) => s.value);
    if (!(weights.reduce((a, b) => a + b, 0) > 0)) throw invalidOption('mixture', `the weights must not all be 0 (${weights.join(', ')})`);
    apportionWeights(total, weights).forEach((n, k) => (out[k]!.perEpoch = n));
  } else if (options.epochSamples !== undefined) {
    throw invalidOption('epochSamples', 'applies to weighted mixtures only: with samples or repeat each stream says its own count');
  }
  out.forEach((s, k) => {
    if (s.perEpoch > 0 && s.rows === 0) throw streamError(k, `has no rows, but the mixture takes ${s.perEpoch} samples of it per epoch`);
  });
  const perEpoch = out.reduce((a, s) => a + s.perEpoch, 0);
  if (!Number.isSafeInteger(perEpoch)) throw invalidOption('mixture', `samples per epoch ${perEpoch} is not a safe integer`);
  return out;
}

/** Largest-remainder split of `total` by real weights (not all zero); ties go to the lower index. */
export function apportionWeights(total: number, weights: readonly number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  const quotas = weights.map((w) => (total * w) / sum);
  const counts = quotas.map((q) => Math.floor(q));
  let left = total - counts.reduce((a, b) => a + b, 0);
  // Rounding may make the floors overshoot by a unit; take it back from the largest counts.
  for (let k = counts.length - 1; left < 0; k = (k - 1 + counts.length) % counts.length) {
    if (counts[k]! > 0) {
      counts[k]!--;
      left++;
    }
  }
  const order = quotas.map((q, k) => ({ k, frac: q - Math.floor(q) })).filter((x) => weights[x.k]! > 0);
  order.sort((a, b) => b.frac - a.frac || a.k - b.k);
  for (let i = 0; left > 0; i = (i + 1) % order.length, left--) counts[order[i]!.k]!++;
  return counts;
}

/**
 * Exact largest-remainder split of the integer `total` in proportion to integer counts (sum > 0),
 * with BigInt products so no precision is lost. A zero count gets nothing; every share is at most
 * ceil(total x count / sum).
 */
export function apportionCounts(total: number, counts: readonly number[]): number[] {
  const sum = counts.reduce((a, b) => a + b, 0);
  const out = counts.map(() => 0);
  if (total === 0 || sum === 0) return out;
  const T = BigInt(total);
  const S = BigInt(sum);
  const rems: Array<{ k: number; rem: bigint }> = [];
  let left = total;
  counts.forEach((c, k) => {
    const p = T * BigInt(c);
    out[k] = Number(p / S);
    left -= out[k]!;
    rems.push({ k, rem: p % S });
  });
  rems.sort((a, b) => (a.rem === b.rem ? a.k - b.k : a.rem > b.rem ? -1 : 1));
  for (let i = 0; i < left; i++) out[rems[i]!.k]!++;
  return out;
}
