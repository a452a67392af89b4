// Shard paths in a manifest are relative and must stay inside the dataset. Every reader of a
// manifest goes through checkRelativeKey, so `../x`, `/etc/passwd` or `s3://other/x` never leave it;
// on local disk, checkResolvesInside also follows symlinks, so a shard (or a folder) that is a
// symlink to somewhere outside the dataset is refused too.
import { realpathSync } from 'node:fs';
import { dirname, sep } from 'node:path';
import { ErrorCodes, GpufeedError } from '../errors.js';

const URL_LIKE = /^[a-zA-Z][a-zA-Z0-9+.-]*:/;

/** Returns the normalized key, or throws GPUFEED_PATH_ESCAPE naming `what` (e.g. the manifest). */
export function checkRelativeKey(key: string, what: string): string {
  const escape = (why: string): GpufeedError =>
    new GpufeedError(ErrorCodes.PATH_ESCAPE, `${what}: shard path ${JSON.stringify(key)} ${why}`, { shard: key, path: what });
  if (typeof key !== 'string' || key.length === 0) throw escape('is empty');
  if (key.includes('\0')) throw escape('contains a NUL byte');
  if (key.includes('\\')) throw escape('contains a backslash; use "/"');
  if (key.startsWith('/')) throw escape('is absolute; it must be relative to the dataset');
  if (URL_LIKE.test(key)) throw escape('is a URL; it must be relative to the dataset');
  const parts = key.split('/');
  const kept: string[] = [];
  for (const part of parts) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw escape('escapes the dataset with ".."');
    kept.push(part);
  }
  if (kept.length === 0) throw escape('names no file');
  return kept.join('/');
}

/**
 * Checks that `path` (the dataset folder `root` joined with the normalized `key`) resolves, with
 * every symlink followed, to a place inside the resolved `root`; throws GPUFEED_PATH_ESCAPE naming
 * the shard otherwise. A path that does not exist (yet) is judged by its deepest existing folder,
 * so a missing shard stays a missing shard and a write cannot go through a folder link either.
 * Symlinks that stay inside the root are fine. `what` names the dataset in the message.
 */
export function checkResolvesInside(root: string, path: string, key: string, what: string): void {
  const escape = (why: string, real?: string): GpufeedError =>
    new GpufeedError(ErrorCodes.PATH_ESCAPE, `${what}: shard path ${JSON.stringify(key)} ${why}`, { shard: key, path: real ?? path });
  const rootReal = realOrUndefined(root);
  if (rootReal === undefined) return; // no dataset folder yet (prep creates it): nothing to follow
  let at = path;
  // Ends: each pass goes one folder up, and `root` itself resolves.
  for (;;) {
    let real: string | undefined;
    try {
      real = realOrUndefined(at);
    } catch (err) {
      if ((err as { code?: string }).code === 'ELOOP') throw escape('cannot be resolved: a symlink loop');
      return; // e.g. EACCES: the open that follows fails with its own error
    }
    if (real !== undefined) {
      if (real !== rootReal && !real.startsWith(rootReal.endsWith(sep) ? rootReal : rootReal + sep)) {
        throw escape(`resolves to ${real}, outside the dataset folder ${rootReal} (through a symlink)`, real);
      }
      return;
    }
    if (at === root) return;
    const up = dirname(at);
    if (up === at) return;
    at = up;
  }
}

/** realpath, or undefined when (part of) the path does not exist. */
function realOrUndefined(path: string): string | undefined {
  try {
    return realpathSync.native(path);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}
