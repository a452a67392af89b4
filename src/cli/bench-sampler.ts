// Time series of a bench run for its report (bench-report.ts): the consumer's running totals and the
// loader's counters, taken at a bounded interval. Samples are cumulative, so dropping every other
// one when the cap is reached loses nothing but resolution: a rate over two merged intervals is
// exact. Sampling costs one comparison per batch; the counters are read at most once an interval.
import { performance } from 'node:perf_hooks';
import type { LoaderStatsSnapshot } from '../pipeline/stats.js';
import type { ShardSourceStats } from '../pipeline/shard-source.js';
import type { ThroughputResult } from '../pipeline/throughput.js';

/** Columns of cumulative figures, one entry per sample, oldest first. */
export interface BenchSeries {
  /** Interval between samples when the run ended (it doubles each time the cap is reached), ms. */
  intervalMs: number;
  /** Seconds since the loader was opened. */
  t: number[];
  /** Delivered to the consumer. */
  batches: number[];
  samples: number[];
  bytes: number[];
  /** Consumer's data-wait after the first batch, seconds. */
  dataWaitSeconds: number[];
  /** Decode workers' seconds, summed over workers. */
  readSeconds: number[];
  decodeSeconds: number[];
  shardWaitSeconds: number[];
  /** Gauge: batches decoded and waiting for the consumer. */
  queued: number[];
  rssBytes: number[];
  /** Remote datasets only: the shard source's counters (cache hits, downloads, their seconds). */
  storage?: { [K in keyof ShardSourceStats]: number[] };
}

/** What the sampler reads of loader.stats(). */
export type SampledStats = Pick<LoaderStatsSnapshot, 'readSeconds' | 'decodeSeconds' | 'shardWaitSeconds' | 'queue' | 'storage'>;

export interface BenchSamplerOptions {
  /** Default 100 ms. */
  intervalMs?: number;
  /** Samples kept at most (at least 4); default 600. */
  maxPoints?: number;
}

const COLUMNS = ['t', 'batches', 'samples', 'bytes', 'dataWaitSeconds', 'readSeconds', 'decodeSeconds', 'shardWaitSeconds', 'queued', 'rssBytes'] as const;
const STORAGE_KEYS = ['hits', 'downloads', 'bytesDownloaded', 'readyOnAcquire', 'waitedOnAcquire', 'fetches', 'fetchSeconds'] as const satisfies readonly (keyof ShardSourceStats)[];

export class BenchSampler {
  readonly #stats: () => SampledStats;
  readonly #startedAt: number;
  readonly #maxPoints: number;
  #intervalMs: number;
  #next = 0;
  #timer: NodeJS.Timeout | undefined;
  #batches = 0;
  #samples = 0;
  #bytes = 0;
  #waitMs = 0;
  /** When the consumer last asked for a batch (it waits from then until the next onBatch); -1 before the first. */
  #askedAt = -1;
  readonly #series: BenchSeries;

