// The columns `gpufeed index` now reads through a conversion (decimals, fixed-size binary, views,
// dictionaries) are still held to the file at open: a manifest that claims another dtype or kind
// for them is GPUFEED_SHARD_CORRUPT naming the shard and the column, never decoded into wrong values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Loader } from '../../src/index.js';
import { runCli } from '../fixtures/run-cli.js';

function hasPyarrow(): boolean {
  try {
    execFileSync('python3', ['-c', 'import pyarrow'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('index: converted columns keep their manifest honest', { skip: !hasPyarrow() && 'python3 with pyarrow is not installed' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-types-truth-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  execFileSync('python3', ['-c', `
import decimal, pyarrow as pa, pyarrow.feather as f
n = 12
f.write_feather(pa.table({
  'dec': pa.array([decimal.Decimal(i) / 4 for i in range(n)], pa.decimal128(10, 2)),
  'h': pa.array([bytes([i] * 3) for i in range(n)], pa.binary(3)),
  'sv': pa.array([str(i) * (i + 1) for i in range(n)], pa.string_view()),
  'cat': pa.array([['x', 'y'][i % 2] for i in range(n)]).dictionary_encode(),
}), ${JSON.stringify(join(dir, 'a.arrow'))}, compression='uncompressed')
`]);
  const r = await runCli(['index', dir]);
  assert.equal(r.code, 0, r.stderr);
  const path = join(dir, 'index.json');
  const clean = readFileSync(path, 'utf8');
  const manifest = JSON.parse(clean) as { schema: Record<string, unknown>[] };
  assert.deepEqual(manifest.schema.map((c) => [c.name, c.dtype, c.kind]), [['dec', 'float64', 'scalar'], ['h', 'binary', 'bytes'], ['sv', 'string', 'bytes'], ['cat', 'string', 'bytes']]);
  // Honest: every value as written.
  const loader = await Loader.open(dir, { batchSize: 12, workers: 1 });
  for await (const b of loader) {
    assert.deepEqual(Array.from(b.columns.dec as Float64Array), Array.from({ length: 12 }, (_, i) => i / 4));
  }
  await loader.close();
  const lies: [string, (c: Record<string, unknown>) => void][] = [
    // (With its decimal annotation kept, the manifest itself is invalid: drop it, as a liar would.)
    ['dec', (c) => { c.dtype = 'int64'; delete c.logical; delete c.precision; delete c.scale; }],
    ['h', (c) => { c.dtype = 'float64'; c.kind = 'scalar'; }],
    ['sv', (c) => { c.dtype = 'int32'; c.kind = 'scalar'; }],
    ['cat', (c) => { c.kind = 'list'; c.dtype = 'int32'; }],
  ];
  for (const [name, lie] of lies) {
    const m = JSON.parse(clean) as { schema: Record<string, unknown>[] };
    lie(m.schema.find((c) => c.name === name)!);
    writeFileSync(path, JSON.stringify(m));
    await assert.rejects(async () => {
      const l = await Loader.open(dir, { batchSize: 12, workers: 1 });
      try {
        for await (const _ of l) { /* drain */ }
      } finally {
        await l.close();
      }
    }, (err: Error & { code?: string }) => {
      assert.equal(err.code, 'GPUFEED_SHARD_CORRUPT', `lie about ${name}: ${err.message}`);
      assert.match(err.message, new RegExp(`column "${name}"`));
      return true;
    });
  }
  writeFileSync(path, clean);
});
