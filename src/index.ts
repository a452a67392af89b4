// gpufeed's public API. Everything not re-exported here is internal.
export { Loader, type LoaderOptions, type PackedLoaderOptions } from './pipeline/loader.js';
export { PackedLoader, type PackStats, POSITION_IDS, SEQ_LENS } from './pipeline/packed-loader.js';
export { type PackOptions, type PackResume, mergePackStates } from './plan/packing.js';
export { Batch, isVarColumn, type ColumnData, type VarColumn, type NumericArray } from './pipeline/batch.js';
export type { BatchLayout, ColumnRegion } from './pipeline/batch-layout.js';
export { toArrowRecordBatch } from './pipeline/arrow-view.js';
export type { LoaderStatsSnapshot } from './pipeline/stats.js';
export type { OnCorrupt, QuarantineStateEntry } from './pipeline/quarantine.js';
export type { MetricsOptions, StallAction } from './metrics/options.js';
export type { StallReport, StallShard, ShardWait } from './metrics/stall.js';
export { GpufeedError, ErrorCodes, type ErrorCode } from './errors.js';
export type { ManifestV1, ColumnSpec, ShardEntry, DType, ColumnKind } from './dataset/types.js';
export type { ResumeState, World, ShuffleAlgo, MixtureChange } from './plan/index.js';
export type { MixtureInput, DatasetInput } from './pipeline/mixture-source.js';
export { resolveWorld } from './plan/index.js';
export { openStore, type Store } from './storage/index.js';
