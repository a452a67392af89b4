// The Parquet peer: DuckDB scanning the same files with the same number of threads, decoding every
// token (list_sum over every row forces each value to be decompressed and decoded).
import { performance } from 'node:perf_hooks';
import { DuckDBInstance } from '@duckdb/node-api';

export async function duckdbScan(files: string[], threads: number, payloadBytes: number, repeats: number): Promise<{ seconds: number; bytes_per_s: number; checksum: string }> {
  const db = await DuckDBInstance.create(':memory:', { threads: String(threads) });
  const conn = await db.connect();
  try {
    const list = files.map((f) => `'${f.replaceAll("'", "''")}'`).join(', ');
    const sql = `SELECT sum(list_sum(input_ids))::VARCHAR AS s FROM read_parquet([${list}])`;
    let best = Infinity;
    let checksum = '';
    for (let r = 0; r < repeats; r++) {
      const t0 = performance.now();
      const rows = (await conn.runAndReadAll(sql)).getRows();
      const s = (performance.now() - t0) / 1e3;
      checksum = String(rows[0]?.[0]);
      best = Math.min(best, s);
    }
    return { seconds: best, bytes_per_s: payloadBytes / best, checksum };
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}
