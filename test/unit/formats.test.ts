import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Field, Int32, List, Schema, Table, tableFromIPC, tableToIPC } from 'apache-arrow';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { ColumnBuilder } from '../../src/dataset/column-builder.js';
import { encodeShard } from '../../src/dataset/encode-shard.js';
import { arrowLayoutFromFooter, readArrowLayout } from '../../src/formats/arrow/file.js';
import type { ShardColumns } from '../../src/formats/column-data.js';
import { parquetFooterRange, parquetLayoutFromFooter, readParquetLayout } from '../../src/formats/parquet/file.js';
import { bytesRangeReader } from '../../src/formats/range-reader.js';
import { arrowSchemaFor, columnsFromArrowSchema, columnsFromParquetSchema } from '../../src/formats/schema-map.js';
import { hashBytes } from '../../src/dataset/hash.js';
import type { ArrowLayout, ColumnSpec, ParquetLayout } from '../../src/dataset/types.js';
import { normalize } from '../fixtures/dataset-fixtures.js';

const schema: ColumnSpec[] = [
  { name: 'img', dtype: 'uint8', kind: 'fixed', shape: [2, 3], nullable: false },
  { name: 'ids', dtype: 'int32', kind: 'fixed', shape: [4], nullable: false },
  { name: 'label', dtype: 'int64', kind: 'scalar', nullable: true },
  { name: 'u64', dtype: 'uint64', kind: 'scalar', nullable: false },
  { name: 'i8', dtype: 'int8', kind: 'scalar', nullable: false },
  { name: 'u16', dtype: 'uint16', kind: 'scalar', nullable: false },
  { name: 'u32', dtype: 'uint32', kind: 'scalar', nullable: false },
  { name: 'f32', dtype: 'float32', kind: 'scalar', nullable: false },
  { name: 'f64', dtype: 'float64', kind: 'scalar', nullable: true },
  { name: 'flag', dtype: 'bool', kind: 'scalar', nullable: true },
  { name: 'text', dtype: 'string', kind: 'bytes', nullable: true },
  { name: 'blob', dtype: 'binary', kind: 'bytes', nullable: false },
  { name: 'toks', dtype: 'int32', kind: 'list', nullable: false },
  { name: 'emb', dtype: 'float32', kind: 'list', nullable: true },
  { name: 'mask', dtype: 'bool', kind: 'fixed', shape: [3], nullable: false },
];

function row(i: number): Record<string, unknown> {
  return {
    img: [[i % 256, 1, 2], [3, 4, 255]],
    ids: [i, i === 0 ? 0 : -i, 2 ** 31 - 1, -(2 ** 31)],
    label: i % 4 === 3 ? null : BigInt(i) * 10_000_000_000n,
    u64: 2n ** 64n - 1n - BigInt(i),
    i8: (i % 256) - 128,
    u16: 65535 - i,
    u32: 4294967295 - i,
    f32: i + 0.25,
    f64: i % 5 === 0 ? null : i / 3,
    flag: i % 3 === 0 ? null : i % 2 === 0,
    text: i % 6 === 5 ? null : `tëxt ${'x'.repeat(i % 7)}`,
    blob: new Uint8Array(Array.from({ length: i % 4 }, (_, k) => (k * 51 + i) % 256)),
    toks: Array.from({ length: i % 5 }, (_, k) => k + i),
    emb: i % 7 === 6 ? null : Array.from({ length: (i % 3) }, (_, k) => k + 0.5),
    mask: [true, false, i % 2 === 0],
  };
}

/** What a reader gives back for row(i), normalized (bigints to numbers, nested shapes flattened). */
function expected(i: number): Record<string, unknown> {
  const r = row(i);
  return normalize({ ...r, img: (r.img as number[][]).flat() }) as Record<string, unknown>;
}

function buildShard(n: number): ShardColumns {
  const builders = schema.map((c) => new ColumnBuilder(c));
  for (let i = 0; i < n; i++) {
    const r = row(i);
    builders.forEach((b) => b.append(r[b.col.name], { file: 'mem', row: i + 1, unit: 'row' }));
  }
  return { rows: n, columns: builders.map((b) => b.finish()) };
}

