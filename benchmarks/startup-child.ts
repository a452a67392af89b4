// One fresh process's start-up for benchmarks/startup.ts: opens a loader over `dir` and takes its
// first batch. Prints one JSON line: seconds from the start of Loader.open to open's return and to
// the first batch, and how long importing the package took before that (not counted in either).
// With GPUFEED_TRACE_STARTUP=1 the loader and its workers also write their phases to stderr.
// Arguments: dir workers batchSize shuffle(none|window|naive) [columns: comma list or "all"].
import { performance } from 'node:perf_hooks';

const t0 = performance.now();
const { Loader } = await import('../src/pipeline/loader.js');
const imported = performance.now();
const [dir, workers, batchSize, shuffle, columns] = process.argv.slice(2);
const open0 = performance.now();
const cpu0 = process.cpuUsage();
const loader = await Loader.open(dir!, {
  batchSize: Number(batchSize), workers: Number(workers), epochs: 1, shuffle: shuffle as 'none' | 'window' | 'naive',
  ...(columns === undefined || columns === 'all' ? {} : { columns: columns.split(',') }),
});
const opened = performance.now();
let first = NaN;
let rows = 0;
let cpu = NaN;
try {
  for await (const batch of loader) {
    first = performance.now();
    const c = process.cpuUsage(cpu0);
    cpu = (c.user + c.system) / 1e6;
    rows = batch.ids.length;
    break;
  }
} finally {
  await loader.close();
}
process.stdout.write(`${JSON.stringify({ import_s: (imported - t0) / 1e3, open_s: (opened - open0) / 1e3, first_batch_s: (first - open0) / 1e3, cpu_s: cpu, rows })}\n`);
