// The header of an Arrow IPC dictionary batch message (id, delta flag, the record batch holding the
// values), for the index-time checks (file.ts) and the decode workers (dictionary-columns.ts).
import { Message, type RecordBatch as RecordBatchHeader } from 'apache-arrow/ipc/metadata/message';
import { ErrorCodes, GpufeedError } from '../../errors.js';

/** Decodes a dictionary batch message's metadata bytes (continuation prefix included). */
export function dictionaryBatchHeader(meta: Uint8Array, where: string): { id: number; isDelta: boolean; header: RecordBatchHeader } {
  const view = new DataView(meta.buffer, meta.byteOffset, meta.byteLength);
  let start = 4;
  let len = view.getInt32(0, true);
  if (len === -1) len = view.getInt32(4, true), start = 8;
  if (len <= 0 || start + len > meta.length) throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `${where}: dictionary batch metadata length is out of range`, { path: where });
  const message = Message.decode(meta.subarray(start, start + len));
  if (!message.isDictionaryBatch()) throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `${where}: a footer dictionary block does not point at a dictionary batch`, { path: where });
  const d = message.header();
  return { id: Number(d.id), isDelta: d.isDelta, header: d.data };
}
