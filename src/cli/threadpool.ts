// Imported first by the CLI entries: sizes libuv's thread pool before anything uses it. sharp's
// image work (transforms/) runs on that pool, shared by every decode thread of the process, and
// its default of 4 would cap image decoding at 4 images at a time whatever --workers says. libuv
// reads the variable once, when the pool first starts; a value the user set is kept.
import { availableParallelism } from 'node:os';

if (process.env.UV_THREADPOOL_SIZE === undefined) {
  const i = process.argv.indexOf('--workers');
  const asked = i >= 0 ? Number(process.argv[i + 1]) : NaN;
  const workers = Number.isInteger(asked) && asked > 0 ? asked : availableParallelism();
  process.env.UV_THREADPOOL_SIZE = String(Math.min(1024, Math.max(4, workers + 2)));
}
