// A manifest's `base`: the folder or S3 prefix holding its shards when they are not beside
// index.json (a manifest written with `gpufeed index --out`, for read-only data). Shard paths stay
// relative to the base and inside it (checkRelativeKey); the base itself is resolved here.
//
// Rules: an absolute path, file:// or s3:// URI is taken as is; a relative path is resolved
// against the folder (or prefix) holding index.json. A manifest on S3 may only name an S3 base, so
// a manifest fetched from a bucket can never make a reader open files on local disk.
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCodes, GpufeedError } from '../errors.js';

const URL_SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//;

/** The store URI (a local path or s3:// URI) of `base`, for a manifest in the store at `manifestUri`. */
export function resolveBaseUri(base: string, manifestUri: string, where: string): string {
  const bad = (why: string): GpufeedError =>
    new GpufeedError(ErrorCodes.MANIFEST_INVALID, `${where}: field base ${JSON.stringify(base)} ${why}`, { path: where, field: 'base' });
  const manifestOnS3 = manifestUri.startsWith('s3://');
  const scheme = URL_SCHEME.exec(base)?.[1]?.toLowerCase();
  if (scheme === 's3') return base;
  if (scheme === 'file') {
    if (manifestOnS3) throw bad('is on local disk; a manifest on S3 may only name an S3 base');
    return fileURLToPath(base);
  }
  if (scheme !== undefined) throw bad('has an unsupported scheme (use a folder path, file:// or s3://)');
  if (base.includes('\\')) throw bad('contains a backslash; use "/"');
  if (isAbsolute(base)) {
    if (manifestOnS3) throw bad('is on local disk; a manifest on S3 may only name an S3 base');
    return resolve(base);
  }
  if (!manifestOnS3) return resolve(fileURLToPath(manifestUri), base);
  // Relative to an S3 prefix: resolved inside the same bucket, never above its root.
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(manifestUri);
  if (!m) throw bad(`cannot be resolved against ${manifestUri}`);
  const parts = (m[2] ?? '').split('/').filter((p) => p.length > 0);
  for (const p of base.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') {
      if (parts.length === 0) throw bad(`climbs above the root of bucket ${m[1]}`);
      parts.pop();
    } else parts.push(p);
  }
  return `s3://${m[1]}/${parts.join('/')}`;
}
