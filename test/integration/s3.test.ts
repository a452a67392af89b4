// S3Store against a real S3-compatible server (s3rver) behind a fault-injecting proxy, on loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { S3Store } from '../../src/storage/s3.js';
import { openStore } from '../../src/storage/index.js';
import { GpufeedError } from '../../src/errors.js';
import { startS3Server, S3RVER_CREDENTIALS } from '../helpers/s3-server.js';
import { startFaultProxy, type FaultKind } from '../helpers/fault-proxy.js';

const KiB = 1024;
const MiB = 1024 * KiB;

async function setup(t: import('node:test').TestContext) {
  const server = await startS3Server(['data']);
  const proxy = await startFaultProxy(server.endpoint, { stallMs: 10_000 });
  t.after(async () => {
    await proxy.close();
    await server.close();
  });
  const store = (opts: ConstructorParameters<typeof S3Store>[1] = {}) => {
    const s = new S3Store('s3://data/ds', {
      endpoint: proxy.endpoint, credentials: S3RVER_CREDENTIALS, partSize: 64 * KiB, attemptTimeoutMs: 1500,
      retryBaseMs: 10, retryMaxMs: 100, ...opts,
    });
    t.after(() => s.close());
    return s;
  };
  return { server, proxy, store };
}

function expectCode(code: string) {
  return (err: unknown) => {
    assert.ok(err instanceof GpufeedError, `expected GpufeedError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  };
}

test('put, head, list, whole and ranged get round-trip', async (t) => {
  const { store } = await setup(t);
  const s = store();
  const small = randomBytes(10 * KiB);
  const big = randomBytes(300 * KiB + 17);
  await s.put('a/small.bin', small);
  await s.put('a/big.bin', big);
  await s.put('empty.bin', new Uint8Array(0));
  assert.deepEqual(await s.head('a/big.bin'), { key: 'a/big.bin', size: big.length });
  assert.equal(await s.head('a/none.bin'), undefined);
  assert.deepEqual((await s.list()).map((o) => o.key), ['a/big.bin', 'a/small.bin', 'empty.bin']);
  assert.deepEqual((await s.list('a/')).map((o) => [o.key, o.size]), [['a/big.bin', big.length], ['a/small.bin', small.length]]);
  assert.ok(Buffer.from(await s.get('a/small.bin')).equals(small));
  assert.ok(Buffer.from(await s.get('a/big.bin')).equals(big));
  assert.equal((await s.get('empty.bin')).length, 0);
  const r = await s.get('a/big.bin', { offset: 100 * KiB - 5, length: 150 * KiB });
  assert.ok(Buffer.from(r).equals(big.subarray(100 * KiB - 5, 250 * KiB - 5)));
  const dir = await mkdtemp(join(tmpdir(), 'gpufeed-s3-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const dest = join(dir, 'big.bin');
  assert.equal(await s.download('a/big.bin', dest), big.length);
  assert.ok((await readFile(dest)).equals(big));
});

test('multipart upload for large objects, from memory and from a file', async (t) => {
  const { store } = await setup(t);
  const s = store({ multipartThreshold: 5 * MiB, uploadPartSize: 5 * MiB, partSize: 1 * MiB });
  const data = randomBytes(11 * MiB + 3);
  await s.put('mp/mem.bin', data);
  assert.ok(Buffer.from(await s.get('mp/mem.bin')).equals(data));
  const dir = await mkdtemp(join(tmpdir(), 'gpufeed-s3-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'f.bin'), data);
  await s.put('mp/file.bin', { path: join(dir, 'f.bin') });
  assert.ok(Buffer.from(await s.get('mp/file.bin')).equals(data));
});

for (const fault of ['slowdown', 'reset', 'truncate', 'stall'] as FaultKind[]) {
  test(`ranged reads are exact under fault: ${fault}`, async (t) => {
    const { store, proxy } = await setup(t);
    const s = store({ hedge: false, attemptTimeoutMs: 800 });
    const data = randomBytes(400 * KiB + 5);
    await s.put('f.bin', data);
    proxy.enqueue(fault, fault);
    assert.ok(Buffer.from(await s.get('f.bin')).equals(data));
    const r = await (proxy.enqueue(fault), s.get('f.bin', { offset: 70 * KiB, length: 200 * KiB }));
    assert.ok(Buffer.from(r).equals(data.subarray(70 * KiB, 270 * KiB)));
    assert.equal(proxy.stats.faults[fault], 3);
    assert.ok(s.stats.retries >= 3, `retries ${s.stats.retries}`);
    if (fault === 'slowdown') assert.ok(s.stats.slowDowns >= 3);
    if (fault === 'stall') assert.ok(s.stats.timeouts >= 1);
  });
}

test('a stalled range is hedged long before its deadline', async (t) => {
  const { store, proxy } = await setup(t);
  const s = store({ attemptTimeoutMs: 8000, hedgeMinDelayMs: 50, objectConcurrency: 4 });
  const data = randomBytes(640 * KiB);
  await s.put('h.bin', data);
  // Warm the latency tracker with peers of the same size.
  for (let i = 0; i < 2; i++) assert.ok(Buffer.from(await s.get('h.bin')).equals(data));
  proxy.enqueue('stall');
  assert.ok(Buffer.from(await s.get('h.bin')).equals(data));
  assert.ok(s.stats.hedges >= 1 && s.stats.hedgeWins >= 1, JSON.stringify(s.stats));
  assert.equal(s.stats.timeouts, 0);
});

test('about 10% of GETs faulted: every object still reads back exactly', async (t) => {
  const { store, proxy } = await setup(t);
  const s = store({ attemptTimeoutMs: 700, hedgeMinDelayMs: 100 });
  const objects = Array.from({ length: 12 }, (_, i) => randomBytes(100 * KiB + i * 9 * KiB));
  await Promise.all(objects.map((d, i) => s.put(`p/${i}.bin`, d)));
  proxy.setPolicy({ probability: 0.1, seed: 7, stallMs: 10_000 });
  for (let round = 0; round < 3; round++) {
    const got = await Promise.all(objects.map((_, i) => s.get(`p/${i}.bin`)));
    got.forEach((g, i) => assert.ok(Buffer.from(g).equals(objects[i]!), `object ${i} round ${round}`));
  }
  const faults = Object.values(proxy.stats.faults).reduce((a, b) => a + b, 0);
  assert.ok(faults >= 3, `only ${faults} faults injected`);
});

test('persistent stall: STORAGE_TIMEOUT naming object and range, bounded time', async (t) => {
  const { store, proxy } = await setup(t);
  const s = store({ hedge: false, attemptTimeoutMs: 300, maxAttempts: 3 });
  await s.put('slow.bin', randomBytes(10 * KiB));
  proxy.setPolicy({ probability: 1, faults: ['stall'], stallMs: 10_000 });
  await assert.rejects(s.get('slow.bin', { offset: 0, length: 4096 }), (err: unknown) => {
    expectCode('GPUFEED_STORAGE_TIMEOUT')(err);
    const e = err as GpufeedError;
    assert.match(e.message, /s3:\/\/data\/ds\/slow\.bin/);
    assert.match(e.message, /bytes=0-4095/);
    return true;
  });
  // Bounded by attempts, not by the 10 s stall: each of the 3 attempts timed out at 300 ms.
  assert.equal(s.stats.timeouts, 3);
});

test('missing key and missing bucket: STORAGE_NOT_FOUND, no retries', async (t) => {
  const { server, store } = await setup(t);
  const s = store();
  await assert.rejects(s.get('nope.bin'), (err: unknown) => expectCode('GPUFEED_STORAGE_NOT_FOUND')(err) && /nope\.bin/.test((err as Error).message));
  assert.equal(s.stats.retries, 0);
  const other = new S3Store('s3://no-such-bucket/x', { endpoint: server.endpoint, credentials: S3RVER_CREDENTIALS });
  t.after(() => other.close());
  await assert.rejects(other.get('index.json'), (err: unknown) => expectCode('GPUFEED_STORAGE_NOT_FOUND')(err) && /no-such-bucket/.test((err as Error).message));
});

test('wrong credentials: STORAGE_AUTH', async (t) => {
  // s3rver checks the access key id but not SigV4 signatures, so the wrong part is the key id.
  const { server } = await setup(t);
  const s = new S3Store('s3://data/ds', { endpoint: server.endpoint, credentials: { accessKeyId: 'nobody', secretAccessKey: 'x' } });
  t.after(() => s.close());
  await assert.rejects(s.get('index.json'), (err: unknown) => expectCode('GPUFEED_STORAGE_AUTH')(err) && /index\.json/.test((err as Error).message));
  await assert.rejects(s.head('index.json'), expectCode('GPUFEED_STORAGE_AUTH'));
  assert.equal(s.stats.retries, 0);
});

test('an endpoint that refuses connections: STORAGE_UNAVAILABLE within seconds', async () => {
  // A port that was free a moment ago: bind, read it, close.
  const port = await new Promise<number>((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });
  const s = await openStore('s3://data/ds', { s3Endpoint: `http://127.0.0.1:${port}`, s3: { credentials: S3RVER_CREDENTIALS } });
  try {
    await assert.rejects(s.get('index.json'), (err: unknown) => expectCode('GPUFEED_STORAGE_UNAVAILABLE')(err) && /ECONNREFUSED/.test((err as Error).message));
  } finally {
    await s.close();
  }
});

test('options are validated at construction, naming the option', () => {
  assert.throws(() => new S3Store('s3://b/p', { partSize: 0 }), /s3\.partSize/);
  assert.throws(() => new S3Store('s3://b/p', { endpoint: 'ftp://x' }), /s3Endpoint/);
  assert.throws(() => new S3Store('s3:///p'), /not an S3 URI/);
});
