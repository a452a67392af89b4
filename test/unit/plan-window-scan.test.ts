// The single-pass window scan (plan/window-scan.ts, window-chunk.ts) against the window order's
// simple definition, computed here chunk by chunk with no buckets, runs or walks: chunk j holds the
// positions whose key i + (u_i - 1/2) w lies in [jw, (j+1)w), sorted by (floor((k - jw) fs), i),
// and begins at the count of keys below jw. Random partitions, windows (powers of two, odd, larger
// than the partition: the coarse grid), and read patterns (a rank's sparse runs, dense, random
// access, jumps back), and a partition past 2^32 positions (the general hash).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deriveKey, hashUnit, type Key64, ROOT_KEY } from '../../src/plan/prng.js';
import { SampleLocator } from '../../src/plan/samples.js';
import { WindowOrder } from '../../src/plan/shuffle.js';
import { bucketGrid, bucketOfKey, ScanRun, scanRun } from '../../src/plan/window-scan.js';
import { mulberry32 } from '../helpers/seeded-random.js';

const int = (r: () => number, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;

/** The window order by its definition, one chunk at a time (any chunk of any partition size). */
class ReferenceOrder {
  private readonly jitter: Key64;
  private readonly fractionScale: number;
  private readonly chunks = new Map<number, { start: number; positions: number[] }>();

  constructor(private readonly order: WindowOrder, private readonly size: number, private readonly window: number, key: Key64) {
    this.jitter = deriveKey(key, 2);
    let bits = 0;
    while (2 ** bits <= window) bits++;
    let indexBits = 0;
    while (2 ** indexBits <= 2 * window + 8) indexBits++;
    this.fractionScale = 2 ** (52 - bits - indexBits);
  }

  key(i: number): number {
    return i + (hashUnit(this.jitter, i) - 0.5) * this.window;
  }

  /** Positions whose keys can lie in [x - w/2 - 2, x + w/2 + 2] (a margin beyond the jitter). */
  private near(x: number): [number, number] {
    return [Math.max(0, Math.floor(x - this.window / 2) - 2), Math.min(this.size, Math.ceil(x + this.window / 2) + 2)];
  }

  chunk(j: number): { start: number; positions: number[] } {
    const cached = this.chunks.get(j);
    if (cached) return cached;
    const w = this.window;
    const x0 = j * w;
    const x1 = x0 + w;
    const [a] = this.near(x0);
    let start = a;
    for (let i = a; i < this.near(x0)[1]; i++) if (this.key(i) < x0) start++;
    const members: Array<{ i: number; high: number }> = [];
    for (let i = this.near(x0)[0]; i < this.near(x1)[1]; i++) {
      const k = this.key(i);
      if (k >= x0 && k < x1) members.push({ i, high: Math.floor((k - x0) * this.fractionScale) });
    }
    members.sort((p, q) => p.high - q.high || p.i - q.i);
    const out = { start, positions: members.map((m) => m.i) };
    this.chunks.set(j, out);
    return out;
  }

  /** Local offset delivered t-th. */
  at(t: number): number {
    let j = Math.floor(t / this.window);
    for (let guard = 0; guard < 16; guard++) {
      const c = this.chunk(j);
      if (c.start > t) j--;
      else if (c.start + c.positions.length <= t) j++;
      else return this.offsetOf(c.positions[t - c.start] as number);
    }
    throw new Error(`reference: no chunk holds ${t}`);
  }

  private offsetOf(i: number): number {
    const cum = this.order.pieceCumulative;
    let lo = 0;
    let hi = this.order.pieceStart.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((cum[mid] as number) <= i) lo = mid;
      else hi = mid - 1;
    }
    return (this.order.pieceStart[lo] as number) + (i - (cum[lo] as number));
  }
}

function randomShards(r: () => number, total: number): Array<{ rows: number; bytes: number }> {
  const shards: Array<{ rows: number; bytes: number }> = [];
  const most = pick(r, [5, 400, 5000]);
  for (let left = total, guard = 0; left > 0 && guard < 100_000; guard++) {
    const rows = Math.min(left, int(r, 0, most));
    shards.push({ rows, bytes: 1 });
    left -= rows;
  }
  return shards;
}

/** Delivery indices as a reader asks for them: a rank's runs, every index, random points, jumps back. */
function readPattern(r: () => number, size: number): number[] {
  const kind = int(r, 0, 3);
  const out: number[] = [];
  if (kind === 0) {
    const period = int(r, 1, 40_000);
    const run = int(r, 1, Math.min(period, 64));
    for (let t0 = int(r, 0, period - 1); t0 < size && out.length < 20_000; t0 += period) for (let t = t0; t < Math.min(size, t0 + run); t++) out.push(t);
  } else if (kind === 1) {
    for (let t = 0; t < Math.min(size, 60_000); t++) out.push(t);
  } else if (kind === 2) {
    for (let n = 0; n < 300; n++) out.push(int(r, 0, size - 1));
  } else {
    for (let t = Math.floor(size / 2); t < size && out.length < 3000; t += int(r, 1, 50)) out.push(t);
    for (let t = Math.floor(size / 2) - 1; t >= 0 && out.length < 6000; t -= int(r, 1, 2000)) out.push(t);
  }
  return out;
}

