// The I/O ceiling for Arrow shards: `threads` worker_threads read the shard files with
// fs.readSync in unit-sized chunks (one record batch at a time) into one buffer per thread. No
// decode, no batching, no shuffle: what pread alone delivers from a warm page cache.
import { closeSync, openSync, readSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

interface Job {
  /** Per thread: [file, offset, length] chunks to read, in order. */
  chunks: [string, number, number][];
  passes: number;
  start: Int32Array;
}

function readChunks(job: Job): number {
  const max = job.chunks.reduce((m, c) => Math.max(m, c[2]), 1);
  const buf = new Uint8Array(max);
  const fds = new Map<string, number>();
  let bytes = 0;
  try {
    for (let p = 0; p < job.passes; p++) {
      for (const [file, offset, length] of job.chunks) {
        let fd = fds.get(file);
        if (fd === undefined) fds.set(file, (fd = openSync(file, 'r')));
        let done = 0;
        while (done < length) {
          const n = readSync(fd, buf, done, length - done, offset + done);
          if (n === 0) break;
          done += n;
        }
        bytes += done;
      }
    }
  } finally {
    for (const fd of fds.values()) closeSync(fd);
  }
  return bytes;
}

if (!isMainThread && parentPort) {
  const job = workerData as Job;
  // Start together: wait for the main thread's signal.
  Atomics.wait(job.start, 0, 0);
  const bytes = readChunks(job);
  parentPort.postMessage({ bytes, end: performance.timeOrigin + performance.now() });
}

/**
 * Reads every chunk `passes` times over `threads` threads (chunks dealt round-robin). Returns
 * bytes/s from the start signal to the last thread's end.
 */
export async function preadCeiling(chunks: [string, number, number][], threads: number, passes: number): Promise<{ bytes: number; seconds: number; bytes_per_s: number }> {
  const start = new Int32Array(new SharedArrayBuffer(4));
  const per: [string, number, number][][] = Array.from({ length: threads }, () => []);
  chunks.forEach((c, i) => per[i % threads]!.push(c));
  const workers = per.map((c) => new Worker(new URL(import.meta.url), { workerData: { chunks: c, passes, start } satisfies Job }));
  const done = workers.map((w) => new Promise<{ bytes: number; end: number }>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  }));
  // Let the threads load and park on the start word.
  await new Promise((r) => setTimeout(r, 300));
  const t0 = performance.timeOrigin + performance.now();
  Atomics.store(start, 0, 1);
  Atomics.notify(start, 0);
  const results = await Promise.all(done);
  await Promise.all(workers.map((w) => w.terminate()));
  const bytes = results.reduce((a, r) => a + r.bytes, 0);
  const seconds = (Math.max(...results.map((r) => r.end)) - t0) / 1e3;
  return { bytes, seconds, bytes_per_s: bytes / seconds };
}
