// Arrow IPC file shards: encode ShardColumns into record batches (~4 MiB or 65,536 rows each),
// and read an Arrow file's layout (record batch blocks and their rows) from its footer alone.
import {
  Data, Field, makeData, RecordBatch, RecordBatchFileWriter, Struct, Type, type DataType, type Schema,
} from 'apache-arrow';
import { dictionaryBatchHeader } from './dictionary-batch.js';
import { Footer } from 'apache-arrow/ipc/metadata/file';
import { Message, type RecordBatch as RecordBatchHeader } from 'apache-arrow/ipc/metadata/message';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import { valuesPerRow } from '../../dataset/columns.js';
import type { ArrowBatchLayout, ArrowDictionaryLayout, ArrowLayout, ColumnSpec } from '../../dataset/types.js';
import { arrowBodyDecoder } from './codecs.js';
import { packBits } from './bits.js';
import { columnBytes, sliceColumn, type ColumnData, type ShardColumns } from '../column-data.js';
import { PIECE_HASH, pieceChecksum, type LayoutReadOptions } from '../../dataset/piece-checksum.js';
import type { RangeReader } from '../range-reader.js';
import { arrowElementType, arrowSchemaFor, arrowTypeFor, columnsFromArrowSchema } from '../schema-map.js';

export const ARROW_MAGIC = 'ARROW1';
/** Trailing bytes of an Arrow IPC file: int32 footer length + "ARROW1". */
export const ARROW_TAIL_BYTES = 10;
export const ARROW_TARGET_BATCH_BYTES = 4 << 20;
export const ARROW_MAX_BATCH_ROWS = 65_536;

export interface ArrowEncodeOptions {
  targetBatchBytes?: number;
  maxBatchRows?: number;
}

export interface EncodedShard {
  bytes: Uint8Array;
  layout: ArrowLayout;
}

/** Rows per record batch: toward the byte target, at most maxBatchRows, at least 1. */
export function arrowBatchRows(shard: ShardColumns, opts: ArrowEncodeOptions = {}): number {
  const target = opts.targetBatchBytes ?? ARROW_TARGET_BATCH_BYTES;
  const maxRows = opts.maxBatchRows ?? ARROW_MAX_BATCH_ROWS;
  const total = shard.columns.reduce((a, c) => a + columnBytes(c), 0);
  const perRow = shard.rows > 0 ? total / shard.rows : 1;
  return Math.max(1, Math.min(maxRows, Math.floor(target / Math.max(perRow, 1))));
}

export function encodeArrowShard(schema: readonly ColumnSpec[], shard: ShardColumns, opts: ArrowEncodeOptions = {}): EncodedShard {
  const arrowSchema = arrowSchemaFor(schema);
  const batchRows = arrowBatchRows(shard, opts);
  const batches: RecordBatch[] = [];
  for (let start = 0; start < shard.rows || (start === 0 && shard.rows === 0); start += batchRows) {
    const end = Math.min(shard.rows, start + batchRows);
    batches.push(recordBatchOf(arrowSchema, schema, shard, start, end));
    if (shard.rows === 0) break;
  }
  const writer = new RecordBatchFileWriter();
  const bytes = writer.writeAll(batchesOrEmpty(batches, arrowSchema)).toUint8Array(true);
  const footer = arrowLayoutFromFooter(bytes, bytes.length);
  const layoutBatches = footer.blocks.map((b) => ({ ...b, rows: arrowMessageRows(bytes.subarray(b.offset, b.offset + b.metadataLength)) }));
  return { bytes, layout: { kind: 'arrow', batches: layoutBatches } };
}

/** `layout` with the checksum of every batch and of the footer of `bytes`, the whole file. */
export function withArrowPieceChecksums(layout: ArrowLayout, bytes: Uint8Array): ArrowLayout {
  const { footerOffset } = arrowFooterRange(bytes, bytes.length);
  const batches = layout.batches.map((b) => ({ ...b, crc32: pieceChecksum(bytes.subarray(b.offset, b.offset + b.metadataLength + b.bodyLength)) }));
  return { ...layout, batches, pieceHash: PIECE_HASH, footerCrc32: pieceChecksum(bytes.subarray(footerOffset)) };
}

function batchesOrEmpty(batches: RecordBatch[], schema: Schema): RecordBatch[] {
  // A shard with no rows still needs its schema in the file; one empty batch carries it.
  return batches.length > 0 ? batches : [new RecordBatch(schema)];
}

function recordBatchOf(arrowSchema: Schema, schema: readonly ColumnSpec[], shard: ShardColumns, start: number, end: number): RecordBatch {
  const length = end - start;
  const children = schema.map((col, i) => {
    const data = shard.columns[i];
    if (!data) throw new GpufeedError(ErrorCodes.INTERNAL, `shard has no data for column ${col.name}`);
    return columnToArrowData(col, sliceColumn(col, data, start, end, col.kind === 'fixed' ? valuesPerRow(col) : 1), length);
  });
  const struct = makeData({ type: new Struct(arrowSchema.fields as Field[]), length, nullCount: 0, children });
  return new RecordBatch(arrowSchema, struct);
}

