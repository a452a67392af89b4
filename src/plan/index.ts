// The distributed sample order: pure functions from (manifest shards, world, options, epoch,
// resume state) to this rank's batches of global sample ids. No I/O.
export { type World, resolveWorld, nodeCount } from './world.js';
export {
  type ShuffleAlgo,
  type OrderOptions,
  resolveOrderOptions,
  SHUFFLE_ALGOS,
  DEFAULT_SHUFFLE_WINDOW,
  MAX_SHUFFLE_WINDOW,
} from './options.js';
export {
  type ShardSize,
  type SampleLocation,
  SampleLocator,
  samplesToShards,
  locateSample,
  datasetFingerprint,
} from './samples.js';
export { type RankEpochPlan, type RankEpochPlanDetail, planRankEpoch, layoutFor } from './order.js';
export { type EpochLayout } from './partition.js';
export { type ResumeState, resumeState, resumePoint, adoptResumeOptions, RESUME_FORMAT, RESUME_VERSION } from './state.js';
export { type SharedWindowBuffers, SharedWindows, createSharedWindows, sharedWindowsFor } from './shared-windows.js';
export { type MixtureStream, type MixtureSpecOptions, type ResolvedStream, resolveMixture, apportionWeights, apportionCounts } from './mixture-spec.js';
export { type MixtureLayout, mixtureLayout } from './mixture-layout.js';
export { type MixtureBatch, MixtureEpoch, type MixtureRankEpochPlan, planMixtureRankEpoch } from './mixture.js';
export { type MixtureRecord, type MixtureStreamRecord, type MixtureChange, mixtureRecord, mixtureResumeState, mixtureResumePoint, mixtureChanged } from './mixture-state.js';
export { type MixtureFeed, type MixturePackLayout, mixturePackLayout, isMixturePackLayout, MixtureDocuments } from './mixture-packing.js';
