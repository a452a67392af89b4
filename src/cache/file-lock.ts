// Exclusive lock files shared by the processes of one node. The lock is created atomically with its
// content already in it (write a private file, then link(2) it to the lock name: link fails with
// EEXIST like open(O_CREAT|O_EXCL), but no reader can see an empty lock). The content names the
// owner (pid + start time); a lock whose owner is dead is stale and is broken by the next waiter.
// Correctness of the cache never rests on a lock alone (downloads go to private temp files and are
// renamed into place), so the narrow races of breaking a stale lock cost at most a duplicate download.
import { link, readFile, unlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { ErrorCodes, GpufeedError } from '../errors.js';
import { sleep } from '../storage/backoff.js';
import { isAlive, ownerToken, parseOwnerToken } from './process-identity.js';

export interface LockOptions {
  /** Give up after this long, in ms. */
  timeoutMs: number;
  /** Poll interval while another process holds the lock, in ms. */
  pollMs: number;
  signal?: AbortSignal | undefined;
  /** Called between polls; return true to stop waiting (acquireLock then resolves undefined). */
  stopWaiting?: () => Promise<boolean> | boolean;
  /** What the lock protects, for messages. */
  what: string;
}

export interface HeldLock {
  readonly path: string;
  release(): Promise<void>;
}

/** Acquires `path`, or resolves undefined when `stopWaiting` said so; GPUFEED_STORAGE_TIMEOUT naming the lock and its holder after `timeoutMs`. */
export async function acquireLock(path: string, opts: LockOptions): Promise<HeldLock | undefined> {
  const token = `${ownerToken()}.${randomBytes(6).toString('hex')}`;
  const deadline = Date.now() + opts.timeoutMs;
  for (let round = 0; ; round++) {
    opts.signal?.throwIfAborted();
    if (await tryCreate(path, token)) {
      return { path, release: () => releaseLock(path, token) };
    }
    const holder = await readLockOwner(path);
    if (holder.stale) {
      await unlink(path).catch(() => {});
      continue;
    }
    if (opts.stopWaiting && (await opts.stopWaiting())) return undefined;
    if (Date.now() >= deadline) {
      throw new GpufeedError(ErrorCodes.STORAGE_TIMEOUT, `${opts.what}: lock ${path} still held by pid ${holder.pid ?? '?'} after ${opts.timeoutMs} ms`, { path, pid: holder.pid });
    }
    // Jitter so waiters of one lock do not poll in lockstep.
    await sleep(opts.pollMs * (0.5 + Math.random()), opts.signal);
  }
}

async function tryCreate(path: string, token: string): Promise<boolean> {
  const tmp = `${path}.${token}.new`;
  await writeFile(tmp, `${token}\n`);
  try {
    await link(tmp, path);
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/** The lock's owner, and whether it is certainly dead (stale). A vanished lock reads as stale. */
export async function readLockOwner(path: string): Promise<{ pid?: number; stale: boolean }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return { stale: false };
    throw err;
  }
  const owner = parseOwnerToken(text.trim().split('.')[0] ?? '');
  // Content is written before the lock exists, so unreadable content means damage: break it.
  if (!owner) return { stale: true };
  return { pid: owner.pid, stale: !isAlive(owner) };
}

async function releaseLock(path: string, token: string): Promise<void> {
  // Only remove the lock if it is still ours (a waiter may have broken it as stale meanwhile).
  const text = await readFile(path, 'utf8').catch(() => '');
  if (text.trim() === token) await unlink(path).catch(() => {});
}

/** Runs `fn` holding the lock. */
export async function withLock<T>(path: string, opts: LockOptions, fn: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(path, opts);
  if (!lock) throw new GpufeedError(ErrorCodes.INTERNAL, `${opts.what}: lock wait stopped without a lock`, { path });
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
