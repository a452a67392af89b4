// Rows of compressed Arrow IPC record batches (BodyCompression LZ4_FRAME or ZSTD, as pyarrow writes
// Feather v2 by default). Buffers of such a body cannot be read by ranged reads, so the whole body
// of a record batch is read once, each buffer decompressed, and rows copied from memory into the
// slot. The last decompressed batch of each shard handle is kept: a batch's runs mostly share it.
import { Type, type Field } from 'apache-arrow';
import type { RecordBatch as RecordBatchHeader } from 'apache-arrow/ipc/metadata/message';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import { decompressBodyBuffers } from './body-buffers.js';
import { readFully } from '../../util/read-fully.js';
import type { ArrowShardHandle, CopyOps, SlotTarget } from './load-unit.js';
import { decodeDictionaryRows, shardDictionary, type DictionaryIndex } from './dictionary-columns.js';
import type { RowRun } from '../../pipeline/decode-messages.js';
import { MAX_VAR_ELEMENTS, varColumnTooLong } from '../../pipeline/batch-layout.js';
import { copyViewRows, isViewType, VIEW_BYTES } from './view-columns.js';
import { arrowConversion, conversionFits, convertRows, storedBytes } from './converted-columns.js';
import { unpackBits } from './bits.js';

interface Decompressed {
  unit: number;
  buffers: Uint8Array[];
}

const lastBody = new WeakMap<ArrowShardHandle, Decompressed>();

