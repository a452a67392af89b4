// Reads rows of Arrow IPC record batches straight from the shard file into a batch slot. The
// message metadata says where each column's buffers sit in the body, so a fixed-width column's
// rows are one read from the file into pinned memory: one copy, no intermediate buffer. The reads
// of a whole task are gathered first (ArrowTaskReads) and issued in at most three native calls
// (slot reads + scratch reads, then the values of variable-length columns), since per-row calls
// across the JS/native boundary cost more than the 8 KB copies themselves.
import { closeSync, fstatSync, openSync } from 'node:fs';
import { readFully } from '../../util/read-fully.js';
import { Footer } from 'apache-arrow/ipc/metadata/file';
import { Message, type RecordBatch as RecordBatchHeader } from 'apache-arrow/ipc/metadata/message';
import { Type, type DataType, type Field, type Schema } from 'apache-arrow';
import { arrowStreamSchema } from './stream.js';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import { copyRunsFromMap, copyRunsFromMapIntoBuffer, MAP_RUN_FIELDS, mapFile, PREAD_RUN_FIELDS, preadRunsIntoBuffer, preadRunsIntoSlab, shortRun, unmapFile, type ReadMode } from '../../memory/index.js';
import { copyCompressedRun } from './compressed-batch.js';
import { decodeDictionaryRows, dictionaryIndex, shardDictionary, type DictionaryBlock, type DictionaryIndex, type DictionaryValues } from './dictionary-columns.js';
import { copyViewRows, isViewType, variadicBuffersBefore, viewFieldCount, VIEW_BYTES } from './view-columns.js';
import { arrowConversion, conversionFits, convertRows, storedBytes, type ArrowConversion } from './converted-columns.js';
import { MAX_VAR_ELEMENTS, varColumnTooLong, type ColumnRegion } from '../../pipeline/batch-layout.js';
import type { RowRun, ShardRef } from '../../pipeline/decode-messages.js';
import { unpackBits } from './bits.js';
import { BAD_OFFSETS, rebaseOffsets32, rebaseOffsets64, slotOffsets } from '../offset-runs.js';

/** Where one top-level column's nodes and buffers start in every record batch of the file. */
interface ColumnPlacement {
  field: Field;
  node: number;
  buffer: number;
  /** Set when the stored layout is converted on the way into the slot (converted-columns.ts). */
  conversion?: ArrowConversion;
  /**
   * View-typed fields before this column (view-columns.ts): their data buffers, counted per
   * record batch, come before this column's. Its own index among them when it is one.
   */
  viewsBefore: number;
  /** Set for a dictionary-encoded column: its rows are indices into a dictionary batch (dictionary-columns.ts). */
  dictionary?: DictionaryIndex;
}

export interface ArrowShardHandle {
  fd: number;
  /** File map handle (read 'mmap'), 0 when reads use pread. */
  mapId: number;
  ref: ShardRef;
  columns: Map<string, ColumnPlacement>;
  headers: Map<number, RecordBatchHeader>;
  /** The footer's dictionary batches, and the dictionaries read so far (by id). */
  dictionaryBlocks: DictionaryBlock[];
  dictionaries: Map<number, DictionaryValues>;
  /**
   * Set when pieces are verified: each dictionary batch's checksum from the manifest, by file
   * offset (a dictionary's values reach every batch that names them, so they are checked too).
   */
  dictionaryChecks?: ReadonlyMap<number, number>;
  /**
   * Per record batch (by unit), what its plain variable-length columns' runs need, resolved on
   * each one's first run (VarUnitPlan): later runs of that batch skip the header and buffer lookups.
   */
  varPlans: (VarUnitPlan[] | undefined)[];
}

/**
 * A plain variable-length column (list, string, binary; not a view, dictionary, converted or
 * compressed one) in one record batch: where its offsets and values sit in the file. A document
 * feed is a run per document, so this is looked up once per document, not resolved each time.
 */
