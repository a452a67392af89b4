// The loader's two read paths (read: 'mmap' | 'pread') deliver the same bytes, shuffled, with
// fixed-width, variable-length and nullable columns; mmap leaves no mapping or descriptor after close.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDemoDataset } from '../../src/dataset/demo.js';
import { Loader, type LoaderOptions } from '../../src/index.js';
import { fileMapStatus } from '../../src/memory/index.js';

/** Descriptors of this process open on files under `dir` (the runner's own files aside). */
function openUnder(dir: string): number {
  let n = 0;
  for (const f of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${f}`).startsWith(dir)) n += 1;
    } catch { /* closed meanwhile */ }
  }
  return n;
}

async function collect(dir: string, opts: LoaderOptions): Promise<string[]> {
  const loader = await Loader.open(dir, opts);
  const out: string[] = [];
  try {
    for await (const b of loader) {
      const cols = Object.entries(b.columns).map(([name, c]) => {
        const parts = 'offsets' in c ? [c.offsets, c.values] : [c];
        return `${name}:${parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength).toString('base64')).join('/')}`;
      });
      out.push(`${b.ids.join(',')}|${cols.join('|')}`);
    }
  } finally {
    await loader.close();
  }
  return out;
}

test('read mmap and read pread deliver the same batches, and mmap leaves nothing mapped or open', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-read-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await makeDemoDataset(dir, { rows: 300, seqLen: 16, format: 'arrow', shardSize: '4KiB', overwrite: true });
  const base = fileMapStatus();
  const opts: LoaderOptions = { batchSize: 7, workers: 2, shuffle: 'window', shuffleWindow: 64, seed: 3, epochs: 2, pin: false };
  const viaMap = await collect(dir, { ...opts, read: 'mmap' });
  const viaPread = await collect(dir, { ...opts, read: 'pread' });
  assert.equal(viaMap.length, Math.ceil(300 / 7) * 2);
  assert.deepEqual(viaMap, viaPread);
  assert.deepEqual(fileMapStatus(), base, 'every mapping released');
  assert.equal(openUnder(dir), 0, 'no shard file left open');
  await assert.rejects(Loader.open(dir, { ...opts, read: 'bogus' as 'mmap' }), /option read: must be mmap or pread/);
});
