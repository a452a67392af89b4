// Measures what a loader delivers: samples/s and payload bytes/s into pinned batches, data-wait,
// peak RSS. Shared by `gpufeed bench` and the harnesses in benchmarks/.
import { performance } from 'node:perf_hooks';
import type { Loader } from './loader.js';
import type { PackedLoader } from './packed-loader.js';
import type { Batch } from './batch.js';
import type { LoaderStatsSnapshot } from './stats.js';

export interface ThroughputResult {
  /** Steady rate: samples after the first batch, over the time after the first batch. */
  samples_per_s: number;
  /** Batch payload bytes (the used part of each column region) delivered per second, steady. */
  bytes_per_s: number;
  /**
   * Whole-run rate: every sample over the time from `startedAt` (before Loader.open, when given)
   * to the last batch, start-up and first batch included: what a short epoch really gets.
   */
  whole_samples_per_s: number;
  whole_bytes_per_s: number;
  /** Seconds from `startedAt` to the first batch (open, pool start, first shard, first decode). */
  startup_seconds: number;
  batches: number;
  samples: number;
  bytes: number;
  seconds: number;
  peak_rss_bytes: number;
  /** Share of wall time (after the first batch) the consumer waited for data. */
  data_wait_fraction: number;
  /** The same share over the whole run from the first ask, the wait for the first batch included. */
  data_wait_fraction_with_startup: number;
  /**
   * Per-batch waits (ms) over every batch, the first included (from the first ask): median, 99th
   * percentile and largest. With a simulated consumer they show whether data-wait is a few
   * start-up stalls or a steady shortfall.
   */
  wait_ms: { p50: number; p99: number; max: number };
  /**
   * Whether a consumer step was simulated (consumerMs > 0). Without one, the consumer asks again
   * at once, so it waits for nearly every batch by construction and data-wait says nothing.
   */
  data_wait_measured: boolean;
  first_batch_seconds: number;
  /**
   * CPU seconds the whole process (consumer and decode threads) spent after the first batch, the
   * span of the steady rate: on a shared host, steady bytes per CPU second tells efficiency where
   * the wall clock cannot.
   */
  cpu_seconds: number;
  workers: number;
  batch_size: number;
  pinned: boolean;
  memory_kind: string;
  stage_seconds: { read: number; decode: number; shard_wait: number; data_wait: number };
}

export interface MeasureOptions {
  /** Stop after this many batches. */
  maxBatches?: number;
  /** Stop after this many seconds. */
  maxSeconds?: number;
  /** Simulated compute per batch (ms), to measure data-wait under a training-like consumer. */
  consumerMs?: number;
  /**
   * How the simulated compute spends its time: 'spin' keeps this thread busy (CPU-bound work),
   * 'sleep' blocks it without using a core, as a training loop waiting on the GPU does; 'async'
   * awaits a timer, as a loop awaiting GPU work does (the event loop keeps turning; several loaders
   * in one process then overlap like ranks in their own processes). Default spin.
   */
  consumerWait?: 'spin' | 'sleep' | 'async';
  /** performance.now() taken before Loader.open, so whole-run figures include opening. Default: the call. */
  startedAt?: number;
  onProgress?: (p: { batches: number; samples: number; bytes: number; seconds: number }) => void;
  /**
   * Told after every batch's consumer step, as the consumer asks for the next one (`now`), with
   * the running totals: delivered batches, samples, payload bytes and data-wait ms (after the
   * first batch). Must be cheap (a bench sampler compares `now` with its next sample time).
   */
  onBatch?: (now: number, batches: number, samples: number, bytes: number, waitMs: number) => void;
  /**
   * Asked after every batch (after onBatch) with the same totals: true stops the run there, as
   * maxBatches would (a warm-up that ends once the rate is steady). Must be cheap.
   */
  stopWhen?: (now: number, batches: number, samples: number) => boolean;
}

export function batchPayloadBytes(batch: Batch): number {
  let bytes = 0;
  for (const c of Object.values(batch.columns)) {
    if ('offsets' in c) bytes += c.offsets.byteLength + c.values.byteLength;
    else bytes += c.byteLength;
  }
  return bytes;
}

function spin(ms: number): void {
  // Busy-wait stands in for GPU work that keeps this thread occupied.
  const end = performance.now() + ms;
  while (performance.now() < end) { /* bounded by end */ }
}