function sameNumbers(actual: Record<string, unknown>, want: Record<string, unknown>, at: string): void {
  for (const k of Object.keys(want)) {
    const a = actual[k] === undefined ? null : actual[k]; // hyparquet reads a null list as undefined
    const w = want[k];
    if (typeof w === 'number' && typeof a === 'number' && !Number.isInteger(w)) assert.ok(Math.abs(a - w) < 1e-6, `${at}.${k}: ${a} vs ${w}`);
    else if (k === 'u64' && typeof a === 'number') assert.ok(Math.abs(a - (w as number)) < 4096, `${at}.${k}`); // 2^64 - i as a double
    else assert.deepEqual(a, w, `${at}.${k}`);
  }
}

test('arrow shard: every column kind round-trips; the layout matches the file', () => {
  const n = 37;
  const result = encodeShard({ schema, shard: buildShard(n), format: 'arrow', maxBatchRows: 10 });
  const table = tableFromIPC(result.bytes);
  // Types are the contract the decoder relies on.
  assert.deepEqual(table.schema.fields.map((f) => `${f.name}:${f.type}:${f.nullable}`), [
    'img:FixedSizeList[6]<Uint8>:false', 'ids:FixedSizeList[4]<Int32>:false', 'label:Int64:true', 'u64:Uint64:false',
    'i8:Int8:false', 'u16:Uint16:false', 'u32:Uint32:false', 'f32:Float32:false', 'f64:Float64:true', 'flag:Bool:true',
    'text:Utf8:true', 'blob:Binary:false', 'toks:List<Int32>:false', 'emb:List<Float32>:true', 'mask:FixedSizeList[3]<Bool>:false',
  ]);
  const fslChild = (table.schema.fields[1]!.type as unknown as { children: Field[] }).children[0]!;
  assert.equal(fslChild.nullable, false);
  const rows = table.toArray().map((r) => normalize(r.toJSON()) as Record<string, unknown>);
  assert.equal(rows.length, n);
  rows.forEach((r, i) => sameNumbers(r, expected(i), `row ${i}`));

  const layout = result.layout as ArrowLayout;
  assert.equal(layout.kind, 'arrow');
  assert.deepEqual(layout.batches.map((b) => b.rows), [10, 10, 10, 7]);
  assert.deepEqual(table.batches.map((b) => b.numRows), [10, 10, 10, 7]);
  for (let i = 1; i < layout.batches.length; i++) {
    const p = layout.batches[i - 1]!;
    assert.equal(layout.batches[i]!.offset, p.offset + p.metadataLength + p.bodyLength, 'batches are contiguous');
  }
  assert.equal(result.hash, hashBytes(result.bytes));
  assert.deepEqual(result.maxRowBytes, { text: Buffer.byteLength(`tëxt ${'x'.repeat(6)}`), blob: 3, toks: 16, emb: 8 });
});

test('arrow: one record batch read alone through a ranged read', () => {
  const result = encodeShard({ schema, shard: buildShard(25), format: 'arrow', maxBatchRows: 10 });
  const b = (result.layout as ArrowLayout).batches[1]!;
  const batchBytes = result.bytes.subarray(b.offset, b.offset + b.metadataLength + b.bodyLength);
  // An IPC stream = schema message + this batch's message + end-of-stream.
  const schemaOnly = tableToIPC(new Table(arrowSchemaFor(schema)), 'stream');
  const stream = Buffer.concat([schemaOnly.subarray(0, schemaOnly.length - 8), batchBytes, Buffer.from([255, 255, 255, 255, 0, 0, 0, 0])]);
  const rows = tableFromIPC(stream).toArray().map((r) => normalize(r.toJSON()) as Record<string, unknown>);
  assert.equal(rows.length, 10);
  rows.forEach((r, i) => sameNumbers(r, expected(10 + i), `row ${10 + i}`));
});

