// runsVerified: the decode worker skips its per-run piece checks only when every run of the batch
// reads an Arrow record batch some worker has verified.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PIECE_HASHING, PIECE_UNCHECKED, PIECE_VERIFIED, runsVerified, type SharedPieceFlags } from '../../src/pipeline/piece-check.js';
import { RUN_FIELDS } from '../../src/pipeline/decode-messages.js';

/** Packed runs of [shard, unit] pairs; `parquet` marks a run with no record batch block (field 5 = -1). */
function runsOf(pairs: readonly [number, number][], parquet: readonly boolean[] = []): Float64Array {
  const out = new Float64Array(pairs.length * RUN_FIELDS);
  pairs.forEach(([shard, unit], i) => {
    out.set([shard, unit, 0, 1, i, parquet[i] ? -1 : 1024 * unit, 16, 4096], i * RUN_FIELDS);
  });
  return out;
}

describe('runsVerified', () => {
  // Two shards: shard 0 has 3 record batches (words 0-2), shard 1 has 2 (words 3-4).
  const flags = (states: number[]): SharedPieceFlags => ({ words: new Int32Array(states), bases: [0, 3] });

  it('is true only when every run reads a verified piece', () => {
    const runs = runsOf([[0, 2], [1, 0], [0, 2], [1, 1]]);
    assert.equal(runsVerified(runs, flags([PIECE_UNCHECKED, PIECE_UNCHECKED, PIECE_VERIFIED, PIECE_VERIFIED, PIECE_VERIFIED])), true);
    // One piece (shard 1, batch 1 = word 4) not verified yet, or being hashed: the per-run checks run.
    assert.equal(runsVerified(runs, flags([PIECE_VERIFIED, PIECE_VERIFIED, PIECE_VERIFIED, PIECE_VERIFIED, PIECE_UNCHECKED])), false);
    assert.equal(runsVerified(runs, flags([PIECE_VERIFIED, PIECE_VERIFIED, PIECE_VERIFIED, PIECE_VERIFIED, PIECE_HASHING])), false);
  });

  it('is false for a batch with a Parquet run, and true for no runs', () => {
    const all = flags([PIECE_VERIFIED, PIECE_VERIFIED, PIECE_VERIFIED, PIECE_VERIFIED, PIECE_VERIFIED]);
    assert.equal(runsVerified(runsOf([[0, 0], [1, 1]], [false, true]), all), false);
    assert.equal(runsVerified(new Float64Array(0), all), true);
  });
});
