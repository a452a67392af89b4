// Variable-length Parquet columns (strings, binary, lists of numbers) read in place, page by page:
// each page a batch needs is decoded once into Arrow's layout (int32 offsets + values, plus a
// validity byte per row) in the loader's shared cache (row-group-cache.ts), and every worker
// copies its rows from there. Nothing is ever decoded a whole row group at a time, so memory is
// bounded by the cache's budget plus one page per worker, whatever the row-group size.
//
// A chunk's pages are found once through its page directory (page offsets and first rows, built
// by one worker from the page headers, and shared through the same cache). A column this path
// cannot read (a type it would have to convert, a row continued across pages, an encoding the
// decoder lacks) returns false and takes the generic path.
import { readFully } from '../../util/read-fully.js';
import type { ColumnChunk, FileMetaData, SchemaElement } from 'hyparquet';
import type { DType } from '../../dataset/types.js';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import { leafPath } from './column-path.js';
import type { Codec } from './codecs.js';
import { PAGE_DATA, PAGE_DATA_V2, PAGE_DICTIONARY, PageFormatError, readPageHeader, type PageHeader } from './page-header.js';
import { decodeDataPage, decodeDictionaryPage, pageRowsV1, UnsupportedEncoding, type ChunkInfo } from './pages.js';
import { isByteValues, type PhysicalType, type Values } from './values.js';
import { MAX_VAR_ELEMENTS, varColumnTooLong, type ColumnRegion } from '../../pipeline/batch-layout.js';
import type { RowRun, ShardRef } from '../../pipeline/decode-messages.js';
import type { CopyOps, SlotTarget } from '../arrow/load-unit.js';
import { slotOffsets as slotOffsetsOf } from '../offset-runs.js';
import { createRowGroupCache, RowGroupCache, type SizedPiece } from './row-group-cache.js';

export interface VarShard {
  fd: number;
  ref: ShardRef;
  metadata: FileMetaData;
}

export interface VarShared {
  cache: RowGroupCache;
  stopped: () => boolean;
}

/** Cache part holding a chunk's page directory (pages are parts 0, 1, ...). */
const DIRECTORY_PART = -1;

/** Page header bytes read ahead of a page (a header with large statistics is read again, whole). */
const HEADER_READ = 64 * 1024;

/** Physical type and annotations that carry `dtype` with no conversion beyond narrowing. */
function leafCarries(el: SchemaElement, dtype: DType): boolean {
  const ct = el.converted_type;
  const lt = el.logical_type as { type?: string; bitWidth?: number; isSigned?: boolean } | undefined;
  const int = (bits: number, signed: boolean, cts: readonly (string | undefined)[]): boolean => {
    if (lt) return lt.type === 'INTEGER' && lt.bitWidth === bits && lt.isSigned === signed;
    return cts.includes(ct);
  };
  switch (dtype) {
    case 'int8': return el.type === 'INT32' && int(8, true, ['INT_8']);
    case 'uint8': return el.type === 'INT32' && int(8, false, ['UINT_8']);
    case 'int16': return el.type === 'INT32' && int(16, true, ['INT_16']);
    case 'uint16': return el.type === 'INT32' && int(16, false, ['UINT_16']);
    case 'int32': return el.type === 'INT32' && int(32, true, [undefined, 'INT_32']);
    case 'uint32': return el.type === 'INT32' && int(32, false, ['UINT_32']);
    case 'int64': return el.type === 'INT64' && int(64, true, [undefined, 'INT_64']);
    case 'uint64': return el.type === 'INT64' && int(64, false, ['UINT_64']);
    case 'float32': return el.type === 'FLOAT' && !lt && ct === undefined;
    case 'float64': return el.type === 'DOUBLE' && !lt && ct === undefined;
    case 'bool': return el.type === 'BOOLEAN';
    case 'string':
    case 'binary':
      if (el.type === 'FIXED_LEN_BYTE_ARRAY') return dtype === 'binary' && !lt && ct === undefined;
      return el.type === 'BYTE_ARRAY' && ct !== 'DECIMAL' && lt?.type !== 'DECIMAL';
  }
  return false;
}

