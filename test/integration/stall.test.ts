// Stall diagnosis end to end: S3 (s3rver) behind the fault proxy, which holds every GET of one
// shard forever (headers and half the body, then nothing). With a stallTimeout of 1 s the report
// names the rank, epoch and step, that shard, its URI and the attempt; with 'warn' it comes again
// every interval, with 'fail' the run ends with GPUFEED_STALL (a CLI child exits non-zero by
// itself, leaving no process behind); SIGUSR2 prints the same report on demand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepDataset } from '../../src/dataset/index.js';
import type { ManifestV1 } from '../../src/dataset/types.js';
import { Loader, ErrorCodes, GpufeedError } from '../../src/index.js';
import { planRankEpoch, resolveOrderOptions, resolveWorld, type OrderOptions, type World } from '../../src/plan/index.js';
import { startS3Server, S3RVER_CREDENTIALS } from '../helpers/s3-server.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { ROOT } from '../fixtures/run-cli.js';
import { cliArgv } from '../helpers/cli-command.js';

const ROWS = 160;
const SEQ = 16;
const BATCH = 4;
const env = { AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey, AWS_REGION: 'us-east-1' };

interface Setup {
  manifest: ManifestV1;
  proxy: FaultProxy;
  cacheDir: string;
}

async function setup(t: { after: (fn: () => unknown) => void }): Promise<Setup> {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  t.after(() => {
    for (const k of Object.keys(env)) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-stall-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const server = await startS3Server(['data']);
  t.after(() => server.close());
  const input = join(dir, 'rows.jsonl');
  writeFileSync(input, Array.from({ length: ROWS }, (_, i) => JSON.stringify({ tokens: Array.from({ length: SEQ }, (_, k) => i * 3 + k), label: i })).join('\n'));
  const manifest = await prepDataset([input], {
    out: 's3://data/ds', shapes: { tokens: [SEQ] }, types: { tokens: 'int32' }, shardSize: 2048, workers: 0, progress: false, storeOptions: { s3Endpoint: server.endpoint },
  });
  assert.ok(manifest.shards.length >= 4, `several shards (${manifest.shards.length})`);
  const proxy = await startFaultProxy(server.endpoint);
  t.after(() => proxy.close());
  return { manifest, proxy, cacheDir: join(dir, 'cache') };
}

/** The first step (>= minStep) of this rank that needs a shard no earlier step needed, and that shard. */
function stallPoint(manifest: ManifestV1, minStep: number, world: World = resolveWorld({ rank: 0, worldSize: 1 }, {}), order: OrderOptions = resolveOrderOptions({ batchSize: BATCH, shuffle: 'none' }, world)): { step: number; shard: number } {
  const plan = planRankEpoch(manifest.shards.map((s) => ({ rows: s.rows, bytes: s.bytes })), world, order, 0);
  const starts: number[] = [];
  manifest.shards.reduce((at, s) => (starts.push(at), at + s.rows), 0);
  const shardOf = (id: number): number => starts.findLastIndex((s) => s <= id);
  const seen = new Set<number>();
  for (let step = 0; step < plan.steps; step++) {
    const shards = [...new Set(plan.batchIds(step).map(shardOf))];
    const fresh = shards.find((s) => !seen.has(s));
    if (step >= minStep && fresh !== undefined) return { step, shard: fresh };
    shards.forEach((s) => seen.add(s));
  }
  throw new Error('no step needs a new shard');
}

/** Every GET of `key` stalls: headers and half the body, then nothing for 10 minutes. */
function holdShard(proxy: FaultProxy, key: string): void {
  proxy.setPolicy({ probability: 1, faults: ['stall'], stallMs: 600_000, match: (req) => req.method === 'GET' && (req.url ?? '').split('?')[0]!.endsWith(`/${key}`) });
}

async function until(what: string, check: () => boolean | Promise<boolean>, tries = 600, everyMs = 100): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('a held GET: GPUFEED_STALL names rank, epoch, step, the shard, its URI and attempt, again every interval (warn)', async (t) => {
  const { manifest, proxy, cacheDir } = await setup(t);
  const rank = 1;
  const reports: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    if (String(chunk).includes('GPUFEED_STALL')) reports.push(String(chunk));
    return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  t.after(() => {
    process.stderr.write = write;
  });
  const loader = await Loader.open('s3://data/ds', {
    batchSize: BATCH, worldSize: 2, rank, shuffle: 'none', workers: 1, cacheDir, cacheBytes: 64 << 20, minFreeBytes: 0,
    s3Endpoint: proxy.endpoint, stallTimeout: 1, stallAction: 'warn', metricsPort: 0,
  });
  // The plan of this loader's own world and order (nothing is fetched before the iteration starts).
  const { step, shard } = stallPoint(manifest, 2, loader.world, loader.order);
  const key = manifest.shards[shard]!.path;
  holdShard(proxy, key);
  const atStep = (): string[] => reports.filter((r) => r.includes(` step ${step}: `));
  const steps: number[] = [];
  const run = (async () => {
    for await (const b of loader) steps.push(b.step);
  })();
  try {
    // A slow start under load may report an earlier step too; the held one is reported again and again.
    await until('two stall reports of the held step', () => atStep().length >= 2);
    assert.deepEqual(steps, Array.from({ length: step }, (_, i) => i), 'every step before the held shard was delivered');
    for (const text of atStep().slice(0, 2)) {
      assert.match(text, new RegExp(`^GPUFEED_STALL rank ${rank} \\(local rank 0, world size 2\\) epoch 0 step ${step}: waited \\d+(\\.\\d)? s`));
      assert.match(text, new RegExp(`shard ${shard} ${key}: .*storage request GET bytes=0-\\d+ s3://data/ds/${key} outstanding for [\\d.]+ s \\(attempt 1`));
    }
    const waited = atStep().slice(0, 2).map((r) => Number(/waited ([\d.]+) s/.exec(r)![1]));
    assert.ok(waited[1]! > waited[0]!, `the second report comes later in the same wait: ${waited.join(', ')}`);

    const report = await loader.diagnose();
    assert.equal(report.waiting, true);
    assert.equal(report.rank, rank);
    assert.equal(report.epoch, 0);
    assert.equal(report.step, step);
    const held = report.shards.find((s) => s.index === shard);
    assert.ok(held, `the report lists shard ${shard}: ${report.text}`);
    const storage = held.waits.filter((w) => w.kind === 'storage');
    assert.ok(storage.length >= 1 && storage.every((w) => w.kind === 'storage' && w.uri === `s3://data/ds/${key}`), report.text);
    assert.match(report.text, /^gpufeed diagnose: /);

    const metrics = await loader.metrics();
    assert.ok(metrics.gpufeed_stalls_total! >= 2, `stalls counted: ${metrics.gpufeed_stalls_total}`);
    assert.equal(metrics.gpufeed_stalled, 1);
    assert.ok(metrics.gpufeed_storage_requests_in_flight! >= 1);
    assert.ok(metrics['gpufeed_storage_requests_total{operation="GET",outcome="ok"}']! >= 1, JSON.stringify(metrics));
  } finally {
    await loader.close();
  }
  await run;
  assert.equal(steps.length, step, 'nothing after the stall was delivered');
});

function runDump(args: string[], onStderr?: (text: string, child: import('node:child_process').ChildProcess) => void) {
  const child = spawn(process.execPath, [...cliArgv(), 'dump', ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    onStderr?.(stderr, child);
  });
  // Bounded: a child still running after 90 s is killed and the test fails on its exit signal.
  const guard = setTimeout(() => child.kill('SIGKILL'), 90_000);
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) => {
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, done, out: () => stdout, err: () => stderr };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('stallAction fail: the CLI child ends with GPUFEED_STALL by itself, non-zero, and no process is left', async (t) => {
  const { manifest, proxy, cacheDir } = await setup(t);
  // The very first batch: no earlier wait (a slow start under load) can end the run first.
  const { step, shard } = stallPoint(manifest, 0);
  const key = manifest.shards[shard]!.path;
  holdShard(proxy, key);
  const { child, done } = runDump(['s3://data/ds', '--s3-endpoint', proxy.endpoint, '--batch-size', String(BATCH), '--shuffle', 'none', '--workers', '1',
    '--cache-dir', cacheDir, '--cache-bytes', '64MiB', '--min-free-bytes', '0', '--stall-timeout', '2', '--stall-action', 'fail']);
  const r = await done;
  assert.equal(r.signal, null, `exited by itself, not killed: ${r.stderr}`);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, new RegExp(`GPUFEED_STALL rank 0 \\(local rank 0, world size 1\\) epoch 0 step ${step}: `));
  assert.match(r.stderr, new RegExp(`shard ${shard} ${key}: .*s3://data/ds/${key} outstanding`));
  assert.match(r.stderr, /gpufeed: error GPUFEED_STALL/);
  const lines = r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { step: number });
  assert.deepEqual(lines.map((l) => l.step), Array.from({ length: step }, (_, i) => i));
  assert.equal(alive(child.pid!), false, 'the child process is gone');
});

