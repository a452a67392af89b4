// S3 (and S3-compatible) Store. Whole objects are read as parallel ranged GETs, each range with its
// own deadline, retries and hedging (request-runner.ts); every response body is consumed or
// destroyed so keep-alive sockets go back to the pool.
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { open, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import {
  S3Client, DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand,
  CreateMultipartUploadCommand, UploadPartCommand, CompleteMultipartUploadCommand, AbortMultipartUploadCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { ErrorCodes, GpufeedError } from '../errors.js';
import { checkRelativeKey } from '../dataset/paths.js';
import { AdaptiveLimiter } from './adaptive-limiter.js';
import { RequestRunner, type FirstByte, type RequestStats } from './request-runner.js';
import type { RequestLog } from './request-log.js';
import { resolveS3StoreOptions, type ResolvedS3StoreOptions, type S3StoreOptions } from './s3-options.js';
import { formatS3Uri, parseS3Uri, type S3Location } from './s3-uri.js';
import { forEachBounded } from './for-each-bounded.js';
import type { ByteRange, ObjectInfo, ReadOptions, Store } from './store.js';

export type { S3StoreOptions } from './s3-options.js';

/** A response body that ended before its Content-Length; retried like a reset connection. */
class TruncatedBody extends Error {
  constructor(got: number, wanted: number) {
    super(`response body ended after ${got} of ${wanted} bytes`);
    this.name = 'TruncatedBody';
  }
}

export interface S3StoreStats extends RequestStats {
  /** Response body bytes received, hedges and retries included. */
  bytesReceived: number;
  slowDowns: number;
}

export class S3Store implements Store {
  readonly uri: string;
  readonly location: S3Location;
  readonly options: ResolvedS3StoreOptions;
  readonly client: S3Client;
  private readonly runner: RequestRunner;
  private readonly agent: HttpAgent | HttpsAgent;
  private bytesReceived = 0;
  private closed = false;

  /** The factory openStore() uses: `s3Endpoint`/`s3Region` from StoreOptions, the rest from `s3`. */
  static fromUri(uri: string, options: { s3Endpoint?: string; s3Region?: string; s3?: S3StoreOptions } = {}): S3Store {
    const extra = options.s3 ?? {};
    return new S3Store(uri, {
      ...extra,
      ...(options.s3Endpoint !== undefined ? { endpoint: options.s3Endpoint } : {}),
      ...(options.s3Region !== undefined ? { region: options.s3Region } : {}),
    });
  }

  constructor(uri: string, options: S3StoreOptions = {}) {
    this.location = parseS3Uri(uri);
    this.uri = formatS3Uri(this.location);
    this.options = resolveS3StoreOptions(options);
    const o = this.options;
    const https = o.endpoint ? o.endpoint.startsWith('https:') : true;
    // Keep-alive sockets sized to the request concurrency, so parallel ranges reuse connections.
    const agentOptions = { keepAlive: true, maxSockets: o.concurrency, maxFreeSockets: o.concurrency };
    this.agent = https ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions);
    this.client = new S3Client({
      region: o.region,
      ...(o.endpoint ? { endpoint: o.endpoint, forcePathStyle: true } : {}),
      ...(o.credentials ? { credentials: o.credentials } : {}),
      // We retry ourselves, body included (request-runner.ts); SDK retries would multiply attempts.
      maxAttempts: 1,
      // Checksums only where an API requires them: s3rver and several S3-compatible stores reject
      // the newer default trailers, and ranged GETs have no whole-object checksum to validate.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        ...(https ? { httpsAgent: this.agent as HttpsAgent } : { httpAgent: this.agent as HttpAgent }),
        connectionTimeout: o.connectTimeoutMs,
      },
    });
    const limiter = new AdaptiveLimiter({ maxConcurrency: o.concurrency, pause: { baseMs: Math.max(50, o.retryBaseMs), maxMs: Math.max(500, o.retryMaxMs) } });
    this.runner = new RequestRunner(
      {
        maxAttempts: o.maxAttempts,
        attemptTimeoutMs: o.attemptTimeoutMs,
        firstByteTimeoutMs: o.firstByteTimeoutMs,
        requestTimeoutMs: o.requestTimeoutMs,
        ...(o.onRetry ? { onRetry: o.onRetry } : {}),
        backoff: { baseMs: o.retryBaseMs, maxMs: o.retryMaxMs },
        hedge: { enabled: o.hedge, factor: o.hedgeFactor, minDelayMs: o.hedgeMinDelayMs, minSamples: 5 },
      },
      limiter,
    );
  }

  /** Requests in flight and done, by operation and outcome (metrics and stall reports read it). */
  get requestLog(): RequestLog {
    return this.runner.log;
  }

  get stats(): S3StoreStats {
    return { ...this.runner.stats, bytesReceived: this.bytesReceived, slowDowns: this.runner.limiter.slowDowns };
  }

  localPath(_key: string): undefined {
    return undefined;
  }

  /** The full S3 key of a dataset-relative key. */
  objectKey(key: string): string {
    return `${this.location.prefix}${checkRelativeKey(key, this.uri)}`;
  }

  private objectUri(key: string): string {
    return `s3://${this.location.bucket}/${this.objectKey(key)}`;
  }

  async head(key: string, opts: ReadOptions = {}): Promise<ObjectInfo | undefined> {
    const Key = this.objectKey(key);
    try {
      const out = await this.runner.run(
        { path: this.objectUri(key), what: 'HEAD', bucket: this.location.bucket },
        (signal) => this.client.send(new HeadObjectCommand({ Bucket: this.location.bucket, Key }), { abortSignal: signal }),
        { signal: opts.signal },
      );
      return { key, size: out.ContentLength ?? 0 };
    } catch (err) {
      if (err instanceof GpufeedError && err.code === ErrorCodes.STORAGE_NOT_FOUND) {
        // A HEAD 404 has no body to say whether the key or the whole bucket is missing; ask once.
        await this.checkBucketExists(opts.signal);
        return undefined;
      }
      throw err;
    }
  }

  private bucketChecked = false;

  private async checkBucketExists(signal?: AbortSignal): Promise<void> {
    if (this.bucketChecked) return;
    const Bucket = this.location.bucket;
    try {
      await this.runner.run({ path: `s3://${Bucket}`, what: 'HEAD bucket', bucket: Bucket }, (s) =>
        this.client.send(new HeadBucketCommand({ Bucket }), { abortSignal: s }), { signal });
      this.bucketChecked = true;
    } catch (err) {
      if (err instanceof GpufeedError && err.code === ErrorCodes.STORAGE_NOT_FOUND) {
        throw new GpufeedError(ErrorCodes.STORAGE_NOT_FOUND, `${this.uri}: bucket ${Bucket} does not exist`, { path: this.uri, bucket: Bucket }, { cause: err });
      }
      // Listing the bucket may be forbidden where reading keys is allowed; that is not our question.
      this.bucketChecked = true;
    }
  }

  async get(key: string, range?: ByteRange, opts: ReadOptions = {}): Promise<Uint8Array> {
    if (range) {
      checkRange(range, this.objectUri(key));
      if (range.length === 0) return new Uint8Array(0);
      const out = Buffer.allocUnsafe(range.length);
      await this.readParts(key, range.offset, range.length, opts.signal, async (offset, data) => {
        data.copy(out, offset - range.offset);
      });
      return out;
    }
    const { first, total } = await this.readFirstPart(key, opts.signal);
    if (total <= first.length) return first;
    const out = Buffer.allocUnsafe(total);
    first.copy(out, 0);
    await this.readParts(key, first.length, total - first.length, opts.signal, async (offset, data) => {
      data.copy(out, offset);
    });
    return out;
  }

  async download(key: string, destPath: string, opts: ReadOptions = {}): Promise<number> {
    const fh = await open(destPath, 'w');
    try {
      const { first, total } = await this.readFirstPart(key, opts.signal);
      await fh.write(first, 0, first.length, 0);
      if (total > first.length) {
        await this.readParts(key, first.length, total - first.length, opts.signal, async (offset, data) => {
          await writeFully(fh, data, offset);
        });
      }
      return total;
    } finally {
      await fh.close();
    }
  }

  async list(prefix = '', opts: ReadOptions = {}): Promise<ObjectInfo[]> {
    const rel = prefix ? checkRelativeKey(prefix, this.uri) : '';
    const Prefix = `${this.location.prefix}${rel}${rel && prefix.endsWith('/') ? '/' : ''}`;
    const out: ObjectInfo[] = [];
    let ContinuationToken: string | undefined;
    for (let page = 0; page < 100_000; page++) {
      const res = await this.runner.run(
        { path: `s3://${this.location.bucket}/${Prefix}`, what: 'LIST', bucket: this.location.bucket },
        (signal) => this.client.send(new ListObjectsV2Command({ Bucket: this.location.bucket, Prefix, ContinuationToken }), { abortSignal: signal }),
        { signal: opts.signal },
      );
      for (const obj of res.Contents ?? []) {
        if (!obj.Key || !obj.Key.startsWith(this.location.prefix)) continue;
        out.push({ key: obj.Key.slice(this.location.prefix.length), size: obj.Size ?? 0 });
      }
      if (!res.IsTruncated || !res.NextContinuationToken) break;
      ContinuationToken = res.NextContinuationToken;
    }
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return out;
  }

  async delete(key: string): Promise<void> {
    const Key = this.objectKey(key);
    // S3 answers 204 for a key that does not exist, so a retried delete is harmless.
    await this.runner.run({ path: this.objectUri(key), what: 'DELETE', bucket: this.location.bucket }, (signal) =>
      this.client.send(new DeleteObjectCommand({ Bucket: this.location.bucket, Key }), { abortSignal: signal }),
    );
  }

  async put(key: string, data: Uint8Array | { path: string }): Promise<void> {
    const Key = this.objectKey(key);
    const size = data instanceof Uint8Array ? data.length : (await stat(data.path)).size;
    if (size < this.options.multipartThreshold) {
      const body = data instanceof Uint8Array ? data : await readWhole(data.path, size);
      await this.runner.run({ path: this.objectUri(key), what: 'PUT', bucket: this.location.bucket }, (signal) =>
        this.client.send(new PutObjectCommand({ Bucket: this.location.bucket, Key, Body: body, ContentLength: size }), { abortSignal: signal }),
      { sendsBody: true });
      return;
    }
    await this.putMultipart(key, Key, size, data);
  }

  private async putMultipart(key: string, Key: string, size: number, data: Uint8Array | { path: string }): Promise<void> {
    const Bucket = this.location.bucket;
    const path = this.objectUri(key);
    const created = await this.runner.run({ path, what: 'CreateMultipartUpload', bucket: Bucket }, (signal) =>
      this.client.send(new CreateMultipartUploadCommand({ Bucket, Key }), { abortSignal: signal }),
    );
    const UploadId = created.UploadId;
    if (!UploadId) throw new GpufeedError(ErrorCodes.STORAGE_UNAVAILABLE, `CreateMultipartUpload ${path}: no UploadId in the response`, { path });
    const partSize = this.options.uploadPartSize;
    const partCount = Math.ceil(size / partSize);
    const fh = data instanceof Uint8Array ? undefined : await open(data.path, 'r');
    try {
      const parts: CompletedPart[] = new Array(partCount);
      await forEachBounded(partCount, this.options.objectConcurrency, async (i) => {
        const offset = i * partSize;
        const length = Math.min(partSize, size - offset);
        const body = data instanceof Uint8Array ? data.subarray(offset, offset + length) : await readAt(fh!, offset, length);
        const PartNumber = i + 1;
        const res = await this.runner.run(
          { path, what: `UploadPart ${PartNumber} bytes=${offset}-${offset + length - 1}`, bucket: Bucket, details: { range: [offset, offset + length] } },
          (signal) => this.client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber, Body: body, ContentLength: length }), { abortSignal: signal }),
          { sendsBody: true },
        );
        parts[i] = { PartNumber, ETag: res.ETag };
      });
      await this.runner.run({ path, what: 'CompleteMultipartUpload', bucket: Bucket }, (signal) =>
        this.client.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: parts } }), { abortSignal: signal }),
      );
    } catch (err) {
      // Abort so no orphaned parts keep costing storage; best effort, the original error wins.
      await this.client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(() => {});
      throw err;
    } finally {
      await fh?.close();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.runner.close();
    this.client.destroy();
    this.agent.destroy();
  }

  /** First part of a whole-object read; its Content-Range tells the object's size. */
  private async readFirstPart(key: string, signal?: AbortSignal): Promise<{ first: Buffer; total: number }> {
    const partSize = this.options.partSize;
    try {
      const res = await this.runner.run(
        { path: this.objectUri(key), what: `GET bytes=0-${partSize - 1}`, bucket: this.location.bucket, details: { range: [0, partSize] } },
        (s, firstByte) => this.getOnce(key, { offset: 0, length: partSize }, s, true, firstByte),
        { signal, hedgeBytes: partSize },
      );
      return { first: res.data, total: res.total };
    } catch (err) {
      // A ranged GET of an empty object is "not satisfiable"; that object is simply empty.
      if (err instanceof GpufeedError && err.code === ErrorCodes.SHARD_CORRUPT) {
        const info = await this.head(key, { signal });
        if (info && info.size === 0) return { first: Buffer.alloc(0), total: 0 };
      }
      throw err;
    }
  }

  /** Reads [offset, offset+length) as parallel ranged GETs of partSize; `onPart` gets each part. */
  private async readParts(key: string, offset: number, length: number, signal: AbortSignal | undefined, onPart: (offset: number, data: Buffer) => Promise<void>): Promise<void> {
    const partSize = this.options.partSize;
    const count = Math.ceil(length / partSize);
    const inner = new AbortController();
    const onAbort = (): void => inner.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await forEachBounded(count, this.options.objectConcurrency, async (i) => {
        const start = offset + i * partSize;
        const len = Math.min(partSize, offset + length - start);
        const res = await this.runner.run(
          { path: this.objectUri(key), what: `GET bytes=${start}-${start + len - 1}`, bucket: this.location.bucket, details: { range: [start, start + len] } },
          (s, firstByte) => this.getOnce(key, { offset: start, length: len }, s, false, firstByte),
          { signal: inner.signal, hedgeBytes: len },
        );
        await onPart(start, res.data);
      }, () => inner.abort(new Error('a sibling range failed')));
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * One GET attempt. With `upTo`, the range may extend past the end (first part of a whole-object
   * read); otherwise exactly `range.length` bytes must arrive.
   */
  private async getOnce(key: string, range: ByteRange, signal: AbortSignal, upTo: boolean, firstByte?: FirstByte): Promise<{ data: Buffer; total: number }> {
    const res = await this.client.send(
      new GetObjectCommand({ Bucket: this.location.bucket, Key: this.objectKey(key), Range: `bytes=${range.offset}-${range.offset + range.length - 1}` }),
      { abortSignal: signal },
    );
    firstByte?.(); // headers are in: the body now has the attempt's deadline

    const body = res.Body as Readable | undefined;
    let finished = false;
    const onAbort = (): void => {
      body?.destroy(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    };
    try {
      if (!body) throw new TruncatedBody(0, range.length);
      signal.addEventListener('abort', onAbort, { once: true });
      const total = parseContentRangeTotal(res.ContentRange);
      if (total === undefined) {
        // A server that ignores Range answers 200 with the whole object.
        throw new GpufeedError(ErrorCodes.STORAGE_UNAVAILABLE, `GET ${this.objectUri(key)}: the server ignored the Range header (no Content-Range)`, { path: this.objectUri(key) });
      }
      // An empty object has nothing to range over (S3 answers 416; some servers a bogus 206).
      if (total === 0 && upTo) return { data: Buffer.alloc(0), total };
      const expected = upTo ? Math.max(0, Math.min(range.length, total - range.offset)) : range.length;
      if (res.ContentLength !== undefined && res.ContentLength !== expected) {
        throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `GET ${this.objectUri(key)} bytes=${range.offset}-${range.offset + range.length - 1}: got ${res.ContentLength} bytes, expected ${expected}; the object is shorter than expected`, {
          path: this.objectUri(key), range: [range.offset, range.offset + range.length],
        });
      }
      const data = Buffer.allocUnsafe(expected);
      let got = 0;
      for await (const chunk of body as AsyncIterable<Buffer>) {
        if (signal.aborted) throw signal.reason;
        if (got + chunk.length > expected) throw new TruncatedBody(got + chunk.length, expected);
        chunk.copy(data, got);
        got += chunk.length;
      }
      if (got !== expected) throw new TruncatedBody(got, expected);
      finished = true;
      this.bytesReceived += got;
      return { data, total };
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (!finished) body?.destroy();
    }
  }
}

function parseContentRangeTotal(contentRange: string | undefined): number | undefined {
  const m = contentRange ? /\/(\d+)\s*$/.exec(contentRange) : null;
  return m?.[1] ? Number(m[1]) : undefined;
}

function checkRange(range: ByteRange, path: string): void {
  if (!Number.isSafeInteger(range.offset) || !Number.isSafeInteger(range.length) || range.offset < 0 || range.length < 0) {
    throw new GpufeedError(ErrorCodes.INVALID_OPTION, `${path}: bad byte range offset=${range.offset} length=${range.length}`, { option: 'range', path });
  }
}

async function writeFully(fh: import('node:fs/promises').FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

async function readAt(fh: import('node:fs/promises').FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
    if (bytesRead === 0) throw new GpufeedError(ErrorCodes.BAD_INPUT, `file shrank while uploading: wanted ${length} bytes at ${offset}`, { range: [offset, offset + length] });
    done += bytesRead;
  }
  return buf;
}

async function readWhole(path: string, size: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    return await readAt(fh, 0, size);
  } finally {
    await fh.close();
  }
}

