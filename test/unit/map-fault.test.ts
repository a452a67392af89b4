// A file truncated while it is mapped: copies from the mapping fail with GPUFEED_SHARD_CORRUPT
// instead of killing the process with SIGBUS, again and again, in the main thread and in a
// worker, and copies of the bytes still in the file keep working. The zeros the kernel shows past
// the new end in its last page are refused too. Faults the guard does not own still kill.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { ErrorCodes, GpufeedError } from '../../src/errors.js';
import { allocSlab, copyRunsFromMap, copyRunsFromMapIntoBuffer, freeSlab, MAP_RUN_FIELDS, mapFile, slabView, unmapFile } from '../../src/memory/index.js';
import { RunReads } from '../../src/formats/arrow/load-unit.js';
import type { ShardRef } from '../../src/pipeline/decode-messages.js';
import { ROOT } from '../fixtures/run-cli.js';

const FILE_BYTES = 1 << 20;
const CUT = 500_000; // not page-aligned: the page holding it is partly past the new end

function mappedThenTruncated(t: { after(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-fault-'));
  const file = join(dir, 'shard.arrow');
  const data = randomBytes(FILE_BYTES);
  writeFileSync(file, data);
  const m = mapFile(file);
  truncateSync(file, CUT);
  t.after(() => {
    unmapFile(m.mapId);
    rmSync(dir, { recursive: true, force: true });
  });
  return { file, data, mapId: m.mapId };
}

function runs(...r: [number, number, number][]): Float64Array {
  const out = new Float64Array(r.length * MAP_RUN_FIELDS);
  r.forEach((v, i) => out.set(v, i * MAP_RUN_FIELDS));
  return out;
}

function shardCorrupt(check: (e: GpufeedError) => void): (err: unknown) => true {
  return (err) => {
    assert.ok(err instanceof GpufeedError, String(err));
    assert.equal(err.code, ErrorCodes.SHARD_CORRUPT, err.message);
    check(err);
    return true;
  };
}

test('a copy from a page past the new end is SHARD_CORRUPT with the run and SIGBUS, every time, and copies inside the file still work', (t) => {
  const { data, mapId } = mappedThenTruncated(t);
  const prev = process.env.GPUFEED_PIN;
  process.env.GPUFEED_PIN = '0';
  const slab = allocSlab(1 << 20);
  if (prev === undefined) delete process.env.GPUFEED_PIN;
  else process.env.GPUFEED_PIN = prev;
  t.after(() => freeSlab(slab.id));
  const buf = new Uint8Array(1 << 16);
  for (let round = 0; round < 5; round++) {
    const bad = runs([0, 0, 4096], [800_000 + round * 4096, 8192, 8192]);
    const expect = shardCorrupt((e) => {
      assert.equal(e.details.signal, 'SIGBUS');
      assert.equal(e.details.run, 1, 'the second run faulted');
      assert.ok((e.details.fileOffset as number) >= 800_000 + round * 4096, String(e.details.fileOffset));
      assert.match(e.message, /truncated after it was mapped/);
    });
    assert.throws(() => copyRunsFromMap(mapId, bad, 2, slab.id), expect);
    assert.throws(() => copyRunsFromMapIntoBuffer(mapId, bad, 2, buf), expect);
    // The bytes still in the file copy right afterwards.
    const at = round * 1000;
    assert.equal(copyRunsFromMapIntoBuffer(mapId, runs([at, 0, 4096]), 1, buf), 4096);
    assert.deepEqual(buf.subarray(0, 4096), new Uint8Array(data.subarray(at, at + 4096)));
    assert.equal(copyRunsFromMap(mapId, runs([at, 100, 4096]), 1, slab.id), 4096);
    assert.deepEqual(new Uint8Array(slabView(slab.id), 100, 4096), new Uint8Array(data.subarray(at, at + 4096)));
  }
});

test('a copy that reads the zeros past the new end in its last page is refused too (no fault there)', (t) => {
  const { mapId } = mappedThenTruncated(t);
  const buf = new Uint8Array(8192);
  // [CUT - 100, CUT + 100) lies in one page: the kernel shows zeros past CUT instead of faulting.
  assert.throws(() => copyRunsFromMapIntoBuffer(mapId, runs([CUT - 100, 0, 200]), 1, buf), shardCorrupt((e) => {
    assert.equal(e.details.signal, undefined);
    assert.equal(e.details.fileOffset, CUT, 'the new size');
    assert.match(e.message, new RegExp(`shrank to ${CUT} bytes`));
  }));
  // Ending exactly at the new end is fine.
  assert.equal(copyRunsFromMapIntoBuffer(mapId, runs([CUT - 100, 0, 100]), 1, buf), 100);
});

test('a file cut inside the mapping\'s last page is caught too (no page after the runs to probe)', (t) => {
  const { file, mapId } = mappedThenTruncated(t);
  writeFileSync(file, randomBytes(FILE_BYTES)); // back to full size, new bytes: no fault anywhere now
  truncateSync(file, FILE_BYTES - 100);
  const buf = new Uint8Array(4096);
  assert.throws(() => copyRunsFromMapIntoBuffer(mapId, runs([FILE_BYTES - 1000, 0, 950]), 1, buf), shardCorrupt((e) => {
    assert.equal(e.details.fileOffset, FILE_BYTES - 100);
    assert.match(e.message, /shrank/);
  }));
  assert.equal(copyRunsFromMapIntoBuffer(mapId, runs([FILE_BYTES - 1000, 0, 900]), 1, buf), 900);
});

test('RunReads names the shard whose mapping faulted', (t) => {
  const { file, mapId } = mappedThenTruncated(t);
  const ref: ShardRef = { index: 7, name: 'shards/shard-00007.arrow', file, format: 'arrow', bytes: FILE_BYTES };
  const reads = new RunReads();
  reads.add(3, 0, 0, 1024, ref, mapId);
  reads.add(3, 900_000, 1024, 1024, ref, mapId);
  assert.throws(() => reads.readInto(new Uint8Array(4096)), shardCorrupt((e) => {
    assert.equal(e.details.shard, ref.name);
    assert.equal(e.details.path, file);
    assert.equal(e.details.signal, 'SIGBUS');
    assert.match(e.message, /^shard shards\/shard-00007\.arrow: SIGBUS reading byte \d+/);
  }));
});

test('a worker thread gets the same errors from a truncated mapping, and the process lives on', async (t) => {
  const { data, mapId } = mappedThenTruncated(t);
  const rounds = 4;
  const worker = new Worker(new URL('../fixtures/map-fault-worker.mjs', import.meta.url), { workerData: { mapId, rounds, badOffset: 700_000, goodLength: 4096 } });
  t.after(() => worker.terminate());
  const results = await new Promise<Array<Record<string, unknown>>>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`worker exited with ${code} before reporting`)));
  });
  assert.equal(results.length, rounds * 2);
  for (let i = 0; i < rounds; i++) {
    assert.deepEqual(results[2 * i], { ok: false, code: ErrorCodes.SHARD_CORRUPT, signal: 'SIGBUS', run: 1 });
    assert.deepEqual(results[2 * i + 1], { good: 4096, head: Array.from(data.subarray(0, 4)) });
  }
  // This thread's guard still works after the worker's faults.
  assert.throws(() => copyRunsFromMapIntoBuffer(mapId, runs([700_000, 0, 16]), 1, new Uint8Array(16)), shardCorrupt(() => {}));
});

test('faults the guard does not own still kill the process with their signal', () => {
  // In a child: map a file (which installs the guard), then receive SIGBUS / SIGSEGV from kill(2),
  // which no guarded copy caused: the default action (death by that signal) must still happen.
  for (const signal of ['SIGBUS', 'SIGSEGV'] as const) {
    const script = `
      import { mapFile } from './src/memory/index.ts';
      import { writeFileSync } from 'node:fs';
      const f = ${JSON.stringify(join(tmpdir(), `gpufeed-guard-child-${process.pid}.bin`))};
      writeFileSync(f, 'x'.repeat(10000));
      mapFile(f);
      process.kill(process.pid, '${signal}');
      setTimeout(() => { console.log('survived'); }, 2000);
    `;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.signal, signal, `child: status ${r.status}, stdout ${r.stdout}, stderr ${r.stderr}`);
    assert.doesNotMatch(r.stdout, /survived/);
  }
  rmSync(join(tmpdir(), `gpufeed-guard-child-${process.pid}.bin`), { force: true });
});