interface VarUnitPlan {
  /** The slot region it was resolved for (another column or layout resolves its own). */
  region: ColumnRegion;
  /** Rows of the record batch. */
  rows: number;
  /** Validity to set to 1 for the run's rows (the column has no nulls here, or no bitmap). */
  fillValid: boolean;
  large: boolean;
  /** File offset of the column's offsets buffer. */
  offsetsAt: number;
  /** File offset and length of its values buffer. */
  valuesAt: number;
  valuesLength: number;
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
  const got = readFully(fd, buf, position);
  if (got < buf.length) throw corrupt(ref, `file ends at ${position + got}, wanted ${buf.length} bytes at ${position}`);
}

export function openArrowShard(ref: ShardRef, read: ReadMode = 'pread'): ArrowShardHandle {
  const fd = openSync(ref.file, 'r');
  let mapId = 0;
  try {
    const size = fstatSync(fd).size;
    if (size !== ref.bytes) throw corrupt(ref, `file has ${size} bytes, the manifest says ${ref.bytes}`);
    // File tail: <int32 footer length> "ARROW1".
    const tail = new Uint8Array(10);
    readExactly(fd, ref, tail, size - 10);
    let schema: Schema;
    const dictionaryBlocks: DictionaryBlock[] = [];
    if (new TextDecoder().decode(tail.subarray(4)) !== 'ARROW1') {
      // No footer: an IPC stream (Hugging Face datasets, pa.ipc.new_stream), schema in its first message.
      schema = arrowStreamSchema((offset, length) => {
        const b = new Uint8Array(length);
        readExactly(fd, ref, b, offset);
        return b;
      }, size, `shard ${ref.name}`);
    } else {
      const footerLength = new DataView(tail.buffer).getInt32(0, true);
      if (footerLength <= 0 || footerLength > size - 18) throw corrupt(ref, `bad footer length ${footerLength}`);
      const footerBytes = new Uint8Array(footerLength);
      readExactly(fd, ref, footerBytes, size - 10 - footerLength);
      const footer = Footer.decode(footerBytes);
      schema = footer.schema;
      for (const b of footer.dictionaryBatches()) dictionaryBlocks.push({ offset: Number(b.offset), metadataLength: b.metaDataLength, bodyLength: Number(b.bodyLength) });
    }
    const columns = new Map<string, ColumnPlacement>();
    let node = 0;
    let buffer = 0;
    let views = 0;
    for (const field of schema.fields) {
      const conversion = arrowConversion(field.type);
      const place: ColumnPlacement = { field, node, buffer, viewsBefore: views };
      if (conversion) place.conversion = conversion;
      const dictionary = dictionaryIndex(field.type);
      if (dictionary) place.dictionary = dictionary;
      columns.set(field.name, place);
      views += viewFieldCount(field.type);
      const f = footprint(field.type);
      node += f.nodes;
      buffer += f.buffers;
    }
    if (read === 'mmap') {
      // The mapping is of this very descriptor, whose size was just checked: a file renamed into
      // place meanwhile cannot swap in. Shard files are never truncated (see native/README.md).
      const m = mapFile(fd);
      mapId = m.mapId;
      if (m.size !== ref.bytes) throw corrupt(ref, `file has ${m.size} bytes, the manifest says ${ref.bytes}`);
    }
    return { fd, mapId, ref, columns, headers: new Map(), dictionaryBlocks, dictionaries: new Map(), varPlans: [] };
  } catch (err) {
    if (mapId) unmapFile(mapId);
    closeSync(fd);
    if (err instanceof GpufeedError) throw err;
    throw corrupt(ref, `cannot read the Arrow footer: ${(err as Error).message}`);
  }
}

export function closeArrowShard(h: ArrowShardHandle): void {
  if (h.mapId) unmapFile(h.mapId);
  h.mapId = 0;
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
  /** This thread's view of the region's offsets, made on first use (one view per slot fill, not per run). */
  offsets?: Int32Array;
}

export interface CopyOps {
  scratch(bytes: number): Uint8Array;
  bytesRead: number;
}

/**
 * A list of reads ([fd, position, targetOffset, length] runs) issued together: by one native call
 * (preadRuns), or, when every run has a file map, by one gather copy per mapped file
 * (copyRunsFromMap). Reused across tasks: it only grows.
 */