/** One column's rows as Arrow Data, zero-copy where the layouts agree. */
export function columnToArrowData(col: ColumnSpec, data: ColumnData, length: number): Data {
  const nullBitmap = data.validity && data.nullCount > 0 ? packBits(data.validity) : undefined;
  const nullCount = nullBitmap ? data.nullCount : 0;
  const type = arrowTypeFor(col);
  const elementData = (el: DataType, values: ColumnData['values'], n: number): Data =>
    col.dtype === 'bool'
      ? makeData({ type: el, length: n, nullCount: 0, data: packBits(values as Uint8Array) } as never)
      : makeData({ type: el, length: n, nullCount: 0, data: values } as never);
  switch (col.kind) {
    case 'scalar':
      return col.dtype === 'bool'
        ? makeData({ type, length, nullCount, nullBitmap, data: packBits(data.values as Uint8Array) } as never)
        : makeData({ type, length, nullCount, nullBitmap, data: data.values } as never);
    case 'bytes':
      return makeData({ type, length, nullCount, nullBitmap, valueOffsets: data.offsets!, data: data.values } as never);
    case 'fixed': {
      const child = elementData(arrowElementType(col.dtype), data.values, data.values.length);
      return makeData({ type, length, nullCount: 0, child } as never);
    }
    case 'list': {
      const child = elementData(arrowElementType(col.dtype), data.values, data.values.length);
      return makeData({ type, length, nullCount, nullBitmap, valueOffsets: data.offsets!, child } as never);
    }
  }
}

// ---- Reading the layout from the footer ----

export interface ArrowBlock {
  offset: number;
  metadataLength: number;
  bodyLength: number;
}

export interface ArrowFooterInfo {
  schema: Schema;
  blocks: ArrowBlock[];
  /** Dictionary batches (dictionary-encoded columns), read by the decode workers once per shard. */
  dictionaryBlocks: ArrowBlock[];
  footerOffset: number;
  /** Footer flatbuffer + 10-byte tail. */
  footerLength: number;
}

function corrupt(where: string, why: string): GpufeedError {
  return new GpufeedError(ErrorCodes.SHARD_CORRUPT, `${where}: not a readable Arrow IPC file: ${why}`, { path: where });
}

/**
 * From the last 10 bytes (or more) of a file: where the footer starts and how long it is
 * (including the 10-byte tail). Read that range, then call arrowLayoutFromFooter.
 */
export function arrowFooterRange(tail: Uint8Array, fileSize: number, where = 'arrow file'): { footerOffset: number; footerLength: number } {
  if (tail.length < ARROW_TAIL_BYTES || fileSize < ARROW_TAIL_BYTES + 8) throw corrupt(where, `file of ${fileSize} bytes is too short`);
  const t = tail.subarray(tail.length - ARROW_TAIL_BYTES);
  const magic = new TextDecoder().decode(t.subarray(4));
  if (magic !== ARROW_MAGIC) throw corrupt(where, 'no ARROW1 magic at the end (an IPC stream, or truncated?)');
  const len = new DataView(t.buffer, t.byteOffset, 4).getInt32(0, true);
  const footerLength = len + ARROW_TAIL_BYTES;
  if (len <= 0 || footerLength > fileSize - 8) throw corrupt(where, `footer length ${len} does not fit a file of ${fileSize} bytes`);
  return { footerOffset: fileSize - footerLength, footerLength };
}

/**
 * Decodes the footer from `tail`, the last bytes of a file of `fileSize` bytes (at least the
 * footer and the 10-byte trailer). Gives the schema and each record batch's Block; rows per batch
 * live in each batch's message metadata (arrowMessageRows).
 */
