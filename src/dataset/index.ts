// The dataset subsystem's programmatic API.
export { prepDataset, type PrepStats } from './prep.js';
export type { PrepOptions } from './prep-options.js';
export { parseShapeSpec, parseTypeSpec } from './prep-options.js';
export { loadManifest, parseManifest, validateManifest, writeManifest, serializeManifest } from './manifest.js';
export { columnByName, selectColumns, valuesPerRow } from './columns.js';
export { verifyDataset, verifyShards, verifyShard, type VerifyReport, type ShardProblem, type VerifyOptions } from './verify.js';
export { makeDemoDataset, demoSchema, type DemoOptions } from './demo.js';
export { hashBytes, hashFile, hashObject } from './hash.js';
export {
  arrowFooterRange, arrowLayoutFromFooter, arrowMessageRows, readArrowLayout, encodeArrowShard,
  ARROW_TAIL_BYTES, type ArrowFooterInfo, type ArrowFileLayout,
} from '../formats/arrow/file.js';
export {
  parquetFooterRange, parquetLayoutFromFooter, readParquetLayout,
  PARQUET_TAIL_BYTES, type ParquetFooterInfo, type ParquetFileLayout,
} from '../formats/parquet/file.js';
export { encodeParquetShard } from '../formats/parquet/writer.js';
export {
  arrowSchemaFor, arrowTypeFor, columnsFromArrowSchema, columnsFromParquetSchema, parquetSchemaFor, SCHEMA_METADATA_KEY,
} from '../formats/schema-map.js';
export type { RangeReader } from '../formats/range-reader.js';
export { bytesRangeReader } from '../formats/range-reader.js';
export * from './types.js';
export { openDataset, type OpenedDataset } from './open-dataset.js';
export { resolveBaseUri } from './base-uri.js';
export { splitOf, selectSplit, SPLIT_NAMES } from './splits.js';
export { selectColumnNames, parseColumnList, type ColumnSelection } from './column-selection.js';
export { arrowStreamSchema, readArrowStreamLayout, isArrowFileFormat, type ArrowStreamLayout } from '../formats/arrow/stream.js';
export { resolveIndexSources, formatOfKey, type IndexSources, type IndexSourceOptions } from './index-sources.js';