interface ChunkPlan {
  chunk: ColumnChunk;
  info: ChunkInfo;
  rows: number;
  /** The chunk's bytes in the file: [start, limit). */
  start: number;
  limit: number;
}

/** Chunk plans per file footer (a run needs its chunk's; every run of a batch asks again). */
const plans = new WeakMap<FileMetaData, Map<string, ChunkPlan | null>>();

function chunkPlan(h: VarShard, unit: number, region: ColumnRegion): ChunkPlan | undefined {
  let byChunk = plans.get(h.metadata);
  if (!byChunk) plans.set(h.metadata, (byChunk = new Map()));
  const key = `${unit}#${region.name}#${region.kind}#${region.dtype}`;
  let plan = byChunk.get(key);
  if (plan === undefined) byChunk.set(key, (plan = planChunk(h, unit, region) ?? null));
  return plan ?? undefined;
}

function planChunk(h: VarShard, unit: number, region: ColumnRegion): ChunkPlan | undefined {
  const rg = h.metadata.row_groups[unit];
  if (!rg) return undefined;
  const chunks = rg.columns.filter((c) => c.meta_data?.path_in_schema[0] === region.name);
  if (chunks.length !== 1) return undefined;
  const chunk = chunks[0]!;
  const meta = chunk.meta_data!;
  const path = leafPath(h.metadata.schema, region.name);
  if (!path || path.names.join('.') !== meta.path_in_schema.join('.')) return undefined;
  if (!leafCarries(path.leaf, region.dtype)) return undefined;
  if (region.kind === 'list' ? path.maxRep !== 1 : region.kind === 'bytes' ? path.maxRep !== 0 : true) return undefined;
  if (meta.type !== path.leaf.type) return undefined;
  const dictOffset = meta.dictionary_page_offset !== undefined ? Number(meta.dictionary_page_offset) : -1;
  const dataOffset = Number(meta.data_page_offset);
  const start = dictOffset >= 0 && dictOffset < dataOffset ? dictOffset : dataOffset;
  const limit = start + Number(meta.total_compressed_size);
  const info: ChunkInfo = { type: meta.type as PhysicalType, typeLength: path.leaf.type_length ?? 0, codec: meta.codec as Codec, path };
  return { chunk, info, rows: Number(rg.num_rows), start, limit };
}

function corrupt(h: VarShard, unit: number, region: ColumnRegion, message: string): GpufeedError {
  return new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${h.ref.name}: row group ${unit}, column ${region.name}: ${message}`, { shard: h.ref.name, path: h.ref.file, column: region.name });
}

function readAt(h: VarShard, start: number, length: number, limit: number): Uint8Array {
  const n = Math.max(0, Math.min(length, limit - start));
  const out = new Uint8Array(n);
  const got = readFully(h.fd, out, start);
  if (got < n) throw new PageFormatError(`file ends at ${start + got}, wanted bytes up to ${start + n}`);
  return out;
}

/** The header of the page at file offset `at`, which must end by `limit` (the chunk's end). */
function headerAt(h: VarShard, at: number, limit: number): PageHeader {
  for (let size = HEADER_READ; ; size *= 4) {
    const bytes = readAt(h, at, size, limit);
    try {
      return readPageHeader(bytes, 0);
    } catch (err) {
      if (err instanceof PageFormatError && /runs past/.test(err.message) && bytes.length === size) continue;
      throw err;
    }
  }
}

/**
 * Page directory of a chunk, as float64 words: [dictionary header offset or -1, data pages, then
 * per data page: file offset of its header, first row]. Built from the headers; pages v1 of a
 * list column have no row count, so their levels are decoded (the values are not).
 */
function buildDirectory(h: VarShard, plan: ChunkPlan): Float64Array {
  const { start, limit } = plan;
  if (!(limit <= h.ref.bytes)) throw new PageFormatError(`column chunk ends at ${limit}, past the file's ${h.ref.bytes} bytes`);
  const words: number[] = [-1, 0];
  let at = start;
  let row = 0;
  const { maxRep } = plan.info.path;
  while (row < plan.rows && at < limit) {
    const header = headerAt(h, at, limit);
    const next = at + header.headerSize + header.compressedSize;
    if (next > limit) throw new PageFormatError('page runs past its column chunk');
    if (header.type === PAGE_DICTIONARY) {
      words[0] = at;
    } else if (header.type === PAGE_DATA || header.type === PAGE_DATA_V2) {
      let rows = header.numValues;
      if (header.type === PAGE_DATA_V2) rows = header.numRows;
      else if (maxRep > 0 && next >= limit) {
        // The chunk's last page holds the rest of its rows (a writer's single page per chunk
        // needs no decoding here); decodePage checks the count when it decodes the page.
        rows = plan.rows - row;
      } else if (maxRep > 0) {
        const body = readAt(h, at + header.headerSize, header.compressedSize, limit);
        const page = decodeLevelsOnly(plan.info, header, body);
        if (page.firstRep !== 0) throw new UnsupportedEncoding('a row continues across pages');
        rows = page.rows;
      }
      words.push(at, row);
      words[1]! += 1;
      row += rows;
    }
    at = next;
  }
  if (row !== plan.rows) throw new PageFormatError(`pages hold ${row} rows, the row group has ${plan.rows}`);
  return Float64Array.from(words);
}

