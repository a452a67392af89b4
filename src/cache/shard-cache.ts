// The node-local shard cache: whole shards on local disk under a byte budget and a free-disk floor,
// shared by the processes (ranks) of a node. A shard is downloaded once into a private temp file,
// hashed, and renamed into shards/ only when complete and matching the manifest, so a reader never
// sees a partial shard. Budget accounting, eviction, and the lease bookkeeping that keeps readers'
// files in place all run under one short cross-process lock (locks/admit.lock) and always from a
// fresh scan of the directory, so they hold whatever other processes did or how they died.
import { open, readdir, rename, stat, statfs, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { LRUCache } from 'lru-cache';
import { ErrorCodes, GpufeedError, ioError, isFsError, withIoErrors } from '../errors.js';
import { makeDirs } from '../storage/make-dirs.js';
import type { ShardEntry } from '../dataset/types.js';
import { sleep } from '../storage/backoff.js';
import { cacheEntryName, sha256HexOf } from './entry-name.js';
import { acquireLock, readLockOwner, withLock, type LockOptions } from './file-lock.js';
import { sha256File } from './hash-file.js';
import { cacheLayout, tempFileName, type CacheLayout } from './layout.js';
import { LeaseFile, readLiveHolds, type HoldKind } from './leases.js';
import { resolveCacheOptions, type CacheEvent, type ResolvedShardCacheOptions, type ShardCacheOptions } from './options.js';
import { isAlive, ownerToken, parseOwnerToken } from './process-identity.js';
import { scanEntries, scanReservations } from './scan.js';

/** What the cache needs to know about a shard, and how to fetch it into a local file. */
export interface ShardRef {
  /** Dataset root URI (part of the cache name, so datasets never collide). */
  datasetUri: string;
  shard: Pick<ShardEntry, 'path' | 'bytes' | 'hash'>;
  /** Writes the whole shard to `destPath`. */
  fetch(destPath: string, signal?: AbortSignal): Promise<void>;
}

export interface CacheHandle {
  /** The complete shard; stays in the cache (not evicted) until release(). */
  readonly path: string;
  readonly name: string;
  release(): void;
}

export interface CacheStats {
  hits: number;
  downloads: number;
  bytesDownloaded: number;
  evictions: number;
  hashMismatches: number;
  corruptRemoved: number;
}

/** A prefetch that found no room: not an error, the prefetcher just tries later. */
export class NoRoomForPrefetch extends Error {
  constructor(readonly shard: string, readonly bytes: number) {
    super(`no room in the cache to prefetch ${shard} (${bytes} bytes) now`);
    this.name = 'NoRoomForPrefetch';
  }
}

/** A download of this process waiting for a shard's lock, or running (stall reports read it). */
export interface CacheActivity {
  shard: string;
  lockPath: string;
  phase: 'lock' | 'download';
  /** Date.now() when the phase began. */
  since: number;
}

export class ShardCache {
  /** Downloads of this process now waiting for their lock or running. */
  readonly activity = new Map<number, CacheActivity>();
  #activityTokens = 0;
  readonly options: ResolvedShardCacheOptions;
  readonly layout: CacheLayout;
  readonly stats: CacheStats = { hits: 0, downloads: 0, bytesDownloaded: 0, evictions: 0, hashMismatches: 0, corruptRemoved: 0 };
  private readonly leases: LeaseFile;
  private readonly inflight = new Map<string, Promise<CacheHandle | undefined>>();
  /** Entries this instance hashed, by inode, so each is verified once per instance. */
  private readonly verified = new Map<string, number>();
  private ready: Promise<void> | undefined;
  private closed = false;

  constructor(options: ShardCacheOptions = {}) {
    this.options = resolveCacheOptions(options);
    this.layout = cacheLayout(this.options.cacheDir);
    this.leases = new LeaseFile(this.layout.leases);
  }

  /** Creates the cache dirs and removes what dead processes left behind. Called lazily by acquire(). */
  init(): Promise<void> {
    this.ready ??= (async () => {
      for (const dir of [this.layout.root, this.layout.shards, this.layout.tmp, this.layout.locks, this.layout.leases]) {
        await withIoErrors('creating cache folder', dir, () => makeDirs(dir));
      }
      await cleanStale(this.layout);
    })();
    // A failed init (read-only or full disk) is retried by the next acquire, not remembered.
    this.ready.catch(() => { this.ready = undefined; });
    return this.ready;
  }

  entryName(ref: ShardRef): string {
    return cacheEntryName(ref.datasetUri, ref.shard.path, ref.shard.hash);
  }

  /**
   * The complete shard in the cache, fetched if needed. `kind` 'lease': a reader needs it now;
   * 'pin': a prefetch (gives up with NoRoomForPrefetch rather than wait for room).
   */
  async acquire(ref: ShardRef, kind: HoldKind = 'lease', signal?: AbortSignal): Promise<CacheHandle> {
    if (this.closed) throw new GpufeedError(ErrorCodes.CLOSED, 'shard cache is closed');
    await this.init();
    sha256HexOf(ref.shard.hash, ref.shard.path);
    const name = this.entryName(ref);
    // Bounded: each round either returns, or follows a download or a removal of a bad file.
    for (let round = 0; round < 6; round++) {
      signal?.throwIfAborted();
      const hit = await this.tryHit(name, ref, kind, signal);
      if (hit) return hit;
      let download = this.inflight.get(name);
      const mine = !download;
      if (!download) {
        download = this.download(name, ref, kind, signal);
        this.inflight.set(name, download);
        download.finally(() => this.inflight.delete(name)).catch(() => {});
      }
      const handle = await download.catch((err: unknown) => {
        if (mine) throw err;
        return undefined; // the other caller's failure is theirs to report; try again ourselves
      });
      if (handle && mine) return handle;
    }
    throw new GpufeedError(ErrorCodes.CACHE_BUDGET, `cache ${this.layout.root}: shard ${ref.shard.path} kept being evicted before it could be used; the cache is too small for the processes sharing it`, {
      shard: ref.shard.path, path: this.layout.root,
    });
  }

  /** Bytes used by complete entries and in-progress downloads, from a scan. */
  async usedBytes(): Promise<number> {
    await this.init();
    const entries = await scanEntries(this.layout);
    const { live } = await scanReservations(this.layout);
    return entries.reduce((a, e) => a + e.bytes, 0) + live.reduce((a, r) => a + r.bytes, 0);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.leases.delete();
  }

  private lockOptions(what: string, timeoutMs: number, signal?: AbortSignal): LockOptions {
    return { what, timeoutMs, pollMs: this.options.pollMs, signal };
  }

  private admitLocked<T>(what: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    // The admit lock is only ever held for a scan and a few renames; 60 s means its holder is wedged.
    return withLock(this.layout.admitLock, this.lockOptions(`cache ${this.layout.root}: ${what}`, 60_000, signal), fn);
  }

  private handle(name: string, kind: HoldKind): CacheHandle {
    let released = false;
    return {
      path: join(this.layout.shards, name),
      name,
      release: () => {
        if (released) return;
        released = true;
        this.leases.remove(name, kind);
        if (!this.closed) this.leases.flush().catch(() => {});
      },
    };
  }

  private emit(type: CacheEvent['type'], name: string, bytes: number, shard?: string): void {
    this.options.onEvent?.({ type, name, shard, bytes, pid: process.pid, time: Date.now() });
  }

  /** A hold on the entry if it is complete (and, once per instance, re-hashed); else undefined. */
  private async tryHit(name: string, ref: ShardRef, kind: HoldKind, signal?: AbortSignal): Promise<CacheHandle | undefined> {
    const path = join(this.layout.shards, name);
    const found = await this.admitLocked(`lease ${ref.shard.path}`, async () => {
      const st = await stat(path).catch(() => undefined);
      if (!st) return undefined;
      if (st.size !== ref.shard.bytes) {
        const holds = await readLiveHolds(this.layout.leases);
        if (!holds.has(name)) {
          await unlink(path).catch(() => {});
          this.stats.corruptRemoved++;
          this.emit('corrupt', name, st.size, ref.shard.path);
        }
        return undefined;
      }
      this.leases.add(name, kind);
      await this.leases.flush();
      return st;
    }, signal);
    if (!found) return undefined;
    const handle = this.handle(name, kind);
    try {
      if (this.options.verifyOnFirstUse && this.verified.get(name) !== found.ino) {
        const actual = await sha256File(path, signal);
        if (actual !== sha256HexOf(ref.shard.hash, ref.shard.path)) {
          handle.release();
          await this.removeBadEntry(name, found.ino, ref.shard.path);
          return undefined;
        }
        this.verified.set(name, found.ino);
      }
      // mtime is the cross-process "last used" that eviction orders by.
      const now = new Date();
      await utimes(path, now, now).catch(() => {});
    } catch (err) {
      handle.release();
      throw err;
    }
    this.stats.hits++;
    this.emit('hit', name, ref.shard.bytes, ref.shard.path);
    return handle;
  }

  private async removeBadEntry(name: string, ino: number, shard: string): Promise<void> {
    const path = join(this.layout.shards, name);
    await this.admitLocked(`remove corrupt ${shard}`, async () => {
      const st = await stat(path).catch(() => undefined);
      if (st && st.ino === ino) await unlink(path).catch(() => {});
    });
    this.stats.corruptRemoved++;
    this.emit('corrupt', name, 0, shard);
  }

  /** Downloads under the per-shard lock; resolves a held handle, or undefined if another process did it. */
  private async download(name: string, ref: ShardRef, kind: HoldKind, signal?: AbortSignal): Promise<CacheHandle | undefined> {
    const finalPath = join(this.layout.shards, name);
    const lockPath = join(this.layout.locks, `${name}.lock`);
    const token = ++this.#activityTokens;
    const activity: CacheActivity = { shard: ref.shard.path, lockPath, phase: 'lock', since: Date.now() };
    this.activity.set(token, activity);
    try {
      return await this.downloadLocked(name, finalPath, lockPath, activity, ref, kind, signal);
    } finally {
      this.activity.delete(token);
    }
  }

  private async downloadLocked(name: string, finalPath: string, lockPath: string, activity: CacheActivity, ref: ShardRef, kind: HoldKind, signal?: AbortSignal): Promise<CacheHandle | undefined> {
    const lock = await acquireLock(lockPath, {
      ...this.lockOptions(`cache ${this.layout.root}: download of ${ref.shard.path}`, this.options.lockTimeoutMs, signal),
      // Another process is downloading it: stop waiting as soon as it is in place.
      stopWaiting: async () => (await stat(finalPath).catch(() => undefined)) !== undefined,
    });
    if (!lock) return undefined;
    activity.phase = 'download';
    activity.since = Date.now();
    try {
      if ((await stat(finalPath).catch(() => undefined)) !== undefined) return undefined;
      const expected = sha256HexOf(ref.shard.hash, ref.shard.path);
      for (let attempt = 1; attempt <= 2; attempt++) {
        const tmp = await this.admit(name, ref, kind, signal);
        let renamed = false;
        try {
          this.emit('download-start', name, ref.shard.bytes, ref.shard.path);
          await ref.fetch(tmp, signal).catch((err: unknown) => {
            // The store's own errors pass; a file-system one here is the cache disk's (full, read-only).
            if (!(err instanceof GpufeedError) && isFsError(err)) throw ioError(`downloading shard ${ref.shard.path} into`, tmp, err);
            throw err;
          });
          const st = await stat(tmp);
          this.stats.downloads++;
          this.stats.bytesDownloaded += st.size;
          const actual = st.size === ref.shard.bytes ? await sha256File(tmp, signal) : undefined;
          if (actual === expected) {
            await this.admitLocked(`admit ${ref.shard.path}`, async () => {
              this.leases.add(name, kind);
              await this.leases.flush();
              await rename(tmp, finalPath);
            }, signal);
            renamed = true;
            const st2 = await stat(finalPath);
            this.verified.set(name, st2.ino);
            this.emit('download-end', name, st.size, ref.shard.path);
            return this.handle(name, kind);
          }
          this.stats.hashMismatches++;
          this.emit('hash-mismatch', name, st.size, ref.shard.path);
          if (attempt === 2) {
            if (st.size !== ref.shard.bytes) {
              throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${ref.shard.path} of ${ref.datasetUri}: downloaded ${st.size} bytes twice, the manifest says ${ref.shard.bytes}`, {
                shard: ref.shard.path, path: ref.datasetUri, expected: ref.shard.bytes, actual: st.size,
              });
            }
            throw new GpufeedError(ErrorCodes.HASH_MISMATCH, `shard ${ref.shard.path} of ${ref.datasetUri}: sha256 ${actual} after two downloads, the manifest says ${expected}`, {
              shard: ref.shard.path, path: ref.datasetUri, expected, actual,
            });
          }
        } catch (err) {
          if (renamed) this.leases.remove(name, kind);
          throw err;
        } finally {
          if (!renamed) await unlink(tmp).catch(() => {});
        }
      }
      throw new GpufeedError(ErrorCodes.INTERNAL, 'unreachable');
    } finally {
      await lock.release();
    }
  }

  /**
   * Makes room for `ref` and reserves it: evicts least-recently-used entries nobody holds (and,
   * for a reader, entries only pinned by prefetchers) until budget and disk floor allow it, then
   * creates the temp file whose name records the reservation. Returns the temp file's path.
   */
  private async admit(name: string, ref: ShardRef, kind: HoldKind, signal?: AbortSignal): Promise<string> {
    const bytes = ref.shard.bytes;
    const o = this.options;
    if (bytes > o.cacheBytes) {
      throw new GpufeedError(ErrorCodes.CACHE_BUDGET, `cacheBytes ${o.cacheBytes} is smaller than shard ${ref.shard.path} (${bytes} bytes); need at least ${bytes} bytes`, {
        option: 'cacheBytes', shard: ref.shard.path, needed: bytes,
      });
    }
    const deadline = Date.now() + o.admitTimeoutMs;
    for (let round = 0; ; round++) {
      const outcome = await this.admitLocked(`reserve ${ref.shard.path}`, async () => {
        // This instance's releases flush its lease file asynchronously; eviction reads lease files,
        // so wait for ours to be on disk, or an entry just released still looks leased.
        await this.leases.settled();
        const entries = await scanEntries(this.layout);
        const { live } = await scanReservations(this.layout);
        const holds = await readLiveHolds(this.layout.leases);
        const used = entries.reduce((a, e) => a + e.bytes, 0) + live.reduce((a, r) => a + r.bytes, 0);
        const fs = await statfs(this.layout.root);
        const pending = await pendingReservationBytes(this.layout, live);
        const diskFree = Number(fs.bavail) * Number(fs.bsize);
        const free = diskFree - pending;
        const toFree = Math.max(0, used + bytes - o.cacheBytes, o.minFreeBytes + bytes - free);

        // Least recently used first (lru-cache's reverse order), by the mtime every hit refreshes.
        const lru = new LRUCache<string, (typeof entries)[number]>({ max: Math.max(1, entries.length) });
        for (const e of [...entries].sort((a, b) => a.lastUsedMs - b.lastUsedMs)) lru.set(e.name, e);
        const unheld: typeof entries = [];
        const pinnedOnly: typeof entries = [];
        for (const e of lru.rvalues()) {
          if (!e) continue;
          const h = holds.get(e.name);
          if (!h) unheld.push(e);
          else if (h.leases === 0 && kind === 'lease') pinnedOnly.push(e);
        }
        const victims: typeof entries = [];
        let freed = 0;
        for (const e of [...unheld, ...pinnedOnly]) {
          if (freed >= toFree) break;
          victims.push(e);
          freed += e.bytes;
        }
        if (freed < toFree) {
          const held = entries.filter((e) => holds.get(e.name)?.leases).reduce((a, e) => a + e.bytes, 0);
          // Free space if every entry and download of the cache were gone: below the floor, no
          // eviction by anyone can ever make room, so waiting is pointless.
          const reservedOnDisk = live.reduce((a, r) => a + r.bytes, 0) - pending;
          const bestFree = diskFree + entries.reduce((a, e) => a + e.bytes, 0) + reservedOnDisk;
          return { ok: false as const, used, held, free, diskFree, floorUnreachable: bestFree < o.minFreeBytes + bytes };
        }
        for (const v of victims) {
          await unlink(v.path).catch(() => {});
          this.stats.evictions++;
          this.emit('evict', v.name, v.bytes);
        }
        const tmp = join(this.layout.tmp, tempFileName(name, ownerToken(), bytes));
        await withIoErrors('creating cache temp file', tmp, async () => (await open(tmp, 'wx')).close());
        return { ok: true as const, tmp };
      }, signal);
      if (outcome.ok) return outcome.tmp;
      if (outcome.floorUnreachable) {
        throw new GpufeedError(
          ErrorCodes.CACHE_BUDGET,
          `cache ${this.layout.root}: option minFreeBytes (--min-free-bytes) ${o.minFreeBytes} cannot be met for shard ${ref.shard.path} (${bytes} bytes): ` +
            `the disk has ${outcome.diskFree} bytes free and emptying the whole cache would not bring it to ${o.minFreeBytes + bytes}; free disk space, lower minFreeBytes or move cacheDir`,
          { option: 'minFreeBytes', shard: ref.shard.path, needed: o.minFreeBytes + bytes, free: outcome.diskFree, path: this.layout.root },
        );
      }
      if (kind === 'pin') throw new NoRoomForPrefetch(ref.shard.path, bytes);
      if (Date.now() >= deadline) {
        const diskShort = o.minFreeBytes + bytes > outcome.free + (outcome.used - outcome.held);
        throw new GpufeedError(
          ErrorCodes.CACHE_BUDGET,
          `cache ${this.layout.root}: no room for shard ${ref.shard.path} (${bytes} bytes) after ${o.admitTimeoutMs} ms: ` +
            `${outcome.held} bytes are held by live readers, cacheBytes is ${o.cacheBytes}; need at least ${outcome.held + bytes} bytes` +
            (diskShort ? ` and ${o.minFreeBytes + bytes} bytes free on disk (minFreeBytes ${o.minFreeBytes}, ${outcome.free} free)` : ''),
          { option: 'cacheBytes', shard: ref.shard.path, needed: outcome.held + bytes, path: this.layout.root },
        );
      }
      await sleep(o.pollMs * 5, signal);
    }
  }
}

/** Bytes live downloads will still write (reserved minus already on disk), for the disk floor. */
async function pendingReservationBytes(layout: CacheLayout, live: { file: string; bytes: number }[]): Promise<number> {
  let pending = 0;
  for (const r of live) {
    const st = await stat(join(layout.tmp, r.file)).catch(() => undefined);
    pending += Math.max(0, r.bytes - (st?.size ?? 0));
  }
  return pending;
}

/** Removes temp files, leases and locks of dead processes. Returns how many items were removed. */
export async function cleanStale(layout: CacheLayout): Promise<number> {
  let removed = (await scanReservations(layout)).removedStale;
  await readLiveHolds(layout.leases);
  let files: string[] = [];
  try {
    files = await readdir(layout.locks);
  } catch {
    return removed;
  }
  for (const file of files) {
    const path = join(layout.locks, file);
    if (file.endsWith('.lock')) {
      if ((await readLockOwner(path)).stale) {
        await unlink(path).catch(() => {});
        removed++;
      }
    } else if (file.endsWith('.new')) {
      // A lock's private staging file; its owner token follows the lock name.
      const m = /\.(\d+-\d+)\.[0-9a-f]+\.new$/.exec(file);
      const owner = m?.[1] ? parseOwnerToken(m[1]) : undefined;
      if (owner && !isAlive(owner)) {
        await unlink(path).catch(() => {});
        removed++;
      }
    }
  }
  return removed;
}

