// Reads rows of one Arrow IPC record batch straight from the shard file into a batch slot. The
// message metadata says where each column's buffers sit in the body, so a fixed-width column's
// rows are one pread from the file into pinned memory: one copy, no intermediate buffer.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { Footer } from 'apache-arrow/ipc/metadata/file';
import { Message, type RecordBatch as RecordBatchHeader } from 'apache-arrow/ipc/metadata/message';
import { Type, type DataType, type Field } from 'apache-arrow';
import { ErrorCodes, GpufeedError } from '../errors.js';
import type { ColumnRegion } from './batch-layout.js';
import type { RowRun, ShardRef } from './decode-messages.js';

/** Where one top-level column's nodes and buffers start in every record batch of the file. */
interface ColumnPlacement {
  field: Field;
  node: number;
  buffer: number;
}

export interface ArrowShardHandle {
  fd: number;
  ref: ShardRef;
  columns: Map<string, ColumnPlacement>;
  headers: Map<number, RecordBatchHeader>;
}

/** Buffers and nodes one field occupies in a record batch (Arrow columnar format, IPC v5). */
function footprint(type: DataType): { nodes: number; buffers: number } {
  let own: number;
  switch (type.typeId) {
    case Type.Null: own = 0; break;
    case Type.Utf8: case Type.Binary: case Type.LargeUtf8: case Type.LargeBinary: own = 3; break;
    case Type.List: case Type.LargeList: case Type.Map: own = 2; break;
    case Type.FixedSizeList: case Type.Struct: own = 1; break;
    case Type.Union: own = (type as unknown as { mode: number }).mode === 1 ? 2 : 1; break;
    default: own = 2;
  }
  let nodes = 1;
  let buffers = own;
  for (const child of type.children ?? []) {
    const f = footprint(child.type);
    nodes += f.nodes;
    buffers += f.buffers;
  }
  return { nodes, buffers };
}

