// Arrow IPC *stream* files (what `pa.ipc.new_stream` and Hugging Face `datasets` write): no footer,
// just messages back to back: the schema, optional dictionary batches, record batches, an optional
// end-of-stream marker. Walking the message prefixes once gives the same per-batch layout (offset,
// metadataLength, bodyLength) the file format's footer holds, so later reads stay ranged.
import type { Schema } from 'apache-arrow';
import { Message } from 'apache-arrow/ipc/metadata/message';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import { checkBatchInPlace } from './file.js';
import type { RangeReader } from '../range-reader.js';
import type { ArrowBatchLayout, ArrowLayout } from '../../dataset/types.js';

export interface ArrowStreamLayout {
  layout: ArrowLayout;
  rows: number;
  schema: Schema;
}

/** Bytes read at each message start: the prefix and, almost always, the whole metadata. */
const MESSAGE_PROBE_BYTES = 4096;
/** Far beyond any real schema or batch header; guards against a damaged length. */
const MAX_METADATA_BYTES = 64 << 20;

/** True when `head` (the file's first bytes) starts the IPC *file* format rather than a stream. */
export function isArrowFileFormat(head: Uint8Array): boolean {
  return head.length >= 6 && new TextDecoder().decode(head.subarray(0, 6)) === 'ARROW1';
}

function corrupt(where: string, why: string): GpufeedError {
  return new GpufeedError(ErrorCodes.SHARD_CORRUPT, `${where}: not a readable Arrow IPC stream: ${why}`, { path: where });
}

interface MessagePrefix {
  /** 8 (continuation marker + length) or 4 (pre-0.15 streams: length only). */
  prefix: number;
  /** Flatbuffer bytes after the prefix; 0 is the end-of-stream marker. */
  length: number;
}

function readPrefix(bytes: Uint8Array, at: number, where: string): MessagePrefix {
  if (bytes.length < 4) throw corrupt(where, `message at byte ${at} is truncated`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let prefix = 4;
  let length = view.getInt32(0, true);
  if (length === -1) {
    if (bytes.length < 8) throw corrupt(where, `message at byte ${at} is truncated`);
    prefix = 8;
    length = view.getInt32(4, true);
  }
  if (length < 0 || length > MAX_METADATA_BYTES) throw corrupt(where, `message at byte ${at} has metadata length ${length}`);
  return { prefix, length };
}

function decodeMessage(bytes: Uint8Array, at: number, where: string): Message {
  try {
    return Message.decode(bytes);
  } catch (err) {
    throw corrupt(where, `message at byte ${at} does not decode (${(err as Error).message})`);
  }
}

/** The stream's schema, from its first message; `read` is a synchronous ranged read. */
export function arrowStreamSchema(read: (offset: number, length: number) => Uint8Array, fileSize: number, where: string): Schema {
  const probe = read(0, Math.min(fileSize, MESSAGE_PROBE_BYTES));
  if (isArrowFileFormat(probe)) throw corrupt(where, 'starts as an Arrow IPC file but has no ARROW1 trailer (truncated?)');
  const { prefix, length } = readPrefix(probe, 0, where);
  if (length === 0) throw corrupt(where, 'ends before its schema message');
  if (prefix + length > fileSize) throw corrupt(where, `schema message runs past the file's ${fileSize} bytes`);
  const meta = prefix + length <= probe.length ? probe.subarray(prefix, prefix + length) : read(prefix, length);
  const message = decodeMessage(meta, 0, where);
  if (!message.isSchema()) throw corrupt(where, 'the first message is not a schema');
  return message.header();
}

/**
 * Layout of a stream file through ranged reads: one read per message (its prefix and metadata),
 * bodies skipped. Dictionary batches are refused as in the file format: the decode path reads
 * plain columns in place.
 */
export async function readArrowStreamLayout(read: RangeReader, fileSize: number, where: string): Promise<ArrowStreamLayout> {
  let schema: Schema | undefined;
  const batches: ArrowBatchLayout[] = [];
  let at = 0;
  // Every message is at least 8 bytes, so this bounds the walk whatever the file holds.
  for (let n = 0; at < fileSize && n <= fileSize / 8 + 1; n++) {
    const probe = await read(at, Math.min(fileSize - at, MESSAGE_PROBE_BYTES));
    const { prefix, length } = readPrefix(probe, at, where);
    if (length === 0) break; // end-of-stream marker
    if (at + prefix + length > fileSize) throw corrupt(where, `message at byte ${at} runs past the file's ${fileSize} bytes`);
    const meta = prefix + length <= probe.length ? probe.subarray(prefix, prefix + length) : await read(at + prefix, length);
    const message = decodeMessage(meta, at, where);
    const bodyLength = Number(message.bodyLength);
    const end = at + prefix + length + bodyLength;
    if (!Number.isSafeInteger(bodyLength) || bodyLength < 0 || end > fileSize) throw corrupt(where, `message at byte ${at} has a body of ${bodyLength} bytes past the file's end`);
    if (!schema) {
      if (!message.isSchema()) throw corrupt(where, 'the first message is not a schema');
      schema = message.header();
    } else if (message.isDictionaryBatch()) {
      throw new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `${where}: dictionary-encoded Arrow streams are not supported; write plain Utf8/Binary columns`, { path: where });
    } else if (message.isRecordBatch()) {
      const header = message.header();
      checkBatchInPlace(header, schema, batches.reduce((a, b) => a + b.rows, 0), where);
      batches.push({ offset: at, metadataLength: prefix + length, bodyLength, rows: header.length });
    } else {
      throw corrupt(where, `message at byte ${at} is a second schema`);
    }
    at = end;
  }
  if (!schema) throw corrupt(where, 'holds no schema message');
  const rows = batches.reduce((a, b) => a + b.rows, 0);
  return { layout: { kind: 'arrow', batches }, rows, schema };
}
