// Start-up: the modules a loader loads decide most of the time to its first batch (README,
// Performance), so the heavy ones are loaded only where the dataset needs them. Asserted from the
// URLs the module hooks see (test/fixtures/import-log-hooks.mjs), not from timings. piscina
// loads a worker's entry with require (an ES module, Node >= 20.19), which the hooks do not see,
// so the entry's static graph is checked by importing it here, and what a worker imports later
// (dynamic import() of a format's reader) in a real run, where the hooks see every thread.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { makeDemoDataset } from '../../src/dataset/demo.js';
import { workerEntry } from '../../src/package-root.js';
import { tempDir } from '../fixtures/dataset-fixtures.js';

const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));
const HEAVY = ['apache-arrow', 'hyparquet', 'hyparquet-writer', 'hyparquet-compressors', '@aws-sdk/client-s3'];
const PARQUET = ['hyparquet', 'hyparquet-writer', 'hyparquet-compressors'];

/** Packages (by name) among the logged URLs. */
function packagesIn(urls: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const u of urls) {
    const m = u.match(/\/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
    if (m) out.add(m[1]!);
  }
  return out;
}

type T = Parameters<typeof tempDir>[0];

/** The child with the hooks; returns the logged lines and its stdout. */
async function child(t: T, args: string[]): Promise<{ lines: string[]; stdout: string }> {
  const logFile = join(await tempDir(t, 'gpufeed-imports-'), 'imports.log');
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--import', join(fixtures, 'import-log-register.mjs'), join(fixtures, 'startup-imports-child.ts'), ...args], {
    env: { ...process.env, GPUFEED_IMPORT_LOG: logFile }, timeout: 120_000,
  });
  return { lines: (await readFile(logFile, 'utf8')).split('\n').filter(Boolean), stdout };
}

/** One epoch: the URLs resolved up to the loader module's import, and all of them (every thread). */
async function run(t: T, dataset: string): Promise<{ mainGraph: string[]; all: string[]; rows: number }> {
  const { lines, stdout } = await child(t, ['run', dataset]);
  const marker = lines.indexOf('@@ loader imported');
  assert.ok(marker > 0, 'the child marks the end of the loader import');
  return { mainGraph: lines.slice(0, marker), all: lines.filter((l) => !l.startsWith('@@')), rows: (JSON.parse(stdout.trim()) as { rows: number }).rows };
}

async function dataset(t: T, format: 'arrow' | 'parquet'): Promise<string> {
  const dir = join(await tempDir(t), 'ds');
  await makeDemoDataset(dir, { rows: 100, seqLen: 8, format, shardSize: 1024 });
  return dir;
}

test('the loader module loads no format reader, writer or S3 client: the main thread only plans and hands out batches', async (t) => {
  const r = await run(t, await dataset(t, 'arrow'));
  assert.equal(r.rows, 100);
  assert.ok(r.mainGraph.some((u) => u.includes('/src/pipeline/loader.')), 'the hooks saw the loader module');
  const loaded = packagesIn(r.mainGraph);
  assert.deepEqual(HEAVY.filter((p) => loaded.has(p)), []);
});

test("the decode worker's entry loads the Arrow reader but no Parquet reader or writer, nor sharp", async (t) => {
  const { lines } = await child(t, ['import', workerEntry('decode')]);
  assert.ok(lines.some((u) => u.endsWith('/src/pipeline/decode-worker.js')), 'the hooks saw the worker logic');
  const loaded = packagesIn(lines);
  assert.ok(loaded.has('apache-arrow'));
  assert.deepEqual([...PARQUET, 'sharp'].filter((p) => loaded.has(p)), []);
});

test('an Arrow dataset: what the decode workers import as they open shards includes no Parquet reader or writer', async (t) => {
  const r = await run(t, await dataset(t, 'arrow'));
  assert.equal(r.rows, 100);
  // The shard checks' modules are imported by the workers when they open their first shard: the
  // hooks see that, so the check below can fail.
  assert.ok(r.all.some((u) => u.includes('/src/dataset/shard-truth.')), "the hooks saw the workers' shard checks");
  const loaded = packagesIn(r.all);
  assert.deepEqual([...PARQUET, 'sharp'].filter((p) => loaded.has(p)), []);
});

test('a Parquet dataset: the decode workers load the Parquet reader when they first open a Parquet shard', async (t) => {
  const r = await run(t, await dataset(t, 'parquet'));
  assert.equal(r.rows, 100);
  assert.equal(packagesIn(r.mainGraph).has('hyparquet'), false);
  assert.ok(packagesIn(r.all).has('hyparquet'));
});
