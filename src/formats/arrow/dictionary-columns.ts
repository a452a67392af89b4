// Dictionary-encoded Arrow columns (pandas categoricals, pyarrow dictionary_encode) read in place
// from an IPC *file*: the record batches hold integer indices; the values sit in one dictionary
// batch per dictionary id (footer.dictionaryBatches). Each dictionary is read once per shard handle
// (small: the distinct values) and every row's value copied into the slot in the value type's
// layout: offsets + bytes for strings/binary, the element for numbers. Delta dictionaries (a
// dictionary extended by later batches) and dictionaries in IPC streams are refused at index time.
import { readFully } from '../../util/read-fully.js';
import { crc32 } from 'node:zlib';
import { formatChecksum } from '../../dataset/piece-checksum.js';
import { Type, type DataType } from 'apache-arrow';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import { MAX_VAR_ELEMENTS, varColumnTooLong } from '../../pipeline/batch-layout.js';
import { decompressBodyBuffers } from './body-buffers.js';
import { dictionaryBatchHeader } from './dictionary-batch.js';
import type { ArrowShardHandle, SlotTarget } from './load-unit.js';
import { slotOffsets as slotOffsetsOf } from '../offset-runs.js';

export interface DictionaryIndex {
  id: number;
  /** Bytes of one index. */
  width: number;
  signed: boolean;
  valueType: DataType;
}

/** The index type of a dictionary field, or undefined when the field is not dictionary-encoded. */
export function dictionaryIndex(type: DataType): DictionaryIndex | undefined {
  if (type.typeId !== Type.Dictionary) return undefined;
  const t = type as unknown as { id: number; indices: { bitWidth: number; isSigned: boolean }; dictionary: DataType };
  return { id: Number(t.id), width: t.indices.bitWidth / 8, signed: t.indices.isSigned, valueType: t.dictionary };
}

/** One dictionary's values: `count` entries, entry k at bytes [start(k), start(k+1)) of data. */
export interface DictionaryValues {
  count: number;
  /** Variable-length values: offsets (count + 1); fixed-width ones: undefined (width bytes each). */
  offsets?: Float64Array;
  width: number;
  data: Uint8Array;
  /** Per entry: 0 where the dictionary holds a null. */
  valid?: Uint8Array;
}

export interface DictionaryBlock {
  offset: number;
  metadataLength: number;
  bodyLength: number;
}

function corrupt(shard: string, file: string, why: string): GpufeedError {
  return new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${shard}: ${why}`, { shard, path: file });
}

function readAt(fd: number, length: number, position: number, shard: string, file: string): Uint8Array {
  const out = new Uint8Array(length);
  const got = readFully(fd, out, position);
  if (got < length) throw corrupt(shard, file, `file ends at ${position + got}, inside a dictionary batch`);
  return out;
}

/** The manifest must hold a checksum for every dictionary batch of a shard whose pieces are verified. */
function requireDictionaryChecksum(b: DictionaryBlock, checks: ReadonlyMap<number, number>, shard: string, file: string): void {
  if (!checks.has(b.offset)) {
    throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${shard}: the dictionary batch at byte ${b.offset} has no checksum in the manifest's layout.dictionaries, so its values cannot be verified; index the files again with this gpufeed (or pass --no-verify-pieces)`, { shard, path: file });
  }
}

/** Metadata + body against the manifest's checksum: GPUFEED_HASH_MISMATCH naming shard and dictionary. */
function checkDictionaryBatch(meta: Uint8Array, body: Uint8Array, b: DictionaryBlock, id: number, checks: ReadonlyMap<number, number>, shard: string, file: string): void {
  const want = checks.get(b.offset)!;
  const got = crc32(body, crc32(meta)) >>> 0;
  if (got !== want) {
    throw new GpufeedError(ErrorCodes.HASH_MISMATCH, `shard ${shard}: dictionary ${id} (the dictionary batch at byte ${b.offset}) checksums to ${formatChecksum(got)}, the manifest says ${formatChecksum(want)}; the shard is damaged (gpufeed verify checks the whole file)`, {
      shard, path: file, piece: `dictionary ${id}`,
    });
  }
}

