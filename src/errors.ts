// One error hierarchy with stable codes. Codes are the contract: messages may improve, codes do not
// change. Errors cross worker-thread and process boundaries as plain objects (see serializeError),
// so a decode worker's hash mismatch reaches the training loop with the same code.

export const ErrorCodes = {
  /** An option is missing, of the wrong type, or out of range. */
  INVALID_OPTION: 'GPUFEED_INVALID_OPTION',
  /** index.json is missing. */
  MANIFEST_NOT_FOUND: 'GPUFEED_MANIFEST_NOT_FOUND',
  /** index.json is not valid JSON, truncated, or fails schema validation. */
  MANIFEST_INVALID: 'GPUFEED_MANIFEST_INVALID',
  /** A shard path escapes the dataset (`..`, absolute, URL). */
  PATH_ESCAPE: 'GPUFEED_PATH_ESCAPE',
  /** A shard named in the manifest does not exist. */
  SHARD_MISSING: 'GPUFEED_SHARD_MISSING',
  /** A shard is shorter (or longer) than the manifest says, or cannot be parsed. */
  SHARD_CORRUPT: 'GPUFEED_SHARD_CORRUPT',
  /** A shard's content hash differs from the manifest's. */
  HASH_MISMATCH: 'GPUFEED_HASH_MISMATCH',
  /** A requested column is not in the schema. */
  UNKNOWN_COLUMN: 'GPUFEED_UNKNOWN_COLUMN',
  /** The streams of a mixture disagree on a selected column's type. */
  SCHEMA_MISMATCH: 'GPUFEED_SCHEMA_MISMATCH',
  /** A column type gpufeed cannot carry. */
  UNSUPPORTED_TYPE: 'GPUFEED_UNSUPPORTED_TYPE',
  /** Input data for prep is malformed (bad JSON line, wrong shape, mixed types). */
  BAD_INPUT: 'GPUFEED_BAD_INPUT',
  /** prep output is not empty and --overwrite was not given. */
  OUTPUT_NOT_EMPTY: 'GPUFEED_OUTPUT_NOT_EMPTY',
  /** Native addon failed (allocation, mapping). */
  NATIVE: 'GPUFEED_NATIVE',
  /** Launcher environment or world options are inconsistent. */
  WORLD_INVALID: 'GPUFEED_WORLD_INVALID',
  /** A resume state does not fit the dataset or options it is resumed with. */
  RESUME_MISMATCH: 'GPUFEED_RESUME_MISMATCH',
  /** More rows were quarantined (onCorrupt: 'skip') than the maxQuarantined option allows. */
  QUARANTINE_LIMIT: 'GPUFEED_QUARANTINE_LIMIT',
  /** Storage: object or bucket not found. */
  STORAGE_NOT_FOUND: 'GPUFEED_STORAGE_NOT_FOUND',
  /** Storage: credentials refused. */
  STORAGE_AUTH: 'GPUFEED_STORAGE_AUTH',
  /** Storage: endpoint unreachable, or retries exhausted. */
  STORAGE_UNAVAILABLE: 'GPUFEED_STORAGE_UNAVAILABLE',
  /** Storage: a request passed its deadline on every attempt. */
  STORAGE_TIMEOUT: 'GPUFEED_STORAGE_TIMEOUT',
  /** A file-system operation on a named path failed (ENOSPC, EROFS, EACCES, ENOTDIR, ...); the errno is named. */
  IO: 'GPUFEED_IO',
  /** Cache budget or disk floor too small for what must be held at once. */
  CACHE_BUDGET: 'GPUFEED_CACHE_BUDGET',
  /** The loader or bridge was closed, or the peer process went away. */
  CLOSED: 'GPUFEED_CLOSED',
  /** A bridge protocol violation between gpufeed and a consumer process. */
  PROTOCOL: 'GPUFEED_PROTOCOL',
  /** The consumer waited longer than stallTimeout for a batch, with stallAction 'fail' (metrics/stall.ts). */
  STALL: 'GPUFEED_STALL',
  /** A bug: an invariant inside gpufeed did not hold. */
  INTERNAL: 'GPUFEED_INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

const knownCodes = new Set<string>(Object.values(ErrorCodes));

export interface ErrorDetails {
  /** File, object key or URI the error is about. */
  path?: string;
  /** Shard path as written in the manifest. */
  shard?: string;
  /** Option name, e.g. `batchSize`. */
  option?: string;
  /** Column name. */
  column?: string;
  /** Byte range `[offset, offset + length)` of a ranged read. */
  range?: [number, number];
  /** Anything else that helps, JSON-serializable. */
  [key: string]: unknown;
}

export class GpufeedError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GpufeedError';
    this.code = code;
    this.details = details;
  }

  toJSON(): SerializedError {
    return serializeError(this);
  }
}

