// Resume states of weighted mixtures: the single-dataset state (state.ts) plus a record of the
// mixture, so a state resumes only the mixture it was taken on. A different mixture (other streams,
// other data in a stream, other weights or counts) is refused by name, unless the caller says the
// change is intended (`mixtureChange: 'next-epoch'`): then the new mixture starts at the next epoch
// not yet begun, and the rest of the interrupted epoch is skipped (its plan was the old mixture's).
import { mixtureLayout } from './mixture-layout.js';
import type { ResolvedStream } from './mixture-spec.js';
import { type OrderOptions, resolveOrderOptions } from './options.js';
import { datasetFingerprint, type ShardSize } from './samples.js';
import { checkShape, continuePoint, mismatch, stateAt, type ResumeState } from './state.js';
import type { World } from './world.js';

export interface MixtureStreamRecord {
  shards: number;
  rows: number;
  /** datasetFingerprint of the stream's shards. */
  fingerprint: string;
  /** How the stream's share was given, and the value given. */
  kind: 'weight' | 'samples' | 'repeat';
  value: number;
  /** Chosen samples per epoch. */
  perEpoch: number;
}

export interface MixtureRecord {
  streams: MixtureStreamRecord[];
}

/** What the caller says of a mixture that differs from the state's. */
export type MixtureChange = 'refuse' | 'next-epoch';

export function mixtureRecord(streams: readonly ResolvedStream[]): MixtureRecord {
  return {
    streams: streams.map((s) => ({ shards: s.shards.length, rows: s.rows, fingerprint: datasetFingerprint(s.shards), kind: s.kind, value: s.value, perEpoch: s.perEpoch })),
  };
}

const allShards = new WeakMap<readonly ResolvedStream[], ShardSize[]>();

function concatenated(streams: readonly ResolvedStream[]): ShardSize[] {
  let shards = allShards.get(streams);
  if (!shards) {
    shards = streams.flatMap((s) => s.shards);
    allShards.set(streams, shards);
  }
  return shards;
}

/** The state after `stepsDone` steps of `epoch` of a mixture; identical on every rank. */
export function mixtureResumeState(streams: readonly ResolvedStream[], world: World, options: OrderOptions, epoch: number, stepsDone: number): ResumeState {
  const opts = resolveOrderOptions(options, world);
  const partitions = opts.shuffle === 'naive' ? 1 : (opts.partitions as number);
  const layout = mixtureLayout(streams.map((s) => s.perEpoch), opts.batchSize * world.worldSize, partitions, opts.dropLast);
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw mismatch('epoch', `must be a non-negative integer, got ${epoch}`);
  if (!Number.isSafeInteger(stepsDone) || stepsDone < 0 || stepsDone > layout.steps) {
    throw mismatch('stepsDone', `must be an integer in [0, ${layout.steps}], got ${stepsDone}`);
  }
  const shards = concatenated(streams);
  const dataset = { shards: shards.length, rows: streams.reduce((a, s) => a + s.rows, 0), fingerprint: datasetFingerprint(shards) };
  return { ...stateAt(layout, opts, world, epoch, stepsDone, dataset), mixture: mixtureRecord(streams) };
}

/** The first difference between two mixtures, as a sentence; undefined when they are the same. */
function mixtureDifference(saved: MixtureRecord, now: MixtureRecord): { stream?: number; message: string } | undefined {
  if (saved.streams.length !== now.streams.length) return { message: `the state has ${saved.streams.length} streams, now ${now.streams.length}` };
  for (let k = 0; k < now.streams.length; k++) {
    const a = saved.streams[k]!;
    const b = now.streams[k]!;
    if (a.fingerprint !== b.fingerprint || a.rows !== b.rows || a.shards !== b.shards) {
      return { stream: k, message: `stream ${k} holds other data: the state has ${a.shards} shards, ${a.rows} rows, ${a.fingerprint}; now ${b.shards} shards, ${b.rows} rows, ${b.fingerprint}` };
    }
    if (a.kind !== b.kind || a.value !== b.value || a.perEpoch !== b.perEpoch) {
      return { stream: k, message: `stream ${k} has ${a.kind} ${a.value} (${a.perEpoch} samples per epoch) in the state, now ${b.kind} ${b.value} (${b.perEpoch})` };
    }
  }
  return undefined;
}

function checkRecord(record: unknown): asserts record is MixtureRecord {
  const r = record as { streams?: unknown } | null;
  const ok = !!r && Array.isArray(r.streams) && r.streams.every((s: unknown) => {
    const x = s as Partial<MixtureStreamRecord> | null;
    return !!x && typeof x.fingerprint === 'string' && typeof x.rows === 'number' && typeof x.shards === 'number' &&
      typeof x.value === 'number' && typeof x.perEpoch === 'number' && (x.kind === 'weight' || x.kind === 'samples' || x.kind === 'repeat');
  });
  if (!ok) throw mismatch('mixture', 'must be { streams: [{ shards, rows, fingerprint, kind, value, perEpoch }, ...] }');
}

/** Whether the state was taken on another mixture than `streams` (or on a single dataset). */
export function mixtureChanged(state: ResumeState, streams: readonly ResolvedStream[]): boolean {
  if (state.mixture === undefined) return true;
  checkRecord(state.mixture);
  return mixtureDifference(state.mixture, mixtureRecord(streams)) !== undefined;
}

/**
 * Where this rank continues a mixture: planMixtureRankEpoch(..., epoch).batch(step) is its next
 * batch. Throws GPUFEED_RESUME_MISMATCH naming the field (details.field; `mixture` with
 * details.stream for a different mixture) for a state that cannot continue exactly.
 */
export function mixtureResumePoint(
  state: ResumeState,
  streams: readonly ResolvedStream[],
  world: World,
  options: OrderOptions,
  change: MixtureChange = 'refuse',
): { epoch: number; step: number } {
  checkShape(state);
  if (change !== 'refuse' && change !== 'next-epoch') throw mismatch('mixtureChange', `must be 'refuse' or 'next-epoch', got ${JSON.stringify(change)}`);
  const opts = resolveOrderOptions(options, world);
  const now = mixtureResumeState(streams, world, opts, 0, 0);
  const nowRecord = now.mixture as MixtureRecord;
  let diff: { stream?: number; message: string } | undefined;
  if (state.mixture === undefined) diff = { message: 'the state was taken on a single dataset, now a mixture' };
  else {
    checkRecord(state.mixture);
    diff = mixtureDifference(state.mixture, nowRecord);
  }
  if (diff && change !== 'next-epoch') {
    const err = mismatch('mixture', `${diff.message} (pass mixtureChange: 'next-epoch', CLI --mixture-change next-epoch, to start the new mixture at the next epoch)`, state.mixture, nowRecord);
    if (diff.stream !== undefined && err.details) err.details.stream = diff.stream;
    throw err;
  }
  return continuePoint(state, now, opts, world, diff !== undefined);
}
