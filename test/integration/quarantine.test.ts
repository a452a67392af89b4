// Quarantine end to end (onCorrupt 'skip', src/pipeline/quarantine.ts): a flipped byte inside one
// Parquet page (its column chunk's checksum fails) quarantines that row group's rows; a truncated
// Arrow shard quarantines the whole shard. Two ranks finish the epoch with equal steps, every other
// sample exactly once with its clean values, the replaced rows follow the documented rule, and the
// events show in stats, batch.quarantined and the JSON Lines log. A resume from a state taken
// after the quarantine skips the bad shard without reading it again; 'fail' names the shard;
// maxQuarantined turns too much damage back into an error. The CLI's --on-corrupt skip too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepDataset } from '../../src/dataset/prep.js';
import { makeDemoDataset } from '../../src/dataset/demo.js';
import type { ManifestV1 } from '../../src/dataset/types.js';
import { ErrorCodes, GpufeedError, isVarColumn, Loader, type Batch, type LoaderOptions, type ResumeState } from '../../src/index.js';
import { ROOT } from '../fixtures/run-cli.js';
import { cliArgv } from '../helpers/cli-command.js';
import { startS3Server, S3RVER_CREDENTIALS } from '../helpers/s3-server.js';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import type { CacheEvent } from '../../src/cache/options.js';

const ROWS = 1200;
const TOKENS = 16;

