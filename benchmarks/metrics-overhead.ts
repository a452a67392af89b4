// Bench section "metrics": what the Prometheus metrics and the stall watch cost. The same local
// Arrow dataset is read by a loader without them (stallTimeout 0, no metricsPort) and by one with
// an endpoint scraped every 100 ms and the stall watch armed, alternately, best of each; the ratio
// of their steady rates should be ~1, since metrics are read at scrape time, never per batch.
import { join } from 'node:path';
import { Loader, type LoaderOptions } from '../src/pipeline/loader.js';
import { measureLoader, type ThroughputResult } from '../src/pipeline/throughput.js';
import { loadDataset, makeArrow, warm } from './datasets.js';

export interface MetricsOverhead {
  without: ThroughputResult;
  with: ThroughputResult;
  scrapes: number;
  ratio: number;
}

export async function metricsOverhead(root: string, opts: { rows: number; seconds: number; rounds: number; loader: Partial<LoaderOptions> & { batchSize: number } }): Promise<MetricsOverhead> {
  const dir = join(root, 'metrics-overhead');
  await makeArrow(dir, opts.rows, '8MiB');
  warm(dir, await loadDataset(dir));
  let scrapes = 0;
  const run = async (observed: boolean): Promise<ThroughputResult> => {
    const loader = await Loader.open(dir, { epochs: Infinity, ...opts.loader, ...(observed ? { metricsPort: 0, stallTimeout: 60 } : { stallTimeout: 0 }) });
    let stop = false;
    const scraper = observed
      ? (async () => {
          // Bounded by the measurement: at most seconds / 0.1 + 1 scrapes.
          for (let i = 0; !stop && i < opts.seconds * 10 + 1; i++) {
            await (await fetch(loader.metricsAddress()!)).text();
            scrapes += 1;
            await new Promise((r) => setTimeout(r, 100));
          }
        })()
      : Promise.resolve();
    try {
      return await measureLoader(loader, { maxSeconds: opts.seconds });
    } finally {
      stop = true;
      await scraper;
      await loader.close();
    }
  };
  let best: { without?: ThroughputResult; with?: ThroughputResult } = {};
  for (let r = 0; r < opts.rounds; r++) {
    const a = await run(false);
    if (!best.without || a.samples_per_s > best.without.samples_per_s) best = { ...best, without: a };
    const b = await run(true);
    if (!best.with || b.samples_per_s > best.with.samples_per_s) best = { ...best, with: b };
  }
  return { without: best.without!, with: best.with!, scrapes, ratio: best.with!.samples_per_s / best.without!.samples_per_s };
}
