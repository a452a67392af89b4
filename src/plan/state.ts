// The resume state: small, JSON, and global. It names a step boundary of the job, not of a rank,
// so every rank computes the same state at the same step and the one rank 0 saves resumes the
// whole job, with this world size or another with the same global batch and partitions (the
// epoch's global batches do not depend on the world size; only their split among ranks does).
import { ErrorCodes, GpufeedError, invalidOption } from '../errors.js';
import { layoutFor } from './order.js';
import { type OrderOptions, resolveOrderOptions, SHUFFLE_ALGOS, type ShuffleAlgo } from './options.js';
import { datasetFingerprint, type ShardSize, samplesToShards } from './samples.js';
import type { World } from './world.js';
import type { PackResume } from './packing.js';
import type { MixtureRecord } from './mixture-state.js';

export const RESUME_FORMAT = 'gpufeed-resume';
/** 2: the dataset fingerprint covers content hashes (1: row counts only; refused, see checkShape). */
export const RESUME_VERSION = 2;
/**
 * 3: version 2 plus `quarantined`, the pieces a run with onCorrupt 'skip' found bad
 * (pipeline/quarantine.ts). A loader writes it only when that list is not empty; both are read.
 */
export const RESUME_VERSION_QUARANTINE = 3;

export interface ResumeState {
  format: typeof RESUME_FORMAT;
  version: typeof RESUME_VERSION | typeof RESUME_VERSION_QUARANTINE;
  /** The epoch in progress. */
  epoch: number;
  /** Steps of `epoch` already delivered on every rank: resume at this step. */
  stepsDone: number;
  /** Steps per epoch, for reading the state; checked on resume. */
  stepsPerEpoch: number;
  /** batchSize x worldSize: a resume must keep it. */
  globalBatchSize: number;
  partitions: number;
  seed: number;
  shuffle: ShuffleAlgo;
  shuffleWindow: number;
  dropLast: boolean;
  pad: boolean;
  /** fingerprint: datasetFingerprint, over row counts and content hashes (`shards-sha256:`). */
  dataset: { shards: number; rows: number; fingerprint: string };
  /** Version 3: shards and pieces quarantined so far (pipeline/quarantine.ts, QuarantineStateEntry); a resumed run skips them unread. */
  quarantined?: { shard: number; path: string; unit?: number; code: string }[];
  /** Packed runs only (packing.ts): the packing and the carry of each partition the rank read. */
  pack?: PackResume;
  /**
   * A weighted mixture's streams (mixture-state.ts); absent for a single dataset. `dataset` then
   * covers all the streams' shards in stream order.
   */
  mixture?: MixtureRecord;
}

/** The state after `stepsDone` steps of `epoch` (0 <= stepsDone <= steps); identical on every rank. */
export function resumeState(
  shards: readonly ShardSize[],
  world: World,
  options: OrderOptions,
  epoch: number,
  stepsDone: number,
): ResumeState {
  const opts = resolveOrderOptions(options, world);
  const layout = layoutFor(shards, world, opts);
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw invalidOption('epoch', `must be a non-negative integer, got ${epoch}`);
  if (!Number.isSafeInteger(stepsDone) || stepsDone < 0 || stepsDone > layout.steps) {
    throw invalidOption('stepsDone', `must be an integer in [0, ${layout.steps}], got ${stepsDone}`);
  }
  return stateAt(layout, opts, world, epoch, stepsDone, { shards: shards.length, rows: samplesToShards(shards).totalRows, fingerprint: datasetFingerprint(shards) });
}

/** The order options a resume state fixes: what a caller who does not set them resumes with. */
const ADOPTED_FROM_STATE = ['partitions', 'seed', 'shuffle', 'shuffleWindow', 'dropLast', 'pad'] as const;

/**
 * `partial` with every order option the state fixes and the caller left unset taken from the
 * state (MosaicML takes num_canonical_nodes from its state the same way), so a state taken with
 * the default partitions (the world size then) resumes on another world size without options.
 * A value the caller sets explicitly is kept, and resumePoint refuses it if it differs. Throws
 * GPUFEED_RESUME_MISMATCH for a malformed state, and when the new world size cannot split the
 * state's partitions.
 */
