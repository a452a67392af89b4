// Helper for benchmarks/gpu/h2d.py: fills gpufeed batch slots with real batches (a loader over a
// demo dataset), prints each slot's slab (pid, fd, bytes, batch bytes) as one JSON line, and keeps
// them alive until stdin closes. Python maps /proc/<pid>/fd/<fd> and copies them to the GPU.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDemoDataset } from '../../src/dataset/index.js';
import { Loader } from '../../src/pipeline/loader.js';
import type { Batch } from '../../src/pipeline/batch.js';

const batchSize = Number(process.argv[2] ?? 64);
const dir = await mkdtemp(join(tmpdir(), 'gpufeed-h2d-'));
try {
  await makeDemoDataset(join(dir, 'd'), { rows: batchSize * 4, seqLen: 2048, format: 'arrow', vocab: 0x7fffffff });
  const loader = await Loader.open(join(dir, 'd'), { batchSize, columns: ['input_ids'], slots: 4, workers: 1 });
  const held: Batch[] = [];
  try {
    for await (const b of loader) {
      b.retain();
      held.push(b);
      if (held.length === 2) break;
    }
    const slabs = loader.ring.slots.filter((s) => held.some((b) => b.slabId === s.slab.id)).map((s) => ({ pid: process.pid, fd: s.slab.fd, bytes: s.slab.bytes, kind: s.slab.kind, batch_bytes: batchSize * 2048 * 4 }));
    process.stdout.write(`${JSON.stringify({ slabs })}\n`);
    // Stay alive (the mapping's owner) until the Python side closes our stdin.
    await new Promise<void>((resolve) => {
      process.stdin.on('end', resolve).on('close', resolve).resume();
    });
    for (const b of held) b.release();
  } finally {
    await loader.close();
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
