// Times decodeFlatColumn on one column chunk of one Parquet file, N times (for --cpu-prof).
// Usage: node dist/benchmarks/decode-chunk.js FILE COLUMN ROWBYTES [N]
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { parquetMetadata } from 'hyparquet';
import { decodeFlatColumn } from '../src/formats/parquet/flat-column.js';
import type { ColumnRegion } from '../src/pipeline/batch-layout.js';

const [file, column, rowBytes, times] = process.argv.slice(2);
const size = statSync(file!).size;
const buf = readFileSync(file!);
const metaLen = buf.readUInt32LE(size - 8);
const metadata = parquetMetadata(buf.buffer.slice(buf.byteOffset + size - 8 - metaLen, buf.byteOffset + size));
const fd = openSync(file!, 'r');
const region = { name: column!, kind: 'fixed', dtype: 'int32', elementBytes: 4, rowBytes: Number(rowBytes) } as unknown as ColumnRegion;
const ref = { name: 'x', file: file!, bytes: size, index: 0 } as never;
let bytes = 0;
const t0 = performance.now();
const c0 = process.cpuUsage();
for (let i = 0; i < Number(times ?? 5); i++) {
  const got = decodeFlatColumn(fd, ref, metadata, 0, region);
  if (!got) throw new Error('not flat');
  bytes += got.bytes.byteLength;
}
const s = (performance.now() - t0) / 1e3;
const cu = process.cpuUsage(c0);
const cpu = (cu.user + cu.system) / 1e6;
process.stdout.write(`${(bytes / cpu / 1e6).toFixed(0)} MB/s decoded per CPU second (${cpu.toFixed(2)} CPU s, ${s.toFixed(2)} s wall)\n`);
closeSync(fd);
