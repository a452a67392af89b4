// Where prep's shards get encoded: a piscina pool of worker threads (workers/prep-shard.ts, run
// compiled from dist/), or the main thread when workers is 0.
import { existsSync } from 'node:fs';
import { Piscina } from 'piscina';
import { reviveError } from '../errors.js';
import { workerEntry } from '../package-root.js';
import { encodeShard, type EncodedShardResult, type ShardJob } from './encode-shard.js';
import { transferablesOf } from '../formats/column-data.js';

export interface ShardEncoder {
  /** How many jobs may usefully run at once. */
  readonly concurrency: number;
  encode(job: ShardJob): Promise<EncodedShardResult>;
  close(): Promise<void>;
}

export class InlineShardEncoder implements ShardEncoder {
  readonly concurrency = 1;
  async encode(job: ShardJob): Promise<EncodedShardResult> {
    return encodeShard(job);
  }
  async close(): Promise<void> {}
}

export class PoolShardEncoder implements ShardEncoder {
  private readonly pool: Piscina;
  constructor(readonly concurrency: number, filename = workerEntry('prep-shard')) {
    this.pool = new Piscina({ filename, minThreads: 1, maxThreads: concurrency, idleTimeout: 1000 });
  }
  async encode(job: ShardJob): Promise<EncodedShardResult> {
    try {
      return (await this.pool.run(job, { transferList: transferablesOf(job.shard) })) as EncodedShardResult;
    } catch (err) {
      throw reviveError(err);
    }
  }
  async close(): Promise<void> {
    await this.pool.destroy();
  }
}

/**
 * A pool of `workers` threads, or the main thread for 0. When the compiled worker is missing
 * (running from source without `npm run build`), it encodes on the main thread and says so.
 */
export function createShardEncoder(workers: number, warn: (msg: string) => void = (m) => process.stderr.write(`gpufeed: ${m}\n`)): ShardEncoder {
  if (workers <= 0) return new InlineShardEncoder();
  const entry = workerEntry('prep-shard');
  if (!existsSync(entry)) {
    warn(`${entry} is missing (run \`npm run build\`); encoding shards on the main thread`);
    return new InlineShardEncoder();
  }
  return new PoolShardEncoder(workers, entry);
}
