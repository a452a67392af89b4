// File maps: gather copies (copyRunsFromMap) from a read-only mapping into a slab or a buffer.
// Right bytes for many runs; a run outside the mapping or the target is rejected, naming the run,
// before anything is copied; every handle is released (live maps back to 0, no descriptor left).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ErrorCodes, GpufeedError } from '../../src/errors.js';
import { allocSlab, copyRunsFromMap, copyRunsFromMapIntoBuffer, fileMapStatus, freeSlab, MAP_RUN_FIELDS, mapFile, slabView, unmapFile } from '../../src/memory/index.js';
import { RunReads } from '../../src/formats/arrow/load-unit.js';
import type { ShardRef } from '../../src/pipeline/decode-messages.js';
import { invalidOptionNaming } from '../helpers/expect-error.js';

const fdCount = (): number => readdirSync('/proc/self/fd').length;

function setup(t: { after(fn: () => unknown): void }, fileBytes = 1 << 20) {
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-map-'));
  const file = join(dir, 'data.bin');
  const data = randomBytes(fileBytes);
  writeFileSync(file, data);
  const prev = process.env.GPUFEED_PIN;
  process.env.GPUFEED_PIN = '0';
  const slab = allocSlab(1 << 20);
  if (prev === undefined) delete process.env.GPUFEED_PIN;
  else process.env.GPUFEED_PIN = prev;
  t.after(() => {
    freeSlab(slab.id);
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, file, data, slab };
}

const invalid = invalidOptionNaming;

test('copyRunsFromMap copies many runs into a slab and into a buffer, each where it was asked', (t) => {
  const { file, data, slab } = setup(t);
  const before = fileMapStatus().handles;
  const m = mapFile(file);
  t.after(() => { if (fileMapStatus().handles > before) unmapFile(m.mapId); });
  assert.equal(m.size, data.length);
  const n = 100;
  const runs = new Float64Array((n + 3) * MAP_RUN_FIELDS).fill(-1); // spare room past count is ignored
  const places = Array.from({ length: n }, (_, i) => i).sort(() => Math.random() - 0.5);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const length = i === 0 ? 0 : 1 + Math.floor(Math.random() * 8192);
    const position = Math.floor(Math.random() * (data.length - length));
    runs.set([position, places[i]! * 8192, length], i * MAP_RUN_FIELDS);
    total += length;
  }
  assert.equal(copyRunsFromMap(m.mapId, runs, n, slab.id), total);
  const view = new Uint8Array(slabView(slab.id));
  const buf = new Uint8Array(n * 8192);
  assert.equal(copyRunsFromMapIntoBuffer(m.mapId, runs, n, buf), total);
  for (let i = 0; i < n; i++) {
    const [position, at, length] = [runs[i * 3]!, runs[i * 3 + 1]!, runs[i * 3 + 2]!];
    const want = data.subarray(position, position + length);
    assert.deepEqual(view.subarray(at, at + length), new Uint8Array(want), `run ${i} in the slab`);
    assert.deepEqual(buf.subarray(at, at + length), new Uint8Array(want), `run ${i} in the buffer`);
  }
  // A run that reaches the last byte of the file is in range.
  runs.set([data.length - 10, 0, 10], 0);
  assert.equal(copyRunsFromMap(m.mapId, runs, 1, slab.id), 10);
  assert.deepEqual(view.subarray(0, 10), new Uint8Array(data.subarray(data.length - 10)));
});

test('a run outside the mapping or the slab is rejected naming the run, before any byte is copied', (t) => {
  const { file, data, slab } = setup(t, 64 * 1024);
  const m = mapFile(file);
  t.after(() => unmapFile(m.mapId));
  const view = new Uint8Array(slabView(slab.id));
  view.fill(7, 0, 4096);
  const runs = new Float64Array([0, 0, 100, 100, 100, 100, data.length - 50, 200, 51]);
  assert.throws(() => copyRunsFromMap(m.mapId, runs, 3, slab.id), invalid('runs', /run 2: file range \[65486, \+51\) is outside file map \d+ \(65536 bytes\)/));
  assert.ok(view.subarray(0, 300).every((b) => b === 7), 'nothing copied');
  runs.set([0, slab.bytes - 10, 11], 6);
  assert.throws(() => copyRunsFromMap(m.mapId, runs, 3, slab.id), invalid('runs', new RegExp(`run 2: range \\[${slab.bytes - 10}, \\+11\\) is outside slab ${slab.id}`)));
  assert.throws(() => copyRunsFromMapIntoBuffer(m.mapId, runs, 2, new Uint8Array(150)), invalid('runs', /run 1: range \[100, \+100\) is outside the target buffer \(150 bytes\)/));
  runs.set([1.5, 0, 1], 0);
  assert.throws(() => copyRunsFromMap(m.mapId, runs, 1, slab.id), invalid('runs', /run 0: .*non-negative safe integers/));
  // Shape is checked in TypeScript.
  assert.throws(() => copyRunsFromMap(m.mapId, new Float64Array(5), 2, slab.id), invalid('count'));
  assert.throws(() => copyRunsFromMap(m.mapId, [0, 0, 1] as unknown as Float64Array, 1, slab.id), invalid('runs'));
  assert.throws(() => copyRunsFromMap(0, runs, 1, slab.id), invalid('mapId'));
  assert.throws(() => copyRunsFromMap(m.mapId, runs, 1, 0), invalid('slabId'));
  assert.ok(view.subarray(0, 300).every((b) => b === 7), 'nothing copied');
});