const sleepWord = new Int32Array(new SharedArrayBuffer(4));
function sleep(ms: number): void {
  // Blocks the thread (no event loop turns), like a synchronous wait on the GPU; sub-ms precise.
  Atomics.wait(sleepWord, 0, 0, ms);
}

function quantiles(values: number[]): { p50: number; p99: number; max: number } {
  if (values.length === 0) return { p50: 0, p99: 0, max: 0 };
  const sorted = Float64Array.from(values).sort();
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1]! };
}

export async function measureLoader(loader: Loader | PackedLoader, options: MeasureOptions = {}): Promise<ThroughputResult> {
  const maxBatches = options.maxBatches ?? Number.POSITIVE_INFINITY;
  const maxSeconds = options.maxSeconds ?? Number.POSITIVE_INFINITY;
  let batches = 0;
  let samples = 0;
  let bytes = 0;
  let peakRss = process.memoryUsage.rss();
  let t0 = 0;
  let firstAt = 0;
  let waitMs = 0;
  /** Each batch's wait, the first included; bounded by the run (one number per batch). */
  const waits: number[] = [];
  let asked = performance.now();
  let cpu0 = process.cpuUsage();
  const start = performance.now();
  for await (const batch of loader) {
    const now = performance.now();
    if (batches === 0) {
      firstAt = now;
      t0 = now;
      cpu0 = process.cpuUsage();
    } else {
      waitMs += now - asked;
    }
    waits.push(now - asked);
    batches += 1;
    samples += batch.size;
    bytes += batchPayloadBytes(batch);
    if (options.consumerMs) {
      if (options.consumerWait === 'async') await new Promise((r) => setTimeout(r, options.consumerMs));
      else (options.consumerWait === 'sleep' ? sleep : spin)(options.consumerMs);
    }
    if ((batches & 15) === 0) {
      const rss = process.memoryUsage.rss();
      if (rss > peakRss) peakRss = rss;
      options.onProgress?.({ batches, samples, bytes, seconds: (performance.now() - start) / 1e3 });
    }
    asked = performance.now();
    options.onBatch?.(asked, batches, samples, bytes, waitMs);
    if (batches >= maxBatches || (asked - start) / 1e3 >= maxSeconds || options.stopWhen?.(asked, batches, samples)) break;
  }
  const end = performance.now();
  const cpu = process.cpuUsage(cpu0);
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
  // Rates count from the first batch: startup (pool spin-up, first shard) is reported separately.
  const steady = batches > 1 ? (end - t0) / 1e3 : (end - start) / 1e3;
  const steadySamples = batches > 1 ? samples * ((batches - 1) / batches) : samples;
  const steadyBytes = batches > 1 ? bytes * ((batches - 1) / batches) : bytes;
  const s: LoaderStatsSnapshot = loader.stats();
  const slab = loader.ring.slots[0]?.slab;
  const startedAt = Math.min(options.startedAt ?? start, start);
  const whole = (end - startedAt) / 1e3;
  const firstWaitMs = batches > 0 ? firstAt - start : end - start;
  return {
    samples_per_s: steady > 0 ? steadySamples / steady : 0,
    bytes_per_s: steady > 0 ? steadyBytes / steady : 0,
    whole_samples_per_s: whole > 0 ? samples / whole : 0,
    whole_bytes_per_s: whole > 0 ? bytes / whole : 0,
    startup_seconds: batches > 0 ? (firstAt - startedAt) / 1e3 : whole,
    batches,
    samples,
    bytes,
    seconds: (end - start) / 1e3,
    peak_rss_bytes: peakRss,
    data_wait_fraction: steady > 0 ? waitMs / 1e3 / steady : 0,
    data_wait_fraction_with_startup: end > start ? (waitMs + firstWaitMs) / (end - start) : 0,
    wait_ms: quantiles(waits),
    data_wait_measured: (options.consumerMs ?? 0) > 0,
    first_batch_seconds: (firstAt - start) / 1e3,
    cpu_seconds: (cpu.user + cpu.system) / 1e6,
    workers: loader.workers,
    batch_size: loader.order.batchSize,
    pinned: slab?.pinned ?? false,
    memory_kind: slab?.kind ?? 'none',
    stage_seconds: { read: s.readSeconds, decode: s.decodeSeconds, shard_wait: s.shardWaitSeconds, data_wait: waitMs / 1e3 },
  };
}
