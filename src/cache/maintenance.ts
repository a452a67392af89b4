// `gpufeed cache status|verify|clear`: inspect, re-hash and empty a cache dir. All three first
// remove what dead processes left (temp files, locks, leases), and never touch an entry a live
// process holds.
import { readdir, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { withIoErrors } from '../errors.js';
import { makeDirs } from '../storage/make-dirs.js';
import { withLock } from './file-lock.js';
import { hashFromEntryName } from './entry-name.js';
import { sha256File } from './hash-file.js';
import { cacheLayout, type CacheLayout } from './layout.js';
import { readLiveHolds } from './leases.js';
import { scanEntries, scanReservations } from './scan.js';
import { cleanStale } from './shard-cache.js';

export interface CacheStatus {
  cacheDir: string;
  entries: number;
  bytes: number;
  /** Downloads in progress by live processes. */
  downloading: number;
  downloadingBytes: number;
  /** Entries held (leased or pinned) by live processes. */
  held: number;
  /** Leftovers of dead processes removed by this call. */
  staleRemoved: number;
}

export interface VerifyResult {
  checked: number;
  ok: number;
  /** Entries whose content does not match the hash in their name (or whose name has none). */
  bad: { name: string; reason: string; removed: boolean }[];
}

async function prepare(dir: string): Promise<{ layout: CacheLayout; staleRemoved: number }> {
  const layout = cacheLayout(dir);
  for (const d of [layout.shards, layout.tmp, layout.locks, layout.leases]) await withIoErrors('creating cache folder', d, () => makeDirs(d));
  return { layout, staleRemoved: await cleanStale(layout) };
}

const lockOpts = (layout: CacheLayout, what: string) => ({ what: `cache ${layout.root}: ${what}`, timeoutMs: 60_000, pollMs: 20 });

export async function cacheStatus(dir: string): Promise<CacheStatus> {
  const { layout, staleRemoved } = await prepare(dir);
  const entries = await scanEntries(layout);
  const { live } = await scanReservations(layout);
  const holds = await readLiveHolds(layout.leases);
  return {
    cacheDir: layout.root,
    entries: entries.length,
    bytes: entries.reduce((a, e) => a + e.bytes, 0),
    downloading: live.length,
    downloadingBytes: live.reduce((a, r) => a + r.bytes, 0),
    held: entries.filter((e) => holds.has(e.name)).length,
    staleRemoved,
  };
}

/**
 * Re-hashes every entry against the sha256 in its name. Bad entries are removed, except one a live
 * process holds, which is reported with removed: false (its reader has it open; the next
 * first use by a new process detects it again).
 */
export async function verifyCache(dir: string): Promise<VerifyResult> {
  const { layout } = await prepare(dir);
  const result: VerifyResult = { checked: 0, ok: 0, bad: [] };
  for (const entry of await scanEntries(layout)) {
    result.checked++;
    const expected = hashFromEntryName(entry.name);
    let reason: string | undefined;
    if (!expected) reason = 'name carries no sha256 (not made by gpufeed)';
    else {
      const actual = await sha256File(entry.path).catch((err: unknown) => `unreadable: ${(err as Error).message}`);
      if (actual !== expected) reason = `sha256 ${actual}, expected ${expected}`;
    }
    if (!reason) {
      result.ok++;
      continue;
    }
    const removed = await withLock(layout.admitLock, lockOpts(layout, 'verify'), async () => {
      const holds = await readLiveHolds(layout.leases);
      if (holds.has(entry.name)) return false;
      await unlink(entry.path).catch(() => {});
      return true;
    });
    result.bad.push({ name: entry.name, reason, removed });
  }
  return result;
}

/** Removes every entry no live process holds; returns what was removed and what was kept. */
export async function clearCache(dir: string): Promise<{ removed: number; removedBytes: number; kept: number }> {
  const { layout } = await prepare(dir);
  return withLock(layout.admitLock, lockOpts(layout, 'clear'), async () => {
    const holds = await readLiveHolds(layout.leases);
    let removed = 0;
    let removedBytes = 0;
    let kept = 0;
    for (const entry of await scanEntries(layout)) {
      if (holds.has(entry.name)) {
        kept++;
        continue;
      }
      await rm(entry.path, { force: true });
      removed++;
      removedBytes += entry.bytes;
    }
    // Leftover files the cache did not name (e.g. from an older layout) in tmp/ are stale too.
    for (const f of await readdir(layout.tmp).catch(() => [] as string[])) {
      if (!f.endsWith('.part')) await rm(join(layout.tmp, f), { force: true });
    }
    return { removed, removedBytes, kept };
  });
}
