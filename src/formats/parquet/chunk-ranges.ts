// Where each column chunk of a Parquet file lies, from its footer's metadata: what the decode
// workers check each chunk's range and checksum against (piece-check.ts). Its own module, free of
// the Parquet reader and writer, so a decode worker loads those only for Parquet shards.
import type { FileMetaData } from 'hyparquet';
import { ErrorCodes, GpufeedError } from '../../errors.js';

/** One column chunk's byte range (dictionary page included) and its top-level column. */
export interface ParquetChunkRange {
  column: string;
  offset: number;
  bytes: number;
}

/** The byte range of every column chunk, per row group, in the footer's order. */
export function parquetChunkRanges(metadata: FileMetaData, where = 'parquet file'): ParquetChunkRange[][] {
  const corrupt = (why: string): GpufeedError => new GpufeedError(ErrorCodes.SHARD_CORRUPT, `${where}: not a readable Parquet file: ${why}`, { path: where });
  return metadata.row_groups.map((rg, i) => rg.columns.map((c) => {
    const m = c.meta_data;
    if (!m) throw corrupt(`row group ${i} has a column chunk without metadata`);
    const dict = m.dictionary_page_offset !== undefined && Number(m.dictionary_page_offset) > 0 ? Number(m.dictionary_page_offset) : undefined;
    const data = Number(m.data_page_offset);
    const offset = dict === undefined ? data : Math.min(dict, data);
    const bytes = Number(m.total_compressed_size);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(bytes) || bytes < 0) {
      throw corrupt(`row group ${i}: column chunk ${m.path_in_schema.join('.')} has a bad range (offset ${offset}, ${bytes} bytes)`);
    }
    return { column: m.path_in_schema[0] ?? '', offset, bytes };
  }));
}
