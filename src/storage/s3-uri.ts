// s3://bucket/prefix parsing. The prefix is kept with a trailing '/' (or empty for the bucket root)
// so keys join to it by concatenation.
import { ErrorCodes, GpufeedError } from '../errors.js';

export interface S3Location {
  bucket: string;
  /** '' or 'a/b/' */
  prefix: string;
}

export function parseS3Uri(uri: string): S3Location {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  const bucket = m?.[1];
  if (!m || !bucket) {
    throw new GpufeedError(ErrorCodes.INVALID_OPTION, `not an S3 URI: ${uri} (expected s3://bucket/prefix)`, { option: 'uri', path: uri });
  }
  const parts = (m[2] ?? '').split('/').filter((p) => p.length > 0);
  if (parts.some((p) => p === '.' || p === '..')) {
    throw new GpufeedError(ErrorCodes.INVALID_OPTION, `S3 URI ${uri}: prefix must not contain "." or ".." segments`, { option: 'uri', path: uri });
  }
  return { bucket, prefix: parts.length > 0 ? `${parts.join('/')}/` : '' };
}

/** s3://bucket/prefix/key (or the root itself without a key, with no trailing '/'). */
export function formatS3Uri(loc: S3Location, key = ''): string {
  return `s3://${loc.bucket}/${loc.prefix}${key}`.replace(/\/+$/, '');
}
