// Decoders for Arrow IPC body compression (BodyCompression: LZ4_FRAME, ZSTD), as pyarrow writes
// Feather v2 by default. zstd comes from hyparquet-compressors (fzstd); LZ4 frames are parsed here
// over a block decoder written for them, since linked blocks (LZ4F's default) may reference the
// output of earlier blocks, which a one-block-at-a-time decoder cannot.
// registerArrowCodecs() puts both into apache-arrow's codec registry, so its readers (prep inputs)
// decompress too.
import { createRequire } from 'node:module';
import { compressionRegistry } from 'apache-arrow';
import type { compressors as Compressors } from 'hyparquet-compressors';

// hyparquet-compressors (every Parquet codec, with tables built at import) is loaded on the first
// zstd body, synchronously (require of an ES module, Node >= 20.19): most Arrow shards are
// uncompressed, and a decode worker's start-up is mostly module loading.
const require = createRequire(import.meta.url);
let zstd: NonNullable<typeof Compressors.ZSTD> | undefined;

/** Arrow's CompressionType (flatbuffer enum): LZ4_FRAME = 0, ZSTD = 1. */
export const ARROW_LZ4_FRAME = 0;
export const ARROW_ZSTD = 1;

export class CodecError extends Error {}

const LZ4_FRAME_MAGIC = 0x184d2204;
const LZ4_SKIPPABLE_MASK = 0xfffffff0;
const LZ4_SKIPPABLE_MAGIC = 0x184d2a50;

/** A byte array that grows by doubling, for output whose size the frame may not state. */
class Output {
  bytes: Uint8Array;
  length = 0;
  constructor(capacity: number) {
    this.bytes = new Uint8Array(Math.max(64, capacity));
  }
  reserve(extra: number): void {
    if (this.length + extra <= this.bytes.length) return;
    let cap = this.bytes.length * 2;
    while (cap < this.length + extra) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.bytes.subarray(0, this.length));
    this.bytes = next;
  }
}

/**
 * Decodes one raw LZ4 block (sequences of literals + matches) onto `out`. Matches may reach back
 * into what earlier blocks wrote (linked blocks), never before the frame's first byte.
 */
function lz4Block(src: Uint8Array, out: Output, blockMax: number): void {
  out.reserve(blockMax);
  let i = 0;
  while (i < src.length) {
    const token = src[i++]!;
    let literals = token >> 4;
    if (literals === 15) {
      let b: number;
      do {
        if (i >= src.length) throw new CodecError('lz4: literal length runs past the block');
        b = src[i++]!;
        literals += b;
      } while (b === 255);
    }
    if (i + literals > src.length) throw new CodecError('lz4: literals run past the block');
    out.reserve(literals);
    out.bytes.set(src.subarray(i, i + literals), out.length);
    out.length += literals;
    i += literals;
    if (i === src.length) return; // the last sequence has literals only
    if (i + 2 > src.length) throw new CodecError('lz4: match offset runs past the block');
    const offset = src[i]! | (src[i + 1]! << 8);
    i += 2;
    if (offset === 0 || offset > out.length) throw new CodecError(`lz4: match offset ${offset} is out of range`);
    let match = token & 15;
    if (match === 15) {
      let b: number;
      do {
        if (i >= src.length) throw new CodecError('lz4: match length runs past the block');
        b = src[i++]!;
        match += b;
      } while (b === 255);
    }
    match += 4;
    out.reserve(match);
    const bytes = out.bytes;
    let from = out.length - offset;
    let to = out.length;
    // Byte by byte: a match may overlap the bytes it is producing (offset < length).
    for (const end = to + match; to < end;) bytes[to++] = bytes[from++]!;
    out.length = to;
  }
}

/** Decodes a whole LZ4 frame stream (one or more frames, skippable frames ignored). */
export function decodeLz4Frame(src: Uint8Array, sizeHint = 0): Uint8Array {
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const out = new Output(sizeHint || src.length * 3);
  let i = 0;
  while (i < src.length) {
    if (i + 4 > src.length) throw new CodecError('lz4: truncated frame header');
    const magic = view.getUint32(i, true);
    if ((magic & LZ4_SKIPPABLE_MASK) === LZ4_SKIPPABLE_MAGIC) {
      if (i + 8 > src.length) throw new CodecError('lz4: truncated skippable frame');
      i += 8 + view.getUint32(i + 4, true);
      continue;
    }
    if (magic !== LZ4_FRAME_MAGIC) throw new CodecError(`lz4: not an LZ4 frame (magic 0x${magic.toString(16)})`);
    i += 4;
    if (i + 3 > src.length) throw new CodecError('lz4: truncated frame descriptor');
    const flg = src[i]!;
    const bd = src[i + 1]!;
    if (flg >> 6 !== 1) throw new CodecError(`lz4: frame version ${flg >> 6} is not 1`);
    const blockChecksum = (flg & 0x10) !== 0;
    const contentSize = (flg & 0x08) !== 0;
    const contentChecksum = (flg & 0x04) !== 0;
    const dictId = (flg & 0x01) !== 0;
    const blockMaxCode = (bd >> 4) & 7;
    if (blockMaxCode < 4) throw new CodecError(`lz4: block size code ${blockMaxCode} is invalid`);
    const blockMax = 1 << (8 + 2 * blockMaxCode);
    i += 2 + (contentSize ? 8 : 0) + (dictId ? 4 : 0) + 1; // FLG, BD, sizes, header checksum
    if (dictId) throw new CodecError('lz4: frames with a dictionary are not supported');
    for (;;) {
      if (i + 4 > src.length) throw new CodecError('lz4: truncated block header');
      const word = view.getUint32(i, true);
      i += 4;
      if (word === 0) break; // end mark
      const size = word & 0x7fffffff;
      if (i + size > src.length) throw new CodecError('lz4: block runs past the input');
      const block = src.subarray(i, i + size);
      if (word & 0x80000000) {
        out.reserve(size);
        out.bytes.set(block, out.length);
        out.length += size;
      } else {
        lz4Block(block, out, blockMax);
      }
      i += size + (blockChecksum ? 4 : 0);
    }
    if (contentChecksum) i += 4;
  }
  return out.bytes.subarray(0, out.length);
}

export function decodeZstd(src: Uint8Array): Uint8Array {
  try {
    zstd ??= (require('hyparquet-compressors') as { compressors: typeof Compressors }).compressors.ZSTD!;
    const out = zstd(src, 0);
    // Arrow views buffers as typed arrays: a result at an unaligned offset into a larger buffer is copied.
    return out.byteOffset % 8 === 0 ? out : out.slice();
  } catch (err) {
    throw new CodecError(`zstd: ${(err as Error).message}`);
  }
}

/** The decoder for an Arrow BodyCompression codec, undefined for one gpufeed does not know. */
export function arrowBodyDecoder(codec: number): ((src: Uint8Array, sizeHint?: number) => Uint8Array) | undefined {
  if (codec === ARROW_LZ4_FRAME) return decodeLz4Frame;
  if (codec === ARROW_ZSTD) return decodeZstd;
  return undefined;
}

let registered = false;

/** Lets apache-arrow's readers decompress LZ4 frame and zstd bodies. Idempotent. */
export function registerArrowCodecs(): void {
  if (registered) return;
  registered = true;
  compressionRegistry.set(ARROW_LZ4_FRAME as never, { decode: (b: Uint8Array) => decodeLz4Frame(b) });
  compressionRegistry.set(ARROW_ZSTD as never, { decode: (b: Uint8Array) => decodeZstd(b) });
}