/** Rows and first repetition level of a v1 page (levels decoded through decodeDataPage's checks). */
function decodeLevelsOnly(info: ChunkInfo, header: PageHeader, body: Uint8Array): { rows: number; firstRep: number } {
  // Runs once per page per loader, for v1 pages of list columns only.
  return pageRowsV1(info, header, body);
}

/** Decoded dictionaries of the chunks this worker read last (a page needs its chunk's). */
const dictionaries: { key: string; values: Values; bytes: number }[] = [];
const MAX_DICTIONARY_BYTES = 64 * 1024 * 1024;

function dictionaryOf(h: VarShard, plan: ChunkPlan, unit: number, offset: number): Values {
  const key = `${h.ref.file}#${unit}#${plan.chunk.meta_data!.path_in_schema.join('.')}`;
  const hit = dictionaries.findIndex((d) => d.key === key);
  if (hit >= 0) {
    const [d] = dictionaries.splice(hit, 1);
    dictionaries.push(d!);
    return d!.values;
  }
  const limit = Math.min(h.ref.bytes, plan.limit);
  const header = headerAt(h, offset, limit);
  if (header.type !== PAGE_DICTIONARY) throw new PageFormatError('the directory\'s dictionary page is not one');
  const body = readAt(h, offset + header.headerSize, header.compressedSize, limit);
  const values = decodeDictionaryPage(plan.info, header, body);
  const bytes = isByteValues(values) ? values.bytes.byteLength + values.offsets.byteLength : values.byteLength;
  dictionaries.push({ key, values, bytes });
  let total = dictionaries.reduce((a, d) => a + d.bytes, 0);
  while (dictionaries.length > 1 && total > MAX_DICTIONARY_BYTES) total -= dictionaries.shift()!.bytes;
  return values;
}

const alignUp8 = (n: number): number => Math.ceil(n / 8) * 8;

/** Layout of a decoded page entry: [rows u32, elements u32], offsets (rows + 1) int32, values, validity bytes. */
export function pageLayout(rows: number, elements: number, elementBytes: number): { offsets: number; values: number; valid: number; bytes: number } {
  const offsets = 8;
  const values = alignUp8(offsets + 4 * (rows + 1));
  const valid = values + elements * elementBytes;
  return { offsets, values, valid, bytes: alignUp8(valid + rows) };
}

/** Narrowing copies into the slot's dtype, checked (a value out of its dtype's range is damage). */
const NARROW: Partial<Record<DType, { ctor: { new (n: number): Int8Array | Uint8Array | Int16Array | Uint16Array }; min: number; max: number }>> = {
  int8: { ctor: Int8Array, min: -128, max: 127 },
  uint8: { ctor: Uint8Array, min: 0, max: 255 },
  int16: { ctor: Int16Array, min: -32768, max: 32767 },
  uint16: { ctor: Uint16Array, min: 0, max: 65535 },
};

