// Slab memory: native registry, per-thread views, another process mapping the same bytes, the
// pinning fallbacks, lifetime (RSS stays flat), argument validation, preadIntoSlab.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ErrorCodes, GpufeedError } from '../../src/errors.js';
import { allocSlab, copySlab, detachSlab, freeSlab, maxSlabBytes, memoryStatus, pageSize, preadIntoSlab, slabInfo, slabView } from '../../src/memory/index.js';

const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));
const root = fileURLToPath(new URL('../../', import.meta.url));

function fillPattern(u8: Uint8Array, seed: number, mul = 7): void {
  for (let i = 0; i < u8.length; i++) u8[i] = (i * mul + seed) & 0xff;
}
function hasPattern(u8: Uint8Array, seed: number, mul = 7): boolean {
  for (let i = 0; i < u8.length; i++) if (u8[i] !== ((i * mul + seed) & 0xff)) return false;
  return true;
}
function invalid(option: string, pattern?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof GpufeedError, String(err));
    assert.equal(err.code, ErrorCodes.INVALID_OPTION);
    assert.equal(err.details.option, option);
    assert.match(err.message, new RegExp(option));
    if (pattern) assert.match(err.message, pattern);
    return true;
  };
}
function statusLine(key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return Number(m?.[1] ?? NaN) * 1024;
}
function unpinned<T>(fn: () => T): T {
  // Tests that are not about pinning skip it, so they never depend on RLIMIT_MEMLOCK.
  const prev = process.env.GPUFEED_PIN;
  process.env.GPUFEED_PIN = '0';
  try {
    return fn();
  } finally {
    if (prev === undefined) delete process.env.GPUFEED_PIN;
    else process.env.GPUFEED_PIN = prev;
  }
}
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), `timed out waiting for ${what}`);
}

interface WorkerReply { ok: boolean; sum?: number; bytes?: number; code?: string; message?: string }
function startWorker(t: { after(fn: () => unknown): void }) {
  const worker = new Worker(join(fixtures, 'memory-worker.mjs'));
  t.after(() => worker.terminate());
  const ask = (msg: object) =>
    new Promise<WorkerReply>((resolve, reject) => {
      const onErr = (e: Error) => reject(e);
      worker.once('error', onErr);
      worker.once('message', (m: WorkerReply) => {
        worker.off('error', onErr);
        resolve(m);
      });
      worker.postMessage(msg);
    });
  return { worker, ask };
}

test('alloc, view, write, read, free', () => {
  const before = memoryStatus();
  const s = unpinned(() => allocSlab(10_000));
  const page = pageSize();
  assert.equal(s.bytes, Math.ceil(10_000 / page) * page);
  assert.equal(s.pid, process.pid);
  assert.equal(s.kind, 'pageable');
  assert.equal(s.pinned, false);
  assert.ok(Number.isInteger(s.fd) && s.fd >= 0);
  // memfd: nothing in /dev/shm, the descriptor names the slab.
  assert.match(readlinkSync(`/proc/self/fd/${s.fd}`), new RegExp(`^/memfd:gpufeed-slab-${s.id} `));

  const view = slabView(s.id);
  assert.equal(view.byteLength, s.bytes);
  assert.equal(slabView(s.id), view, 'one cached view per slab per thread');
  fillPattern(new Uint8Array(view), 3);
  assert.ok(hasPattern(new Uint8Array(slabView(s.id)), 3));
  assert.deepEqual(slabInfo(s.id), s);
  const during = memoryStatus();
  assert.equal(during.slabs, before.slabs + 1);
  assert.equal(during.bytes, before.bytes + s.bytes);

  // Detach then re-attach: a fresh view over the same bytes.
  const u8 = new Uint8Array(view);
  detachSlab(s.id);
  assert.equal(view.byteLength, 0);
  assert.equal(u8.length, 0, 'typed arrays over a detached view go zero-length');
  assert.ok(hasPattern(new Uint8Array(slabView(s.id)), 3));

  const v2 = slabView(s.id);
  freeSlab(s.id);
  assert.equal(v2.byteLength, 0, "freeSlab detaches the caller's own view");
  assert.equal(slabInfo(s.id), undefined);
  const after = memoryStatus();
  assert.equal(after.slabs, before.slabs);
  assert.equal(after.pendingSlabs, before.pendingSlabs);
});

test('pinned by default: mlock (or cuda) where allowed, reported consistently', () => {
  const st = memoryStatus();
  const s = allocSlab(1 << 20);
  try {
    if (s.pinned) assert.ok(s.kind === 'mlock' || s.kind === 'cuda');
    else assert.equal(s.kind, 'pageable');
    assert.equal(memoryStatus().pinnedBytes - st.pinnedBytes, s.pinned ? s.bytes : 0);
  } finally {
    freeSlab(s.id);
  }
  assert.equal(typeof st.cudaAvailable, 'boolean');
  if (!st.cudaAvailable) assert.equal(typeof st.cudaError, 'string');
  assert.ok(st.memlockLimit === null || st.memlockLimit >= 0);
});