function corrupt(h: ArrowShardHandle, message: string): GpufeedError {
  return new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${h.ref.name}: ${message}`, { shard: h.ref.name, path: h.ref.file });
}

/** Each buffer of record batch `run.unit`, decompressed (Arrow: int64 uncompressed length, then the codec's bytes; -1: stored raw). */
function decompressedBuffers(h: ArrowShardHandle, run: RowRun, header: RecordBatchHeader): Uint8Array[] {
  const hit = lastBody.get(h);
  if (hit && hit.unit === run.unit) return hit.buffers;
  const block = run.block!;
  const body = new Uint8Array(block.bodyLength);
  const start = block.offset + block.metadataLength;
  const got = readFully(h.fd, body, start);
  if (got < body.length) throw corrupt(h, `file ends at ${start + got}, inside record batch ${run.unit}`);
  const buffers = decompressBodyBuffers(body, header, `shard ${h.ref.name}: record batch ${run.unit}`, { shard: h.ref.name, path: h.ref.file });
  lastBody.set(h, { unit: run.unit, buffers });
  return buffers;
}

/**
 * Copies rows run.row .. run.row + run.count of one column of a compressed record batch into the
 * slot, advancing the column's values cursor as ArrowTaskReads does for uncompressed ones.
 */
export function copyCompressedRun(h: ArrowShardHandle, run: RowRun, target: SlotTarget, header: RecordBatchHeader, place: { field: Field; node: number; buffer: number; viewsBefore: number; dictionary?: DictionaryIndex }, ops: CopyOps): void {
  const buffers = decompressedBuffers(h, run, header);
  const region = target.region;
  const out = target.bytes;
  const buf = (i: number): Uint8Array => {
    const b = buffers[place.buffer + i];
    if (!b) throw corrupt(h, `record batch ${run.unit} lacks buffer ${place.buffer + i}`);
    return b;
  };
  const topNode = header.nodes[place.node];
  if (!topNode) throw corrupt(h, `record batch ${run.unit} lacks node ${place.node}`);
  if (run.row + run.count > topNode.length) throw corrupt(h, `record batch ${run.unit} has ${topNode.length} rows, wanted ${run.row + run.count}`);
  const bitsFit = (b: Uint8Array): boolean => b.length * 8 >= run.row + run.count;

  if (region.validOffset >= 0) {
    const vb = buf(0);
    if (topNode.nullCount === 0 || vb.length === 0) out.fill(1, region.validOffset + run.slotRow, region.validOffset + run.slotRow + run.count);
    else {
      if (!bitsFit(vb)) throw corrupt(h, `column ${region.name}: record batch ${run.unit} validity is too short`);
      unpackBits(vb, run.row, run.count, out, region.validOffset + run.slotRow);
    }
  }
  if (isViewType(place.field.type)) {
    if (region.kind !== 'bytes') throw corrupt(h, `column ${region.name}: the file's ${String(place.field.type)} cannot be read as the manifest's ${region.kind} ${region.dtype}`);
    const views = buf(1);
    if ((run.row + run.count) * VIEW_BYTES > views.length) throw corrupt(h, `column ${region.name}: record batch ${run.unit} views buffer is too short`);
    const own = header.variadicBufferCounts[place.viewsBefore] ?? 0;
    const data = (b: number) => (b >= 0 && b < own ? buffers[place.buffer + 2 + b] : undefined);
    ops.bytesRead += copyViewRows(views, run.row * VIEW_BYTES, run.count, target, run.slotRow, h.ref.name, (b) => data(b)?.length, (v) => {
      out.set(data(v.buffer)!.subarray(v.offset, v.offset + v.length), v.to);
    });
    return;
  }
  if (place.dictionary) {
    const indices = buf(1);
    if ((run.row + run.count) * place.dictionary.width > indices.length) throw corrupt(h, `column ${region.name}: record batch ${run.unit} indices buffer is too short`);
    ops.bytesRead += decodeDictionaryRows(place.dictionary, shardDictionary(h, place.dictionary), indices, run.row * place.dictionary.width, run.count, target, run.slotRow, h.ref.name);
    return;
  }
  const conversion = arrowConversion(place.field.type);
  if (conversion) {
    if (!conversionFits(conversion, region)) throw corrupt(h, `column ${region.name}: the file's ${String(place.field.type)} cannot be read as the manifest's ${region.kind} ${region.dtype}`);
    const data = buf(1);
    const from = storedBytes(conversion, run.row);
    const bytes = storedBytes(conversion, run.count);
    if (from + bytes > data.length) throw corrupt(h, `column ${region.name}: record batch ${run.unit} data buffer is ${data.length} bytes, too short for ${run.row + run.count} rows`);
    ops.bytesRead += convertRows(conversion, data, from, run.count, target, run.slotRow, h.ref.name);
    return;
  }
  if (region.kind === 'scalar' || region.kind === 'fixed') {
    const data = region.kind === 'fixed' ? buf(2) : buf(1);
    if (region.dtype === 'bool') {
      // One bit a value, rowBytes values a row (1 for a scalar column).
      const per = region.rowBytes;
      if (data.length * 8 < (run.row + run.count) * per) throw corrupt(h, `column ${region.name}: record batch ${run.unit} data is too short`);
      unpackBits(data, run.row * per, run.count * per, out, region.valuesOffset + run.slotRow * per);
      ops.bytesRead += (run.count * per + 7) >> 3;
      return;
    }
    const from = run.row * region.rowBytes;
    const bytes = run.count * region.rowBytes;
    if (from + bytes > data.length) throw corrupt(h, `column ${region.name}: record batch ${run.unit} data buffer is ${data.length} bytes, too short for ${run.row + run.count} rows`);
    out.set(data.subarray(from, from + bytes), region.valuesOffset + run.slotRow * region.rowBytes);
    ops.bytesRead += bytes;
    return;
  }
  // Variable length: offsets (int32, int64 for large types) then values.
  const typeId = place.field.type.typeId;
  const large = typeId === Type.LargeUtf8 || typeId === Type.LargeBinary || typeId === Type.LargeList;
  const offsetsBuf = buf(1);
  const values = region.kind === 'list' ? buf(3) : buf(2);
  const width = large ? 8 : 4;
  if ((run.row + run.count + 1) * width > offsetsBuf.length) throw corrupt(h, `column ${region.name}: record batch ${run.unit} offsets are too short`);
  const ov = new DataView(offsetsBuf.buffer, offsetsBuf.byteOffset, offsetsBuf.byteLength);
  const offAt = (i: number): number => (large ? Number(ov.getBigInt64((run.row + i) * 8, true)) : ov.getInt32((run.row + i) * 4, true));
  const first = offAt(0);
  const last = offAt(run.count);
  const eb = region.elementBytes;
  // A list of bools keeps one bit per item (Arrow's layout); the slot holds a byte per item.
  const bits = region.dtype === 'bool';
  if (first < 0 || last < first || (bits ? (last + 7) >> 3 : last * eb) > values.length) throw corrupt(h, `column ${region.name}: bad offsets in record batch ${run.unit}`);
  if (target.cursor + last - first > MAX_VAR_ELEMENTS) throw varColumnTooLong(region, h.ref.name);
  const slotOffsets = new Int32Array(out.buffer, out.byteOffset + region.offsetsOffset, (region.valuesOffset - region.offsetsOffset) >> 2);
  for (let i = 0; i < run.count; i++) {
    const o = offAt(i);
    if (o < first || o > last) throw corrupt(h, `column ${region.name}: offsets of record batch ${run.unit} are not increasing`);
    slotOffsets[run.slotRow + i] = target.cursor + (o - first);
  }
  // Values that do not fit are only counted: the batch is decoded again into a one-off slot of
  // that size (oversize-batch.ts), as for uncompressed batches.
  if ((target.cursor + last - first) * eb <= region.valuesBytes) {
    if (bits) unpackBits(values, first, last - first, out, region.valuesOffset + target.cursor);
    else out.set(values.subarray(first * eb, last * eb), region.valuesOffset + target.cursor * eb);
  }
  target.cursor += last - first;
  slotOffsets[run.slotRow + run.count] = target.cursor;
  ops.bytesRead += bits ? (last - first + 7) >> 3 : (last - first) * eb;
}
