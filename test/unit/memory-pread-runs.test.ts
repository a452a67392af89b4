// preadRuns: many reads into one slab (or buffer) in one native call. Right bytes for many runs,
// a short read at end of file reported by count (and as SHARD_CORRUPT naming the shard by the
// pipeline's RunReads), bad run arrays rejected before anything is read.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ErrorCodes, GpufeedError } from '../../src/errors.js';
import { allocSlab, freeSlab, PREAD_RUN_FIELDS, preadRunsIntoBuffer, preadRunsIntoSlab, shortRun, slabView } from '../../src/memory/index.js';
import { RunReads } from '../../src/formats/arrow/load-unit.js';
import type { ShardRef } from '../../src/pipeline/decode-messages.js';
import { invalidOptionNaming } from '../helpers/expect-error.js';

function setup(t: { after(fn: () => unknown): void }, fileBytes = 1 << 20) {
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-runs-'));
  const file = join(dir, 'data.bin');
  const data = randomBytes(fileBytes);
  writeFileSync(file, data);
  const fd = openSync(file, 'r');
  const prev = process.env.GPUFEED_PIN;
  process.env.GPUFEED_PIN = '0';
  const slab = allocSlab(1 << 20);
  if (prev === undefined) delete process.env.GPUFEED_PIN;
  else process.env.GPUFEED_PIN = prev;
  t.after(() => {
    closeSync(fd);
    freeSlab(slab.id);
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, file, data, fd, slab };
}

const invalid = invalidOptionNaming;

test('preadRuns reads many runs into a slab and into a buffer, each where it was asked', (t) => {
  const { data, fd, slab } = setup(t);
  // 100 runs of 1..8 KB from random file positions into disjoint, shuffled slab places.
  const n = 100;
  const runs = new Float64Array((n + 3) * PREAD_RUN_FIELDS).fill(-1); // spare room past count is ignored
  const places = Array.from({ length: n }, (_, i) => i).sort(() => Math.random() - 0.5);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const length = 1 + Math.floor(Math.random() * 8192);
    const position = Math.floor(Math.random() * (data.length - length));
    runs.set([fd, position, places[i]! * 8192, length], i * PREAD_RUN_FIELDS);
    total += length;
  }
  assert.equal(preadRunsIntoSlab(runs, n, slab.id), total);
  const view = new Uint8Array(slabView(slab.id));
  const buf = new Uint8Array(n * 8192);
  assert.equal(preadRunsIntoBuffer(runs, n, buf), total);
  for (let i = 0; i < n; i++) {
    const [, position, at, length] = runs.subarray(i * PREAD_RUN_FIELDS, (i + 1) * PREAD_RUN_FIELDS);
    const want = data.subarray(position!, position! + length!);
    assert.ok(Buffer.from(view.subarray(at!, at! + length!)).equals(want), `run ${i} in the slab`);
    assert.ok(Buffer.from(buf.subarray(at!, at! + length!)).equals(want), `run ${i} in the buffer`);
  }
  assert.equal(shortRun(runs, n, total), -1);
  assert.equal(preadRunsIntoSlab(runs, 0, slab.id), 0);
});

test('a run that reaches end of file stops the reads: short count, and SHARD_CORRUPT naming the shard', (t) => {
  const { file, data, fd, slab } = setup(t, 10_000);
  const runs = new Float64Array([fd, 0, 0, 100, fd, 9_950, 100, 100, fd, 200, 300, 100]);
  const got = preadRunsIntoSlab(runs, 3, slab.id);
  assert.equal(got, 150, 'the first run, then 50 bytes of the second; the third is not read');
  assert.equal(shortRun(runs, 3, got), 1);
  const view = new Uint8Array(slabView(slab.id));
  assert.ok(Buffer.from(view.subarray(100, 150)).equals(data.subarray(9_950)));

  const ref: ShardRef = { index: 7, name: 'shards/part-7.arrow', file, format: 'arrow', bytes: 10_000 };
  const reads = new RunReads();
  reads.add(fd, 0, 0, 100, ref);
  reads.add(fd, 9_990, 200, 64, ref);
  assert.throws(() => reads.readInto(slab.id), (err: unknown) => {
    assert.ok(err instanceof GpufeedError);
    assert.equal(err.code, ErrorCodes.SHARD_CORRUPT);
    assert.match(err.message, /shard shards\/part-7\.arrow: file ends before byte 10054/);
    assert.equal(err.details.shard, 'shards/part-7.arrow');
    return true;
  });
  // Continuing runs merge into one read.
  reads.clear();
  reads.add(fd, 0, 0, 100, ref);
  reads.add(fd, 100, 100, 100, ref);
  assert.equal(reads.count, 1);
  reads.readInto(slab.id);
  assert.ok(Buffer.from(view.subarray(0, 200)).equals(data.subarray(0, 200)));
});

test('bad run arrays are GPUFEED_INVALID_OPTION, checked before any byte is read', (t) => {
  const { fd, slab, data } = setup(t, 4096);
  const view = new Uint8Array(slabView(slab.id));
  view.fill(0xee, 0, 8192);
  assert.throws(() => preadRunsIntoSlab([fd, 0, 0, 10] as unknown as Float64Array, 1, slab.id), invalid('runs', /Float64Array/));
  assert.throws(() => preadRunsIntoSlab(new Float64Array(7), 2, slab.id), invalid('count'));
  assert.throws(() => preadRunsIntoSlab(new Float64Array(4), -1, slab.id), invalid('count'));
  assert.throws(() => preadRunsIntoSlab(new Float64Array(4), 1.5, slab.id), invalid('count'));
  assert.throws(() => preadRunsIntoSlab(new Float64Array(4), 1, 0), invalid('slabId'));
  // The first run is fine, the second is bad: nothing at all is read.
  const bad = (second: number[]) => new Float64Array([fd, 0, 0, 100, ...second]);
  assert.throws(() => preadRunsIntoSlab(bad([fd, -1, 0, 10]), 2, slab.id), invalid('runs', /run 1: .*non-negative safe integers/));
  assert.throws(() => preadRunsIntoSlab(bad([fd, 0, Number.NaN, 10]), 2, slab.id), invalid('runs', /run 1/));
  assert.throws(() => preadRunsIntoSlab(bad([fd, 0.5, 0, 10]), 2, slab.id), invalid('runs', /run 1/));
  assert.throws(() => preadRunsIntoSlab(bad([fd, 0, slab.bytes - 5, 10]), 2, slab.id), invalid('runs', new RegExp(`run 1: range .* is outside slab ${slab.id}`)));
  assert.throws(() => preadRunsIntoBuffer(bad([fd, 0, 50, 100]), 2, new Uint8Array(120)), invalid('runs', /outside the target buffer/));
  assert.equal(view[0], 0xee, 'nothing was read');
  // A freed slab, a closed descriptor.
  const other = allocSlab(4096, { pin: false });
  freeSlab(other.id);
  assert.throws(() => preadRunsIntoSlab(new Float64Array([fd, 0, 0, 10]), 1, other.id), invalid('runs', new RegExp(`slab ${other.id}`)));
  const closed = openSync(join(tmpdir()), 'r');
  closeSync(closed);
  assert.throws(
    () => preadRunsIntoSlab(new Float64Array([fd, 0, 0, 10, closed, 0, 10, 10]), 2, slab.id),
    (err: unknown) => err instanceof GpufeedError && err.code === ErrorCodes.NATIVE && err.details.syscall === 'pread' && /run 1/.test(err.message),
  );
  assert.ok(Buffer.from(view.subarray(0, 10)).equals(data.subarray(0, 10)), 'runs before the failing one were read');
});