/** The values of a page as the slot's bytes (the stored bits for same-width types). */
function valueBytes(values: Values, dtype: DType): Uint8Array | string {
  if (isByteValues(values)) return values.bytes;
  const narrow = NARROW[dtype];
  if (narrow) {
    const src = values as Int32Array;
    const out = new narrow.ctor(src.length);
    for (let i = 0; i < src.length; i++) {
      const v = src[i]!;
      if (v < narrow.min || v > narrow.max) return `value ${v} out of the range of ${dtype}`;
      out[i] = v;
    }
    return new Uint8Array(out.buffer);
  }
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/**
 * Decodes the data page whose header is at file offset `at` as far as its entry's size; the entry
 * (Arrow offsets over the page's rows, the values in the slot's dtype, a validity byte per row) is
 * written straight into the cache's memory.
 */
function decodePage(h: VarShard, plan: ChunkPlan, unit: number, region: ColumnRegion, at: number, dictAt: number): SizedPiece {
  const limit = Math.min(h.ref.bytes, plan.limit);
  const header = headerAt(h, at, limit);
  const body = readAt(h, at + header.headerSize, header.compressedSize, limit);
  const dictionary = dictAt >= 0 ? dictionaryOf(h, plan, unit, dictAt) : undefined;
  // PLAIN numbers of the slot's own width are used as the page's bytes, with no copy.
  const page = decodeDataPage(plan.info, header, body, dictionary, false, NARROW[region.dtype] === undefined);
  const { rowDef, elementDef, maxDef } = plan.info.path;
  const rows = page.numRows;
  const isList = region.kind === 'list';
  const values = page.values;
  const bytes = page.plainBytes ?? valueBytes(values, region.dtype);
  if (typeof bytes === 'string') throw new PageFormatError(bytes);
  const count = isByteValues(values) ? values.offsets.length - 1 : page.plainBytes ? page.plainBytes.length / region.elementBytes : values.length;
  const eb = isByteValues(values) ? 1 : region.elementBytes;
  const elements = isByteValues(values) ? bytes.length : count;
  const layout = pageLayout(rows, elements, eb);
  const offsets = new Int32Array(rows + 1);
  const valid = new Uint8Array(rows);
  const rep = page.rep;
  const def = page.def;
  let r = -1;
  let v = 0;
  if (isList) {
    if (page.numValues > 0 && rep![0] !== 0) throw new UnsupportedEncoding('a row continues across pages');
    for (let i = 0; i < page.numValues; i++) {
      if (rep![i] === 0) {
        r++;
        offsets[r] = v;
        valid[r] = 1;
      }
      const d = def ? def[i]! : maxDef;
      if (d === maxDef) v++;
      else if (d < rowDef) valid[r] = 0;
      else if (d >= elementDef) {
        throw new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `shard ${h.ref.name}: column ${region.name}, row group ${unit}: holds a null list item; gpufeed lists carry no per-item nulls (fill or drop them; gpufeed prep names the rows)`, { shard: h.ref.name, column: region.name });
      }
    }
  } else {
    const vo = isByteValues(values) ? values.offsets : undefined;
    for (let i = 0; i < page.numValues; i++) {
      r++;
      const d = def ? def[i]! : maxDef;
      if (d === maxDef) {
        offsets[r] = vo![v]!;
        valid[r] = 1;
        v++;
      } else {
        offsets[r] = vo![v] ?? bytes.length;
        valid[r] = 0;
      }
    }
  }
  if (r + 1 !== rows || v !== count) throw new PageFormatError(`page levels hold ${r + 1} rows and ${v} values, its values ${count}`);
  offsets[rows] = elements;
  return {
    bytes: layout.bytes,
    write: (into) => {
      const dv = new DataView(into.buffer, into.byteOffset, into.byteLength);
      dv.setUint32(0, rows, true);
      dv.setUint32(4, elements, true);
      into.set(new Uint8Array(offsets.buffer), layout.offsets);
      into.set(bytes, layout.values);
      into.set(valid, layout.valid);
    },
  };
}

/** The entries used without a loader's shared cache (a worker on its own), keyed by file, not shard index. */
let privateCache: RowGroupCache | undefined;
const privateIds = new Map<string, number>();

function cacheOf(shared: VarShared | undefined, file: string): VarShared & { shard?: number } {
  if (shared) return shared;
  privateCache ??= new RowGroupCache(createRowGroupCache(1024, 64 * 1024 * 1024));
  let id = privateIds.get(file);
  if (id === undefined) privateIds.set(file, (id = privateIds.size));
  return { cache: privateCache, stopped: () => false, shard: id };
}

