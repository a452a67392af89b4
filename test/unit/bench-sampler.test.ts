// The bench report's sampler: bounded in points however long the run, exact in totals after
// thinning (the series is cumulative), ending on the run's own figures; and the per-interval rates
// the report charts integrate back to those totals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { BenchSampler, type SampledStats } from '../../src/cli/bench-sampler.js';
import { benchCharts, meanPerEvent, ratePerSecond } from '../../src/cli/bench-report.js';
import type { ThroughputResult } from '../../src/pipeline/throughput.js';

/** Loader counters that grow with `work` (the test's clock of decode work), as a loader's would. */
function statsOf(work: { n: number }, remote: boolean): () => SampledStats {
  return () => {
    const n = work.n;
    const s: SampledStats = {
      readSeconds: n * 0.001, decodeSeconds: n * 0.002, shardWaitSeconds: n * 0.0005,
      queue: { queued: n % 3, filling: 0, freeSlots: 0, held: 0, slots: 4 },
    };
    if (remote) s.storage = { hits: n, downloads: Math.floor(n / 10), bytesDownloaded: Math.floor(n / 10) * 4096, readyOnAcquire: n, waitedOnAcquire: 1, fetches: Math.floor(n / 10), fetchSeconds: Math.floor(n / 10) * 0.02 };
    return s;
  };
}

function resultOf(batches: number, waitMs: number, work: { n: number }): ThroughputResult {
  return {
    samples_per_s: 0, bytes_per_s: 0, whole_samples_per_s: 0, whole_bytes_per_s: 0, startup_seconds: 0,
    batches, samples: batches * 8, bytes: batches * 256, seconds: 1, peak_rss_bytes: 0, data_wait_fraction: 0, data_wait_fraction_with_startup: 0,
    wait_ms: { p50: 0, p99: 0, max: 0 }, data_wait_measured: true, first_batch_seconds: 0, cpu_seconds: 0, workers: 1, batch_size: 8, pinned: false, memory_kind: 'none',
    stage_seconds: { read: work.n * 0.001, decode: work.n * 0.002, shard_wait: work.n * 0.0005, data_wait: waitMs / 1e3 },
  };
}

test('a long run keeps at most maxPoints samples, thinned evenly, and ends on the run\'s figures', () => {
  const work = { n: 0 };
  const t0 = performance.now();
  const sampler = new BenchSampler(statsOf(work, true), t0, { intervalMs: 100, maxPoints: 16 });
  // Batches 20 ms apart for 10,000 batches (200 s of clock given to onBatch; no timer needed).
  const BATCHES = 10_000;
  let waitMs = 0;
  for (let b = 1; b <= BATCHES; b++) {
    work.n = b;
    waitMs += 0.5;
    sampler.onBatch(t0 + 1e6 + b * 20, b, b * 8, b * 256, waitMs);
  }
  const s = sampler.finish(resultOf(BATCHES, waitMs, work), statsOf(work, true)());
  assert.ok(s.t.length <= 16 && s.t.length >= 8, `bounded and not emptied (${s.t.length})`);
  assert.ok(s.intervalMs > 100, `the interval grew (${s.intervalMs} ms)`);
  for (let i = 1; i < s.t.length; i++) {
    assert.ok(s.t[i]! > s.t[i - 1]!, `time increases at ${i}`);
    assert.ok(s.samples[i]! >= s.samples[i - 1]!, `samples never go back at ${i}`);
  }
  const last = s.t.length - 1;
  assert.equal(s.batches[last], BATCHES);
  assert.equal(s.samples[last], BATCHES * 8);
  assert.equal(s.bytes[last], BATCHES * 256);
  assert.equal(s.dataWaitSeconds[last], waitMs / 1e3);
  assert.equal(s.decodeSeconds[last], BATCHES * 0.002);
  for (const col of [s.batches, s.samples, s.queued, s.rssBytes, s.storage!.hits, s.storage!.fetchSeconds]) assert.equal(col.length, s.t.length);
  assert.equal(s.storage!.downloads[last], BATCHES / 10);

  // What the charts plot integrates back to the totals (the first sample is at zero work).
  const integral = (rate: (number | null)[]): number => rate.reduce<number>((sum, r, i) => sum + (r ?? 0) * (i > 0 ? s.t[i]! - s.t[i - 1]! : 0), 0);
  const charts = benchCharts(s);
  assert.deepEqual(charts.map((c) => c.id), ['throughput', 'data-wait', 'stages', 'cache', 'storage', 'memory']);
  const samplesRate = charts[0]!.series[0]!.values;
  assert.equal(samplesRate[0], null);
  assert.ok(Math.abs(integral(samplesRate) - (BATCHES * 8 - s.samples[0]!)) < 1e-6);
  const dl = meanPerEvent(s.storage!.fetches, s.storage!.fetchSeconds, 1e3);
  for (let i = 1; i < dl.length; i++) if (dl[i] !== null) assert.ok(Math.abs(dl[i]! - 20) < 1e-9, `each download took 20 ms (${dl[i]})`);
});

test('a local run has no cache or storage chart; rates are null where time did not move', () => {
  const work = { n: 0 };
  const t0 = performance.now();
  const sampler = new BenchSampler(statsOf(work, false), t0, { intervalMs: 100 });
  sampler.start();
  work.n = 1;
  sampler.onBatch(t0 + 1e6, 1, 8, 256, 0);
  const s = sampler.finish(resultOf(1, 0, work), statsOf(work, false)());
  assert.equal(s.storage, undefined);
  assert.deepEqual(benchCharts(s).map((c) => c.id), ['throughput', 'data-wait', 'stages', 'memory']);
  assert.deepEqual(ratePerSecond([0, 1, 1, 3], [0, 10, 10, 30]), [null, 10, null, 10]);
  assert.deepEqual(meanPerEvent([0, 2, 2, 3], [0, 1, 1, 4]), [null, 0.5, null, 3]);
});
