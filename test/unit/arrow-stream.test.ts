// Arrow IPC stream files: the layout walk over message prefixes, the schema from the first message,
// and damaged or dictionary-encoded streams refused with named errors (never a crash).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Dictionary, Int32, RecordBatchFileWriter, RecordBatchStreamWriter, Table, tableFromArrays, Utf8, vectorFromArray,
} from 'apache-arrow';
import { arrowStreamSchema, readArrowStreamLayout } from '../../src/formats/arrow/stream.js';
import { bytesRangeReader } from '../../src/formats/range-reader.js';

function table(rows: number): Table {
  return tableFromArrays({ a: Int32Array.from({ length: rows }, (_, i) => i * 3), b: Float64Array.from({ length: rows }, (_, i) => i / 4) });
}

function streamOf(t: Table, batchRows: number): Uint8Array {
  const batches = [];
  for (let start = 0; start < t.numRows; start += batchRows) batches.push(...t.slice(start, start + batchRows).batches);
  return RecordBatchStreamWriter.writeAll(batches).toUint8Array(true);
}

const syncRead = (bytes: Uint8Array) => (offset: number, length: number): Uint8Array => bytes.subarray(offset, offset + length);

test('readArrowStreamLayout: one block per record batch, back to back, rows summing up; the schema from the first message', async () => {
  const bytes = streamOf(table(25), 10);
  const info = await readArrowStreamLayout(bytesRangeReader(bytes), bytes.length, 'mem.arrow');
  assert.deepEqual(info.layout.batches.map((b) => b.rows), [10, 10, 5]);
  assert.equal(info.rows, 25);
  assert.deepEqual(info.schema.fields.map((f) => f.name), ['a', 'b']);
  const [first, second, third] = info.layout.batches;
  assert.equal(second!.offset, first!.offset + first!.metadataLength + first!.bodyLength);
  assert.equal(third!.offset, second!.offset + second!.metadataLength + second!.bodyLength);
  // The last body ends where the end-of-stream marker (8 bytes) starts.
  assert.equal(third!.offset + third!.metadataLength + third!.bodyLength, bytes.length - 8);
  assert.deepEqual(arrowStreamSchema(syncRead(bytes), bytes.length, 'mem.arrow').fields.map((f) => String(f.type)), ['Int32', 'Float64']);
});

test('streams that are damaged, dictionary-encoded or a footerless IPC file are refused by name', async () => {
  const bytes = streamOf(table(25), 10);
  const cut = bytes.subarray(0, bytes.length - 40);
  await assert.rejects(readArrowStreamLayout(bytesRangeReader(cut), cut.length, 'cut.arrow'), {
    code: 'GPUFEED_SHARD_CORRUPT', message: /^cut\.arrow: not a readable Arrow IPC stream: message at byte \d+ has a body of \d+ bytes past the file's end/,
  });
  const garbage = new Uint8Array(64).fill(0x7f);
  await assert.rejects(readArrowStreamLayout(bytesRangeReader(garbage), garbage.length, 'junk.arrow'), { code: 'GPUFEED_SHARD_CORRUPT' });
  assert.throws(() => arrowStreamSchema(syncRead(garbage), garbage.length, 'junk.arrow'), { code: 'GPUFEED_SHARD_CORRUPT' });

  const dict = new Table({ tag: vectorFromArray(['x', 'y', 'x'], new Dictionary(new Utf8(), new Int32())) });
  const dictBytes = RecordBatchStreamWriter.writeAll(dict).toUint8Array(true);
  await assert.rejects(readArrowStreamLayout(bytesRangeReader(dictBytes), dictBytes.length, 'dict.arrow'), {
    code: 'GPUFEED_UNSUPPORTED_TYPE', message: /dict\.arrow: dictionary-encoded Arrow streams are not supported/,
  });

  const file = RecordBatchFileWriter.writeAll(table(5)).toUint8Array(true);
  const noTrailer = file.subarray(0, file.length - 10);
  assert.throws(() => arrowStreamSchema(syncRead(noTrailer), noTrailer.length, 'f.arrow'), /starts as an Arrow IPC file but has no ARROW1 trailer/);
});
