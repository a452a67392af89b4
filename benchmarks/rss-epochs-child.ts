// Child process for the flat-memory check: runs many short epochs over a small dataset and prints
// one JSON line per epoch with this process's RSS (anon / file / shmem) and the main thread's heap,
// so growth per epoch shows (test/integration/loader-rss.test.ts asserts it stays flat; `npm run
// bench` reports max / epoch 2 over 100 epochs). With --expose-gc the main thread is collected
// before each line, so heapUsed is live data only. Args: dir epochs workers batchSize [shuffle]
// [read] [window].
import { readFileSync } from 'node:fs';
import { Loader } from '../src/pipeline/loader.js';

/** RssAnon / RssFile / RssShmem of /proc/self/status in bytes (Linux), to tell heap from mapped files and slabs. */
function rssParts(): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    for (const m of readFileSync('/proc/self/status', 'utf8').matchAll(/^(RssAnon|RssFile|RssShmem):\s+(\d+) kB/gm)) out[m[1]!] = Number(m[2]) * 1024;
  } catch {
    // Not Linux: rss alone.
  }
  return out;
}

const [dir, epochs, workers, batchSize, shuffle, read, window] = process.argv.slice(2);
const loader = await Loader.open(dir!, {
  batchSize: Number(batchSize), workers: Number(workers), epochs: Number(epochs), shuffle: (shuffle ?? 'window') as 'window', shuffleWindow: Number(window ?? 256), seed: 1, ...(read ? { read: read as 'mmap' } : {}),
});
const gc = (globalThis as { gc?: () => void }).gc;
try {
  let epoch = 0;
  let rows = 0;
  const report = (): void => {
    gc?.();
    const m = process.memoryUsage();
    process.stdout.write(`${JSON.stringify({ epoch, rows, rss: m.rss, ...rssParts(), heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers })}\n`);
  };
  for await (const b of loader) {
    if (b.epoch !== epoch) {
      report();
      epoch = b.epoch;
      rows = 0;
    }
    rows += b.size;
  }
  report();
} finally {
  await loader.close();
}
