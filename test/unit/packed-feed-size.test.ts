// How many documents a packed loader's feed batch asks for (packed-loader.ts, feedBatchDocuments).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FEED_BATCH_TOKENS, FEED_SLOT_BYTES, feedBatchDocuments } from '../../src/pipeline/packed-loader.js';

describe('feed batch documents', () => {
  const base = { batchSize: 8, meanDoc: 1000, docRegionBytes: 40_000 };
  it('raises a small step to FEED_BATCH_TOKENS of documents', () => {
    assert.equal(feedBatchDocuments({ ...base, stepTokens: 16_384 }), Math.ceil(FEED_BATCH_TOKENS / 1000));
    assert.equal(feedBatchDocuments({ ...base, stepTokens: 16_384, minTokens: 0 }), 17, 'minTokens 0: one step of documents');
  });
  it('keeps a large step whole', () => {
    assert.equal(feedBatchDocuments({ ...base, stepTokens: 4_000_000 }), 4000);
  });
  it('stays within FEED_SLOT_BYTES unless one step needs more', () => {
    assert.equal(feedBatchDocuments({ ...base, meanDoc: 10, docRegionBytes: 65_536, stepTokens: 160 }), Math.floor(FEED_SLOT_BYTES / 65_536));
    assert.equal(feedBatchDocuments({ ...base, meanDoc: 10, docRegionBytes: 65_536, stepTokens: 20_000 }), 2000);
  });
  it('at least batchSize, at most 2^16', () => {
    assert.equal(feedBatchDocuments({ ...base, meanDoc: 1e9, stepTokens: 1, minTokens: 0 }), 8);
    assert.equal(feedBatchDocuments({ ...base, meanDoc: 1, docRegionBytes: 4, stepTokens: 1e9 }), 1 << 16);
  });
});
