// Child process for the memory benchmarks: runs the loader over a dataset and prints its own peak
// RSS (the kernel's high-water mark for the whole process, every thread included). Arguments:
// dir epochs workers batchSize shuffleWindow [columns: comma list or "all", default input_ids]
// [seconds, default 60].
import { Loader } from '../src/pipeline/loader.js';
import { measureLoader } from '../src/pipeline/throughput.js';

const [dir, epochs, workers, batchSize, shuffleWindow, columns, seconds] = process.argv.slice(2);
const loader = await Loader.open(dir!, {
  batchSize: Number(batchSize), workers: Number(workers), epochs: epochs === 'inf' ? Infinity : Number(epochs),
  shuffle: 'window', shuffleWindow: Number(shuffleWindow),
  ...(columns === 'all' ? {} : { columns: (columns ?? 'input_ids').split(',') }),
});
try {
  const r = await measureLoader(loader, { maxSeconds: Number(seconds ?? 60) });
  process.stdout.write(`${JSON.stringify({ peak_rss_bytes: process.resourceUsage().maxRSS * 1024, batches: r.batches, samples: r.samples, samples_per_s: r.samples_per_s, bytes_per_s: r.bytes_per_s })}\n`);
} finally {
  await loader.close();
}