test('maps are shared per file, released by their last handle, and leave no descriptor behind', (t) => {
  const { file, dir } = setup(t);
  const base = fileMapStatus();
  const fds = fdCount();
  const a = mapFile(file);
  const b = mapFile(file, { populate: true, advice: 'random' });
  const fd = openSync(file, 'r');
  const c = mapFile(fd, { advice: 'willneed' });
  closeSync(fd);
  const empty = join(dir, 'empty.bin');
  writeFileSync(empty, '');
  const e = mapFile(empty);
  assert.equal(e.size, 0);
  let st = fileMapStatus();
  assert.equal(st.handles, base.handles + 4);
  assert.equal(st.mappings, base.mappings + 2, 'one mapping per file');
  // One descriptor per mapping (not per handle): a copy fstat()s it to see the file did not shrink.
  assert.equal(fdCount(), fds + 2, 'one descriptor per mapping');
  unmapFile(a.mapId);
  unmapFile(e.mapId);
  // The other handles still copy.
  const out = new Uint8Array(4);
  assert.equal(copyRunsFromMapIntoBuffer(b.mapId, new Float64Array([0, 0, 4]), 1, out), 4);
  assert.throws(() => copyRunsFromMapIntoBuffer(a.mapId, new Float64Array([0, 0, 4]), 1, out), invalid('mapId', /not mapped/));
  assert.throws(() => unmapFile(a.mapId), invalid('mapId', /not mapped/));
  unmapFile(b.mapId);
  unmapFile(c.mapId);
  st = fileMapStatus();
  assert.equal(st.handles, base.handles);
  assert.equal(st.mappings, base.mappings);
  assert.equal(fdCount(), fds);
  assert.throws(() => mapFile(join(dir, 'missing.bin')), (err: unknown) => err instanceof GpufeedError && err.code === ErrorCodes.NATIVE && /ENOENT|No such file/.test(err.message));
  assert.throws(() => mapFile(dir), invalid('path', /not a regular file/));
  assert.equal(fdCount(), fds);
});

test('RunReads copies from file maps, one call per map, and reports a run past the end as SHARD_CORRUPT', (t) => {
  const { file, data, slab, dir } = setup(t, 64 * 1024);
  const file2 = join(dir, 'data2.bin');
  const data2 = randomBytes(32 * 1024);
  writeFileSync(file2, data2);
  const base = fileMapStatus().handles;
  const m1 = mapFile(file);
  const m2 = mapFile(file2);
  t.after(() => { unmapFile(m1.mapId); unmapFile(m2.mapId); });
  const ref1: ShardRef = { index: 0, name: 'a.arrow', file, format: 'arrow', bytes: data.length };
  const ref2: ShardRef = { index: 1, name: 'b.arrow', file: file2, format: 'arrow', bytes: data2.length };
  const reads = new RunReads();
  // fd -1: a mapped run is never read through its descriptor.
  reads.add(-1, 100, 0, 50, ref1, m1.mapId);
  reads.add(-2, 200, 50, 30, ref2, m2.mapId);
  reads.add(-1, 150, 80, 20, ref1, m1.mapId);
  reads.add(-1, 170, 100, 5, ref1, m1.mapId); // extends the previous run
  assert.equal(reads.count, 3);
  reads.readInto(slab.id);
  const view = new Uint8Array(slabView(slab.id));
  assert.deepEqual(view.subarray(0, 50), new Uint8Array(data.subarray(100, 150)));
  assert.deepEqual(view.subarray(50, 80), new Uint8Array(data2.subarray(200, 230)));
  assert.deepEqual(view.subarray(80, 105), new Uint8Array(data.subarray(150, 175)));
  assert.equal(fileMapStatus().handles, base + 2);
  reads.clear();
  assert.throws(() => reads.add(-1, data2.length - 10, 0, 11, ref2, m2.mapId), (err: unknown) => err instanceof GpufeedError && err.code === ErrorCodes.SHARD_CORRUPT && /shard b\.arrow: file ends before byte 32769/.test(err.message));
});
