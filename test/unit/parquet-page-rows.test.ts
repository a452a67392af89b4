// A page directory of a list column counts each v1 page's rows from its repetition levels, and a
// snappy page is decompressed only as far as those levels reach. Both must agree with decoding the
// whole page, on pages as pyarrow writes them (snappy, gzip, none), and the prefix decompression
// must equal the head of the full one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetMetadata } from 'hyparquet';
import { snappyDecompress } from '../../src/formats/parquet/snappy.js';
import { snappyCompress } from '../../src/formats/parquet/snappy-compress.js';
import { decodeDataPage, pageRowsV1, type ChunkInfo } from '../../src/formats/parquet/pages.js';
import { PAGE_DATA, readPageHeader } from '../../src/formats/parquet/page-header.js';
import { leafPath } from '../../src/formats/parquet/column-path.js';
import { pythonHas } from '../helpers/python-modules.js';

test('snappy decompression stopped at any prefix equals the head of the whole', () => {
  const input = new Uint8Array(50_000);
  for (let i = 0; i < input.length; i++) input[i] = (i * 7919) % 251 < 40 ? (i % 13) : (i >> 6) & 0xff;
  const packed = snappyCompress(input);
  const whole = snappyDecompress(packed, input.length);
  assert.deepEqual(whole, input);
  for (const stop of [0, 1, 3, 4, 5, 63, 64, 65, 1000, 4097, 49_999, 50_000]) {
    assert.deepEqual(snappyDecompress(packed, input.length, stop), input.subarray(0, stop), `prefix of ${stop}`);
  }
});


test('pageRowsV1 counts what decoding the whole page counts, for every codec pyarrow writes', { skip: !pythonHas('pyarrow') && 'python3 with pyarrow is not installed' }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-page-rows-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  let pages = 0;
  for (const codec of ['snappy', 'gzip', 'none']) {
    const file = join(dir, `${codec}.parquet`);
    execFileSync('python3', ['-c', `
import pyarrow as pa, pyarrow.parquet as pq, sys
rows = [None if i % 17 == 0 else list(range(i % 23)) for i in range(5000)]
pq.write_table(pa.table({'l': pa.array(rows, pa.list_(pa.int64()))}), sys.argv[1], compression=sys.argv[2], data_page_size=2048, data_page_version='1.0')
`, file, codec]);
    const bytes = new Uint8Array(readFileSync(file));
    const meta = parquetMetadata(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    const chunk = meta.row_groups[0]!.columns[0]!.meta_data!;
    const path = leafPath(meta.schema, 'l');
    assert.ok(path, 'the list column has a leaf path');
    const info: ChunkInfo = { codec: chunk.codec as ChunkInfo['codec'], type: chunk.type as ChunkInfo['type'], typeLength: 0, path };
    const dict = Number(chunk.dictionary_page_offset ?? 0);
    let at = dict > 0 ? Math.min(dict, Number(chunk.data_page_offset)) : Number(chunk.data_page_offset);
    const end = at + Number(chunk.total_compressed_size);
    let rows = 0;
    while (at < end) {
      const header = readPageHeader(bytes.subarray(at), 0);
      const body = bytes.subarray(at + header.headerSize, at + header.headerSize + header.compressedSize);
      if (header.type === PAGE_DATA) {
        const full = decodeDataPage(info, header, body, undefined, true);
        const quick = pageRowsV1(info, header, body);
        assert.equal(quick.rows, full.numRows, `${codec} page at ${at}: rows`);
        assert.equal(quick.firstRep, full.rep![0], `${codec} page at ${at}: first repetition level`);
        rows += quick.rows;
        pages++;
      }
      at += header.headerSize + header.compressedSize;
    }
    assert.equal(rows, 5000, `${codec}: the pages hold every row`);
  }
  assert.ok(pages > 10, `several pages per file (${pages})`);
});
