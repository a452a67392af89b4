// Options of the S3 store, their defaults and their validation (at construction, naming the option).
import { invalidOption } from '../errors.js';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import type { RetryEvent } from './request-runner.js';

const MiB = 1024 * 1024;

export interface S3StoreOptions {
  /** S3-compatible endpoint, e.g. http://127.0.0.1:9000; else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL; else AWS. Path-style addressing when set. */
  endpoint?: string;
  /** Region; else AWS_REGION / AWS_DEFAULT_REGION; else us-east-1. */
  region?: string;
  /** Explicit credentials; else the SDK's standard chain (env, profile, SSO, IMDS, ...). */
  credentials?: S3ClientConfig['credentials'];
  /** Most requests in flight for this store (also the keep-alive socket pool size). Default 16. */
  concurrency?: number;
  /** Parallel ranged GETs for one object. Default 4. */
  objectConcurrency?: number;
  /** Size of one ranged GET when reading a whole object. Default 8 MiB. */
  partSize?: number;
  /** Attempts per request or range, the first included. Default 5. */
  maxAttempts?: number;
  /** Deadline for one attempt of one request, body included, in ms. Default 30000. */
  attemptTimeoutMs?: number;
  /**
   * An attempt that gets no response (headers) by then is retried, in ms. Default 2500, so an
   * endpoint that accepts and never answers fails within about 14 s with the default 5 attempts.
   * Uploads (PUT, UploadPart) have none: their answer comes after the body.
   */
  firstByteTimeoutMs?: number;
  /** Deadline of one request, all its attempts and backoff included, in ms. Default 60000. */
  requestTimeoutMs?: number;
  /** Told before each retry (what, which object, why, the attempt); must not throw. */
  onRetry?: (event: RetryEvent) => void;
  /** TCP connect timeout in ms. Default 3000. */
  connectTimeoutMs?: number;
  /** First retry backoff ceiling in ms (doubles per attempt, full jitter). Default 100. */
  retryBaseMs?: number;
  /** Largest retry backoff ceiling in ms. Default 3000. */
  retryMaxMs?: number;
  /** Send a duplicate request for a range much slower than its peers. Default true. */
  hedge?: boolean;
  /** Hedge after this multiple of the peers' median duration. Default 3. */
  hedgeFactor?: number;
  /** Never hedge sooner than this, in ms. Default 200. */
  hedgeMinDelayMs?: number;
  /** Objects at least this large are uploaded with a multipart upload. Default 16 MiB. */
  multipartThreshold?: number;
  /** Part size of multipart uploads (S3 minimum 5 MiB except the last). Default 8 MiB. */
  uploadPartSize?: number;
}

export type ResolvedS3StoreOptions = Required<Omit<S3StoreOptions, 'endpoint' | 'credentials' | 'onRetry'>> &
  Pick<S3StoreOptions, 'endpoint' | 'credentials' | 'onRetry'>;

export function resolveS3StoreOptions(o: S3StoreOptions, env: NodeJS.ProcessEnv = process.env): ResolvedS3StoreOptions {
  const int = (name: keyof S3StoreOptions, value: unknown, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    if (value === undefined) return def;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw invalidOption(`s3.${name}`, `must be an integer in [${min}, ${max}], got ${JSON.stringify(value)}`);
    }
    return value;
  };
  const num = (name: keyof S3StoreOptions, value: unknown, def: number, min: number): number => {
    if (value === undefined) return def;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
      throw invalidOption(`s3.${name}`, `must be a number >= ${min}, got ${JSON.stringify(value)}`);
    }
    return value;
  };
  const endpoint = o.endpoint ?? (env.AWS_ENDPOINT_URL_S3 || undefined) ?? (env.AWS_ENDPOINT_URL || undefined);
  if (endpoint !== undefined) {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      throw invalidOption('s3Endpoint', `not a URL: ${JSON.stringify(endpoint)}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalidOption('s3Endpoint', `must be http:// or https://, got ${endpoint}`);
  }
  if (o.hedge !== undefined && typeof o.hedge !== 'boolean') throw invalidOption('s3.hedge', 'must be a boolean');
  if (o.onRetry !== undefined && typeof o.onRetry !== 'function') throw invalidOption('s3.onRetry', 'must be a function');
  const concurrency = int('concurrency', o.concurrency, 16, 1, 1024);
  const partSize = int('partSize', o.partSize, 8 * MiB, 1);
  const uploadPartSize = int('uploadPartSize', o.uploadPartSize, 8 * MiB, 1);
  return {
    endpoint,
    credentials: o.credentials,
    region: o.region ?? (env.AWS_REGION || undefined) ?? (env.AWS_DEFAULT_REGION || undefined) ?? 'us-east-1',
    concurrency,
    objectConcurrency: int('objectConcurrency', o.objectConcurrency, Math.min(4, concurrency), 1, 1024),
    partSize,
    maxAttempts: int('maxAttempts', o.maxAttempts, 5, 1, 100),
    attemptTimeoutMs: int('attemptTimeoutMs', o.attemptTimeoutMs, 30_000, 1),
    firstByteTimeoutMs: int('firstByteTimeoutMs', o.firstByteTimeoutMs, 2_500, 1),
    requestTimeoutMs: int('requestTimeoutMs', o.requestTimeoutMs, 60_000, 1),
    onRetry: o.onRetry,
    connectTimeoutMs: int('connectTimeoutMs', o.connectTimeoutMs, 3_000, 1),
    retryBaseMs: int('retryBaseMs', o.retryBaseMs, 100, 0),
    retryMaxMs: int('retryMaxMs', o.retryMaxMs, 3_000, 0),
    hedge: o.hedge ?? true,
    hedgeFactor: num('hedgeFactor', o.hedgeFactor, 3, 1),
    hedgeMinDelayMs: int('hedgeMinDelayMs', o.hedgeMinDelayMs, 200, 0),
    multipartThreshold: int('multipartThreshold', o.multipartThreshold, 16 * MiB, 1),
    uploadPartSize,
  };
}