export interface SerializedError {
  name: string;
  code: string;
  message: string;
  details?: ErrorDetails;
  stack?: string;
}

/** Flattens any thrown value into a structured-clone and JSON safe object. */
export function serializeError(err: unknown): SerializedError {
  if (err instanceof GpufeedError) {
    return { name: err.name, code: err.code, message: err.message, details: err.details, stack: err.stack };
  }
  if (err instanceof Error) {
    const { code, details } = err as { code?: unknown; details?: unknown };
    const known = typeof code === 'string' && knownCodes.has(code);
    return {
      name: err.name,
      code: known ? code : ErrorCodes.INTERNAL,
      message: err.message,
      // A GpufeedError of another copy of this module (instanceof fails across them) keeps what it names.
      ...(known && details && typeof details === 'object' ? { details: details as ErrorDetails } : {}),
      stack: err.stack,
    };
  }
  return { name: 'Error', code: ErrorCodes.INTERNAL, message: String(err) };
}

/** Rebuilds a GpufeedError from serializeError's output, keeping code and details. */
export function deserializeError(s: SerializedError): GpufeedError {
  const code = (knownCodes.has(s.code) ? s.code : ErrorCodes.INTERNAL) as ErrorCode;
  const err = new GpufeedError(code, s.message, s.details ?? {});
  if (s.stack) err.stack = s.stack;
  return err;
}

/**
 * Piscina rejects with the worker's error after a structured clone, which keeps `message` and
 * own enumerable properties (code, details) but not the class. This restores the class.
 */
export function reviveError(err: unknown): unknown {
  if (err instanceof GpufeedError) return err;
  if (err && typeof err === 'object' && typeof (err as { code?: unknown }).code === 'string') {
    const e = err as { code: string; message?: string; details?: ErrorDetails; stack?: string; name?: string };
    if (knownCodes.has(e.code)) {
      return deserializeError({ name: e.name ?? 'GpufeedError', code: e.code, message: e.message ?? '', details: e.details ?? {}, stack: e.stack });
    }
  }
  return err;
}

export function invalidOption(option: string, message: string, details: ErrorDetails = {}): GpufeedError {
  return new GpufeedError(ErrorCodes.INVALID_OPTION, `option ${option}: ${message}`, { option, ...details });
}

const FS_CAUSES: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTDIR: 'a component of the path is not a directory',
  EISDIR: 'is a directory',
  ENOENT: 'no such file or directory',
  EEXIST: 'already exists',
  EMFILE: 'too many open files',
  ENAMETOOLONG: 'file name too long',
  EIO: 'input/output error',
};

/** A Node.js system error from the file system (it has an errno code such as ENOSPC and a syscall). */
export function isFsError(err: unknown): err is NodeJS.ErrnoException {
  const e = err as { code?: unknown; syscall?: unknown } | null;
  return !!e && typeof e === 'object' && typeof e.code === 'string' && /^E[A-Z0-9]+$/.test(e.code) && typeof e.syscall === 'string';
}

/**
 * GPUFEED_IO for a failed file-system call: `${action} ${path}: cause (ERRNO)`. `path` is the file
 * gpufeed was working on (the errno's own path, if it differs, goes into details).
 */
export function ioError(action: string, path: string, err: unknown): GpufeedError {
  const e = err as NodeJS.ErrnoException;
  const errno = typeof e?.code === 'string' ? e.code : 'unknown';
  const cause = FS_CAUSES[errno] ?? (e?.message ?? String(err));
  const details: ErrorDetails = { path, errno };
  if (e?.syscall) details.syscall = e.syscall;
  if (e?.path && e.path !== path) details.sysPath = e.path;
  return new GpufeedError(ErrorCodes.IO, `${action} ${path}: ${cause} (${errno})`, details, { cause: err });
}

/** Runs a file-system step, turning a system error into GPUFEED_IO; GpufeedErrors pass unchanged. */
export async function withIoErrors<T>(action: string, path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (!(err instanceof GpufeedError) && isFsError(err)) throw ioError(action, path, err);
    throw err;
  }
}