export function arrowLayoutFromFooter(tail: Uint8Array, fileSize: number, where = 'arrow file'): ArrowFooterInfo {
  const { footerOffset, footerLength } = arrowFooterRange(tail, fileSize, where);
  if (tail.length < footerLength) throw corrupt(where, `need the last ${footerLength} bytes to read the footer, got ${tail.length}`);
  const fb = tail.subarray(tail.length - footerLength, tail.length - ARROW_TAIL_BYTES);
  let footer: Footer;
  try {
    footer = Footer.decode(fb);
  } catch (err) {
    throw corrupt(where, `footer does not decode (${(err as Error).message})`);
  }
  const dictionaryBlocks: ArrowBlock[] = [];
  for (const b of footer.dictionaryBatches()) {
    const block = { offset: Number(b.offset), metadataLength: b.metaDataLength, bodyLength: Number(b.bodyLength) };
    if (block.offset < 0 || block.offset + block.metadataLength + block.bodyLength > footerOffset) throw corrupt(where, `dictionary batch block at ${block.offset} runs past the footer`);
    dictionaryBlocks.push(block);
  }
  const blocks: ArrowBlock[] = [];
  for (const b of footer.recordBatches()) {
    const block = { offset: Number(b.offset), metadataLength: b.metaDataLength, bodyLength: Number(b.bodyLength) };
    if (block.offset < 0 || block.offset + block.metadataLength + block.bodyLength > footerOffset) {
      throw corrupt(where, `record batch block at ${block.offset} runs past the footer`);
    }
    blocks.push(block);
  }
  return { schema: footer.schema, blocks, dictionaryBlocks, footerOffset, footerLength };
}

/** Rows of one record batch, from its message bytes `[block.offset, block.offset + metadataLength)`. */
export function arrowMessageRows(metadata: Uint8Array, where = 'arrow file'): number {
  return arrowMessageHeader(metadata, where).length;
}

/** The RecordBatch header (rows, nodes, buffers, compression) of one record batch's message bytes. */
export function arrowMessageHeader(metadata: Uint8Array, where = 'arrow file'): RecordBatchHeader {
  const view = new DataView(metadata.buffer, metadata.byteOffset, metadata.byteLength);
  // Current format: 0xFFFFFFFF continuation, int32 length, flatbuffer; pre-0.15: int32 length, flatbuffer.
  let at = 0;
  if (metadata.length >= 4 && view.getInt32(0, true) === -1) at = 4;
  if (metadata.length < at + 4) throw corrupt(where, 'record batch metadata is truncated');
  const len = view.getInt32(at, true);
  at += 4;
  if (len <= 0 || at + len > metadata.length) throw corrupt(where, 'record batch metadata length is out of range');
  let message;
  try {
    message = Message.decode(metadata.subarray(at, at + len));
  } catch (err) {
    throw corrupt(where, `record batch metadata does not decode (${(err as Error).message})`);
  }
  if (!message.isRecordBatch()) throw corrupt(where, 'a footer block does not point at a record batch');
  return message.header();
}

/** Field nodes one field takes in a record batch: its own and its descendants'. */
function nodeCount(type: DataType): number {
  let n = 1;
  for (const c of type.children ?? []) n += nodeCount(c.type as DataType);
  return n;
}

/**
 * What the decoder cannot read in place, found from a record batch's metadata alone: an unknown
 * compression codec, and null items inside list columns (gpufeed lists carry no per-item validity).
 */
export function checkBatchInPlace(header: RecordBatchHeader, schema: Schema, firstRow: number, where: string): void {
  // LZ4_FRAME and ZSTD bodies are decompressed by the decode workers (compressed-batch.ts).
  if (header.compression && !arrowBodyDecoder(header.compression.type as number)) {
    throw new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `${where}: record batches use Arrow compression codec ${header.compression.type}, which gpufeed does not know (it reads LZ4_FRAME and ZSTD)`, { path: where });
  }
  let node = 0;
  for (const f of schema.fields) {
    const t = f.type as DataType;
    const rowsNode = header.nodes[node];
    if (t.typeId === Type.FixedSizeList && rowsNode && rowsNode.nullCount > 0) {
      // Fixed-shape columns have no validity in a batch: a null row would arrive as whatever bytes it holds.
      throw new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `${where}: column ${JSON.stringify(f.name)}: rows ${firstRow + 1}-${firstRow + header.length} hold ${rowsNode.nullCount} null fixed-size list(s); gpufeed's fixed-shape columns cannot hold nulls (fill or drop them)`, { path: where, column: f.name, row: firstRow + 1 });
    }
    if (t.typeId === Type.List || t.typeId === Type.LargeList || t.typeId === Type.FixedSizeList) {
      const items = header.nodes[node + 1];
      if (items && items.nullCount > 0) {
        throw new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `${where}: column ${JSON.stringify(f.name)}: rows ${firstRow + 1}-${firstRow + header.length} hold ${items.nullCount} null list item(s); gpufeed lists carry no per-item nulls (fill or drop them)`, { path: where, column: f.name, row: firstRow + 1 });
      }
    }
    node += nodeCount(t);
  }
}

/** Each dictionary batch of the footer, read whole and checksummed (values reach batches too). */
export async function readArrowDictionaryChecksums(read: RangeReader, info: ArrowFooterInfo): Promise<ArrowDictionaryLayout[]> {
  const out: ArrowDictionaryLayout[] = [];
  for (const b of info.dictionaryBlocks) {
    out.push({ offset: b.offset, metadataLength: b.metadataLength, bodyLength: b.bodyLength, crc32: pieceChecksum(await read(b.offset, b.metadataLength + b.bodyLength)) });
  }
  return out;
}

