// The loader's Prometheus metrics: one prom-client Registry per loader (never the global one), each
// metric read from the stages' own counters when it is collected (a scrape, or loader.metrics()),
// so nothing is counted twice and nothing runs on the batch path. Every series carries the labels
// rank, local_rank, world_size and dataset, so the ranks of a job compare in one dashboard.
import { statfs } from 'node:fs/promises';
import { Counter, Gauge, Registry } from 'prom-client';
import type { BucketSnapshot } from '../util/bucket-counts.js';
import type { LoaderStatsSnapshot } from '../pipeline/stats.js';
import { STAT_DECODE_NS, STAT_READ_NS, STAT_SHARD_WAIT_NS, STAT_BATCHES } from '../pipeline/control-block.js';
import type { LoaderProbe } from './probe.js';

/** Counters of the stall watch (stall.ts) that the metrics show. */
export interface StallCounters {
  stalls: number;
  /** 1 while the consumer has waited past stallTimeout for the batch it waits for now. */
  stalled: number;
}

type Labels = Record<string, string | number>;
interface HistogramSeries {
  labels: Labels;
  buckets: BucketSnapshot;
}

/** A histogram whose buckets are counted elsewhere (BucketCounts) and only read here. */
class CollectedHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  constructor(readonly name: string, readonly help: string, readonly series: () => HistogramSeries[]) {}

  get(): { name: string; help: string; type: string; aggregator: string; values: { metricName: string; labels: Labels; value: number }[] } {
    const values: { metricName: string; labels: Labels; value: number }[] = [];
    for (const { labels, buckets } of this.series()) {
      let cumulative = 0;
      buckets.bounds.forEach((le, i) => {
        cumulative += buckets.counts[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le }, value: cumulative });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: buckets.count });
      values.push({ metricName: `${this.name}_sum`, labels, value: buckets.sum });
      values.push({ metricName: `${this.name}_count`, labels, value: buckets.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {}
}

export function buildRegistry(probe: LoaderProbe, dataset: string, stall: () => StallCounters): Registry {
  const registry = new Registry();
  const w = probe.world;
  registry.setDefaultLabels({ rank: String(w.rank), local_rank: String(w.localRank), world_size: String(w.worldSize), dataset });
  const registers = [registry];
  // One snapshot of loader.stats() per scrape, shared by the metrics that read it: a scrape's
  // collect callbacks all start in one turn of the event loop, so the snapshot lives until the
  // next turn (a time-based cache served a scrape taken right after a run the figures of one before).
  let snap: LoaderStatsSnapshot | undefined;
  const stats = (): LoaderStatsSnapshot => {
    if (!snap) {
      snap = probe.stats();
      setImmediate(() => {
        snap = undefined;
      });
    }
    return snap;
  };

  const counter = (name: string, help: string, read: () => number): void => {
    new Counter({ name, help, registers, collect() { this.reset(); this.inc(Math.max(0, read())); } });
  };
  const gauge = (name: string, help: string, read: () => number | Promise<number>): void => {
    new Gauge({ name, help, registers, async collect() { this.set(await read()); } });
  };
  const labelled = (kind: 'counter' | 'gauge', name: string, help: string, labelNames: string[], read: () => { labels: Labels; value: number }[]): void => {
    const collect = function (this: Counter | Gauge): void {
      this.reset();
      for (const { labels, value } of read()) {
        if (this instanceof Counter) this.inc(labels, Math.max(0, value));
        else this.set(labels, value);
      }
    };
    if (kind === 'counter') new Counter({ name, help, labelNames, registers, collect });
    else new Gauge({ name, help, labelNames, registers, collect });
  };

  counter('gpufeed_batches_delivered_total', 'Batches handed to the consumer.', () => stats().delivered);
  counter('gpufeed_samples_delivered_total', 'Samples (rows) in the batches handed to the consumer.', () => stats().deliveredRows);
  counter('gpufeed_payload_bytes_total', 'Bytes of sample data the decode workers wrote into batches (stats().bytesRead).', () => stats().bytesRead);
  counter('gpufeed_batches_decoded_total', 'Batches the decode workers finished (some may wait for the consumer).', () => stats().batches);
  counter('gpufeed_data_wait_seconds_total', 'Seconds the consumer waited for its next batch, after the first batch.', () => stats().dataWaitSeconds);
  registry.registerMetric(new CollectedHistogram('gpufeed_data_wait_seconds', 'The consumer\'s wait for each batch after the first, in seconds.', () => [{ labels: {}, buckets: probe.waitHistogram() }]) as never);
  gauge('gpufeed_first_batch_seconds', 'Seconds from open to the first batch (0 until then).', () => stats().firstBatchSeconds);
  gauge('gpufeed_batches_ready_ahead', 'Batches decoded and waiting for the consumer.', () => stats().queue.queued);
  labelled('gauge', 'gpufeed_batch_slots', 'Batch slots by state: ready, filling, free, held (by the consumer).', ['state'], () => {
    const q = stats().queue;
    return [{ labels: { state: 'ready' }, value: q.queued }, { labels: { state: 'filling' }, value: q.filling }, { labels: { state: 'free' }, value: q.freeSlots }, { labels: { state: 'held' }, value: q.held }];
  });
  const perWorker = (field: number, scale: number) => () => probe.workerCounters().map((c, worker) => ({ labels: { worker: String(worker) }, value: c[field]! * scale }));
  labelled('counter', 'gpufeed_decode_seconds_total', 'Seconds each decode worker spent decoding.', ['worker'], perWorker(STAT_DECODE_NS, 1e-9));
  labelled('counter', 'gpufeed_read_seconds_total', 'Seconds each decode worker spent reading shard bytes.', ['worker'], perWorker(STAT_READ_NS, 1e-9));
  labelled('counter', 'gpufeed_shard_wait_seconds_total', 'Seconds each decode worker waited for its batch\'s shards (download, cache).', ['worker'], perWorker(STAT_SHARD_WAIT_NS, 1e-9));
  labelled('counter', 'gpufeed_worker_batches_total', 'Batches each decode worker decoded.', ['worker'], perWorker(STAT_BATCHES, 1));

  const cache = probe.cache;
  counter('gpufeed_cache_hits_total', 'Shards found complete in the node-local cache.', () => cache?.stats.hits ?? 0);
  counter('gpufeed_cache_misses_total', 'Shards this process downloaded into the cache.', () => cache?.stats.downloads ?? 0);
  counter('gpufeed_cache_evictions_total', 'Cache entries this process evicted to make room.', () => cache?.stats.evictions ?? 0);
  counter('gpufeed_cache_downloaded_bytes_total', 'Bytes this process downloaded into the cache.', () => cache?.stats.bytesDownloaded ?? 0);
  gauge('gpufeed_cache_bytes_in_use', 'Bytes the cache holds now (complete entries and downloads in progress, every process).', async () => (cache ? cache.usedBytes() : 0));
  gauge('gpufeed_cache_budget_bytes', 'The cache byte budget (cacheBytes).', () => cache?.options.cacheBytes ?? 0);
  gauge('gpufeed_cache_min_free_bytes', 'The free-disk floor the cache keeps (minFreeBytes).', () => cache?.options.minFreeBytes ?? 0);
  gauge('gpufeed_cache_disk_free_bytes', 'Bytes free on the cache\'s disk.', async () => {
    if (!cache) return 0;
    const fs = await statfs(cache.layout.root).catch(() => undefined);
    return fs ? fs.bavail * fs.bsize : 0;
  });

  const log = probe.requestLog;
  const store = probe.storeCounters;
  labelled('counter', 'gpufeed_storage_requests_total', 'Storage attempts by operation (GET, HEAD, LIST, ...) and outcome (ok, error, timeout, throttled, aborted).', ['operation', 'outcome'],
    () => (log?.counts() ?? []).map((c) => ({ labels: { operation: c.operation, outcome: c.outcome }, value: c.count })));
  registry.registerMetric(new CollectedHistogram('gpufeed_storage_request_duration_seconds', 'Duration of each storage attempt, by operation and outcome, in seconds.',
    () => (log?.counts() ?? []).map((c) => ({ labels: { operation: c.operation, outcome: c.outcome }, buckets: c.durations }))) as never);
  gauge('gpufeed_storage_requests_in_flight', 'Storage attempts running now.', () => log?.inFlight().length ?? 0);
  counter('gpufeed_storage_retries_total', 'Storage requests retried (after a failed attempt).', () => store?.().retries ?? 0);
  counter('gpufeed_storage_hedges_total', 'Hedged duplicate attempts sent for slow ranged reads.', () => store?.().hedges ?? 0);
  counter('gpufeed_storage_throttles_total', 'Slow-down answers (503 SlowDown, 429) from the store.', () => store?.().slowDowns ?? 0);
  counter('gpufeed_storage_received_bytes_total', 'Response body bytes received from the store, retries and hedges included.', () => store?.().bytesReceived ?? 0);

  counter('gpufeed_quarantined_samples_total', 'Samples replaced in their batches because they could not be read (onCorrupt: skip).', () => stats().quarantinedSamples);
  counter('gpufeed_stalls_total', 'GPUFEED_STALL reports: waits for one batch past stallTimeout (each further interval counts again).', () => stall().stalls);
  gauge('gpufeed_stalled', '1 while the consumer has waited past stallTimeout for the batch it waits for now.', () => stall().stalled);
  return registry;
}

/** The metrics as one flat object: `name` or `name{label="v",...}` (the labels beyond the common four) -> value. */
export async function metricsDict(registry: Registry): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const common = new Set(['rank', 'local_rank', 'world_size', 'dataset']);
  for (const m of await registry.getMetricsAsJSON()) {
    for (const v of m.values) {
      const labels = Object.entries(v.labels ?? {}).filter(([k]) => !common.has(k));
      const name = (v as { metricName?: string }).metricName ?? m.name;
      out[labels.length ? `${name}{${labels.map(([k, x]) => `${k}="${String(x)}"`).join(',')}}` : name] = v.value;
    }
  }
  return out;
}