export function adoptResumeOptions(partial: Partial<OrderOptions>, state: unknown, world: World): Partial<OrderOptions> {
  checkShape(state);
  const out: Partial<OrderOptions> = { ...partial };
  for (const field of ADOPTED_FROM_STATE) {
    if (out[field] === undefined) (out as Record<string, unknown>)[field] = state[field];
  }
  if (partial.partitions === undefined && state.partitions % world.worldSize !== 0 && world.worldSize % state.partitions !== 0) {
    throw mismatch(
      'partitions',
      `the state has ${state.partitions} partitions, which world size ${world.worldSize} cannot split: ` +
        `resume on a world size that divides or is a multiple of ${state.partitions} (with the same global batch ${state.globalBatchSize})`,
      state.partitions, world.worldSize,
    );
  }
  return out;
}

/**
 * Where this rank continues: planRankEpoch(..., epoch).batchIds(step) is its next batch. A state
 * taken at the end of an epoch points at step 0 of the next. A point at or past options.epochs
 * (nothing left to load) is refused like every state that cannot continue exactly: throws
 * GPUFEED_RESUME_MISMATCH naming the first such field (details.field), with the valid range.
 */
export function resumePoint(
  state: ResumeState,
  shards: readonly ShardSize[],
  world: World,
  options: OrderOptions,
): { epoch: number; step: number } {
  checkShape(state);
  const opts = resolveOrderOptions(options, world);
  const now = resumeState(shards, world, opts, 0, 0);
  if (state.mixture !== undefined) {
    throw mismatch('mixture', `the state was taken on a mixture of ${state.mixture.streams.length} streams, now one dataset: open the same mixture to resume it`, state.mixture, undefined);
  }
  if (state.dataset.shards !== now.dataset.shards || state.dataset.rows !== now.dataset.rows || state.dataset.fingerprint !== now.dataset.fingerprint) {
    throw mismatch(
      'dataset',
      `the state was taken on another dataset: its shards' row counts or content hashes differ (${state.dataset.shards} shards, ${state.dataset.rows} rows, ${state.dataset.fingerprint}; now ${now.dataset.shards} shards, ${now.dataset.rows} rows, ${now.dataset.fingerprint})`,
      state.dataset, now.dataset,
    );
  }
  return continuePoint(state, now, opts, world);
}

/**
 * The checks of every field but the dataset (or mixture) and the point they give: shared by
 * single datasets and mixtures. With `fromNextEpoch` (an intended mixture change) the steps per
 * epoch may differ and the point is the start of the next epoch not yet begun.
 */
export function continuePoint(state: ResumeState, now: ResumeState, opts: OrderOptions, world: World, fromNextEpoch = false): { epoch: number; step: number } {
  if (state.globalBatchSize !== now.globalBatchSize) {
    throw mismatch(
      'globalBatchSize',
      `the state has global batch ${state.globalBatchSize}, now batchSize ${opts.batchSize} x worldSize ${world.worldSize} = ${now.globalBatchSize}`,
      state.globalBatchSize, now.globalBatchSize,
    );
  }
  if (state.partitions !== now.partitions) {
    throw mismatch(
      'partitions',
      `the state has ${state.partitions} partitions, now ${now.partitions} (leave partitions unset to resume with the state's ${state.partitions})`,
      state.partitions, now.partitions,
    );
  }
  for (const field of ['seed', 'shuffle', 'dropLast', 'pad'] as const) {
    if (state[field] !== now[field]) {
      throw mismatch(field, `the state has ${JSON.stringify(state[field])}, now ${JSON.stringify(now[field])}`, state[field], now[field]);
    }
  }
  if (state.shuffle === 'window' && state.shuffleWindow !== now.shuffleWindow) {
    throw mismatch('shuffleWindow', `the state has ${state.shuffleWindow}, now ${now.shuffleWindow}`, state.shuffleWindow, now.shuffleWindow);
  }
  if (!fromNextEpoch && state.stepsPerEpoch !== now.stepsPerEpoch) {
    throw mismatch('stepsPerEpoch', `the state has ${state.stepsPerEpoch} steps per epoch, now ${now.stepsPerEpoch}`, state.stepsPerEpoch, now.stepsPerEpoch);
  }
  const point = fromNextEpoch
    ? { epoch: state.stepsDone === 0 ? state.epoch : state.epoch + 1, step: 0 }
    : state.stepsDone === now.stepsPerEpoch ? { epoch: state.epoch + 1, step: 0 } : { epoch: state.epoch, step: state.stepsDone };
  // A point past the run's last epoch would load nothing and look like success. (An empty
  // dataset has no steps to resume at: it loads nothing anyway.)
  if (opts.epochs !== Infinity && now.stepsPerEpoch > 0 && point.epoch >= opts.epochs) {
    throw mismatch(
      'epoch',
      `the state resumes at epoch ${point.epoch} step ${point.step} (epoch ${state.epoch}, stepsDone ${state.stepsDone} of ${state.stepsPerEpoch}), ` +
        `past the last epoch of this run: epochs ${opts.epochs} runs epochs 0 to ${opts.epochs - 1}; pass a larger epochs (--epochs) to continue`,
      state.epoch, opts.epochs,
    );
  }
  return point;
}

