// Loader counters: what was read and decoded, where the time went, and how long the consumer
// waited for data (data-wait), the figure that says whether the GPU starves.
import { performance } from 'node:perf_hooks';
import type { DecodeStats } from './decode-messages.js';
import type { ShardSourceStats } from './shard-source.js';
import { BucketCounts, type BucketSnapshot } from '../util/bucket-counts.js';

export interface LoaderStatsSnapshot {
  batches: number;
  rows: number;
  bytesRead: number;
  /** Seconds, summed over decode workers. */
  readSeconds: number;
  decodeSeconds: number;
  /** Seconds spent getting shards ready (downloads, cache) before decoding, summed over batches. */
  shardWaitSeconds: number;
  /** Seconds the consumer waited for the next batch, after the first one. */
  dataWaitSeconds: number;
  /** Seconds until the first batch was ready. */
  firstBatchSeconds: number;
  /** Seconds since the loader opened. */
  elapsedSeconds: number;
  released: number;
  /** Batches handed to the consumer, and the samples (rows) in them. */
  delivered: number;
  deliveredRows: number;
  /** Batches delivered in a one-off slot because their variable-length rows did not fit a slot (memory-budget.ts). */
  oneOffBatches: number;
  /** Rows replaced in the batches delivered, because their piece or shard was quarantined (onCorrupt 'skip'). */
  quarantinedSamples: number;
  /** Pieces and shards this loader found corrupt and quarantined (those a resume state listed are not counted). */
  quarantinedPieces: number;
  /** queued: batches decoded and waiting for the consumer; freeSlots: slots no worker or consumer holds. */
  /** Slots by state: decoded and waiting for the consumer, being decoded, free, held by the consumer. */
  queue: { queued: number; filling: number; freeSlots: number; held: number; slots: number };
  /** Downloads and cache hits, for remote datasets. */
  storage?: ShardSourceStats;
}

export class LoaderStats {
  #opened = performance.now();
  #batches = 0;
  #rows = 0;
  #bytes = 0;
  #readNs = 0;
  #decodeNs = 0;
  #shardWaitMs = 0;
  #waitMs = 0;
  #firstMs = -1;
  #delivered = 0;
  #deliveredRows = 0;
  /** The data-wait of each delivered batch after the first, in seconds (metrics read it). */
  readonly #waits = new BucketCounts();
  #released = 0;
  #oneOff = 0;
  #quarantinedSamples = 0;
  #quarantinedPieces = 0;

  /** Totals of every decode worker (their shared counters), replacing what was counted before. */
  setDecode(t: { batches: number; rows: number; bytesRead: number; readNs: number; decodeNs: number; shardWaitNs: number }): void {
    this.#batches = t.batches;
    this.#rows = t.rows;
    this.#bytes = t.bytesRead;
    this.#readNs = t.readNs;
    this.#decodeNs = t.decodeNs;
    this.#shardWaitMs = t.shardWaitNs / 1e6;
  }

  addDecode(s: DecodeStats, shardWaitMs: number): void {
    this.#batches += 1;
    this.#rows += s.rows;
    this.#bytes += s.bytesRead;
    this.#readNs += s.readNs;
    this.#decodeNs += s.decodeNs;
    this.#shardWaitMs += shardWaitMs;
  }

  waited(ms: number, rows: number): void {
    if (this.#delivered === 0) this.#firstMs = performance.now() - this.#opened;
    else {
      this.#waitMs += ms;
      this.#waits.observe(ms / 1e3);
    }
    this.#delivered += 1;
    this.#deliveredRows += rows;
  }

  waitHistogram(): BucketSnapshot {
    return this.#waits.snapshot();
  }

  released(): void {
    this.#released += 1;
  }

  setQuarantine(samples: number, pieces: number): void {
    this.#quarantinedSamples = samples;
    this.#quarantinedPieces = pieces;
  }

  oneOff(): void {
    this.#oneOff += 1;
  }

  snapshot(queue: LoaderStatsSnapshot['queue'], storage?: ShardSourceStats): LoaderStatsSnapshot {
    const s: LoaderStatsSnapshot = {
      batches: this.#batches,
      rows: this.#rows,
      bytesRead: this.#bytes,
      readSeconds: this.#readNs / 1e9,
      decodeSeconds: this.#decodeNs / 1e9,
      shardWaitSeconds: this.#shardWaitMs / 1e3,
      dataWaitSeconds: this.#waitMs / 1e3,
      firstBatchSeconds: this.#firstMs < 0 ? 0 : this.#firstMs / 1e3,
      elapsedSeconds: (performance.now() - this.#opened) / 1e3,
      released: this.#released,
      delivered: this.#delivered,
      deliveredRows: this.#deliveredRows,
      oneOffBatches: this.#oneOff,
      quarantinedSamples: this.#quarantinedSamples,
      quarantinedPieces: this.#quarantinedPieces,
      queue,
    };
    if (storage) s.storage = { ...storage };
    return s;
  }
}