function corrupt(ref: ShardRef, message: string): GpufeedError {
  return new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${ref.name}: ${message}`, { shard: ref.name, path: ref.file });
}

function readExactly(fd: number, ref: ShardRef, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) throw corrupt(ref, `file ends at ${position + done}, wanted ${buf.length} bytes at ${position}`);
    done += n;
  }
}

export function openArrowShard(ref: ShardRef): ArrowShardHandle {
  const fd = openSync(ref.file, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size !== ref.bytes) throw corrupt(ref, `file has ${size} bytes, the manifest says ${ref.bytes}`);
    // File tail: <int32 footer length> "ARROW1".
    const tail = new Uint8Array(10);
    readExactly(fd, ref, tail, size - 10);
    if (new TextDecoder().decode(tail.subarray(4)) !== 'ARROW1') throw corrupt(ref, 'not an Arrow IPC file (no ARROW1 trailer)');
    const footerLength = new DataView(tail.buffer).getInt32(0, true);
    if (footerLength <= 0 || footerLength > size - 18) throw corrupt(ref, `bad footer length ${footerLength}`);
    const footerBytes = new Uint8Array(footerLength);
    readExactly(fd, ref, footerBytes, size - 10 - footerLength);
    const footer = Footer.decode(footerBytes);
    const columns = new Map<string, ColumnPlacement>();
    let node = 0;
    let buffer = 0;
    for (const field of footer.schema.fields) {
      columns.set(field.name, { field, node, buffer });
      const f = footprint(field.type);
      node += f.nodes;
      buffer += f.buffers;
    }
    return { fd, ref, columns, headers: new Map() };
  } catch (err) {
    closeSync(fd);
    if (err instanceof GpufeedError) throw err;
    throw corrupt(ref, `cannot read the Arrow footer: ${(err as Error).message}`);
  }
}

export function closeArrowShard(h: ArrowShardHandle): void {
  closeSync(h.fd);
}

function recordBatchHeader(h: ArrowShardHandle, run: RowRun): RecordBatchHeader {
  const cached = h.headers.get(run.unit);
  if (cached) return cached;
  const block = run.block;
  if (!block) throw new GpufeedError(ErrorCodes.INTERNAL, `run for Arrow shard ${h.ref.name} has no block`);
  // Message prefix: 0xFFFFFFFF continuation, int32 flatbuffer length, then the flatbuffer.
  const meta = new Uint8Array(block.metadataLength);
  readExactly(h.fd, h.ref, meta, block.offset);
  const view = new DataView(meta.buffer);
  let start = 4;
  let len = view.getInt32(0, true);
  if (len === -1) len = view.getInt32(4, true), start = 8;
  const message = Message.decode(meta.subarray(start, start + len));
  if (!message.isRecordBatch()) throw corrupt(h.ref, `unit ${run.unit} is not a record batch`);
  const header = message.header();
  if (header.compression) {
    throw new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `shard ${h.ref.name}: compressed Arrow IPC bodies are not supported; rewrite with gpufeed prep`, { shard: h.ref.name });
  }
  if (h.headers.size > 256) h.headers.clear();
  h.headers.set(run.unit, header);
  return header;
}

/** The slot-side target of one column, in this thread's view of the slab. */
export interface SlotTarget {
  region: ColumnRegion;
  /** Bytes of the whole slot. */
  bytes: Uint8Array;
  /** Next free element of a variable-length values region. */
  cursor: number;
}

export interface CopyOps {
  /** Reads `length` bytes of file `fd` at `position` into the slot at `slotOffset`. */
  preadIntoSlot(fd: number, position: number, slotOffset: number, length: number, where: ShardRef): void;
  scratch(bytes: number): Uint8Array;
  bytesRead: number;
}

function unpackBits(bits: Uint8Array, bitStart: number, count: number, out: Uint8Array, outStart: number): void {
  for (let i = 0; i < count; i++) {
    const b = bitStart + i;
    out[outStart + i] = (bits[b >> 3]! >> (b & 7)) & 1;
  }
}

/** Copies one run of rows of one column from an Arrow record batch into the slot. */
export function copyArrowRun(h: ArrowShardHandle, run: RowRun, target: SlotTarget, ops: CopyOps): void {
  const header = recordBatchHeader(h, run);
  const place = h.columns.get(target.region.name);
  if (!place) throw new GpufeedError(ErrorCodes.UNKNOWN_COLUMN, `shard ${h.ref.name} has no column ${target.region.name}`, { shard: h.ref.name, column: target.region.name });
  const body = run.block!.offset + run.block!.metadataLength;
  const region = target.region;
  const bufferAt = (i: number) => {
    const b = header.buffers[place.buffer + i];
    if (!b) throw corrupt(h.ref, `record batch ${run.unit} lacks buffer ${place.buffer + i}`);
    return b;
  };
  const topNode = header.nodes[place.node];
  if (!topNode) throw corrupt(h.ref, `record batch ${run.unit} lacks node ${place.node}`);
  if (run.row + run.count > topNode.length) throw corrupt(h.ref, `record batch ${run.unit} has ${topNode.length} rows, wanted ${run.row + run.count}`);

  // Validity of the top-level value (buffer 0 of every non-null type).
  if (region.validOffset >= 0) {
    const valid = target.bytes.subarray(region.validOffset + run.slotRow, region.validOffset + run.slotRow + run.count);
    const vb = bufferAt(0);
    if (topNode.nullCount === 0 || vb.length === 0) valid.fill(1);
    else {
      const first = run.row >> 3;
      const bits = ops.scratch(((run.row + run.count + 7) >> 3) - first);
      readExactly(h.fd, h.ref, bits, body + vb.offset + first);
      unpackBits(bits, run.row & 7, run.count, valid, 0);
    }
  }

  const typeId = place.field.type.typeId;
  if (region.kind === 'scalar' || region.kind === 'fixed') {
    const data = region.kind === 'fixed' ? bufferAt(2) : bufferAt(1);
    if (region.dtype === 'bool') {
      if (region.kind !== 'scalar') throw new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `column ${region.name}: fixed-shape bool is not supported`, { column: region.name });
      const first = run.row >> 3;
      const bits = ops.scratch(((run.row + run.count + 7) >> 3) - first);
      readExactly(h.fd, h.ref, bits, body + data.offset + first);
      unpackBits(bits, run.row & 7, run.count, target.bytes, region.valuesOffset + run.slotRow);
      ops.bytesRead += bits.length;
      return;
    }
    const position = body + data.offset + run.row * region.rowBytes;
    const length = run.count * region.rowBytes;
    if (data.offset + (run.row + run.count) * region.rowBytes > data.offset + data.length) {
      throw corrupt(h.ref, `column ${region.name}: record batch ${run.unit} data buffer is ${data.length} bytes, too short for ${run.row + run.count} rows`);
    }
    ops.preadIntoSlot(h.fd, position, region.valuesOffset + run.slotRow * region.rowBytes, length, h.ref);
    ops.bytesRead += length;
    return;
  }

  // Variable length: offsets then values. Lists keep their values in the child's data buffer.
  const large = typeId === Type.LargeUtf8 || typeId === Type.LargeBinary || typeId === Type.LargeList;
  const offsetsBuf = bufferAt(1);
  const valuesBuf = region.kind === 'list' ? bufferAt(3) : bufferAt(2);
  const offWidth = large ? 8 : 4;
  const raw = ops.scratch((run.count + 1) * offWidth);
  readExactly(h.fd, h.ref, raw, body + offsetsBuf.offset + run.row * offWidth);
  const rawView = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const offAt = (i: number) => (large ? Number(rawView.getBigInt64(i * 8, true)) : rawView.getInt32(i * 4, true));
  const start = offAt(0);
  const end = offAt(run.count);
  const elems = end - start;
  const eb = region.elementBytes;
  if (elems < 0 || (start + elems) * eb > valuesBuf.length) throw corrupt(h.ref, `column ${region.name}: bad offsets in record batch ${run.unit}`);
  if ((target.cursor + elems) * eb > region.valuesBytes) {
    throw new GpufeedError(ErrorCodes.INVALID_OPTION, `column ${region.name}: rows of shard ${h.ref.name} need more than the ${region.valuesBytes} bytes a batch slot holds for it; the manifest's maxRowBytes is missing or wrong (re-index the dataset) or raise the loader's varRowBytes`, {
      option: 'varRowBytes', column: region.name, shard: h.ref.name,
    });
  }
  // The offsets region sits right before the values region (batch-layout.ts).
  const slotOffsets = new Int32Array(target.bytes.buffer, target.bytes.byteOffset + region.offsetsOffset, (region.valuesOffset - region.offsetsOffset) >> 2);
  for (let i = 0; i < run.count; i++) slotOffsets[run.slotRow + i] = target.cursor + (offAt(i) - start);
  if (elems > 0) ops.preadIntoSlot(h.fd, body + valuesBuf.offset + start * eb, region.valuesOffset + target.cursor * eb, elems * eb, h.ref);
  target.cursor += elems;
  slotOffsets[run.slotRow + run.count] = target.cursor;
  ops.bytesRead += elems * eb + raw.length;
}