test('a worker thread attaches by id; both threads see the same bytes; free waits for its detach', async (t) => {
  const { ask } = startWorker(t);
  const s = unpinned(() => allocSlab(64 * 1024));
  const half = s.bytes / 2;
  assert.deepEqual(await ask({ op: 'fill', id: s.id, offset: 0, length: half, seed: 11 }), { ok: true });
  const view = new Uint8Array(slabView(s.id));
  assert.ok(hasPattern(view.subarray(0, half), 11), 'main sees what the worker wrote');

  fillPattern(view.subarray(half), 5);
  let want = 0;
  for (const b of view.subarray(half)) want += b;
  assert.deepEqual(await ask({ op: 'sum', id: s.id, offset: half, length: half }), { ok: true, sum: want });

  // Owner frees while the worker still holds a view: the memory stays mapped for the worker.
  const views = memoryStatus().views;
  freeSlab(s.id);
  assert.equal(memoryStatus().pendingSlabs, 1);
  assert.equal(memoryStatus().views, views - 1);
  assert.deepEqual(await ask({ op: 'sum', id: s.id, offset: half, length: half }), { ok: true, sum: want });
  const refused = await ask({ op: 'attach', id: s.id + 1_000_000 });
  assert.equal(refused.ok, false);
  assert.equal(refused.code, ErrorCodes.INVALID_OPTION);
  assert.deepEqual(await ask({ op: 'detach', id: s.id }), { ok: true });
  assert.equal(memoryStatus().pendingSlabs, 0, 'the last detach unmaps');
});

test("a worker's views are released when it exits without detaching", async () => {
  const worker = new Worker(join(fixtures, 'memory-worker.mjs'));
  const s = unpinned(() => allocSlab(4096));
  const reply = await new Promise<WorkerReply>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.postMessage({ op: 'attach', id: s.id });
  });
  assert.deepEqual(reply, { ok: true, bytes: 4096 });
  freeSlab(s.id);
  assert.equal(memoryStatus().pendingSlabs, 1);
  await worker.terminate();
  await until(() => memoryStatus().pendingSlabs === 0, 'the exited worker to let go of its view');
});

test('another process maps /proc/<pid>/fd/<fd>, reads our bytes and writes back', (t) => {
  const py = spawnSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' });
  if (py.status !== 0) {
    t.skip('python3 with numpy not available');
    return;
  }
  const shmBefore = readdirSync('/dev/shm').sort();
  const s = unpinned(() => allocSlab(1 << 20));
  t.after(() => freeSlab(s.id));
  const view = new Uint8Array(slabView(s.id));
  fillPattern(view, 1);
  const out = execFileSync('python3', [join(fixtures, 'memory-map.py'), String(s.pid), String(s.fd), String(s.bytes), '1', '2'], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(out.trim(), 'ok');
  assert.ok(hasPattern(view, 2, 13), 'bytes written by the other process are visible here');
  assert.deepEqual(readdirSync('/dev/shm').sort(), shmBefore, 'nothing left in /dev/shm');
});

test('GPUFEED_PIN=0 and { pin: false } skip locking deliberately, without a warning', async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(String((w as { code?: string }).code));
  process.on('warning', onWarning);
  try {
    const a = unpinned(() => allocSlab(4096));
    const b = allocSlab(4096, { pin: false });
    for (const s of [a, b]) {
      assert.equal(s.kind, 'pageable');
      assert.equal(s.pinned, false);
      assert.equal(s.pinError, undefined);
      freeSlab(s.id);
    }
    await new Promise((r) => setImmediate(r));
  } finally {
    process.off('warning', onWarning);
  }
  assert.deepEqual(warnings, []);
});