/** A dataset of ROWS rows in several shards of several pieces (record batches / row groups of 100 rows). */
async function dataset(t: { after(fn: () => unknown): void }, format: 'arrow' | 'parquet'): Promise<{ dir: string; manifest: ManifestV1 }> {
  const dir = mkdtempSync(join(tmpdir(), `gpufeed-quarantine-${format}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const src = join(dir, 'rows.jsonl');
  const lines: string[] = [];
  for (let i = 0; i < ROWS; i++) {
    lines.push(JSON.stringify({ tokens: Array.from({ length: TOKENS }, (_, k) => (i * 31 + k * 7) % 50_000), label: i, text: `row ${i} ${'x'.repeat(i % 13)}` }));
  }
  writeFileSync(src, `${lines.join('\n')}\n`);
  const manifest = await prepDataset([src], {
    out: join(dir, 'ds'), format, shardSize: '40KiB', shapes: { tokens: [TOKENS] }, types: { label: 'int64', tokens: 'int32' }, workers: 0, progress: false,
    targetBatchBytes: 9 * 1024, maxBatchRows: 100,
  });
  assert.ok(manifest.shards.length >= 3, `${manifest.shards.length} shards`);
  for (const s of manifest.shards) {
    const units = s.layout.kind === 'arrow' ? s.layout.batches.length : s.layout.rowGroups.length;
    assert.ok(units >= 2 || s === manifest.shards.at(-1), `shard ${s.path} has ${units} pieces`);
  }
  return { dir: join(dir, 'ds'), manifest };
}

/** Row i of a batch as text: its values in every column. */
function rowText(b: Batch, i: number): string {
  const tokens = b.columns.tokens as Int32Array;
  const label = b.columns.label as BigInt64Array;
  const text = b.columns.text!;
  assert.ok(isVarColumn(text));
  const bytes = (text.values as Uint8Array).subarray(text.offsets[i]!, text.offsets[i + 1]!);
  return `${Array.from(tokens.subarray(i * TOKENS, (i + 1) * TOKENS)).join(',')}|${label[i]}|${Buffer.from(bytes).toString('utf8')}`;
}

const ZERO_ROW = `${new Array(TOKENS).fill(0).join(',')}|0|`;

interface Delivered {
  epoch: number;
  step: number;
  ids: number[];
  quarantined: number[];
  rows: string[];
}

interface RankRun {
  batches: Delivered[];
  stats: ReturnType<Loader['stats']>;
  states: ResumeState[];
  err?: GpufeedError;
}

async function run(dir: string, options: Partial<LoaderOptions>, stateAfter?: (b: Delivered) => boolean): Promise<RankRun> {
  const loader = await Loader.open(dir, { batchSize: 40, workers: 2, pin: false, ...options });
  const out: RankRun = { batches: [], stats: loader.stats(), states: [] };
  try {
    for await (const b of loader) {
      const d: Delivered = { epoch: b.epoch, step: b.step, ids: [...b.ids], quarantined: [...b.quarantined], rows: b.ids.map((_, i) => rowText(b, i)) };
      out.batches.push(d);
      if (stateAfter?.(d)) out.states.push(loader.state());
      assert.ok(out.batches.length <= ROWS, 'bounded');
    }
  } catch (err) {
    assert.ok(err instanceof GpufeedError, String(err));
    out.err = err;
  } finally {
    out.stats = loader.stats();
    await loader.close();
  }
  return out;
}

/** The documented rule, checked on one batch: the k-th replaced row holds the (k mod g)-th good row's values; none good: zeros. */
function checkRule(b: Delivered): void {
  const q = new Set(b.quarantined);
  const good = b.rows.filter((_, i) => !q.has(i));
  let k = 0;
  b.rows.forEach((row, i) => {
    if (!q.has(i)) return;
    const want = good.length === 0 ? ZERO_ROW : good[k % good.length]!;
    assert.equal(row, want, `epoch ${b.epoch} step ${b.step} row ${i} (quarantined #${k})`);
    k += 1;
  });
}

function globalRange(manifest: ManifestV1, shard: number, unit: number): number[] {
  let first = 0;
  for (let s = 0; s < shard; s++) first += manifest.shards[s]!.rows;
  const e = manifest.shards[shard]!;
  const units = e.layout.kind === 'arrow' ? e.layout.batches : e.layout.rowGroups;
  let start = 0;
  for (let u = 0; u < unit; u++) start += units[u]!.rows;
  const end = unit < 0 ? e.rows : start + units[unit]!.rows;
  if (unit < 0) start = 0;
  return Array.from({ length: end - start }, (_, i) => first + start + i);
}

/** Two ranks of world 2 at once: equal steps, each good sample once with its clean values, the bad ones only as quarantined rows. */
async function checkTwoRanks(dir: string, manifest: ManifestV1, clean: Map<number, string>, bad: number[], code: string, piece: number | null): Promise<RankRun[]> {
  const logs = [join(dir, '..', 'q0.jsonl'), join(dir, '..', 'q1.jsonl')];
  const runs = await Promise.all([0, 1].map((rank) => run(dir, { rank, worldSize: 2, onCorrupt: 'skip', quarantineLog: logs[rank]!, seed: 5 })));
  const seen = new Map<number, number>();
  const quarantinedIds: number[] = [];
  runs.forEach((r, rank) => {
    assert.equal(r.err, undefined, `rank ${rank}: ${r.err?.message}`);
    for (const b of r.batches) {
      checkRule(b);
      b.ids.forEach((id, i) => {
        if (b.quarantined.includes(i)) {
          quarantinedIds.push(id);
          return;
        }
        seen.set(id, (seen.get(id) ?? 0) + 1);
        assert.equal(b.rows[i], clean.get(id), `rank ${rank}: sample ${id} came back changed`);
      });
    }
    assert.equal(r.stats.quarantinedSamples, r.batches.reduce((a, b) => a + b.quarantined.length, 0), `rank ${rank}: stats count the replaced rows`);
    // The JSON Lines log: one line per piece this rank found, naming shard, rows and code.
    const lines = existsSync(logs[rank]!) ? readFileSync(logs[rank]!, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) : [];
    assert.equal(lines.length, r.stats.quarantinedPieces, `rank ${rank}: log lines`);
    for (const l of lines) {
      assert.equal(l.code, code);
      assert.equal(l.rank, rank);
      assert.equal(l.piece, piece);
      const [a, z] = l.samples as [number, number];
      assert.deepEqual([a, z], [bad[0], bad.at(-1)! + 1], 'the logged sample range is the bad piece');
      assert.equal(l.shard, manifest.shards[l.shardIndex as number]!.path);
    }
    if (r.stats.quarantinedSamples > 0) assert.ok(lines.length >= 1, `rank ${rank} replaced rows without logging`);
  });
  assert.equal(runs[0]!.batches.length, runs[1]!.batches.length, 'equal steps on both ranks');
  assert.ok(runs.some((r) => r.batches.some((b) => b.quarantined.length > 0 && b.quarantined.length < b.ids.length)), 'some batch mixes replaced and good rows');
  assert.ok(runs[0]!.stats.quarantinedPieces + runs[1]!.stats.quarantinedPieces >= 1);
  assert.deepEqual(quarantinedIds.sort((a, b) => a - b), bad, 'exactly the bad piece\'s samples were quarantined, once each');
  const badSet = new Set(bad);
  for (const [id] of clean) {
    if (badSet.has(id)) assert.equal(seen.get(id), undefined, `bad sample ${id} delivered as good`);
    else assert.equal(seen.get(id), 1, `sample ${id} delivered ${seen.get(id) ?? 0} times`);
  }
  return runs;
}

async function cleanRows(dir: string): Promise<Map<number, string>> {
  const r = await run(dir, { shuffle: 'none' });
  assert.equal(r.err, undefined);
  const out = new Map<number, string>();
  for (const b of r.batches) b.ids.forEach((id, i) => out.set(id, b.rows[i]!));
  assert.equal(out.size, ROWS);
  return out;
}

test('a flipped byte in one Parquet page quarantines its row group: two ranks, equal steps, everything else exactly once; fail names the shard', async (t) => {
  const { dir, manifest } = await dataset(t, 'parquet');
  const clean = await cleanRows(dir);
  const entry = manifest.shards[1]!;
  assert.ok(entry.layout.kind === 'parquet' && entry.layout.rowGroups.length >= 2);
  const chunk = entry.layout.rowGroups[1]!.chunks!.find((c) => c.column === 'tokens')!;
  const file = join(dir, entry.path);
  const bytes = readFileSync(file);
  const at = chunk.offset + Math.floor(chunk.bytes * 0.75);
  bytes[at] = bytes[at]! ^ 0x5a;
  writeFileSync(file, bytes);

  const failed = await run(dir, { worldSize: 2, rank: 0, seed: 5 });
  assert.ok(failed.err, 'fail (the default) ends the run');
  assert.equal(failed.err.code, ErrorCodes.HASH_MISMATCH, failed.err.message);
  assert.equal(failed.err.details.shard, entry.path);

  await checkTwoRanks(dir, manifest, clean, globalRange(manifest, 1, 1), ErrorCodes.HASH_MISMATCH, 1);
});

test('a truncated Arrow shard is quarantined whole; a resume after it skips the shard unread; maxQuarantined and fail', async (t) => {
  const { dir, manifest } = await dataset(t, 'arrow');
  const clean = await cleanRows(dir);
  const entry = manifest.shards[1]!;
  truncateSync(join(dir, entry.path), Math.floor(entry.bytes / 2));
  const bad = globalRange(manifest, 1, -1);

  const failed = await run(dir, { seed: 5 });
  assert.ok(failed.err, 'fail (the default) ends the run');
  assert.equal(failed.err.code, ErrorCodes.SHARD_CORRUPT, failed.err.message);
  assert.equal(failed.err.details.shard, entry.path);

  await checkTwoRanks(dir, manifest, clean, bad, ErrorCodes.SHARD_CORRUPT, null);

  // One rank in order: the shard's batches are wholly quarantined (zeros), the state after the
  // first of them lists the shard, and the resumed run delivers exactly the same batches after
  // that point without finding (reading) anything.
  const log = join(dir, '..', 'first.jsonl');
  const first = await run(dir, { shuffle: 'none', onCorrupt: 'skip', quarantineLog: log }, (b) => b.quarantined.length > 0);
  assert.equal(first.err, undefined, first.err?.message);
  assert.equal(first.stats.quarantinedPieces, 1);
  assert.equal(first.stats.quarantinedSamples, bad.length);
  assert.ok(first.batches.some((b) => b.quarantined.length === b.ids.length), 'a batch wholly inside the bad shard');
  for (const b of first.batches) checkRule(b);
  assert.equal(readFileSync(log, 'utf8').trim().split('\n').length, 1, 'logged once');
  const state = first.states[0]!;
  assert.equal(state.version, 3);
  assert.deepEqual(state.quarantined, [{ shard: 1, path: entry.path, code: ErrorCodes.SHARD_CORRUPT }]);
  const at = first.batches.findIndex((b) => b.quarantined.length > 0);
  const resumeLog = join(dir, '..', 'resumed.jsonl');
  const resumed = await run(dir, { shuffle: 'none', onCorrupt: 'skip', quarantineLog: resumeLog, resume: JSON.parse(JSON.stringify(state)) as ResumeState });
  assert.equal(resumed.err, undefined, resumed.err?.message);
  assert.deepEqual(resumed.batches, first.batches.slice(at + 1), 'the resumed run delivers the same batches, quarantine included');
  assert.equal(resumed.stats.quarantinedPieces, 0, 'nothing found again: the shard was skipped unread');
  assert.ok(resumed.stats.quarantinedSamples > 0);
  assert.equal(existsSync(resumeLog), false, 'no event logged again');

  // A mostly broken dataset is an error again: a count, and a fraction of the epoch's rows.
  for (const maxQuarantined of [10, 0.05]) {
    const limited = await run(dir, { shuffle: 'none', onCorrupt: 'skip', maxQuarantined });
    assert.ok(limited.err, `maxQuarantined ${maxQuarantined}: no error`);
    assert.equal(limited.err.code, ErrorCodes.QUARANTINE_LIMIT, limited.err.message);
    assert.equal(limited.err.details.option, 'maxQuarantined');
    assert.match(limited.err.message, new RegExp(entry.path.replace(/[.]/g, '\\.')));
  }
  const enough = await run(dir, { shuffle: 'none', onCorrupt: 'skip', maxQuarantined: bad.length });
  assert.equal(enough.err, undefined, 'at the limit is allowed');
});

test('gpufeed dump --on-corrupt skip finishes, marks the rows and writes the log; without it exits 2 naming the shard', async (t) => {
  const { dir, manifest } = await dataset(t, 'arrow');
  const entry = manifest.shards[2]!;
  truncateSync(join(dir, entry.path), 100);
  const log = join(dir, '..', 'cli.jsonl');
  const dump = (...flags: string[]) => new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [...cliArgv(), 'dump', dir, '--batch-size', '40', '--workers', '1', '--no-pin', '--shuffle', 'none', ...flags], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const killer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
    child.on('close', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    });
  });
  const skipped = await dump('--on-corrupt', 'skip', '--quarantine-log', log);
  assert.equal(skipped.code, 0, skipped.stderr);
  const lines = skipped.stdout.trim().split('\n').map((l) => JSON.parse(l) as { ids: number[]; quarantined?: number[] });
  const bad = new Set(globalRange(manifest, 2, -1));
  let replaced = 0;
  for (const l of lines) {
    const q = new Set(l.quarantined ?? []);
    l.ids.forEach((id, i) => assert.equal(q.has(i), bad.has(id), `sample ${id}`));
    replaced += q.size;
  }
  assert.equal(replaced, bad.size);
  assert.match(skipped.stderr, new RegExp(`quarantined shard ${entry.path.replace(/[.]/g, '\\.')} rows \\[0, ${entry.rows}\\).*GPUFEED_SHARD_CORRUPT`));
  const logged = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { shard: string; code: string });
  assert.deepEqual(logged.map((l) => [l.shard, l.code]), [[entry.path, ErrorCodes.SHARD_CORRUPT]]);

  const failed = await dump();
  assert.equal(failed.code, 2, failed.stderr);
  assert.match(failed.stderr, new RegExp(`GPUFEED_SHARD_CORRUPT: shard ${entry.path.replace(/[.]/g, '\\.')}`));
});

