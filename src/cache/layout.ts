// Where things live inside a cache dir. Everything a crash can leave behind is named after its
// owner (pid + start time), so the next run can tell stale leftovers from live work.
//   shards/<name>                         complete, verified shards (readers only ever see these)
//   tmp/<name>.<owner>.<bytes>.part       downloads in progress; also the byte reservation
//   locks/<name>.lock, locks/admit.lock   exclusive locks (content: owner)
//   leases/<owner>-<n>.json               per cache instance: shards it holds (leased or pinned)
import { join } from 'node:path';
import { parseOwnerToken, type ProcessIdentity } from './process-identity.js';

export interface CacheLayout {
  root: string;
  shards: string;
  tmp: string;
  locks: string;
  leases: string;
  admitLock: string;
}

export function cacheLayout(root: string): CacheLayout {
  return {
    root,
    shards: join(root, 'shards'),
    tmp: join(root, 'tmp'),
    locks: join(root, 'locks'),
    leases: join(root, 'leases'),
    admitLock: join(root, 'locks', 'admit.lock'),
  };
}

export function tempFileName(name: string, owner: string, bytes: number): string {
  return `${name}.${owner}.${bytes}.part`;
}

export interface TempFileInfo {
  name: string;
  owner: ProcessIdentity;
  bytes: number;
}

export function parseTempFileName(file: string): TempFileInfo | undefined {
  const m = /^(.+)\.(\d+-\d+)\.(\d+)\.part$/.exec(file);
  const owner = m?.[2] ? parseOwnerToken(m[2]) : undefined;
  if (!m?.[1] || !m[3] || !owner) return undefined;
  return { name: m[1], owner, bytes: Number(m[3]) };
}