/**
 * The dictionary batches the decoder reads as they are: one per dictionary id, none a delta (an
 * extension by later batches), a codec it knows.
 */
export async function checkDictionariesInPlace(read: RangeReader, info: ArrowFooterInfo, where: string, onlyColumns?: ReadonlySet<string>): Promise<void> {
  const seen = new Set<number>();
  for (const b of info.dictionaryBlocks) {
    const { id, isDelta, header } = dictionaryBatchHeader(await read(b.offset, b.metadataLength), where);
    const column = info.schema.fields.find((f) => (f.type as DataType).typeId === Type.Dictionary && Number((f.type as unknown as { id: number }).id) === id)?.name;
    if (column !== undefined && onlyColumns && !onlyColumns.has(column)) continue;
    const named = column === undefined ? `dictionary ${id}` : `column ${JSON.stringify(column)} (dictionary ${id})`;
    if (isDelta || seen.has(id)) {
      throw new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `${where}: ${named}: ${isDelta ? 'a delta dictionary batch' : 'more than one dictionary batch'}, which gpufeed does not read in place; convert the files with \`gpufeed prep\`${column === undefined ? '' : `, or leave the column out with --drop ${column}`}`, { path: where, ...(column === undefined ? {} : { column }) });
    }
    if (header.compression && !arrowBodyDecoder(header.compression.type as number)) {
      throw new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `${where}: ${named} uses Arrow compression codec ${header.compression.type}, which gpufeed does not know (it reads LZ4_FRAME and ZSTD)`, { path: where });
    }
    seen.add(id);
  }
}

export interface ArrowFileLayout {
  layout: ArrowLayout;
  rows: number;
  schema: Schema;
  /** The schema as gpufeed columns (strict mapping; throws GPUFEED_UNSUPPORTED_TYPE). */
  columns: ColumnSpec[];
  /** Checksum of the footer as read (layout.footerCrc32 too when piece checksums were asked for). */
  footerCrc32: number;
}

/** The footer through ranged reads (usually inside the first 64 KiB read), and its checksum. */
export async function readArrowFooter(read: RangeReader, fileSize: number, where = 'arrow file'): Promise<{ info: ArrowFooterInfo; footerCrc32: number }> {
  const first = Math.min(fileSize, 64 << 10);
  let tail = await read(fileSize - first, first);
  const { footerLength } = arrowFooterRange(tail, fileSize, where);
  if (footerLength > tail.length) tail = await read(fileSize - footerLength, footerLength);
  return { info: arrowLayoutFromFooter(tail, fileSize, where), footerCrc32: pieceChecksum(tail.subarray(tail.length - footerLength)) };
}

/**
 * Each block's record batch metadata (with `withChecksums`, each whole batch, to checksum it),
 * refusing what the decoder cannot read in place (checkBatchInPlace).
 */
export async function readArrowBatches(read: RangeReader, info: ArrowFooterInfo, where: string, withChecksums: boolean): Promise<{ batches: ArrowBatchLayout[]; rows: number }> {
  const batches: ArrowBatchLayout[] = [];
  let rows = 0;
  for (const b of info.blocks) {
    const piece = await read(b.offset, withChecksums ? b.metadataLength + b.bodyLength : b.metadataLength);
    const header = arrowMessageHeader(piece.subarray(0, b.metadataLength), where);
    checkBatchInPlace(header, info.schema, rows, where);
    batches.push(withChecksums ? { ...b, rows: header.length, crc32: pieceChecksum(piece) } : { ...b, rows: header.length });
    rows += header.length;
  }
  return { batches, rows };
}

/**
 * A whole layout through ranged reads: the footer, then each batch's metadata (with
 * `pieceChecksums`, the default and what `gpufeed index` records: each whole batch, to checksum
 * it). Small files take 1 + batches reads.
 */
export async function readArrowLayout(read: RangeReader, fileSize: number, where = 'arrow file', opts: LayoutReadOptions = {}): Promise<ArrowFileLayout> {
  const withChecksums = opts.pieceChecksums ?? true;
  const { info, footerCrc32 } = await readArrowFooter(read, fileSize, where);
  const columns = columnsFromArrowSchema(info.schema, { where });
  const { batches, rows } = await readArrowBatches(read, info, where, withChecksums);
  await checkDictionariesInPlace(read, info, where);
  const layout: ArrowLayout = withChecksums ? { kind: 'arrow', batches, pieceHash: PIECE_HASH, footerCrc32 } : { kind: 'arrow', batches };
  if (withChecksums && info.dictionaryBlocks.length > 0) layout.dictionaries = await readArrowDictionaryChecksums(read, info);
  return { layout, rows, schema: info.schema, columns, footerCrc32 };
}