test('SIGUSR2 prints the report on demand (stallTimeout 0: no watch), and the loader exits cleanly on SIGTERM', async (t) => {
  const { manifest, proxy, cacheDir } = await setup(t);
  const { step, shard } = stallPoint(manifest, 2);
  const key = manifest.shards[shard]!.path;
  holdShard(proxy, key);
  const dump = runDump(['s3://data/ds', '--s3-endpoint', proxy.endpoint, '--batch-size', String(BATCH), '--shuffle', 'none', '--workers', '1',
    '--cache-dir', cacheDir, '--cache-bytes', '64MiB', '--min-free-bytes', '0', '--stall-timeout', '0']);
  await until('the batches before the held shard', () => dump.out().trim().split('\n').filter(Boolean).length >= step);
  // The next batch cannot come; ask what it waits on until the report says it is waiting on the GET.
  await until('a diagnose report on SIGUSR2', () => {
    if (/gpufeed diagnose: .*consumer has waited/.test(dump.err()) && dump.err().includes(`s3://data/ds/${key} outstanding`)) return true;
    dump.child.kill('SIGUSR2');
    return false;
  }, 100, 300);
  assert.match(dump.err(), new RegExp(`gpufeed diagnose: rank 0 \\(local rank 0, world size 1\\) epoch 0 step ${step}: the consumer has waited`));
  assert.doesNotMatch(dump.err(), /GPUFEED_STALL/, 'no watch with stallTimeout 0');
  dump.child.kill('SIGTERM');
  const r = await dump.done;
  assert.equal(r.signal, 'SIGTERM');
});