/** A version 2 state at (epoch, stepsDone) of `layout`: the fields every state has (single dataset and mixture alike). */
export function stateAt(layout: { steps: number; globalBatch: number }, opts: OrderOptions, world: World, epoch: number, stepsDone: number, dataset: ResumeState['dataset']): ResumeState {
  return {
    format: RESUME_FORMAT,
    version: RESUME_VERSION,
    epoch,
    stepsDone,
    stepsPerEpoch: layout.steps,
    globalBatchSize: layout.globalBatch,
    partitions: opts.partitions ?? world.worldSize,
    seed: opts.seed,
    shuffle: opts.shuffle,
    shuffleWindow: opts.shuffleWindow,
    dropLast: opts.dropLast,
    pad: opts.pad,
    dataset,
  };
}

export function checkShape(state: unknown): asserts state is ResumeState {
  const s = state as Partial<Record<keyof ResumeState, unknown>> | null;
  if (!s || typeof s !== 'object') throw mismatch('state', 'is not an object');
  if (s.format !== RESUME_FORMAT) throw mismatch('format', `must be ${JSON.stringify(RESUME_FORMAT)}, got ${JSON.stringify(s.format)}`);
  if (s.version === 1) {
    // Its fingerprint covers row counts only: it cannot tell this dataset from another with the
    // same row counts, and resuming on the wrong one would deliver wrong samples silently.
    throw mismatch('version', 'the state is version 1, whose dataset fingerprint covers row counts only (rows-fnv1a), so it cannot show that this is the dataset it was taken on; ' +
      `version ${RESUME_VERSION} states also cover the shards' content hashes. Take a new state with this gpufeed (loader.state(), --state-out), or start the epoch again`);
  }
  if (s.version !== RESUME_VERSION && s.version !== RESUME_VERSION_QUARANTINE) {
    throw mismatch('version', `must be ${RESUME_VERSION} or ${RESUME_VERSION_QUARANTINE}, got ${JSON.stringify(s.version)}`);
  }
  if (s.version === RESUME_VERSION_QUARANTINE && !Array.isArray(s.quarantined)) throw mismatch('quarantined', `must be an array in a version ${RESUME_VERSION_QUARANTINE} state`);
  for (const field of ['epoch', 'stepsDone', 'stepsPerEpoch', 'globalBatchSize', 'partitions', 'seed', 'shuffleWindow'] as const) {
    const v = s[field];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw mismatch(field, `must be a non-negative integer, got ${JSON.stringify(v)}`);
  }
  if ((s.stepsDone as number) > (s.stepsPerEpoch as number)) {
    throw mismatch('stepsDone', `must be an integer from 0 to stepsPerEpoch (${s.stepsPerEpoch as number}), got ${s.stepsDone as number}`, s.stepsDone, s.stepsPerEpoch);
  }
  if (!SHUFFLE_ALGOS.includes(s.shuffle as ShuffleAlgo)) throw mismatch('shuffle', `unknown algorithm ${JSON.stringify(s.shuffle)}`);
  if (typeof s.dropLast !== 'boolean') throw mismatch('dropLast', `must be a boolean, got ${JSON.stringify(s.dropLast)}`);
  if (typeof s.pad !== 'boolean') throw mismatch('pad', `must be a boolean, got ${JSON.stringify(s.pad)}`);
  const d = s.dataset as Partial<ResumeState['dataset']> | undefined;
  if (!d || typeof d !== 'object' || typeof d.shards !== 'number' || typeof d.rows !== 'number' || typeof d.fingerprint !== 'string') {
    throw mismatch('dataset', 'must be { shards, rows, fingerprint }');
  }
}

export function mismatch(field: string, message: string, saved?: unknown, current?: unknown): GpufeedError {
  return new GpufeedError(ErrorCodes.RESUME_MISMATCH, `resume state ${field}: ${message}`, { field, saved, current });
}