  /** `startedAt`: performance.now() before Loader.open, the report's time zero. */
  constructor(stats: () => SampledStats, startedAt: number, options: BenchSamplerOptions = {}) {
    this.#stats = stats;
    this.#startedAt = startedAt;
    this.#intervalMs = Math.max(10, options.intervalMs ?? 100);
    this.#maxPoints = Math.max(4, Math.floor(options.maxPoints ?? 600));
    this.#series = {
      intervalMs: this.#intervalMs, t: [], batches: [], samples: [], bytes: [], dataWaitSeconds: [],
      readSeconds: [], decodeSeconds: [], shardWaitSeconds: [], queued: [], rssBytes: [],
    };
  }

  /** Takes the first sample and starts the timer that samples while no batch arrives (a stall). */
  start(): void {
    this.#take(performance.now());
    // The timer turns only when the consumer awaits; onBatch covers runs whose batches are always ready.
    this.#timer = setInterval(() => this.#maybe(performance.now()), this.#intervalMs);
    this.#timer.unref();
  }

  /** For MeasureOptions.onBatch: the consumer's running totals as it asks for the next batch (`now`). */
  readonly onBatch = (now: number, batches: number, samples: number, bytes: number, waitMs: number): void => {
    this.#batches = batches;
    this.#samples = samples;
    this.#bytes = bytes;
    this.#waitMs = waitMs;
    this.#askedAt = now;
    if (now >= this.#next) this.#take(now);
  };

  /**
   * Stops sampling and ends the series with the run's own figures (so its last point is exactly
   * what `bench --json` reports) and `end`, the loader's counters taken when the run ended.
   */
  finish(result: ThroughputResult, end: SampledStats): BenchSeries {
    this.stop();
    const s = this.#series;
    let t = (performance.now() - this.#startedAt) / 1e3;
    // No sliver of a last interval (its rate would say little): the final figures replace a sample
    // taken less than half an interval before; they include it, so no total is lost.
    if (s.t.length > 1 && t - s.t.at(-1)! < this.#intervalMs / 2e3) {
      t = Math.max(t, s.t.at(-1)!);
      this.#popLast();
    }
    this.#push(t, {
      batches: result.batches, samples: result.samples, bytes: result.bytes, dataWaitSeconds: result.stage_seconds.data_wait,
      readSeconds: result.stage_seconds.read, decodeSeconds: result.stage_seconds.decode, shardWaitSeconds: result.stage_seconds.shard_wait,
    }, end);
    // A wait still under way when sampled may not count in the run's figure (the ask that found the
    // epoch over): the series never says more than the run's total.
    const total = result.stage_seconds.data_wait;
    s.dataWaitSeconds = s.dataWaitSeconds.map((w) => Math.min(w, total));
    s.intervalMs = this.#intervalMs;
    return s;
  }

  /** Stops the timer (also when the run failed: a closed loader is not to be read). */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #maybe(now: number): void {
    if (now >= this.#next) this.#take(now);
  }

  #take(now: number): void {
    const st = this.#stats();
    // A sample taken while the consumer waits counts the wait so far, so no interval shows more
    // than all of its time waited. (The bench's consumer step blocks this thread: no timer turns in it.)
    const waiting = this.#askedAt >= 0 ? Math.max(0, now - this.#askedAt) : 0;
    this.#push((now - this.#startedAt) / 1e3, {
      batches: this.#batches, samples: this.#samples, bytes: this.#bytes, dataWaitSeconds: (this.#waitMs + waiting) / 1e3,
      readSeconds: st.readSeconds, decodeSeconds: st.decodeSeconds, shardWaitSeconds: st.shardWaitSeconds,
    }, st);
    this.#next = now + this.#intervalMs;
  }

  #push(t: number, c: Pick<LoaderStatsSnapshot, 'readSeconds' | 'decodeSeconds' | 'shardWaitSeconds' | 'dataWaitSeconds'> & { batches: number; samples: number; bytes: number }, st: SampledStats): void {
    const s = this.#series;
    if (s.t.length >= this.#maxPoints) this.#decimate();
    s.t.push(t);
    s.batches.push(c.batches);
    s.samples.push(c.samples);
    s.bytes.push(c.bytes);
    s.dataWaitSeconds.push(c.dataWaitSeconds);
    s.readSeconds.push(c.readSeconds);
    s.decodeSeconds.push(c.decodeSeconds);
    s.shardWaitSeconds.push(c.shardWaitSeconds);
    s.queued.push(st.queue.queued);
    s.rssBytes.push(process.memoryUsage.rss());
    if (st.storage) {
      s.storage ??= Object.fromEntries(STORAGE_KEYS.map((k) => [k, []])) as unknown as NonNullable<BenchSeries['storage']>;
      for (const k of STORAGE_KEYS) s.storage[k].push(st.storage[k]);
    }
  }

  #popLast(): void {
    const s = this.#series;
    for (const k of COLUMNS) s[k].pop();
    if (s.storage) for (const k of STORAGE_KEYS) s.storage[k].pop();
  }

  /** Keeps every other sample (the first always) and doubles the interval: memory stays bounded on long runs. */
  #decimate(): void {
    const s = this.#series;
    const keep = (a: number[]): number[] => a.filter((_, i) => i % 2 === 0);
    for (const k of COLUMNS) s[k] = keep(s[k]);
    if (s.storage) for (const k of STORAGE_KEYS) s.storage[k] = keep(s.storage[k]);
    this.#intervalMs *= 2;
  }
}
