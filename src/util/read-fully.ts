// pread until a buffer is full or the file ends: the one loop behind every shard reader (a short
// read is not the end of a file; a read of 0 bytes is). Callers name the shard in their own error.
import { readSync } from 'node:fs';

/** Bytes read into `out` from file offset `position`: out.length unless the file ends first. */
export function readFully(fd: number, out: Uint8Array, position: number): number {
  let done = 0;
  while (done < out.length) {
    const n = readSync(fd, out, done, out.length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}