test('arrow layout from the footer alone (what gpufeed index reads)', async () => {
  const result = encodeShard({ schema, shard: buildShard(25), format: 'arrow', maxBatchRows: 10 });
  const size = result.bytes.length;
  const footer = arrowLayoutFromFooter(result.bytes.subarray(size - 4096 > 0 ? size - 4096 : 0), size);
  assert.deepEqual(footer.blocks, (result.layout as ArrowLayout).batches.map(({ rows: _r, crc32: _c, ...b }) => b));
  const reads: [number, number][] = [];
  const reader = bytesRangeReader(result.bytes);
  const full = await readArrowLayout(async (o, l) => (reads.push([o, l]), reader(o, l)), size);
  assert.deepEqual(full.layout, result.layout);
  assert.equal(full.rows, 25);
  assert.deepEqual(full.columns, schema); // gpufeed metadata restores the 2x3 shape
  assert.ok(reads.every(([o, l]) => o >= 0 && o + l <= size));
  assert.throws(() => arrowLayoutFromFooter(result.bytes.subarray(0, size - 3), size - 3), { code: 'GPUFEED_SHARD_CORRUPT' });
});

test('parquet shard: every column kind round-trips; row groups and footer match the file', async () => {
  for (const compression of ['snappy', 'gzip', 'none']) {
    const n = 37;
    const result = encodeShard({ schema, shard: buildShard(n), format: 'parquet', compression, targetBatchBytes: 600 });
    const ab = result.bytes.slice().buffer;
    const rows = (await parquetReadObjects({ file: ab, compressors, utf8: false })).map((r) => normalize(r) as Record<string, unknown>);
    assert.equal(rows.length, n);
    rows.forEach((r, i) => {
      const want = expected(i);
      // Parquet has no fixed-size list: fixed columns come back as lists of product(shape) values.
      sameNumbers({ ...r, text: r.text === null ? null : Buffer.from(r.text as number[]).toString() }, want, `${compression} row ${i}`);
    });
    const layout = result.layout as ParquetLayout;
    const meta = parquetMetadata(ab);
    assert.equal(meta.schema.find((e) => e.name === 'text')?.converted_type, 'UTF8');
    assert.equal(meta.schema.find((e) => e.name === 'blob')?.converted_type, undefined);
    assert.ok(layout.rowGroups.length > 1, 'several row groups');
    assert.deepEqual(layout.rowGroups.map((g) => g.rows), meta.row_groups.map((g) => Number(g.num_rows)));
    layout.rowGroups.forEach((g, i) => {
      for (const c of meta.row_groups[i]!.columns) {
        const start = Number(c.meta_data!.dictionary_page_offset ?? c.meta_data!.data_page_offset);
        assert.ok(start >= g.offset && start + Number(c.meta_data!.total_compressed_size) <= g.offset + g.bytes, 'chunk inside its row group range');
      }
    });
    assert.equal(layout.footerOffset + layout.footerLength, result.bytes.length);
    assert.equal(Buffer.from(result.bytes.subarray(layout.footerOffset - 0 + layout.footerLength - 4)).toString(), 'PAR1');
    // From the footer alone:
    const tail = result.bytes.subarray(result.bytes.length - 8);
    assert.deepEqual(parquetFooterRange(tail, result.bytes.length), { footerOffset: layout.footerOffset, footerLength: layout.footerLength });
    // The footer alone gives the layout without piece checksums (those need every chunk's bytes).
    const { pieceHash: _h, footerCrc32: _f, ...unchecked } = layout;
    assert.deepEqual(parquetLayoutFromFooter(result.bytes.subarray(layout.footerOffset), result.bytes.length).layout, { ...unchecked, rowGroups: layout.rowGroups.map(({ chunks: _c, ...g }) => g) });
    const viaReads = await readParquetLayout(bytesRangeReader(result.bytes), result.bytes.length);
    assert.deepEqual(viaReads.layout, layout);
    assert.deepEqual(viaReads.columns, schema); // fixed shapes restored from gpufeed metadata
  }
});

test('parquet: a row group read alone with a ranged read of its bytes plus the footer', async () => {
  const result = encodeShard({ schema, shard: buildShard(30), format: 'parquet', targetBatchBytes: 600 });
  const layout = result.layout as ParquetLayout;
  const g = layout.rowGroups[1]!;
  const first = layout.rowGroups[0]!.rows;
  // A sparse buffer holding only that row group's range and the footer.
  const sparse = new Uint8Array(result.bytes.length);
  sparse.set(result.bytes.subarray(g.offset, g.offset + g.bytes), g.offset);
  sparse.set(result.bytes.subarray(layout.footerOffset), layout.footerOffset);
  const rows = await parquetReadObjects({ file: sparse.buffer, compressors, utf8: false, rowStart: first, rowEnd: first + g.rows });
  assert.equal(rows.length, g.rows);
  assert.deepEqual(normalize(rows[0]!.ids), expected(first).ids);
});

