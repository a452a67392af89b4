// Storage deadlines against loopback servers: a black hole (accepts, never answers) fails with
// GPUFEED_STORAGE_TIMEOUT naming the object after exactly maxAttempts first-byte timeouts, each
// retry reported; the request deadline cuts retries short; a body that trickles in after prompt
// headers is not a first-byte timeout. Counts and codes are asserted, never wall time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer as createHttpServer, type ServerResponse } from 'node:http';
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { GpufeedError } from '../../src/errors.js';
import type { RetryEvent } from '../../src/storage/request-runner.js';
import { S3Store } from '../../src/storage/s3.js';
import { resolveS3StoreOptions } from '../../src/storage/s3-options.js';
import { ROOT } from '../fixtures/run-cli.js';
import { cliArgv } from '../helpers/cli-command.js';

const CREDENTIALS = { accessKeyId: 'TEST', secretAccessKey: 'TEST' };

/** A TCP server on 127.0.0.1:0 that accepts connections and never sends a byte. */
async function blackHole(t: import('node:test').TestContext): Promise<{ endpoint: string; connections: () => number }> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => connections };
}

function storeOn(t: import('node:test').TestContext, endpoint: string, opts: ConstructorParameters<typeof S3Store>[1] = {}): S3Store {
  const s = new S3Store('s3://bucket/ds', { endpoint, credentials: CREDENTIALS, retryBaseMs: 1, retryMaxMs: 5, hedge: false, ...opts });
  t.after(() => s.close());
  return s;
}

test('defaults: a black hole fails within 15 s (attempts x first-byte timeout + every backoff ceiling)', () => {
  const o = resolveS3StoreOptions({}, {});
  let worst = o.maxAttempts * o.firstByteTimeoutMs;
  for (let a = 1; a < o.maxAttempts; a++) worst += Math.min(o.retryMaxMs, o.retryBaseMs * 2 ** (a - 1));
  assert.ok(worst < 15_000, `worst case ${worst} ms`);
  assert.ok(o.requestTimeoutMs >= o.firstByteTimeoutMs);
  assert.throws(() => resolveS3StoreOptions({ firstByteTimeoutMs: 0 }, {}), { code: 'GPUFEED_INVALID_OPTION' });
  assert.throws(() => resolveS3StoreOptions({ requestTimeoutMs: 1.5 }, {}), /s3\.requestTimeoutMs/);
});

test('black hole: GPUFEED_STORAGE_TIMEOUT naming the object after maxAttempts first-byte timeouts, each retry reported', async (t) => {
  const hole = await blackHole(t);
  const events: RetryEvent[] = [];
  const s = storeOn(t, hole.endpoint, { firstByteTimeoutMs: 100, maxAttempts: 3, onRetry: (e) => events.push(e) });
  await assert.rejects(s.get('shards/a.arrow'), (err: unknown) => {
    assert.ok(err instanceof GpufeedError);
    assert.equal(err.code, 'GPUFEED_STORAGE_TIMEOUT', err.message);
    assert.match(err.message, /s3:\/\/bucket\/ds\/shards\/a\.arrow/);
    assert.match(err.message, /after 3 attempts/);
    assert.match(err.message, /first-byte timeout/);
    assert.equal(err.details.attempts, 3);
    return true;
  });
  assert.equal(s.stats.timeouts, 3);
  assert.equal(s.stats.retries, 2);
  assert.deepEqual(events.map((e) => [e.attempt, e.maxAttempts]), [[1, 3], [2, 3]]);
  assert.ok(events.every((e) => e.path === 's3://bucket/ds/shards/a.arrow' && /first-byte/.test(e.reason) && e.what.startsWith('GET ')));
  assert.ok(hole.connections() >= 1);
});

test('black hole: the request deadline ends retries before maxAttempts', async (t) => {
  const hole = await blackHole(t);
  const events: RetryEvent[] = [];
  const s = storeOn(t, hole.endpoint, { firstByteTimeoutMs: 100, requestTimeoutMs: 250, maxAttempts: 50, onRetry: (e) => events.push(e) });
  await assert.rejects(s.head('index.json'), (err: unknown) => {
    assert.ok(err instanceof GpufeedError);
    assert.equal(err.code, 'GPUFEED_STORAGE_TIMEOUT', err.message);
    assert.match(err.message, /HEAD s3:\/\/bucket\/ds\/index\.json/);
    assert.match(err.message, /request deadline of 250 ms/);
    const attempts = err.details.attempts as number;
    // The deadline, not maxAttempts, ended it: about 3 attempts of 100 ms fit in 250 ms (CI once saw
    // 4; fewer on a loaded machine), never 50. A count, with room for timer rounding.
    assert.ok(attempts >= 1 && attempts <= 10, `attempts ${attempts}`);
    assert.equal(events.length, attempts - 1);
    return true;
  });
});

test('prompt headers and a body that trickles in: no first-byte timeout, the bytes arrive', async (t) => {
  const body = Buffer.from('0123456789');
  let requests = 0;
  const timers = new Set<NodeJS.Timeout>();
  const server = createHttpServer((_req, res: ServerResponse) => {
    requests++;
    res.writeHead(206, { 'Content-Range': `bytes 0-9/${body.length}`, 'Content-Length': String(body.length), 'Content-Type': 'application/octet-stream' });
    res.write(body.subarray(0, 5));
    // The rest comes well after the first-byte timeout (100 ms) but inside the attempt deadline.
    const timer = setTimeout(() => res.end(body.subarray(5)), 400);
    timers.add(timer);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    for (const tm of timers) clearTimeout(tm);
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const s = storeOn(t, `http://127.0.0.1:${(server.address() as AddressInfo).port}`, { firstByteTimeoutMs: 100, attemptTimeoutMs: 10_000 });
  const got = await s.get('x.bin');
  assert.ok(Buffer.from(got).equals(body));
  assert.equal(s.stats.timeouts, 0);
  assert.equal(s.stats.retries, 0);
  assert.equal(requests, 1);
});

function cli(args: string[]): Promise<{ code: number; stderr: string }> {
  const env = { ...process.env, AWS_ACCESS_KEY_ID: 'TEST', AWS_SECRET_ACCESS_KEY: 'TEST', AWS_REGION: 'us-east-1' };
  return new Promise((resolve) => {
    execFile(process.execPath, [...cliArgv(), ...args], { cwd: ROOT, env, timeout: 60_000 }, (err, _stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr });
    });
  });
}

test('CLI: --s3-first-byte-timeout and --s3-timeout bound a black hole; retries show on stderr', async (t) => {
  const hole = await blackHole(t);
  const r = await cli(['inspect', 's3://bucket/ds', '--s3-endpoint', hole.endpoint, '--s3-first-byte-timeout', '100', '--s3-timeout', '20000']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^gpufeed: error GPUFEED_STORAGE_TIMEOUT: .*s3:\/\/bucket\/ds\/index\.json.*after 5 attempts/m);
  const retryLines = r.stderr.split('\n').filter((l) => l.startsWith('gpufeed: storage: '));
  assert.equal(retryLines.length, 4, r.stderr);
  assert.match(retryLines[0]!, /index\.json: attempt 1 of 5 failed \(.*first-byte timeout.*\); retrying in \d+ ms/);
  const bad = await cli(['inspect', 's3://bucket/ds', '--s3-endpoint', hole.endpoint, '--s3-timeout', 'soon']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /GPUFEED_INVALID_OPTION: option --s3-timeout: must be a whole number of milliseconds/);
});