test('from S3: a shard whose download fails its hash is quarantined; the resumed run never downloads it again', async (t) => {
  const creds = { AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey, AWS_REGION: 'us-east-1' };
  const saved = { ...process.env };
  Object.assign(process.env, creds);
  t.after(() => {
    for (const k of Object.keys(creds)) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-quarantine-s3-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const server = await startS3Server(['data']);
  t.after(() => server.close());
  const input = join(dir, 'rows.jsonl');
  writeFileSync(input, Array.from({ length: 300 }, (_, i) => JSON.stringify({ tokens: Array.from({ length: TOKENS }, (_, k) => i + k), label: i, text: `s${i}` })).join('\n'));
  const manifest = await prepDataset([input], {
    out: 's3://data/ds', format: 'arrow', shapes: { tokens: [TOKENS] }, types: { tokens: 'int32', label: 'int64' }, shardSize: 8 * 1024,
    workers: 0, progress: false, storeOptions: { s3Endpoint: server.endpoint },
  });
  assert.ok(manifest.shards.length >= 3, `${manifest.shards.length} shards`);
  // Shard 1 damaged in the bucket: same size, one byte flipped, so only the download's hash tells.
  const entry = manifest.shards[1]!;
  const got = await server.client.send(new GetObjectCommand({ Bucket: 'data', Key: `ds/${entry.path}` }));
  const body = Buffer.from(await got.Body!.transformToByteArray());
  const mid = body.length >> 1;
  body[mid] = body[mid]! ^ 0x01;
  await server.putObject('data', `ds/${entry.path}`, body);

  const common = { batchSize: 10, workers: 1, pin: false, shuffle: 'none' as const, onCorrupt: 'skip' as const, minFreeBytes: 0, cacheBytes: 64 << 20, s3Endpoint: server.endpoint };
  const load = async (cacheDir: string, resume?: ResumeState): Promise<{ batches: { ids: number[]; quarantined: number[] }[]; state?: ResumeState; stats: ReturnType<Loader['stats']>; downloads: string[] }> => {
    // Every download the shard cache starts, by shard path.
    const downloads: string[] = [];
    const onEvent = (e: CacheEvent): void => {
      if (e.type === 'download-start') downloads.push(e.shard ?? e.name);
    };
    const loader = await Loader.open('s3://data/ds', { ...common, cacheDir, onEvent, ...(resume ? { resume } : {}) });
    const batches: { ids: number[]; quarantined: number[] }[] = [];
    let state: ResumeState | undefined;
    try {
      for await (const b of loader) {
        batches.push({ ids: [...b.ids], quarantined: [...b.quarantined] });
        if (!state && b.quarantined.length > 0) state = loader.state();
      }
      return { batches, state, stats: loader.stats(), downloads };
    } finally {
      await loader.close();
    }
  };
  const first = await load(join(dir, 'cache1'));
  assert.ok(first.downloads.filter((p) => p === entry.path).length >= 2, 'the damaged shard was downloaded (twice) and failed its hash');
  assert.equal(first.stats.quarantinedPieces, 1);
  assert.equal(first.stats.quarantinedSamples, entry.rows);
  assert.ok(first.state, 'a batch had quarantined rows');
  assert.deepEqual(first.state.quarantined, [{ shard: 1, path: entry.path, code: ErrorCodes.HASH_MISMATCH }]);
  const bad = new Set(globalRange(manifest, 1, -1));
  for (const b of first.batches) b.ids.forEach((id, i) => assert.equal(b.quarantined.includes(i), bad.has(id), `sample ${id}`));

  // A fresh cache: every download the resumed run makes is counted, and none is of the bad shard.
  const resumed = await load(join(dir, 'cache2'), JSON.parse(JSON.stringify(first.state)) as ResumeState);
  const at = first.batches.findIndex((b) => b.quarantined.length > 0);
  assert.deepEqual(resumed.batches, first.batches.slice(at + 1));
  assert.equal(resumed.stats.quarantinedPieces, 0);
  assert.deepEqual([...resumed.downloads].sort(), manifest.shards.slice(2).map((s) => s.path).sort(), 'only the good shards after the resume point, never the bad one');
});

test('a shard truncated under its mapping mid-run: with skip the run ends normally, the rows past the cut quarantined, every other row right', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-quarantine-cut-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const manifest = await makeDemoDataset(dir, { rows: 2000, seqLen: 256, format: 'arrow', shardSize: '8MiB', overwrite: true });
  assert.equal(manifest.shards.length, 1);
  const file = join(dir, manifest.shards[0]!.path);
  const opts: LoaderOptions = { batchSize: 8, workers: 1, slots: 2, shuffle: 'none', pin: false, read: 'mmap', columns: ['input_ids'] };
  const rowOf = (b: Batch, i: number): string => {
    const c = b.columns.input_ids as Int32Array;
    return Buffer.from(c.buffer, c.byteOffset + i * 1024, 1024).toString('base64');
  };
  const want = new Map<number, string>();
  const intact = await Loader.open(dir, { ...opts, read: 'pread' });
  for await (const b of intact) b.ids.forEach((id, i) => want.set(id, rowOf(b, i)));
  await intact.close();

  const loader = await Loader.open(dir, { ...opts, onCorrupt: 'skip' });
  let batches = 0;
  let good = 0;
  let replaced = 0;
  try {
    for await (const b of loader) {
      batches += 1;
      if (batches === 1) truncateSync(file, 300_000);
      const q = new Set(b.quarantined);
      b.ids.forEach((id, i) => {
        if (q.has(i)) {
          replaced += 1;
          return;
        }
        good += 1;
        assert.equal(rowOf(b, i), want.get(id), `sample ${id} came back changed`);
      });
      assert.ok(batches <= 250, 'bounded');
    }
  } finally {
    await loader.close();
  }
  assert.equal(batches, 250, 'every step delivered');
  assert.equal(good + replaced, 2000);
  assert.ok(replaced > 0 && good >= 8, `${good} good rows, ${replaced} quarantined`);
  assert.equal(loader.stats().quarantinedSamples, replaced);
});
