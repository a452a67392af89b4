// The request runner's log (storage/request-log.ts), which the metrics and stall reports read:
// each attempt counted once by operation and outcome, in flight until it ends, and close() ending
// a request that would otherwise hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdaptiveLimiter } from '../../src/storage/adaptive-limiter.js';
import { RequestRunner } from '../../src/storage/request-runner.js';
import { operationOf } from '../../src/storage/request-log.js';
import { BucketCounts } from '../../src/util/bucket-counts.js';
import { ErrorCodes, GpufeedError } from '../../src/errors.js';

const policy = { maxAttempts: 3, attemptTimeoutMs: 150, backoff: { baseMs: 1, maxMs: 2 }, hedge: { enabled: false, factor: 3, minDelayMs: 10, minSamples: 3 } };
const ctx = { path: 's3://b/p/shard-1.arrow', what: 'GET bytes=0-9' };

function counts(runner: RequestRunner): Record<string, number> {
  return Object.fromEntries(runner.log.counts().map((c) => [`${c.operation} ${c.outcome}`, c.count]));
}

test('each attempt is logged once by operation and outcome: throttled, timeout, error, ok', async () => {
  const runner = new RequestRunner(policy, new AdaptiveLimiter({ maxConcurrency: 4, pause: { baseMs: 1, maxMs: 2 } }));
  let n = 0;
  const got = await runner.run(ctx, async (signal) => {
    n += 1;
    if (n === 1) throw Object.assign(new Error('slow down'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } });
    // Never answers: the attempt deadline (150 ms) ends it.
    if (n === 2) return new Promise<string>((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }));
    return 'bytes';
  });
  assert.equal(got, 'bytes');
  await assert.rejects(runner.run({ path: 's3://b/p/k', what: 'HEAD' }, async () => {
    throw Object.assign(new Error('nope'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } });
  }));
  assert.deepEqual(counts(runner), { 'GET throttled': 1, 'GET timeout': 1, 'GET ok': 1, 'HEAD error': 1 });
  assert.equal(runner.stats.retries, 2);
  const ok = runner.log.counts().find((c) => c.operation === 'GET' && c.outcome === 'ok')!;
  assert.equal(ok.durations.counts.reduce((a, b) => a + b, 0), 1);
  assert.deepEqual(runner.log.inFlight(), []);
});

test('an attempt in flight is listed with its object and attempt; close() ends it with GPUFEED_CLOSED', async () => {
  const runner = new RequestRunner({ ...policy, attemptTimeoutMs: 600_000 }, new AdaptiveLimiter({ maxConcurrency: 4 }));
  let started!: () => void;
  const begun = new Promise<void>((r) => (started = r));
  const pending = runner.run(ctx, (signal) => new Promise<string>((_, reject) => {
    started();
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  }));
  await begun;
  const live = runner.log.inFlight();
  assert.equal(live.length, 1);
  assert.equal(live[0]!.path, ctx.path);
  assert.equal(live[0]!.what, ctx.what);
  assert.equal(live[0]!.attempt, 1);
  assert.equal(live[0]!.hedge, false);
  runner.close();
  await assert.rejects(pending, (e: unknown) => e instanceof GpufeedError && e.code === ErrorCodes.CLOSED);
  assert.deepEqual(runner.log.inFlight(), []);
  assert.deepEqual(counts(runner), { 'GET aborted': 1 });
  // A closed runner starts nothing.
  let calls = 0;
  await assert.rejects(runner.run(ctx, async () => String(++calls)), (e: unknown) => e instanceof GpufeedError && e.code === ErrorCodes.CLOSED);
  assert.equal(calls, 0);
});

test('operations and buckets', () => {
  assert.equal(operationOf('GET bytes=0-9'), 'GET');
  assert.equal(operationOf('CreateMultipartUpload'), 'CreateMultipartUpload');
  const b = new BucketCounts([0.1, 1]);
  for (const v of [0.05, 0.1, 0.5, 2, 3]) b.observe(v);
  assert.deepEqual(b.snapshot(), { bounds: [0.1, 1], counts: [2, 1, 2], sum: 5.65, count: 5 });
});