test('locking refused: pageable, pinned:false, one warning per process (main and worker)', (t) => {
  // As root mlock never fails, so the child drops CAP_IPC_LOCK from its bounding set with setpriv
  // (root then cannot regain it across exec) and lowers `ulimit -l` to 64 KiB below the 1 MiB slabs.
  // As non-root, `ulimit -l` alone refuses the lock.
  const isRoot = process.getuid?.() === 0;
  const hasSetpriv = spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0;
  if (isRoot && !hasSetpriv) {
    t.skip('running as root without setpriv: cannot make mlock fail');
    return;
  }
  const node = `${JSON.stringify(process.execPath)} --import tsx ${JSON.stringify(join(fixtures, 'memory-pin-child.ts'))}`;
  const script = `ulimit -l 64 || exit 77; exec ${isRoot ? 'setpriv --bounding-set -ipc_lock --inh-caps -ipc_lock ' : ''}${node}`;
  const env = { ...process.env };
  delete env.GPUFEED_PIN;
  const r = spawnSync('sh', ['-c', script], { cwd: root, encoding: 'utf8', timeout: 60_000, env });
  if (r.status === 77) {
    t.skip('cannot lower RLIMIT_MEMLOCK here');
    return;
  }
  assert.equal(r.status, 0, r.stderr);
  const res = JSON.parse(r.stdout.trim()) as { kinds: string[]; pinned: boolean[]; pinError?: string; warnings: number; memlockLimit: number };
  assert.deepEqual(res.kinds, ['pageable', 'pageable', 'pageable']);
  assert.deepEqual(res.pinned, [false, false, false]);
  assert.match(res.pinError ?? '', /mlock/);
  assert.equal(res.warnings, 1);
  assert.equal(res.memlockLimit, 64 * 1024);
  assert.equal(r.stderr.match(/GPUFEED_PINNED_FALLBACK/g)?.length, 1, 'the worker did not warn again');
});

test('CUDA path through dlopen, with a stand-in libcuda.so.1', (t) => {
  // No GPU here: build native/test/fake-libcuda.c as libcuda.so.1 and point the child at it.
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-fakecuda-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cc = spawnSync('cc', ['-shared', '-fPIC', '-o', join(dir, 'libcuda.so.1'), join(root, 'native/test/fake-libcuda.c')], { encoding: 'utf8' });
  if (cc.status !== 0) {
    t.skip(`no C compiler: ${cc.error?.message ?? cc.stderr}`);
    return;
  }
  const run = (extra: Record<string, string>) => {
    const env: Record<string, string | undefined> = { ...process.env, LD_LIBRARY_PATH: dir, ...extra };
    delete env.GPUFEED_PIN;
    delete env.GPUFEED_CUDA;
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(fixtures, 'memory-cuda-child.ts')], { cwd: root, env, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    return { out: JSON.parse(r.stdout.trim()) as Record<string, unknown>, stderr: r.stderr };
  };
  const ok = run({});
  assert.equal(ok.out.cudaAvailable, true);
  assert.equal(ok.out.kind, 'cuda');
  assert.equal(ok.out.pinned, true);
  assert.equal(ok.out.after, 0);
  assert.match(ok.stderr, /fake-cuda register 1048576 flags=1\n/, 'registered PORTABLE');
  assert.match(ok.stderr, /fake-cuda unregister\n/, 'unregistered on free');

  // CUDA present but registration refused: falls back to mlock (root) and warns once.
  const failed = run({ FAKE_CUDA_FAIL: '1' });
  assert.equal(failed.out.cudaAvailable, true);
  assert.notEqual(failed.out.kind, 'cuda');
  assert.match(String(failed.out.slabCudaError), /CUDA_ERROR_OUT_OF_MEMORY/);
  assert.ok((failed.out.warnings as string[]).includes('GPUFEED_CUDA_REGISTER_FAILED'));
});

test('2,000 x 1 MiB alloc/write/detach/free cycles leave RSS, fds and slabs where they started', () => {
  // Every size takes the same memfd + mmap + mlock path; 1 MiB keeps the page faulting (2 GiB in
  // all) short. The bound allows 32 KiB per cycle: a slab that stays mapped shows as 2 GiB.
  const size = 1 << 20;
  const page = pageSize();
  const cycle = (i: number) => {
    // Pinned (the default): mlock faults every page in, so a leak would show in RSS at once.
    const s = allocSlab(size);
    const u8 = new Uint8Array(slabView(s.id));
    for (let off = 0; off < size; off += 64 * page) u8[off] = i & 0xff;
    detachSlab(s.id);
    freeSlab(s.id);
  };
  for (let i = 0; i < 20; i++) cycle(i); // warm up allocator and JIT
  const st0 = memoryStatus();
  const rss0 = statusLine('VmRSS');
  const fds0 = readdirSync('/proc/self/fd').length;
  for (let i = 0; i < 2000; i++) cycle(i);
  const rss1 = statusLine('VmRSS');
  const st1 = memoryStatus();
  assert.ok(rss1 - rss0 < 64 << 20, `RSS grew by ${((rss1 - rss0) / 2 ** 20).toFixed(1)} MiB over 2,000 cycles`);
  assert.equal(readdirSync('/proc/self/fd').length, fds0, 'no descriptor leaked');
  assert.deepEqual([st1.slabs, st1.bytes, st1.pendingSlabs, st1.views], [st0.slabs, st0.bytes, st0.pendingSlabs, st0.views]);
});