test('empty shard still carries the schema', async () => {
  for (const format of ['arrow', 'parquet'] as const) {
    const result = encodeShard({ schema, shard: buildShard(0), format });
    assert.equal(result.rows, 0);
    if (format === 'arrow') assert.equal(tableFromIPC(result.bytes).numRows, 0);
    else assert.equal(Number(parquetMetadata(result.bytes.slice().buffer).num_rows), 0);
  }
});

test('foreign schemas map to columns; strict mode refuses what the decoder cannot read', () => {
  const s = new Schema([
    new Field('a', new Int32(), true),
    new Field('l', new List(new Field('item', new Int32(), true)), false),
  ]);
  assert.deepEqual(columnsFromArrowSchema(s), [
    { name: 'a', dtype: 'int32', kind: 'scalar', nullable: true },
    { name: 'l', dtype: 'int32', kind: 'list', nullable: false },
  ]);
  const pq = columnsFromParquetSchema([
    { name: 'root', num_children: 3 },
    { name: 'x', type: 'INT32', converted_type: 'UINT_8', repetition_type: 'REQUIRED' },
    { name: 'v', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
    { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
    { name: 'element', type: 'DOUBLE', repetition_type: 'OPTIONAL' },
    { name: 's', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
  ]);
  assert.deepEqual(pq, [
    { name: 'x', dtype: 'uint8', kind: 'scalar', nullable: false },
    { name: 'v', dtype: 'float64', kind: 'list', nullable: true },
    { name: 's', dtype: 'string', kind: 'bytes', nullable: true },
  ]);
  assert.throws(() => columnsFromParquetSchema([
    { name: 'root', num_children: 1 },
    { name: 'st', repetition_type: 'OPTIONAL', num_children: 1 },
    { name: 'f', type: 'INT32', repetition_type: 'OPTIONAL' },
  ], [], { where: 'x.parquet' }), { code: 'GPUFEED_UNSUPPORTED_TYPE' });
});

test('column builder: wrong fixed length, out-of-range and nulls name file, row and column', () => {
  const at = { file: 'in.jsonl', row: 7, unit: 'line' as const };
  const fixed = new ColumnBuilder({ name: 'ids', dtype: 'int32', kind: 'fixed', shape: [4], nullable: false });
  assert.throws(() => fixed.append([1, 2, 3], at), (e: Error & { code?: string }) => e.code === 'GPUFEED_BAD_INPUT' && /in\.jsonl, line 7: column "ids": expected 4 values/.test(e.message));
  assert.throws(() => fixed.append(null, at), { code: 'GPUFEED_BAD_INPUT' });
  assert.throws(() => fixed.append([1, 2, 3, 2 ** 31], at), /out of range for int32/);
  const label = new ColumnBuilder({ name: 'label', dtype: 'int64', kind: 'scalar', nullable: false });
  assert.throws(() => label.append(1.5, at), /expected an integer/);
  assert.throws(() => label.append(null, at), /not nullable/);
});

test('parquet layout of a small file read through pooled Buffers (reads under 4 KiB share one pool)', async () => {
  const small: ColumnSpec[] = [{ name: 'x', dtype: 'int64', kind: 'scalar', nullable: false }];
  const builder = new ColumnBuilder(small[0]!);
  for (let i = 0; i < 3; i++) builder.append(BigInt(i), { file: 'mem', row: i + 1, unit: 'row' });
  const result = encodeShard({ schema: small, shard: { rows: 3, columns: [builder.finish()] }, format: 'parquet' });
  const size = result.bytes.length;
  assert.ok(size < 4096, `a small file (${size} bytes)`);
  // Buffer.from copies a small array into Node's shared pool: a view at an offset into a larger ArrayBuffer.
  const pooled = async (o: number, l: number): Promise<Uint8Array> => Buffer.from(result.bytes.subarray(o, o + l));
  const probe = await pooled(0, 8);
  assert.ok(probe.byteOffset > 0 || probe.buffer.byteLength > probe.length, 'the reader hands out pooled views');
  const full = await readParquetLayout(pooled, size, 'small.parquet');
  assert.equal(full.rows, 3);
  assert.deepEqual(full.columns, small);
});
