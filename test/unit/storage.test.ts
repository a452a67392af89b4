// Retry, hedging, throttling and error mapping of the storage layer, with fake attempts (no network).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay } from '../../src/storage/backoff.js';
import { AdaptiveLimiter } from '../../src/storage/adaptive-limiter.js';
import { RequestRunner } from '../../src/storage/request-runner.js';
import { classifyS3Error, toStorageError } from '../../src/storage/s3-errors.js';
import { parseS3Uri, formatS3Uri } from '../../src/storage/s3-uri.js';
import { retryLine, storageOptionsFrom } from '../../src/cli/storage-options.js';

const policy = { maxAttempts: 4, attemptTimeoutMs: 200, backoff: { baseMs: 1, maxMs: 5 }, hedge: { enabled: true, factor: 3, minDelayMs: 10, minSamples: 3 } };
const ctx = { path: 's3://b/p/k', what: 'GET bytes=0-9', details: { range: [0, 10] as [number, number] } };

test('backoff: full jitter within an exponentially growing, capped ceiling', () => {
  assert.equal(backoffDelay(1, { baseMs: 100, maxMs: 1000 }, () => 0.999), 99);
  assert.equal(backoffDelay(3, { baseMs: 100, maxMs: 1000 }, () => 0.999), 399);
  assert.equal(backoffDelay(10, { baseMs: 100, maxMs: 1000 }, () => 0.999), 999);
  assert.equal(backoffDelay(5, { baseMs: 100, maxMs: 1000 }, () => 0), 0);
});

test('limiter: SlowDown halves the limit and pauses; successes grow it back', async () => {
  const l = new AdaptiveLimiter({ maxConcurrency: 8, increaseEvery: 2, pause: { baseMs: 400, maxMs: 800 } });
  l.onSlowDown();
  assert.equal(l.currentLimit, 4);
  l.onSlowDown();
  assert.equal(l.currentLimit, 2);
  // The pause is in force (by state, not by a clock): no slot now although two are free; a
  // waiting acquire gets one once the pause is over.
  assert.equal(l.tryAcquire(), undefined);
  const release = await l.acquire();
  release();
  for (let i = 0; i < 4; i++) l.onSuccess();
  assert.equal(l.currentLimit, 4);
});

test('runner: transient failures are retried, final ones are not; errors name object and range', async () => {
  const runner = new RequestRunner(policy, new AdaptiveLimiter({ maxConcurrency: 4 }));
  let n = 0;
  const ok = await runner.run(ctx, async () => {
    if (++n < 3) throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    return 'done';
  });
  assert.equal(ok, 'done');
  assert.equal(runner.stats.retries, 2);
  await assert.rejects(
    runner.run(ctx, async () => {
      throw Object.assign(new Error('no'), { name: 'NoSuchKey', $metadata: { httpStatusCode: 404 } });
    }),
    (e: unknown) => (e as { code: string }).code === 'GPUFEED_STORAGE_NOT_FOUND' && /s3:\/\/b\/p\/k/.test((e as Error).message),
  );
  assert.equal(runner.stats.retries, 2);
  await assert.rejects(
    runner.run(ctx, async () => {
      throw Object.assign(new Error('x'), { code: 'ECONNREFUSED' });
    }),
    (e: unknown) => (e as { code: string }).code === 'GPUFEED_STORAGE_UNAVAILABLE' && /after 4 attempts/.test((e as Error).message),
  );
});

test('runner: an attempt past its deadline is abandoned and retried; a slow one is hedged', async () => {
  const runner = new RequestRunner(policy, new AdaptiveLimiter({ maxConcurrency: 4 }));
  let n = 0;
  const v = await runner.run(ctx, (signal) => new Promise<string>((resolve, reject) => {
    if (++n === 1) signal.addEventListener('abort', () => reject(signal.reason)); // stalls
    else resolve('second');
  }));
  assert.equal(v, 'second');
  assert.equal(runner.stats.timeouts, 1);
  for (let i = 0; i < 3; i++) await runner.run(ctx, async () => 'fast', { hedgeBytes: 10 });
  let calls = 0;
  const h = await runner.run(ctx, (signal) => new Promise<string>((resolve, reject) => {
    if (++calls === 1) signal.addEventListener('abort', () => reject(signal.reason));
    else resolve('hedge');
  }), { hedgeBytes: 10 });
  assert.equal(h, 'hedge');
  // The hedge answered: the stalled attempt did not run into its deadline.
  assert.equal(runner.stats.hedgeWins, 1);
  assert.equal(runner.stats.timeouts, 1);
});

test('error classes: throttling, auth, not found, network', () => {
  assert.equal(classifyS3Error({ name: 'SlowDown', $metadata: { httpStatusCode: 503 } }), 'slow-down');
  assert.equal(classifyS3Error({ name: 'InvalidAccessKeyId', $metadata: { httpStatusCode: 403 } }), 'auth');
  assert.equal(classifyS3Error({ name: 'NoSuchBucket', $metadata: { httpStatusCode: 404 } }), 'not-found');
  assert.equal(classifyS3Error(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })), 'retryable');
  assert.equal(toStorageError({ name: 'NoSuchBucket', $metadata: { httpStatusCode: 404 } }, { ...ctx, bucket: 'b' }).message.includes('bucket b does not exist'), true);
});

test('S3 URIs and CLI storage flags', () => {
  assert.deepEqual(parseS3Uri('s3://bkt/a/b/'), { bucket: 'bkt', prefix: 'a/b/' });
  assert.deepEqual(parseS3Uri('s3://bkt'), { bucket: 'bkt', prefix: '' });
  assert.equal(formatS3Uri({ bucket: 'bkt', prefix: 'a/' }), 's3://bkt/a');
  assert.throws(() => parseS3Uri('s3://bkt/../x'), /"\."/);
  const flags = storageOptionsFrom({ s3Endpoint: 'http://127.0.0.1:9000', cacheDir: '/x', cacheBytes: '2GiB', s3Timeout: '9000', s3FirstByteTimeout: '700' });
  const { onRetry, ...s3 } = flags.store.s3 ?? {};
  assert.deepEqual({ ...flags, store: { ...flags.store, s3 } }, {
    store: { s3Endpoint: 'http://127.0.0.1:9000', s3: { requestTimeoutMs: 9000, firstByteTimeoutMs: 700 } }, cache: { cacheDir: '/x', cacheBytes: 2 * 1024 ** 3 },
  });
  assert.equal(typeof onRetry, 'function'); // the CLI reports retries on stderr
  assert.equal(retryLine({ path: 's3://b/k', what: 'GET bytes=0-9', attempt: 2, maxAttempts: 5, reason: 'HTTP 503', delayMs: 40, elapsedMs: 2500 }),
    'gpufeed: storage: GET bytes=0-9 s3://b/k: attempt 2 of 5 failed (HTTP 503); retrying in 40 ms (2.5 s so far)\n');
  assert.throws(() => storageOptionsFrom({ cacheBytes: 'lots' }), /--cache-bytes/);
  assert.throws(() => storageOptionsFrom({ s3Timeout: '0' }), /--s3-timeout/);
  assert.throws(() => storageOptionsFrom({ s3FirstByteTimeout: '1.5s' }), /--s3-first-byte-timeout/);
});