export class RunReads {
  runs = new Float64Array(PREAD_RUN_FIELDS * 256);
  count = 0;
  /** Bytes all runs ask for. */
  bytes = 0;
  /** The shard each run reads, for the error when one ends short. */
  readonly refs: ShardRef[] = [];
  /** The file map of each run's shard (0: none, read with pread). */
  readonly maps: number[] = [];
  /** One map's runs as [fileOffset, targetOffset, length], rebuilt per copy call. */
  #gather = new Float64Array(MAP_RUN_FIELDS * 256);

  add(fd: number, position: number, targetOffset: number, length: number, ref: ShardRef, mapId = 0): void {
    if (length === 0) return;
    // A mapped run past the end of the file would fault: the file is shorter than its metadata says.
    if (mapId !== 0 && position + length > ref.bytes) {
      throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${ref.name}: file ends before byte ${position + length} (wanted ${length} bytes at ${position})`, { shard: ref.name, path: ref.file });
    }
    let at = this.count * PREAD_RUN_FIELDS;
    const r = this.runs;
    // Extends the previous run when this one continues it in both file and target (an
    // unshuffled batch's rows): fewer, longer reads.
    if (this.count > 0 && r[at - 4] === fd && r[at - 3]! + r[at - 1]! === position && r[at - 2]! + r[at - 1]! === targetOffset) {
      r[at - 1]! += length;
      this.bytes += length;
      return;
    }
    if (at + PREAD_RUN_FIELDS > r.length) {
      const grown = new Float64Array(r.length * 2);
      grown.set(r);
      this.runs = grown;
    }
    const w = this.runs;
    w[at++] = fd;
    w[at++] = position;
    w[at++] = targetOffset;
    w[at] = length;
    this.refs[this.count] = ref;
    this.maps[this.count] = mapId;
    this.count += 1;
    this.bytes += length;
  }

  clear(): void {
    this.count = 0;
    this.bytes = 0;
  }

  /** Reads every run into slab `slabId` (or into `buffer`); a run that meets end of file is SHARD_CORRUPT naming its shard. */
  readInto(target: number | Uint8Array): void {
    if (this.count === 0) return;
    if (this.#allMapped()) {
      this.#copyFromMaps(target);
      return;
    }
    const got = typeof target === 'number' ? preadRunsIntoSlab(this.runs, this.count, target) : preadRunsIntoBuffer(this.runs, this.count, target);
    if (got !== this.bytes) {
      const i = shortRun(this.runs, this.count, got);
      const ref = this.refs[Math.max(0, i)]!;
      const at = Math.max(0, i) * PREAD_RUN_FIELDS;
      const position = this.runs[at + 1]!;
      const length = this.runs[at + 3]!;
      throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${ref.name}: file ends before byte ${position + length} (wanted ${length} bytes at ${position})`, { shard: ref.name, path: ref.file });
    }
  }

  #allMapped(): boolean {
    for (let i = 0; i < this.count; i++) if (this.maps[i] === 0) return false;
    return true;
  }

  /** One copyRunsFromMap call per distinct file map, in run order within each (a task touches few shards). */
  #copyFromMaps(target: number | Uint8Array): void {
    if (this.#gather.length < this.count * MAP_RUN_FIELDS) this.#gather = new Float64Array(this.count * MAP_RUN_FIELDS * 2);
    const g = this.#gather;
    const r = this.runs;
    let doneMap = -1;
    for (let first = 0; first < this.count; first++) {
      const mapId = this.maps[first]!;
      if (mapId === doneMap) continue;
      // Copied already when an earlier run had this map (runs of one map are taken together).
      let seen = false;
      for (let j = 0; j < first && !seen; j++) seen = this.maps[j] === mapId;
      if (seen) continue;
      let n = 0;
      for (let i = first; i < this.count; i++) {
        if (this.maps[i] !== mapId) continue;
        const at = i * PREAD_RUN_FIELDS;
        g[n * MAP_RUN_FIELDS] = r[at + 1]!;
        g[n * MAP_RUN_FIELDS + 1] = r[at + 2]!;
        g[n * MAP_RUN_FIELDS + 2] = r[at + 3]!;
        n += 1;
      }
      try {
        if (typeof target === 'number') copyRunsFromMap(mapId, g, n, target);
        else copyRunsFromMapIntoBuffer(mapId, g, n, target);
      } catch (err) {
        throw mappedReadError(err, this.refs[first]!);
      }
      doneMap = mapId;
    }
  }
}