test('invalid arguments give GPUFEED_INVALID_OPTION naming the argument', () => {
  assert.throws(() => allocSlab(0), invalid('bytes'));
  assert.throws(() => allocSlab(-1), invalid('bytes'));
  assert.throws(() => allocSlab(1.5), invalid('bytes'));
  assert.throws(() => allocSlab('1' as unknown as number), invalid('bytes'));
  assert.throws(() => allocSlab(maxSlabBytes() + 1), invalid('bytes', /largest slab/));
  assert.throws(() => allocSlab(2 ** 60), invalid('bytes', /safe integer/));
  assert.throws(() => allocSlab(4096, { pin: 'yes' as unknown as boolean }), invalid('pin'));
  assert.throws(() => slabView(0), invalid('id'));
  assert.throws(() => slabView(1.5), invalid('id'));
  assert.throws(() => slabView(2_000_000_000), invalid('id', /slab 2000000000 is not allocated/));
  assert.throws(() => freeSlab(2_000_000_000), invalid('id', /slab 2000000000/));
  assert.throws(() => slabInfo(-3), invalid('id'));

  const s = unpinned(() => allocSlab(4096));
  freeSlab(s.id);
  assert.throws(() => freeSlab(s.id), invalid('id', new RegExp(`slab ${s.id} is not allocated`)));
  assert.throws(() => slabView(s.id), invalid('id', new RegExp(`slab ${s.id}`)));
  assert.throws(() => preadIntoSlab(0, 0, s.id, 0, 1), invalid('slabId', new RegExp(`slab ${s.id}`)));

  const live = unpinned(() => allocSlab(4096));
  try {
    assert.throws(() => preadIntoSlab(-1, 0, live.id, 0, 1), invalid('fd'));
    assert.throws(() => preadIntoSlab(0, -5, live.id, 0, 1), invalid('fileOffset'));
    assert.throws(() => preadIntoSlab(0, 0, live.id, 4000, 200), invalid('slabOffset', new RegExp(`outside slab ${live.id}`)));
    assert.throws(() => preadIntoSlab(0, 0, live.id, 0, 1.5), invalid('length'));
    assert.throws(() => copySlab(live.id, 4090, live.id, 0, 10), invalid('dstOffset', new RegExp(`slab ${live.id}`)));
    assert.throws(() => copySlab(live.id, 0, 1_999_999_999, 0, 10), invalid('srcId', /slab 1999999999/));
  } finally {
    freeSlab(live.id);
  }
});

test('preadIntoSlab reads the right bytes (fd or path), short at EOF; copySlab moves them', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-pread-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'data.bin');
  const data = randomBytes((1 << 20) + 123);
  writeFileSync(file, data);
  const a = unpinned(() => allocSlab(1 << 20));
  const b = unpinned(() => allocSlab(1 << 20));
  t.after(() => {
    freeSlab(a.id);
    freeSlab(b.id);
  });
  const va = new Uint8Array(slabView(a.id));

  const fd = openSync(file, 'r');
  try {
    assert.equal(preadIntoSlab(fd, 1000, a.id, 4096, 500_000), 500_000);
  } finally {
    closeSync(fd);
  }
  assert.ok(Buffer.from(va.subarray(4096, 4096 + 500_000)).equals(data.subarray(1000, 501_000)));
  assert.equal(va[4095], 0, 'nothing written before slabOffset');

  // By path, running past end of file: returns the short count.
  const tail = data.length - 1000;
  assert.equal(preadIntoSlab(file, 1000, a.id, 0, a.bytes), tail);
  assert.ok(Buffer.from(va.subarray(0, tail)).equals(data.subarray(1000)));
  assert.equal(preadIntoSlab(file, data.length + 10, a.id, 0, 100), 0);
  assert.equal(preadIntoSlab(file, 0, a.id, 0, 0), 0);

  // A closed descriptor: a native error naming the syscall.
  const closed = openSync(file, 'r');
  closeSync(closed);
  assert.throws(
    () => preadIntoSlab(closed, 0, a.id, 0, 10),
    (err: unknown) => err instanceof GpufeedError && err.code === ErrorCodes.NATIVE && err.details.syscall === 'pread' && /slab/.test(err.message),
  );
  assert.throws(
    () => preadIntoSlab(join(dir, 'missing'), 0, a.id, 0, 10),
    (err: unknown) => err instanceof GpufeedError && err.code === ErrorCodes.NATIVE && err.details.syscall === 'open',
  );

  // copySlab: across slabs, then overlapping within one (memmove semantics).
  copySlab(b.id, 10, a.id, 0, 1000);
  const vb = new Uint8Array(slabView(b.id));
  assert.ok(Buffer.from(vb.subarray(10, 1010)).equals(data.subarray(1000, 2000)));
  copySlab(b.id, 20, b.id, 10, 1000);
  assert.ok(Buffer.from(vb.subarray(20, 1020)).equals(data.subarray(1000, 2000)));
});
