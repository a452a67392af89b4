// CPU time of checking every record batch of an Arrow dataset once, the way the decode workers did
// before (pread into a buffer, node:zlib's crc32) and do now (the addon's crc32 in place over the
// shard's mapping: a fresh mapping, whose page faults the loader's copies would otherwise take, and
// one already faulted in), with pread alone for scale; then what the hash adds to a worker's first
// pass: each piece's 8 KiB rows gathered in shuffled order from a fresh mapping (the loader's
// copy), alone and right after hashing the piece. CPU time, not wall: the figures hold on a busy
// host. Median of 7 passes each.
//   node dist/benchmarks/piece-hash.js <arrow dataset dir>   (default: a 16,384-row bench dataset in a temp dir)
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { copyRunsFromMapIntoBuffer, crc32FromMap, MAP_RUN_FIELDS, mapFile, unmapFile } from '../src/memory/index.js';
import type { ManifestV1 } from '../src/dataset/types.js';
import { makeArrow } from './datasets.js';

interface Piece { file: string; offset: number; length: number; crc32: number }

function cpuMs(fn: () => void): number {
  const c0 = process.cpuUsage();
  fn();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1e3;
}

function preadInto(fd: number, buf: Uint8Array, offset: number): void {
  for (let done = 0; done < buf.length;) {
    const n = readSync(fd, buf, done, buf.length - done, offset + done);
    if (n === 0) throw new Error('short read');
    done += n;
  }
}

async function main(): Promise<void> {
  let dir = process.argv[2];
  let temp: string | undefined;
  if (!dir) {
    temp = mkdtempSync(join(tmpdir(), 'gpufeed-piece-hash-'));
    dir = join(temp, 'arrow');
    await makeArrow(dir, 16384);
  }
  try {
    const manifest = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as ManifestV1;
    const byFile = new Map<string, Piece[]>();
    for (const s of manifest.shards) {
      if (s.layout.kind !== 'arrow') continue;
      const file = join(dir, s.path);
      byFile.set(file, s.layout.batches.filter((b) => b.crc32 !== undefined).map((b) => ({ file, offset: b.offset, length: b.metadataLength + b.bodyLength, crc32: b.crc32! })));
    }
    const bytes = [...byFile.values()].flat().reduce((a, p) => a + p.length, 0);
    const scratch = new Uint8Array(Math.max(...[...byFile.values()].flat().map((p) => p.length)));
    const check = (p: Piece, got: number): void => {
      if (got !== p.crc32) throw new Error(`${p.file} at ${p.offset}: checksum mismatch`);
    };
    // Each piece cut into 8 KiB rows, shuffled (seeded), gathered into a 512 KiB target by turns.
    const ROW = 8192;
    let seed = 1;
    const runsOf = (p: Piece): Float64Array => {
      const n = Math.floor(p.length / ROW);
      const order = Array.from({ length: n }, (_, i) => i);
      for (let i = n - 1; i > 0; i--) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        const j = seed % (i + 1);
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      const runs = new Float64Array(n * MAP_RUN_FIELDS);
      order.forEach((r, k) => runs.set([p.offset + r * ROW, (k % 64) * ROW, ROW], k * MAP_RUN_FIELDS));
      return runs;
    };
    const target = new Uint8Array(64 * ROW);
    const gather = (hashFirst: boolean) => cpuMs(() => {
      for (const [file, pieces] of byFile) {
        const m = mapFile(file);
        for (const p of pieces) {
          if (hashFirst) check(p, crc32FromMap(m.mapId, p.offset, p.length));
          const runs = runsOf(p);
          copyRunsFromMapIntoBuffer(m.mapId, runs, runs.length / MAP_RUN_FIELDS, target);
        }
        unmapFile(m.mapId);
      }
    });
    const passes: Record<string, () => number> = {
      'pread + node:zlib (before)': () => cpuMs(() => {
        for (const [file, pieces] of byFile) {
          const fd = openSync(file, 'r');
          for (const p of pieces) {
            const buf = scratch.subarray(0, p.length);
            preadInto(fd, buf, p.offset);
            check(p, crc32(buf) >>> 0);
          }
          closeSync(fd);
        }
      }),
      'addon, fresh mapping (now)': () => cpuMs(() => {
        for (const [file, pieces] of byFile) {
          const m = mapFile(file);
          for (const p of pieces) check(p, crc32FromMap(m.mapId, p.offset, p.length));
          unmapFile(m.mapId);
        }
      }),
      'addon, pages mapped already': () => {
        const maps = [...byFile.keys()].map((f) => mapFile(f));
        const files = [...byFile.values()];
        files.forEach((pieces, i) => pieces.forEach((p) => crc32FromMap(maps[i]!.mapId, p.offset, p.length)));
        const ms = cpuMs(() => files.forEach((pieces, i) => pieces.forEach((p) => check(p, crc32FromMap(maps[i]!.mapId, p.offset, p.length)))));
        for (const m of maps) unmapFile(m.mapId);
        return ms;
      },
      'gather rows, fresh mapping': () => gather(false),
      'hash each piece, then gather': () => gather(true),
      'pread alone': () => cpuMs(() => {
        for (const [file, pieces] of byFile) {
          const fd = openSync(file, 'r');
          for (const p of pieces) preadInto(fd, scratch.subarray(0, p.length), p.offset);
          closeSync(fd);
        }
      }),
    };
    const times: Record<string, number[]> = Object.fromEntries(Object.keys(passes).map((k) => [k, []]));
    for (let r = 0; r < 7; r++) for (const [k, f] of Object.entries(passes)) times[k]!.push(f());
    process.stdout.write(`${(bytes / 2 ** 20).toFixed(0)} MiB of record batches in ${byFile.size} shards, CPU ms per pass (median of 7):\n`);
    for (const [k, v] of Object.entries(times)) {
      const med = [...v].sort((a, b) => a - b)[v.length >> 1]!;
      process.stdout.write(`  ${k.padEnd(32)} ${med.toFixed(1).padStart(7)} ms  ${(bytes / med / 1e6).toFixed(2).padStart(6)} GB/s\n`);
    }
  } finally {
    if (temp) rmSync(temp, { recursive: true, force: true });
  }
}

await main();
