// The I/O ceiling for Arrow shards: `threads` worker_threads read every record batch of the shard
// files with fs.readSync from a warm page cache. No decode, no batching, no shuffle.
//
// Two destinations (what a loader must do with the bytes decides which ceiling is fair):
// - 'ring' (the ceiling the bench compares against): the reads land in one shared destination as
//   large as gpufeed's batch ring (slots x slot bytes), in reads of one slot each, the threads
//   taking the slots in turn (thread t writes slots t, t + threads, ...). Every byte of the files is
//   read once per pass into the memory a batch would occupy, as a plain loader with the same ring
//   would, and no thread rereads into a buffer it just wrote.
// - 'hot' (the old ceiling, kept for comparison): each thread rereads a whole record batch (4 MiB
//   here) into its own one buffer, which then stays in the CPU's caches: it measures cache
//   bandwidth more than what landing every byte in batch memory costs.
import { closeSync, openSync, readSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

export type CeilingDestination = { kind: 'hot' } | { kind: 'ring'; ringBytes: number; slotBytes: number };

interface Job {
  /** Per thread: [file, offset, length] chunks to read, in order. */
  chunks: [string, number, number][];
  passes: number;
  start: Int32Array;
  thread: number;
  threads: number;
  destination: CeilingDestination;
  /** The ring, shared by every thread ('ring' only). */
  ring?: SharedArrayBuffer;
}

function readFull(fd: number, buf: Uint8Array, at: number, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, at + done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

function readChunks(job: Job): number {
  const d = job.destination;
  const hot = d.kind === 'hot';
  const max = job.chunks.reduce((m, c) => Math.max(m, c[2]), 1);
  const buf = hot ? new Uint8Array(max) : new Uint8Array(job.ring!);
  const slotBytes = hot ? max : d.slotBytes;
  const slots = hot ? 1 : Math.max(1, Math.floor(d.ringBytes / d.slotBytes));
  // This thread's slots: t, t + threads, ... (at least one, whatever the ring).
  const mine: number[] = [];
  for (let s = job.thread % slots; s < slots; s += job.threads) mine.push(s);
  let next = 0;
  const fds = new Map<string, number>();
  let bytes = 0;
  try {
    for (let p = 0; p < job.passes; p++) {
      for (const [file, offset, length] of job.chunks) {
        let fd = fds.get(file);
        if (fd === undefined) fds.set(file, (fd = openSync(file, 'r')));
        if (hot) {
          bytes += readFull(fd, buf, 0, length, offset);
          continue;
        }
        for (let done = 0; done < length;) {
          const n = Math.min(slotBytes, length - done);
          const slot = mine[next]!;
          next = next + 1 === mine.length ? 0 : next + 1;
          const got = readFull(fd, buf, slot * slotBytes, n, offset + done);
          bytes += got;
          if (got < n) break;
          done += n;
        }
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
 * Reads every chunk `passes` times over `threads` threads (chunks dealt round-robin) into
 * `destination`. Returns bytes/s from the start signal to the last thread's end, and the CPU
 * seconds the process spent meanwhile (all threads).
 */
export async function preadCeiling(chunks: [string, number, number][], threads: number, passes: number, destination: CeilingDestination = { kind: 'hot' }): Promise<{ bytes: number; seconds: number; bytes_per_s: number; cpu_seconds: number; destination: string }> {
  if (destination.kind === 'ring' && !(destination.slotBytes > 0 && destination.ringBytes >= destination.slotBytes)) {
    throw new Error(`pread ceiling: ring of ${destination.ringBytes} bytes cannot hold a slot of ${destination.slotBytes}`);
  }
  const start = new Int32Array(new SharedArrayBuffer(4));
  const ring = destination.kind === 'ring' ? new SharedArrayBuffer(destination.ringBytes) : undefined;
  const per: [string, number, number][][] = Array.from({ length: threads }, () => []);
  chunks.forEach((c, i) => per[i % threads]!.push(c));
  const workers = per.map((c, thread) => {
    const job: Job = { chunks: c, passes, start, thread, threads, destination };
    if (ring) job.ring = ring;
    return new Worker(new URL(import.meta.url), { workerData: job });
  });
  const done = workers.map((w) => new Promise<{ bytes: number; end: number }>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  }));
  // Let the threads load and park on the start word.
  await new Promise((r) => setTimeout(r, 300));
  const cpu0 = process.cpuUsage();
  const t0 = performance.timeOrigin + performance.now();
  Atomics.store(start, 0, 1);
  Atomics.notify(start, 0);
  const results = await Promise.all(done);
  const cpu = process.cpuUsage(cpu0);
  await Promise.all(workers.map((w) => w.terminate()));
  const bytes = results.reduce((a, r) => a + r.bytes, 0);
  const seconds = (Math.max(...results.map((r) => r.end)) - t0) / 1e3;
  const name = destination.kind === 'hot' ? 'one buffer per thread, reread' : `ring of ${destination.ringBytes} bytes, ${destination.slotBytes}-byte reads`;
  return { bytes, seconds, bytes_per_s: bytes / seconds, cpu_seconds: (cpu.user + cpu.system) / 1e6, destination: name };
}
