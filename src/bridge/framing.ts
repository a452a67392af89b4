// Newline-delimited framing over a byte stream. Lines are bounded: a peer that never sends a newline
// gets a protocol error instead of growing our buffer.
import { ErrorCodes, GpufeedError } from '../errors.js';

const NEWLINE = 0x0a;

export class LineSplitter {
  readonly maxLineBytes: number;
  #parts: Buffer[] = [];
  #partBytes = 0;

  constructor(maxLineBytes: number) {
    this.maxLineBytes = maxLineBytes;
  }

  /** Complete lines in `chunk` (with what came before it), without their newline; empty lines skipped. */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(NEWLINE, start);
      if (nl < 0) break;
      const piece = chunk.subarray(start, nl);
      const line = this.#partBytes > 0 ? Buffer.concat([...this.#parts, piece]) : piece;
      this.#parts = [];
      this.#partBytes = 0;
      this.#check(line.length);
      if (line.length > 0) lines.push(line.toString('utf8'));
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.#check(this.#partBytes + rest.length);
      // Copy: the caller may reuse the chunk's memory.
      this.#parts.push(Buffer.from(rest));
      this.#partBytes += rest.length;
    }
    return lines;
  }

  /** Bytes of an unterminated line, pending. */
  get pendingBytes(): number {
    return this.#partBytes;
  }

  #check(bytes: number): void {
    if (bytes > this.maxLineBytes) {
      throw new GpufeedError(ErrorCodes.PROTOCOL, `bridge protocol: a message is longer than ${this.maxLineBytes} bytes`, { limit: this.maxLineBytes });
    }
  }
}
