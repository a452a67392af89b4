// Shard paths in a manifest are relative and must stay inside the dataset. Every reader of a
// manifest goes through checkRelativeKey, so `../x`, `/etc/passwd` or `s3://other/x` never leave it.
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