/** A page entry as a worker last read it: where it sits in the arena and views over its parts. */
interface PageView {
  page: number;
  entry: number;
  /** The entry's offset in the arena (the views hold while the entry still holds the page there). */
  at: number;
  rows: number;
  offsets: Int32Array;
  /** The values from the page's first element (byte i of element k at k * elementBytes + i). */
  values: Uint8Array;
  valid: Uint8Array;
}

/**
 * What a worker keeps per column chunk it reads: the chunk's plan and page directory and the
 * page it read last. With a shuffle, a batch's runs are single rows, so every run of a column
 * would otherwise look its chunk, directory and page up again and build views over them.
 */
interface ChunkReader {
  plan: ChunkPlan;
  directory: Float64Array;
  cache: RowGroupCache;
  last: PageView | undefined;
}

/** Readers per file footer, unit and column region (dropped with the footer when the shard closes). */
const readers = new WeakMap<FileMetaData, Map<ColumnRegion, Map<number, ChunkReader>>>();

function pageView(cache: RowGroupCache, page: number, entry: number, bytes: Uint8Array, eb: number): PageView {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const rows = dv.getUint32(0, true);
  const elements = dv.getUint32(4, true);
  const layout = pageLayout(rows, elements, eb);
  if (layout.bytes > bytes.byteLength) throw new PageFormatError(`page ${page} entry holds ${bytes.byteLength} bytes, its header needs ${layout.bytes}`);
  return {
    page,
    entry,
    at: bytes.buffer === cache.buffers.data ? bytes.byteOffset : -1,
    rows,
    offsets: new Int32Array(bytes.buffer, bytes.byteOffset + layout.offsets, rows + 1),
    values: new Uint8Array(bytes.buffer, bytes.byteOffset + layout.values, elements * eb),
    valid: new Uint8Array(bytes.buffer, bytes.byteOffset + layout.valid, rows),
  };
}

/**
 * Copies rows run.row .. run.row + count of variable-length column `column` (its index in the
 * layout) into the slot, page by page through the shared cache. False when this column cannot be
 * read this way (the caller takes the generic path; the slot's cursor is left as it was).
 */
