import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_OPEN_SHARDS, MIN_OPEN_SHARDS, openShardBound } from '../../src/pipeline/open-shard-bound.js';

const shards = (n: number, rows: number, bytes: number) => Array.from({ length: n }, () => ({ rows, bytes }));

describe('openShardBound', () => {
  it('holds the shards a window shuffle keeps live, never fewer than the minimum', () => {
    // 2 x 4096 / 4096 + 3 = 5: the bench's Arrow dataset (4 full shards and a small one) stays open.
    assert.equal(openShardBound([...shards(4, 4096, 32 << 20), { rows: 48, bytes: 400_000 }], { shuffle: 'window', shuffleWindow: 4096 }), 5);
    assert.equal(openShardBound(shards(20, 1024, 8 << 20), { shuffle: 'window', shuffleWindow: 4096 }), 11);
    assert.equal(openShardBound(shards(100, 1024, 1 << 20), { shuffle: 'none', shuffleWindow: 65536 }), MIN_OPEN_SHARDS);
  });

  it('is capped by count, by bytes and by the dataset', () => {
    assert.equal(openShardBound(shards(1000, 100, 1 << 20), { shuffle: 'window', shuffleWindow: 65536 }), MAX_OPEN_SHARDS);
    assert.equal(openShardBound(shards(1000, 100, 1 << 20), { shuffle: 'naive', shuffleWindow: 65536 }), MAX_OPEN_SHARDS);
    // 256 MiB shards: 512 MiB open at most, so the minimum.
    assert.equal(openShardBound(shards(50, 1000, 256 << 20), { shuffle: 'window', shuffleWindow: 65536 }), MIN_OPEN_SHARDS);
    assert.equal(openShardBound(shards(2, 1000, 1 << 20), { shuffle: 'naive', shuffleWindow: 8 }), MIN_OPEN_SHARDS);
    assert.equal(openShardBound([], { shuffle: 'window', shuffleWindow: 8 }), MIN_OPEN_SHARDS);
  });
});
