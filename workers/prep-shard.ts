// Piscina entry for `gpufeed prep`: encodes one shard. Thin by design; the logic is in src/dataset.
import { Piscina } from 'piscina';
import { serializeError } from '../src/errors.js';
import { encodeShard, type ShardJob } from '../src/dataset/encode-shard.js';

export default function prepShard(job: ShardJob): unknown {
  try {
    const result = encodeShard(job);
    // Hand the shard bytes back by transfer, not copy.
    return Piscina.move({
      [Piscina.transferableSymbol]: [result.bytes.buffer],
      [Piscina.valueSymbol]: result,
    } as never);
  } catch (err) {
    // Keep the code across the thread boundary (reviveError restores the class).
    throw Object.assign(new Error((err as Error).message), serializeError(err));
  }
}