export function copyVarRun(h: VarShard, run: RowRun, target: SlotTarget, column: number, ops: CopyOps, sharedIn: VarShared | undefined): boolean {
  const region = target.region;
  const shared = cacheOf(sharedIn, h.ref.file);
  const cache = shared.cache;
  const shard = shared.shard ?? h.ref.index;
  const guard = <T>(f: () => T): T | undefined => {
    try {
      return f();
    } catch (err) {
      if (err instanceof UnsupportedEncoding) return undefined;
      if (err instanceof PageFormatError) throw corrupt(h, run.unit, region, err.message);
      throw err;
    }
  };
  let byRegion = readers.get(h.metadata);
  if (!byRegion) readers.set(h.metadata, (byRegion = new Map()));
  let byUnit = byRegion.get(region);
  if (!byUnit) byRegion.set(region, (byUnit = new Map()));
  let reader = byUnit.get(run.unit);
  if (!reader || reader.cache !== cache) {
    const plan = chunkPlan(h, run.unit, region);
    if (!plan) return false;
    const dirGot = cache.acquire(shard, run.unit, column, DIRECTORY_PART, {
      decode: () => guard(() => {
        const d = buildDirectory(h, plan);
        return new Uint8Array(d.buffer);
      }),
    }, shared.stopped);
    if (dirGot === 'fallback') return false;
    let directory: Float64Array;
    try {
      directory = new Float64Array(dirGot.bytes.slice().buffer);
    } finally {
      cache.release(dirGot.entry);
    }
    byUnit.set(run.unit, (reader = { plan, directory, cache, last: undefined }));
  }
  const { plan, directory } = reader;
  if (run.row + run.count > plan.rows) throw corrupt(h, run.unit, region, `has ${plan.rows} rows, wanted up to ${run.row + run.count}`);
  const dictAt = directory[0]!;
  const pages = directory[1]!;
  const pageAt = (p: number): number => directory[2 + 2 * p]!;
  const firstRow = (p: number): number => directory[3 + 2 * p]!;
  // Last page starting at or before run.row (the page read last, most often).
  let lo = 0;
  const last = reader.last;
  if (last && firstRow(last.page) <= run.row && (last.page + 1 >= pages || firstRow(last.page + 1) > run.row)) {
    lo = last.page;
  } else {
    let hi = pages - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (firstRow(mid) <= run.row) lo = mid;
      else hi = mid - 1;
    }
  }
  const startCursor = target.cursor;
  const eb = region.elementBytes;
  const slotOffsets = slotOffsetsOf(target);
  let row = run.row;
  const end = run.row + run.count;
  for (let p = lo; row < end && p < pages; p++) {
    // The page read last, if its entry still holds it where it was; else acquire (and view) it.
    let view: PageView | undefined;
    let entry = -1;
    const prev = reader.last;
    if (prev && prev.page === p && prev.at >= 0) {
      const at = cache.reacquire(prev.entry, shard, run.unit, column, p);
      if (at === prev.at) {
        view = prev;
        entry = prev.entry;
      } else if (at >= 0) {
        cache.release(prev.entry);
      }
    }
    if (!view) {
      const got = cache.acquire(shard, run.unit, column, p, {
        decode: () => guard(() => decodePage(h, plan, run.unit, region, pageAt(p), dictAt)),
      }, shared.stopped);
      if (got === 'fallback') {
        target.cursor = startCursor;
        return false;
      }
      entry = got.entry;
      try {
        view = guard(() => pageView(cache, p, got.entry, got.bytes, eb))!;
      } catch (err) {
        cache.release(entry);
        throw err;
      }
      reader.last = entry >= 0 ? view : undefined;
    }
    try {
      const { rows, offsets, values, valid } = view;
      const expectRows = (p + 1 < pages ? firstRow(p + 1) : plan.rows) - firstRow(p);
      if (rows !== expectRows) throw corrupt(h, run.unit, region, `page ${p} holds ${rows} rows, its directory says ${expectRows}`);
      const from = row - firstRow(p);
      const upto = Math.min(rows, end - firstRow(p));
      if (from < 0 || upto <= from) throw corrupt(h, run.unit, region, `page ${p} does not hold row ${row}`);
      const v0 = offsets[from]!;
      const v1 = offsets[upto]!;
      if (!(v0 >= 0 && v1 >= v0 && v1 * eb <= values.length)) throw corrupt(h, run.unit, region, `page ${p} offsets ${v0}..${v1} out of its ${values.length / eb} values`);
      if (target.cursor + (v1 - v0) > MAX_VAR_ELEMENTS) throw varColumnTooLong(region, h.ref.name);
      const slotRow = run.slotRow + (row - run.row);
      // One rebase of the run's offsets and one copy of its values (and of its validity bytes).
      const shift = target.cursor - v0;
      if (upto - from === 1) {
        slotOffsets[slotRow] = v0 + shift;
      } else {
        for (let i = from; i < upto; i++) slotOffsets[slotRow + i - from] = offsets[i]! + shift;
      }
      slotOffsets[slotRow + upto - from] = v1 + shift;
      // Values that do not fit are only counted: the batch is decoded again into a one-off slot of
      // that size (oversize-batch.ts).
      if ((target.cursor + (v1 - v0)) * eb <= region.valuesBytes) {
        target.bytes.set(values.subarray(v0 * eb, v1 * eb), region.valuesOffset + target.cursor * eb);
      }
      if (region.validOffset >= 0) {
        if (upto - from === 1) target.bytes[region.validOffset + slotRow] = valid[from]!;
        else target.bytes.set(valid.subarray(from, upto), region.validOffset + slotRow);
      } else {
        for (let i = from; i < upto; i++) if (valid[i] === 0) throw corrupt(h, run.unit, region, `row ${firstRow(p) + i} is null, the manifest says the column is not nullable`);
      }
      target.cursor += v1 - v0;
      ops.bytesRead += (v1 - v0) * eb;
      row += upto - from;
    } finally {
      cache.release(entry);
    }
  }
  if (row !== end) throw corrupt(h, run.unit, region, `pages end at row ${row}, wanted up to ${end}`);
  return true;
}