describe('window scan against the window order by definition', () => {
  it('every read pattern gives the defined order: random partitions and windows', () => {
    const r = mulberry32(20261202);
    for (let c = 0; c < 40; c++) {
      const window = pick(r, [1, 2, 3, 16, 17, 1000, 4096, 4097, 30_001, 1 << 16, 65_535, 1 << 20]);
      const total = int(r, 1, pick(r, [2000, 60_000, 300_000]));
      const locator = new SampleLocator(randomShards(r, total));
      if (locator.totalRows === 0) continue;
      const start = int(r, 0, Math.floor(locator.totalRows / 4));
      const size = int(r, 1, locator.totalRows - start);
      const key = deriveKey(ROOT_KEY, 0x5ca11, c);
      const order = new WindowOrder({ start, size }, locator, key, window);
      const reference = new ReferenceOrder(order, size, window, key);
      const reads = readPattern(r, size);
      for (const t of reads) {
        const got = order.at(t);
        const want = reference.at(t);
        if (got !== want) assert.fail(`case ${c}: w=${window} size=${size} t=${t}: ${got}, defined ${want}`);
      }
    }
  });

  it('a partition past 2^32 positions gives the defined order around 2^32 (the general hash)', () => {
    const size = 2 ** 33 + 12_345;
    const locator = new SampleLocator([{ rows: 2 ** 32 - 7, bytes: 1 }, { rows: size - (2 ** 32 - 7), bytes: 1 }]);
    for (const window of [8, 333, 4096]) {
      const key = deriveKey(ROOT_KEY, 99, window);
      const order = new WindowOrder({ start: 0, size }, locator, key, window);
      const reference = new ReferenceOrder(order, size, window, key);
      for (let t = 2 ** 32 - 3 * window; t < 2 ** 32 + 3 * window; t++) assert.equal(order.at(t), reference.at(t), `w=${window} t=${t}`);
    }
  });

  it('files every position in the bucket of its defined key (fine and coarse grids, positions up to 2^32)', () => {
    const r = mulberry32(5);
    for (let c = 0; c < 90; c++) {
      // The last third: large powers of two, whose integer bucket math floors s / 2^(32 - a) with
      // few bits, so an error of one in s moves a key every few thousand.
      const window = c < 60 ? pick(r, [1, 2, 5, 16, 48, 1000, 4097, 1 << 16, (1 << 24) - 1, 1 << 24]) : pick(r, [1 << 22, 1 << 23, 1 << 24]);
      const size = c < 60 ? pick(r, [10, 5000, 2 ** 32 + 10]) : 2 ** 31;
      const grid = bucketGrid(window, size);
      const jitter = deriveKey(ROOT_KEY, c, 7);
      const keyAt = (i: number): number => i + (hashUnit(jitter, i) - 0.5) * window;
      const from = Math.max(0, Math.min(size - 1, pick(r, [0, int(r, 0, size), 2 ** 32 - 1000])));
      const to = Math.min(size, from + (c < 60 ? int(r, 1, 3000) : 100_000));
      const run = new ScanRun();
      scanRun(run, grid, { lo: jitter.lo, hi: jitter.hi, keyAt }, from, to);
      // Bucket order: each position once, buckets ascending, each in the bucket of its key.
      const seen = new Set<number>();
      let last = -Infinity;
      for (let b = 0; b < run.buckets; b++) {
        for (let s = run.starts[b] as number; s < (run.starts[b + 1] as number); s++) {
          const i = from + (run.order[s] as number);
          seen.add(i);
          const g = bucketOfKey(grid, keyAt(i));
          assert.equal(g, run.firstBucket + b, `case ${c}: w=${window} position ${i}`);
          assert.ok(g >= last);
          last = g;
        }
      }
      assert.equal(seen.size, to - from, `case ${c}: every position filed once`);
    }
  });

  it('the scan key i + s w / 2^32 (s = h - 2^31) is the double i + (h / 2^32 - 1/2) w', () => {
    const r = mulberry32(11);
    for (let c = 0; c < 200_000; c++) {
      const h = Math.floor(r() * 2 ** 32);
      const w = c % 3 === 0 ? 2 ** int(r, 0, 24) : int(r, 1, 2 ** 24);
      const i = c % 2 === 0 ? int(r, 0, 2 ** 32 - 1) : int(r, 0, 5000);
      const s = (h ^ -2147483648) | 0;
      assert.equal(i + s * (w / 4294967296), i + (h / 4294967296 - 0.5) * w, `h=${h} w=${w} i=${i}`);
    }
  });
});
