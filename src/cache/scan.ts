// Reading the cache dir's real state: complete entries with their sizes and last-use times, and the
// byte reservations of downloads in progress. Budget accounting is always done from this scan, so
// it holds across processes however they came and went.
import { readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { isAlive } from './process-identity.js';
import { parseTempFileName, type CacheLayout } from './layout.js';

export interface CacheEntryInfo {
  name: string;
  path: string;
  bytes: number;
  /** Last use (hits touch the file), ms since epoch. */
  lastUsedMs: number;
}

export interface Reservation {
  file: string;
  name: string;
  bytes: number;
  pid: number;
}

export async function scanEntries(layout: CacheLayout): Promise<CacheEntryInfo[]> {
  const out: CacheEntryInfo[] = [];
  let names: string[];
  try {
    names = await readdir(layout.shards);
  } catch {
    return out;
  }
  for (const name of names) {
    const path = join(layout.shards, name);
    try {
      const st = await stat(path);
      if (st.isFile()) out.push({ name, path, bytes: st.size, lastUsedMs: st.mtimeMs });
    } catch {
      // evicted between readdir and stat
    }
  }
  return out;
}

/** Live downloads' reservations; temp files of dead owners (killed mid-download) are removed. */
export async function scanReservations(layout: CacheLayout): Promise<{ live: Reservation[]; removedStale: number }> {
  const live: Reservation[] = [];
  let removedStale = 0;
  let files: string[];
  try {
    files = await readdir(layout.tmp);
  } catch {
    return { live, removedStale };
  }
  for (const file of files) {
    const info = parseTempFileName(file);
    if (!info) continue;
    if (!isAlive(info.owner)) {
      await unlink(join(layout.tmp, file)).catch(() => {});
      removedStale++;
      continue;
    }
    live.push({ file, name: info.name, bytes: info.bytes, pid: info.owner.pid });
  }
  return { live, removedStale };
}