/** Reads dictionary `id` from the file's dictionary blocks (one non-delta batch per id, checked at index time). */
export function readDictionary(fd: number, blocks: readonly DictionaryBlock[], index: DictionaryIndex, shard: string, file: string, checks?: ReadonlyMap<number, number>): DictionaryValues {
  for (const b of blocks) {
    const meta = readAt(fd, b.metadataLength, b.offset, shard, file);
    if (checks) requireDictionaryChecksum(b, checks, shard, file);
    const { id, isDelta, header } = dictionaryBatchHeader(meta, `shard ${shard}`);
    if (id !== index.id) continue;
    if (isDelta) throw new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `shard ${shard}: dictionary ${id} has delta batches, which gpufeed does not read in place; convert the files with \`gpufeed prep\``, { shard, path: file });
    const body = readAt(fd, b.bodyLength, b.offset + b.metadataLength, shard, file);
    if (checks) checkDictionaryBatch(meta, body, b, id, checks, shard, file);
    const buffers = header.compression
      ? decompressBodyBuffers(body, header, `shard ${shard}: dictionary ${id}`, { shard, path: file })
      : header.buffers.map((r) => {
        if (r.offset < 0 || r.offset + r.length > body.length) throw corrupt(shard, file, `dictionary ${id}: a buffer lies outside the body`);
        return body.subarray(r.offset, r.offset + r.length);
      });
    const node = header.nodes[0];
    if (!node) throw corrupt(shard, file, `dictionary ${id} has no field node`);
    const count = node.length;
    let valid: Uint8Array | undefined;
    if (node.nullCount > 0 && buffers[0] && buffers[0].length > 0) {
      valid = new Uint8Array(count);
      for (let k = 0; k < count; k++) valid[k] = (buffers[0][k >> 3]! >> (k & 7)) & 1;
    }
    const t = index.valueType;
    if (t.typeId === Type.Int || t.typeId === Type.Float) {
      const width = t.typeId === Type.Int ? (t as unknown as { bitWidth: number }).bitWidth / 8 : [2, 4, 8][(t as unknown as { precision: number }).precision]!;
      const data = buffers[1] ?? new Uint8Array(0);
      if (data.length < count * width) throw corrupt(shard, file, `dictionary ${id}: values buffer is too short for ${count} entries`);
      return { count, width, data, ...(valid ? { valid } : {}) };
    }
    const large = t.typeId === Type.LargeUtf8 || t.typeId === Type.LargeBinary;
    const ob = buffers[1] ?? new Uint8Array(0);
    const data = buffers[2] ?? new Uint8Array(0);
    const ow = large ? 8 : 4;
    if (ob.length < (count + 1) * ow) throw corrupt(shard, file, `dictionary ${id}: offsets are too short for ${count} entries`);
    const ov = new DataView(ob.buffer, ob.byteOffset, ob.byteLength);
    const offsets = new Float64Array(count + 1);
    for (let k = 0; k <= count; k++) {
      offsets[k] = large ? Number(ov.getBigInt64(k * 8, true)) : ov.getInt32(k * 4, true);
      if (offsets[k]! < (k > 0 ? offsets[k - 1]! : 0) || offsets[k]! > data.length) throw corrupt(shard, file, `dictionary ${id}: bad offsets`);
    }
    return { count, width: 1, offsets, data, ...(valid ? { valid } : {}) };
  }
  throw corrupt(shard, file, `no dictionary batch with id ${index.id}`);
}

/**
 * Writes `count` rows, whose indices start at src[srcStart], into the slot at row `slotRow`: each
 * row the dictionary entry its index names. Rows the slot already marks null (validity is written
 * first, in planning order) take no value. Returns the value bytes written.
 */
export function decodeDictionaryRows(index: DictionaryIndex, dict: DictionaryValues, src: Uint8Array, srcStart: number, count: number, target: SlotTarget, slotRow: number, shard: string): number {
  const region = target.region;
  const sv = new DataView(src.buffer, src.byteOffset + srcStart, count * index.width);
  const indexAt = (i: number): number => {
    switch (index.width) {
      case 1: return index.signed ? sv.getInt8(i) : sv.getUint8(i);
      case 2: return index.signed ? sv.getInt16(i * 2, true) : sv.getUint16(i * 2, true);
      case 4: return index.signed ? sv.getInt32(i * 4, true) : sv.getUint32(i * 4, true);
      default: return Number(index.signed ? sv.getBigInt64(i * 8, true) : sv.getBigUint64(i * 8, true));
    }
  };
  const hasValid = region.validOffset >= 0;
  const out = target.bytes;
  const slotOffsets = dict.offsets ? slotOffsetsOf(target) : undefined;
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const row = slotRow + i;
    let present = !hasValid || out[region.validOffset + row] === 1;
    let k = -1;
    if (present) {
      k = indexAt(i);
      if (k < 0 || k >= dict.count) throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${shard}: column ${region.name}: dictionary index ${k} is outside the dictionary's ${dict.count} entries`, { shard, column: region.name });
      if (dict.valid && !dict.valid[k]) {
        if (!hasValid) throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${shard}: column ${region.name}: a row names a null dictionary entry, but the column is not nullable`, { shard, column: region.name });
        out[region.validOffset + row] = 0;
        present = false;
      }
    }
    if (slotOffsets) {
      const len = present ? dict.offsets![k + 1]! - dict.offsets![k]! : 0;
      if (target.cursor + len > MAX_VAR_ELEMENTS) throw varColumnTooLong(region, shard);
      slotOffsets[row] = target.cursor;
      // Values that do not fit are only counted: the batch is decoded again into a one-off slot
      // of that size (oversize-batch.ts).
      if (len > 0 && target.cursor + len <= region.valuesBytes) out.set(dict.data.subarray(dict.offsets![k]!, dict.offsets![k]! + len), region.valuesOffset + target.cursor);
      target.cursor += len;
      slotOffsets[row + 1] = target.cursor;
      bytes += len;
    } else {
      const at = region.valuesOffset + row * dict.width;
      if (present) out.set(dict.data.subarray(k * dict.width, (k + 1) * dict.width), at);
      else out.fill(0, at, at + dict.width);
      bytes += dict.width;
    }
  }
  return bytes;
}

/** Dictionary `index.id` of the shard, read once per handle. */
export function shardDictionary(h: ArrowShardHandle, index: DictionaryIndex): DictionaryValues {
  let d = h.dictionaries.get(index.id);
  if (!d) {
    d = readDictionary(h.fd, h.dictionaryBlocks, index, h.ref.name, h.ref.file, h.dictionaryChecks);
    h.dictionaries.set(index.id, d);
  }
  return d;
}
