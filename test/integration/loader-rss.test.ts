// Flat memory over many epochs: a child process runs 36 short epochs of a small dataset and
// prints its RSS after each (benchmarks/rss-epochs-child.ts). Memory, not time, is asserted: after
// a warm-up (JIT-compiled code, heaps of the decode threads reaching their steady size) RSS must
// not keep growing with epochs. A leak of even 1 MiB per epoch would add ~20% here.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepDataset } from '../../src/dataset/index.js';
import { packageRoot } from '../../src/package-root.js';

const EPOCHS = 36;
const WARM_UP = 12;

interface EpochRss { epoch: number; rows: number; rss: number }

describe('Loader memory over epochs', () => {
  const root = mkdtempSync(join(tmpdir(), 'gpufeed-rss-'));
  const dir = join(root, 'ds');
  before(async () => {
    const input = join(root, 'rows.jsonl');
    writeFileSync(input, Array.from({ length: 2000 }, (_, i) => JSON.stringify({ tokens: Array.from({ length: 64 }, (_, k) => i + k), text: `t${i}`.repeat(i % 13) })).join('\n'));
    await prepDataset([input], { out: dir, format: 'arrow', shapes: { tokens: [64] }, shardSize: '48KiB', workers: 0, progress: false });
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it(`RSS after epoch ${WARM_UP} stays within 10% up to epoch ${EPOCHS}`, { timeout: 180_000 }, async () => {
    // The compiled child, as users run it (tsx would add its own compiler's memory).
    const child = join(packageRoot(), 'dist', 'benchmarks', 'rss-epochs-child.js');
    assert.ok(existsSync(child), `${child} exists (npx tsc -p tsconfig.json)`);
    const { stdout } = await promisify(execFile)(process.execPath, [child, dir, String(EPOCHS), '2', '32', 'window'], { timeout: 170_000 });
    const epochs = stdout.trim().split('\n').map((l) => JSON.parse(l) as EpochRss);
    assert.equal(epochs.length, EPOCHS);
    for (const e of epochs) assert.equal(e.rows, 2000, `epoch ${e.epoch} delivered every row`);
    const base = Math.max(...epochs.slice(WARM_UP - 2, WARM_UP + 1).map((e) => e.rss));
    const late = epochs.slice(WARM_UP + 1);
    const worst = late.reduce((a, e) => (e.rss > a.rss ? e : a));
    assert.ok(worst.rss <= base * 1.1, `RSS ${(worst.rss / 2 ** 20).toFixed(1)} MiB at epoch ${worst.epoch} is more than 10% over ${(base / 2 ** 20).toFixed(1)} MiB at epochs ${WARM_UP - 2}-${WARM_UP}`);
  });
});
