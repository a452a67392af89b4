// The HF-style Parquet benchmark data: rows as a tokenizer leaves them (variable-length int64
// input_ids, an int8 attention_mask of the same length, the text, an int64 label), written by
// DuckDB as ONE row group, as a hub export often is; then the same file indexed in place (the
// index route) and the same rows prepared as gpufeed Arrow shards. Written from Node, so the
// benchmark needs no Python.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { prepDataset, writeManifest } from '../src/dataset/index.js';
import { indexDataset } from '../src/cli/index-cmd.js';
import { openStore } from '../src/storage/index.js';

export const HF_COLUMNS = ['input_ids', 'attention_mask', 'text', 'label'];

export interface HfDatasets {
  /** The single Parquet file, indexed where it lies. */
  indexed: string;
  file: string;
  /** The same rows after `gpufeed prep` (Arrow). */
  prepared: string;
}

export async function makeHfDatasets(root: string, rows: number): Promise<HfDatasets> {
  const indexed = join(root, 'hf-indexed');
  const prepared = join(root, 'hf-prepared');
  await mkdir(indexed, { recursive: true });
  const file = join(indexed, 'train.parquet');
  const db = await DuckDBInstance.create(':memory:', { threads: '1' });
  const conn = await db.connect();
  try {
    // Lengths 100-999 (mean ~550 tokens), ids below 50,257 (a GPT-2 vocabulary); deterministic.
    await conn.run(`COPY (
      SELECT list_transform(range(n), x -> (hash(i * 1000 + x) % 50257)::BIGINT) AS input_ids,
             list_transform(range(n), x -> 1::TINYINT) AS attention_mask,
             'example ' || i || ' ' || repeat('lorem ipsum ', (n // 40)::INTEGER) AS text,
             (i % 10)::BIGINT AS label
      FROM (SELECT i, (100 + hash(i) % 900)::BIGINT AS n FROM range(${rows}) t(i)) ORDER BY i
    ) TO '${file}' (FORMAT parquet, ROW_GROUP_SIZE ${rows})`);
  } finally {
    conn.closeSync();
    db.closeSync();
  }
  const store = await openStore(indexed);
  try {
    await writeManifest(store, await indexDataset(store));
  } finally {
    await store.close();
  }
  await prepDataset([file], { out: prepared, format: 'arrow', workers: 0, progress: false });
  return { indexed, file, prepared };
}

/** DuckDB scanning the file with `threads` threads, every value of every column decoded. */
export const HF_DUCKDB_SQL = (file: string): string =>
  `SELECT (sum(list_sum(input_ids)) + sum(list_sum(attention_mask)) + sum(length(text)) + sum(label))::VARCHAR FROM read_parquet('${file.replaceAll("'", "''")}')`;
