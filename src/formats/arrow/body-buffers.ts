// The buffers of a compressed Arrow IPC body (BodyCompression LZ4_FRAME or ZSTD): each one an
// int64 uncompressed length, then the codec's bytes (-1: stored raw). Shared by record batches
// (compressed-batch.ts) and dictionary batches (dictionary-columns.ts).
import type { RecordBatch as RecordBatchHeader } from 'apache-arrow/ipc/metadata/message';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import { arrowBodyDecoder, CodecError } from './codecs.js';

/** Each buffer of a compressed body (record batch or dictionary batch), decompressed; `where` names the batch in errors, `details` go with them. */
export function decompressBodyBuffers(body: Uint8Array, header: RecordBatchHeader, where: string, details: Record<string, unknown> = {}): Uint8Array[] {
  const codec = header.compression!.type as number;
  const decode = arrowBodyDecoder(codec);
  const bad = (why: string) => new GpufeedError(ErrorCodes.SHARD_CORRUPT, `${where}: ${why}`, details);
  if (!decode) throw new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `${where} uses Arrow compression codec ${codec}, which gpufeed does not know (it reads LZ4_FRAME and ZSTD)`, details);
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  return header.buffers.map((b, i) => {
    if (b.length === 0) return new Uint8Array(0);
    if (b.offset < 0 || b.offset + b.length > body.length || b.length < 8) throw bad(`buffer ${i} lies outside the body`);
    const raw = view.getBigInt64(b.offset, true);
    const src = body.subarray(b.offset + 8, b.offset + b.length);
    if (raw === -1n) return src;
    let out: Uint8Array;
    try {
      out = decode(src, Number(raw));
    } catch (err) {
      const why = err instanceof CodecError ? err.message : String(err);
      throw bad(`buffer ${i} does not decompress (${why})`);
    }
    if (out.length !== Number(raw)) throw bad(`buffer ${i} decompresses to ${out.length} bytes, its header says ${raw}`);
    return out;
  });
}
