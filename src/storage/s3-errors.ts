// Sorting S3 failures: which are final (not found, auth), which are worth a retry (throttling,
// 5xx, dropped or stalled connections), and how each becomes a GpufeedError with a stable code.
import { ErrorCodes, GpufeedError, type ErrorDetails } from '../errors.js';

export type FailureKind = 'not-found' | 'auth' | 'slow-down' | 'timeout' | 'retryable' | 'invalid-range' | 'fatal';

/** Thrown inside an attempt when its own deadline passed (not the caller's signal). */
export class DeadlineExceeded extends Error {
  constructor(readonly ms: number, readonly phase: 'attempt' | 'first byte' | 'request' = 'attempt', last?: string) {
    super(
      phase === 'first byte' ? `no response within ${ms} ms (first-byte timeout)`
        : phase === 'request' ? `request deadline of ${ms} ms passed${last ? `; last failure: ${last}` : ''}`
          : `no complete response within ${ms} ms`,
    );
    this.name = 'DeadlineExceeded';
  }
}

const NOT_FOUND_NAMES = new Set(['NoSuchKey', 'NotFound', 'NoSuchBucket', 'NoSuchUpload']);
const AUTH_NAMES = new Set([
  'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'ExpiredToken', 'InvalidToken',
  'TokenRefreshRequired', 'CredentialsProviderError', 'AuthorizationHeaderMalformed', 'Forbidden',
]);
const SLOW_DOWN_NAMES = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequests', 'TooManyRequestsException']);
const NETWORK_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH',
  'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET', 'ERR_HTTP2_STREAM_ERROR',
]);

interface SdkLikeError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $response?: { statusCode?: number };
  cause?: unknown;
}

export function httpStatusOf(err: unknown): number | undefined {
  const e = err as SdkLikeError | null;
  return e?.$metadata?.httpStatusCode ?? e?.$response?.statusCode;
}

export function classifyS3Error(err: unknown): FailureKind {
  if (err instanceof DeadlineExceeded) return 'timeout';
  if (err instanceof GpufeedError) {
    if (err.code === ErrorCodes.STORAGE_NOT_FOUND) return 'not-found';
    if (err.code === ErrorCodes.STORAGE_AUTH) return 'auth';
    if (err.code === ErrorCodes.SHARD_CORRUPT) return 'retryable';
    return 'fatal';
  }
  const e = (err ?? {}) as SdkLikeError;
  const name = e.name ?? '';
  const status = httpStatusOf(err);
  if (NOT_FOUND_NAMES.has(name) || status === 404) return 'not-found';
  if (AUTH_NAMES.has(name) || status === 403 || status === 401) return 'auth';
  if (SLOW_DOWN_NAMES.has(name) || status === 503 || status === 429) return 'slow-down';
  if (name === 'InvalidRange' || status === 416) return 'invalid-range';
  if (status !== undefined && status >= 500) return 'retryable';
  if (name === 'TimeoutError' || name === 'RequestTimeout' || name === 'RequestTimeoutException') return 'retryable';
  const code = e.code ?? (e.cause as SdkLikeError | undefined)?.code ?? '';
  if (NETWORK_CODES.has(code)) return 'retryable';
  // Node's http client reports a body cut short as "aborted" / "socket hang up" / premature close.
  if (/aborted|socket hang up|premature close|ECONNRESET|ECONNREFUSED|EPIPE|other side closed|terminated/i.test(e.message ?? '')) return 'retryable';
  if (status !== undefined && status >= 400) return 'fatal';
  return 'retryable';
}

/** Short text of what went wrong, for messages. */
export function describeS3Error(err: unknown): string {
  const e = (err ?? {}) as SdkLikeError;
  const status = httpStatusOf(err);
  const code = e.code ?? (e.cause as SdkLikeError | undefined)?.code;
  const parts = [e.name && e.name !== 'Error' ? e.name : undefined, status ? `HTTP ${status}` : undefined, code, e.message]
    .filter((p): p is string => typeof p === 'string' && p.length > 0);
  return [...new Set(parts)].join(': ') || String(err);
}

export interface FailureContext {
  /** The object, e.g. s3://bucket/prefix/key. */
  path: string;
  /** Human name of the operation, e.g. `GET bytes=0-8388607`. */
  what: string;
  details?: ErrorDetails;
  attempts?: number;
  bucket?: string;
}

/** The GpufeedError a final failure becomes. */
export function toStorageError(err: unknown, ctx: FailureContext): GpufeedError {
  if (err instanceof GpufeedError) return err;
  const kind = classifyS3Error(err);
  const name = (err as SdkLikeError | null)?.name;
  const tries = ctx.attempts && ctx.attempts > 1 ? ` after ${ctx.attempts} attempts` : '';
  const details: ErrorDetails = { path: ctx.path, ...ctx.details, attempts: ctx.attempts, cause: describeS3Error(err) };
  switch (kind) {
    case 'not-found':
      if (name === 'NoSuchBucket') {
        return new GpufeedError(ErrorCodes.STORAGE_NOT_FOUND, `${ctx.what} ${ctx.path}: bucket ${ctx.bucket ?? ''} does not exist`, details, { cause: err });
      }
      return new GpufeedError(ErrorCodes.STORAGE_NOT_FOUND, `${ctx.what} ${ctx.path}: not found (${describeS3Error(err)})`, details, { cause: err });
    case 'auth':
      return new GpufeedError(ErrorCodes.STORAGE_AUTH, `${ctx.what} ${ctx.path}: credentials refused (${describeS3Error(err)}); check AWS_ACCESS_KEY_ID / AWS_PROFILE`, details, { cause: err });
    case 'timeout':
      return new GpufeedError(ErrorCodes.STORAGE_TIMEOUT, `${ctx.what} ${ctx.path}: timed out${tries} (${describeS3Error(err)})`, details, { cause: err });
    case 'invalid-range':
      return new GpufeedError(ErrorCodes.SHARD_CORRUPT, `${ctx.what} ${ctx.path}: range not satisfiable; the object is shorter than expected`, details, { cause: err });
    default:
      return new GpufeedError(ErrorCodes.STORAGE_UNAVAILABLE, `${ctx.what} ${ctx.path}: failed${tries} (${describeS3Error(err)})`, details, { cause: err });
  }
}
