// A batch viewed as an Arrow RecordBatch: same values, and the column buffers are the slot's memory.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepDataset } from '../../src/dataset/index.js';
import { Loader, toArrowRecordBatch, isVarColumn } from '../../src/index.js';

describe('toArrowRecordBatch', () => {
  const root = mkdtempSync(join(tmpdir(), 'gpufeed-arrow-view-'));
  const ds = join(root, 'ds');
  const rows = Array.from({ length: 37 }, (_, i) => ({
    tokens: [i, i + 1, i + 2, i + 3, i + 4, i + 5],
    label: i * 2,
    flag: i % 2 === 0,
    text: i % 4 === 0 ? null : `t${i}`,
    tags: Array.from({ length: i % 3 }, (_, k) => k + i),
  }));
  before(async () => {
    const input = join(root, 'rows.jsonl');
    writeFileSync(input, rows.map((r) => JSON.stringify(r)).join('\n'));
    await prepDataset([input], { out: ds, shapes: { tokens: [2, 3] }, types: { tokens: 'int32', tags: 'int32' }, workers: 0, progress: false });
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('gives the batch values, sharing the slot memory', async () => {
    const loader = await Loader.open(ds, { batchSize: 8, workers: 1 });
    try {
      let seen = 0;
      for await (const batch of loader) {
        const rb = toArrowRecordBatch(batch);
        assert.equal(rb.numRows, batch.size);
        assert.deepEqual(rb.schema.fields.map((f) => f.name), ['tokens', 'label', 'flag', 'text', 'tags']);
        batch.ids.forEach((id, i) => {
          const row = rows[id]!;
          assert.deepEqual(Array.from(rb.getChild('tokens')!.get(i)!.toArray() as Int32Array), row.tokens);
          assert.equal(Number(rb.getChild('label')!.get(i)), row.label);
          assert.equal(rb.getChild('flag')!.get(i), row.flag ? 1 : 0);
          assert.equal(rb.getChild('text')!.get(i), row.text);
          assert.deepEqual(Array.from(rb.getChild('tags')!.get(i)!.toArray() as Int32Array), row.tags);
        });
        // No copy: the Arrow buffers are the batch's own typed arrays over the slot.
        const tokens = batch.columns.tokens!;
        assert.ok(!isVarColumn(tokens));
        const arrowTokens = rb.getChild('tokens')!.data[0]!.children[0]!.values as Int32Array;
        assert.equal(arrowTokens.buffer, tokens.buffer);
        assert.equal(arrowTokens.byteOffset, tokens.byteOffset);
        const text = batch.columns.text!;
        assert.ok(isVarColumn(text));
        assert.equal((rb.getChild('text')!.data[0]!.values as Uint8Array).buffer, text.values.buffer);
        seen += batch.size;
      }
      assert.equal(seen, rows.length);
    } finally {
      await loader.close();
    }
  });
});
