// Child process for the memory benchmark: runs the loader over a dataset and prints its own peak
// RSS (the kernel's high-water mark for the whole process, every thread included).
import { Loader } from '../src/pipeline/loader.js';
import { measureLoader } from '../src/pipeline/throughput.js';

const [dir, epochs, workers, batchSize, shuffleWindow] = process.argv.slice(2);
const loader = await Loader.open(dir!, {
  batchSize: Number(batchSize), workers: Number(workers), epochs: Number(epochs),
  shuffle: 'window', shuffleWindow: Number(shuffleWindow), columns: ['input_ids'],
});
try {
  const r = await measureLoader(loader, { maxSeconds: 60 });
  process.stdout.write(`${JSON.stringify({ peak_rss_bytes: process.resourceUsage().maxRSS * 1024, batches: r.batches, samples: r.samples, bytes_per_s: r.bytes_per_s })}\n`);
} finally {
  await loader.close();
}