/** The scratch itself when it starts at an 8-byte boundary (as every lender's does), else an aligned copy. */
function alignedScratch(scratch: Uint8Array): Uint8Array {
  return scratch.byteOffset % 8 === 0 ? scratch : new Uint8Array(scratch.length);
}

/** A map's runs all read one shard: a copy that met the file's new end names it. */
function mappedReadError(err: unknown, ref: ShardRef): unknown {
  if (!(err instanceof GpufeedError) || err.code !== ErrorCodes.SHARD_CORRUPT) return err;
  return new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${ref.name}: ${err.message.replace(/^file map \d+: /, '')}`, { ...err.details, shard: ref.name, path: ref.file }, { cause: err });
}

/** Work that needs scratch bytes read in the first round: bitmaps to unpack, offsets to rebase. */
type Deferred =
  | { kind: 'bits'; at: number; bitStart: number; count: number; out: Uint8Array; outStart: number }
  | { kind: 'compressed'; copy: (ops: CopyOps) => void }
  | { kind: 'views'; at: number; h: ArrowShardHandle; header: RecordBatchHeader; place: ColumnPlacement; body: number; count: number; target: SlotTarget; slotRow: number }
  | { kind: 'dictionary'; at: number; h: ArrowShardHandle; index: DictionaryIndex; count: number; target: SlotTarget; slotRow: number }
  | { kind: 'convert'; at: number; conversion: ArrowConversion; count: number; target: SlotTarget; slotRow: number; shard: string }
  | { kind: 'offsets'; at: number; h: ArrowShardHandle; unit: number; count: number; slotRow: number; large: boolean; target: SlotTarget; valuesAt: number; valuesLength: number };

/**
 * The reads of one task's Arrow runs, gathered run by run (planArrowRun) and then done together
 * (execute): slot reads and scratch reads (validity bitmaps, bool bits, offsets) in one round,
 * then the values of variable-length columns, whose ranges the offsets give, in a second.
 */
export class ArrowTaskReads {
  readonly slot = new RunReads();
  readonly scratchReads = new RunReads();
  readonly values = new RunReads();
  deferred: Deferred[] = [];
  /** Scratch bytes asked for so far. */
  scratchBytes = 0;

  clear(): void {
    this.slot.clear();
    this.scratchReads.clear();
    this.values.clear();
    this.deferred.length = 0;
    this.scratchBytes = 0;
  }

  get empty(): boolean {
    return this.slot.count === 0 && this.scratchReads.count === 0 && this.deferred.length === 0;
  }

  /** Scratch bytes at an 8-byte boundary: offsets are read there through int32 / int64 views of the scratch. */
  #scratchRead(h: ArrowShardHandle, position: number, length: number): number {
    const at = Math.ceil(this.scratchBytes / 8) * 8;
    this.scratchReads.add(h.fd, position, at, length, h.ref, h.mapId);
    this.scratchBytes = at + length;
    return at;
  }

  /** Adds the reads of one run of rows of one column. */
  plan(h: ArrowShardHandle, run: RowRun, target: SlotTarget): void {
    const known = h.varPlans[run.unit];
    if (known !== undefined) {
      for (let i = 0; i < known.length; i++) {
        const v = known[i]!;
        if (v.region === target.region) {
          this.#planVar(h, run, target, v);
          return;
        }
      }
    }
    const header = recordBatchHeader(h, run);
    let place = h.columns.get(target.region.name);
    if (!place) throw new GpufeedError(ErrorCodes.UNKNOWN_COLUMN, `shard ${h.ref.name} has no column ${target.region.name}`, { shard: h.ref.name, column: target.region.name });
    // After a view column, buffers shift by its data buffers in this batch (view-columns.ts).
    if (place.viewsBefore > 0) place = { ...place, buffer: place.buffer + variadicBuffersBefore(header, place.viewsBefore, `shard ${h.ref.name}: record batch ${run.unit}`) };
    if (header.compression) {
      // Compressed bodies are copied from memory (arrow-compressed.ts), in planning order like offsets.
      const copied = { ...run, block: run.block && { ...run.block } };
      this.deferred.push({ kind: 'compressed', copy: (ops) => copyCompressedRun(h, copied, target, header, place, ops) });
      return;
    }
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
      const vb = bufferAt(0);
      if (topNode.nullCount === 0 || vb.length === 0) target.bytes.fill(1, region.validOffset + run.slotRow, region.validOffset + run.slotRow + run.count);
      else {
        const first = run.row >> 3;
        const at = this.#scratchRead(h, body + vb.offset + first, ((run.row + run.count + 7) >> 3) - first);
        this.deferred.push({ kind: 'bits', at, bitStart: run.row & 7, count: run.count, out: target.bytes, outStart: region.validOffset + run.slotRow });
      }
    }

    if (isViewType(place.field.type)) {
      if (region.kind !== 'bytes') throw corrupt(h.ref, `column ${region.name}: the file's ${String(place.field.type)} cannot be read as the manifest's ${region.kind} ${region.dtype}`);
      const views = bufferAt(1);
      if ((run.row + run.count) * VIEW_BYTES > views.length) throw corrupt(h.ref, `column ${region.name}: record batch ${run.unit} views buffer is ${views.length} bytes, too short for ${run.row + run.count} rows`);
      const at = this.#scratchRead(h, body + views.offset + run.row * VIEW_BYTES, run.count * VIEW_BYTES);
      this.deferred.push({ kind: 'views', at, h, header, place, body, count: run.count, target, slotRow: run.slotRow });
      return;
    }
    if (place.dictionary) {
      // Indices to scratch; values looked up in the dictionary after validity is unpacked.
      const data = bufferAt(1);
      const w = place.dictionary.width;
      if ((run.row + run.count) * w > data.length) throw corrupt(h.ref, `column ${region.name}: record batch ${run.unit} indices buffer is ${data.length} bytes, too short for ${run.row + run.count} rows`);
      const at = this.#scratchRead(h, body + data.offset + run.row * w, run.count * w);
      this.deferred.push({ kind: 'dictionary', at, h, index: place.dictionary, count: run.count, target, slotRow: run.slotRow });
      return;
    }
    if (place.conversion) {
      // Stored bytes to scratch, converted into the slot in planning order (converted-columns.ts).
      if (!conversionFits(place.conversion, region)) throw corrupt(h.ref, `column ${region.name}: the file's ${String(place.field.type)} cannot be read as the manifest's ${region.kind} ${region.dtype}`);
      const data = bufferAt(1);
      const from = storedBytes(place.conversion, run.row);
      const length = storedBytes(place.conversion, run.count);
      if (from + length > data.length) throw corrupt(h.ref, `column ${region.name}: record batch ${run.unit} data buffer is ${data.length} bytes, too short for ${run.row + run.count} rows`);
      const at = this.#scratchRead(h, body + data.offset + from, length);
      this.deferred.push({ kind: 'convert', at, conversion: place.conversion, count: run.count, target, slotRow: run.slotRow, shard: h.ref.name });
      return;
    }
    const typeId = place.field.type.typeId;
    if (region.kind === 'scalar' || region.kind === 'fixed') {
      const data = region.kind === 'fixed' ? bufferAt(2) : bufferAt(1);
      if (region.dtype === 'bool') {
        // One bit a value, rowBytes values a row (1 for a scalar column, the shape's product for a
        // fixed one), unpacked to a byte each.
        const per = region.rowBytes;
        const bitStart = run.row * per;
        const bitEnd = bitStart + run.count * per;
        if ((bitEnd + 7) >> 3 > data.length) throw corrupt(h.ref, `column ${region.name}: record batch ${run.unit} bool data is ${data.length} bytes, too short for ${run.row + run.count} rows`);
        const first = bitStart >> 3;
        const at = this.#scratchRead(h, body + data.offset + first, ((bitEnd + 7) >> 3) - first);
        this.deferred.push({ kind: 'bits', at, bitStart: bitStart & 7, count: bitEnd - bitStart, out: target.bytes, outStart: region.valuesOffset + run.slotRow * per });
        return;
      }
      if ((run.row + run.count) * region.rowBytes > data.length) {
        throw corrupt(h.ref, `column ${region.name}: record batch ${run.unit} data buffer is ${data.length} bytes, too short for ${run.row + run.count} rows`);
      }
      this.slot.add(h.fd, body + data.offset + run.row * region.rowBytes, region.valuesOffset + run.slotRow * region.rowBytes, run.count * region.rowBytes, h.ref, h.mapId);
      return;
    }

    // Variable length: offsets then values. Lists keep their values in the child's data buffer.
    const large = typeId === Type.LargeUtf8 || typeId === Type.LargeBinary || typeId === Type.LargeList;
    const offsetsBuf = bufferAt(1);
    const valuesBuf = region.kind === 'list' ? bufferAt(3) : bufferAt(2);
    const offWidth = large ? 8 : 4;
    const at = this.#scratchRead(h, body + offsetsBuf.offset + run.row * offWidth, (run.count + 1) * offWidth);
    this.deferred.push({ kind: 'offsets', at, h, unit: run.unit, count: run.count, slotRow: run.slotRow, large, target, valuesAt: body + valuesBuf.offset, valuesLength: valuesBuf.length });
    // The batch's next runs of this column take #planVar, unless its validity needs unpacking.
    if (region.validOffset < 0 || topNode.nullCount === 0 || bufferAt(0).length === 0) {
      const plans = (h.varPlans[run.unit] ??= []);
      // Bounded: a layout's columns (a one-off slot's layout brings regions of its own).
      if (plans.length >= 16) plans.length = 0;
      plans.push({
        region, rows: topNode.length, fillValid: region.validOffset >= 0, large,
        offsetsAt: body + offsetsBuf.offset, valuesAt: body + valuesBuf.offset, valuesLength: valuesBuf.length,
      });
    }
  }

  /** plan() of a run of a plain variable-length column in a record batch resolved already: the same reads, the same checks. */
  #planVar(h: ArrowShardHandle, run: RowRun, target: SlotTarget, v: VarUnitPlan): void {
    if (run.row + run.count > v.rows) throw corrupt(h.ref, `record batch ${run.unit} has ${v.rows} rows, wanted ${run.row + run.count}`);
    const region = v.region;
    if (v.fillValid) target.bytes.fill(1, region.validOffset + run.slotRow, region.validOffset + run.slotRow + run.count);
    const offWidth = v.large ? 8 : 4;
    const at = this.#scratchRead(h, v.offsetsAt + run.row * offWidth, (run.count + 1) * offWidth);
    this.deferred.push({ kind: 'offsets', at, h, unit: run.unit, count: run.count, slotRow: run.slotRow, large: v.large, target, valuesAt: v.valuesAt, valuesLength: v.valuesLength });
  }

  /** Does every planned read into slab `slabId`; `scratch` lends a buffer of at least n bytes. */
  execute(slabId: number, ops: CopyOps): void {
    this.slot.readInto(slabId);
    ops.bytesRead += this.slot.bytes;
    if (this.scratchReads.count > 0 || this.deferred.length > 0) {
      const scratch = alignedScratch(ops.scratch(this.scratchBytes));
      this.scratchReads.readInto(scratch);
      this.#scratch32 = undefined;
      this.#scratch64 = undefined;
      ops.bytesRead += this.scratchBytes;
      // In planning order, so each column's values cursor advances run by run.
      for (const d of this.deferred) {
        if (d.kind === 'compressed') d.copy(ops);
        else if (d.kind === 'bits') unpackBits(scratch.subarray(d.at), d.bitStart, d.count, d.out, d.outStart);
        else if (d.kind === 'views') this.#copyViews(d, scratch);
        else if (d.kind === 'dictionary') decodeDictionaryRows(d.index, shardDictionary(d.h, d.index), scratch, d.at, d.count, d.target, d.slotRow, d.h.ref.name);
        else if (d.kind === 'convert') convertRows(d.conversion, scratch, d.at, d.count, d.target, d.slotRow, d.shard);
        else this.#rebaseOffsets(d, scratch);
      }
    }
    this.values.readInto(slabId);
    ops.bytesRead += this.values.bytes;
  }

  /** Offsets and inline bytes now; long values as ranged reads of the column's data buffers, in the values round. */
  #copyViews(d: Extract<Deferred, { kind: 'views' }>, scratch: Uint8Array): void {
    const { h, header, place } = d;
    const own = header.variadicBufferCounts[place.viewsBefore] ?? 0;
    const data = (b: number) => (b >= 0 && b < own ? header.buffers[place.buffer + 2 + b] : undefined);
    copyViewRows(scratch, d.at, d.count, d.target, d.slotRow, h.ref.name, (b) => data(b)?.length, (v) => {
      this.values.add(h.fd, d.body + data(v.buffer)!.offset + v.offset, v.to, v.length, h.ref, h.mapId);
    });
  }

  readonly #boolReads = new RunReads();

  /** Reads the bytes holding bits [first, first + count) of a bool list's values and unpacks them. */
  #unpackBoolItems(h: ArrowShardHandle, valuesAt: number, first: number, count: number, out: Uint8Array, outStart: number): void {
    if (count === 0) return;
    const from = first >> 3;
    const packed = new Uint8Array(((first + count + 7) >> 3) - from);
    this.#boolReads.clear();
    this.#boolReads.add(h.fd, valuesAt + from, 0, packed.length, h.ref, h.mapId);
    this.#boolReads.readInto(packed);
    unpackBits(packed, first & 7, count, out, outStart);
  }

  /** Views of the scratch of the execute in progress, made on first use. */
  #scratch32: Int32Array | undefined;
  #scratch64: BigInt64Array | undefined;

  #rebaseOffsets(d: Extract<Deferred, { kind: 'offsets' }>, scratch: Uint8Array): void {
    const { target, h } = d;
    const region = target.region;
    let start: number;
    let end: number;
    if (d.large) {
      const src = (this.#scratch64 ??= new BigInt64Array(scratch.buffer, scratch.byteOffset, scratch.byteLength >> 3));
      start = Number(src[d.at >> 3]!);
      end = Number(src[(d.at >> 3) + d.count]!);
    } else {
      const src = (this.#scratch32 ??= new Int32Array(scratch.buffer, scratch.byteOffset, scratch.byteLength >> 2));
      start = src[d.at >> 2]!;
      end = src[(d.at >> 2) + d.count]!;
    }
    const elems = end - start;
    const eb = region.elementBytes;
    // A list of bools keeps one bit per item (Arrow's layout); the slot holds a byte per item.
    const bits = region.dtype === 'bool';
    const valuesEnd = bits ? (start + elems + 7) >> 3 : (start + elems) * eb;
    if (elems < 0 || start < 0 || valuesEnd > d.valuesLength) throw corrupt(h.ref, `column ${region.name}: bad offsets in record batch ${d.unit}`);
    if (target.cursor + elems > MAX_VAR_ELEMENTS) throw varColumnTooLong(region, h.ref.name);
    const dst = slotOffsets(target);
    const got = d.large ? rebaseOffsets64(this.#scratch64!, d.at >> 3, d.count, dst, d.slotRow, target.cursor) : rebaseOffsets32(this.#scratch32!, d.at >> 2, d.count, dst, d.slotRow, target.cursor);
    if (got === BAD_OFFSETS) throw corrupt(h.ref, `column ${region.name}: offsets of record batch ${d.unit} are not increasing`);
    // Values that do not fit are not read: the cursor still counts them, and the batch is decoded
    // again into a one-off slot of that size (oversize-batch.ts).
    if ((target.cursor + elems) * eb <= region.valuesBytes) {
      if (bits) this.#unpackBoolItems(h, d.valuesAt, start, elems, target.bytes, region.valuesOffset + target.cursor);
      else this.values.add(h.fd, d.valuesAt + start * eb, region.valuesOffset + target.cursor * eb, elems * eb, h.ref, h.mapId);
    }
    target.cursor += elems;
  }
}
