// Content hashes of shards: `sha256:<hex>` of the whole file, computed streaming.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Store } from '../storage/store.js';

export const HASH_PREFIX = 'sha256:';

export function hashBytes(...parts: Uint8Array[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return HASH_PREFIX + h.digest('hex');
}

export async function hashFile(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return HASH_PREFIX + h.digest('hex');
}

/**
 * Hashes `size` bytes of an object through ranged reads, so it works the same on any store and
 * never holds more than one chunk. Local stores read the file in place.
 */
export async function hashObject(store: Store, key: string, size: number, chunkBytes = 8 << 20): Promise<string> {
  const local = store.localPath(key);
  if (local) return hashFile(local);
  const h = createHash('sha256');
  for (let offset = 0; offset < size; offset += chunkBytes) {
    h.update(await store.get(key, { offset, length: Math.min(chunkBytes, size - offset) }));
  }
  return HASH_PREFIX + h.digest('hex');
}