test('a shard another process is downloading: the report names the cache lock and that process\'s pid', async (t) => {
  const { manifest, proxy, cacheDir } = await setup(t);
  const { step, shard } = stallPoint(manifest, 2);
  const key = manifest.shards[shard]!.path;
  holdShard(proxy, key);
  const common = ['--batch-size', String(BATCH), '--shuffle', 'none', '--workers', '1', '--cache-dir', cacheDir, '--cache-bytes', '64MiB', '--min-free-bytes', '0'];
  // Process A takes the shard's download lock and is held by the proxy.
  const a = runDump(['s3://data/ds', '--s3-endpoint', proxy.endpoint, ...common, '--stall-timeout', '0']);
  t.after(async () => {
    a.child.kill('SIGTERM');
    await a.done;
  });
  await until('process A held at the shard', () => a.out().trim().split('\n').filter(Boolean).length >= step);
  const reports: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    if (String(chunk).includes('GPUFEED_STALL')) reports.push(String(chunk));
    return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  t.after(() => {
    process.stderr.write = write;
  });
  // This process, another job on the node with the same cache, needs the same shard.
  const b = await Loader.open('s3://data/ds', {
    batchSize: BATCH, shuffle: 'none', workers: 1, cacheDir, cacheBytes: 64 << 20, minFreeBytes: 0, s3Endpoint: proxy.endpoint, stallTimeout: 1,
  });
  const run = (async () => {
    for await (const _ of b);
  })();
  try {
    const lockLine = new RegExp(`shard ${shard} ${key}: .*cache lock \\S+ held by another process, pid ${a.child.pid}`);
    await until('a report naming the lock holder', () => reports.some((r) => r.includes(` step ${step}: `) && lockLine.test(r)));
    const report = await b.diagnose();
    const waits = report.shards.find((x) => x.index === shard)?.waits ?? [];
    assert.ok(waits.some((w) => w.kind === 'cache-lock' && w.pid === a.child.pid && w.otherProcess), report.text);
    // This process sent no GET of its own for the shard: the other holds the download.
    assert.ok(!waits.some((w) => w.kind === 'storage'), report.text);
  } finally {
    await b.close();
  }
  await run;
});

test('GPUFEED_STALL is a GpufeedError code', () => {
  assert.equal(ErrorCodes.STALL, 'GPUFEED_STALL');
  assert.equal(new GpufeedError(ErrorCodes.STALL, 'x').code, 'GPUFEED_STALL');
});
