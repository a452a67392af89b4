// Storage factory keyed by URL scheme: a plain path or file:// is local; s3:// is object storage.
import { fileURLToPath } from 'node:url';
import { ErrorCodes, GpufeedError } from '../errors.js';
import { LocalStore } from './local.js';
import type { Store } from './store.js';
import type { S3StoreOptions } from './s3-options.js';

export type { Store, ObjectInfo, ByteRange, ReadOptions } from './store.js';
export type { S3StoreOptions } from './s3-options.js';

export interface StoreOptions {
  /** S3-compatible endpoint, e.g. http://127.0.0.1:9000 (else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL). */
  s3Endpoint?: string;
  /** S3 region (else AWS_REGION, else us-east-1). */
  s3Region?: string;
  /** Further options of the S3 store (retries, deadlines, part size, ...); see storage/s3-options.ts. */
  s3?: S3StoreOptions;
}

export function isS3Uri(uri: string): boolean {
  return uri.startsWith('s3://');
}

export async function openStore(uri: string, options: StoreOptions = {}): Promise<Store> {
  if (isS3Uri(uri)) {
    // Imported lazily: the AWS SDK is large and local datasets never need it.
    const { S3Store } = await import('./s3.js');
    return S3Store.fromUri(uri, options);
  }
  if (/^file:\/\//.test(uri)) return new LocalStore(fileURLToPath(uri));
  if (/^[a-zA-Z][a-zA-Z0-9+.-]+:\/\//.test(uri)) {
    throw new GpufeedError(ErrorCodes.INVALID_OPTION, `unsupported dataset URI scheme: ${uri} (use a local path, file:// or s3://)`, { option: 'uri', path: uri });
  }
  return new LocalStore(uri);
}
