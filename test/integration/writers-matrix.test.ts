// Files as pyarrow, Polars (python3) and DuckDB (@duckdb/node-api) write them, through both routes:
// `gpufeed index` (read in place) and `gpufeed prep` (converted), then loaded with the JS Loader
// and compared value by value with the writer's own reading (test/fixtures/writers.py writes
// expected.json beside each file). Where the in-place route refuses a type, the refusal must be
// GPUFEED_UNSUPPORTED_TYPE naming the column (or the codec) and pointing at `gpufeed prep`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Loader, isVarColumn } from '../../src/index.js';
import { workerEntry } from '../../src/package-root.js';
import { ROOT } from '../fixtures/run-cli.js';
import { CASES_AT_ONCE, createLimiter } from '../helpers/map-limit.js';
import { cliInProcess } from '../helpers/cli-in-process.js';

const CLI = join(ROOT, 'dist/src/cli/run.js');

/**
 * The CLI's main() in this process, one call at a time (its output capture is process-wide): a
 * child per call spent most of this test's time starting Node.
 */
const oneAtATime = createLimiter(1);
function runCli(args: string[]): Promise<{ code: number; stderr: string }> {
  return oneAtATime(async () => {
    const r = await cliInProcess(args);
    return { code: r.code, stderr: r.err };
  });
}

interface Expected {
  rows: number;
  columns: Record<string, unknown[]>;
}

function python(): string | undefined {
  try {
    execFileSync('python3', ['-c', 'import pyarrow, numpy'], { stdio: 'ignore' });
    return 'python3';
  } catch {
    return undefined;
  }
}

const utf8 = new TextDecoder();

/** Every row of a dataset through the Loader, in expected.json's terms. */
async function loadAll(dir: string): Promise<Expected> {
  const loader = await Loader.open(dir, { batchSize: 16, workers: 1 });
  const columns: Record<string, unknown[]> = {};
  let rows = 0;
  try {
    for await (const batch of loader) {
      for (const region of batch.layout.columns) {
        const out = (columns[region.name] ??= []);
        const data = batch.columns[region.name]!;
        const valid = batch.valid[region.name];
        const el = (x: number | bigint): unknown => {
          if (region.dtype === 'bool') return x === 1;
          if (typeof x === 'bigint') return String(x);
          if (region.dtype.startsWith('int') || region.dtype.startsWith('uint')) return String(x);
          return x;
        };
        for (let i = 0; i < batch.size; i++) {
          if (valid && !valid[i]) {
            out.push(null);
            continue;
          }
          if (isVarColumn(data)) {
            const part = data.values.subarray(data.offsets[i]!, data.offsets[i + 1]!);
            if (region.dtype === 'string') out.push(utf8.decode(part as Uint8Array));
            else if (region.dtype === 'binary') out.push(Array.from(part as Uint8Array));
            else out.push(Array.from(part as ArrayLike<number | bigint>, el));
          } else if (region.kind === 'fixed') {
            const per = region.rowBytes / region.elementBytes;
            out.push(Array.from(data.subarray(i * per, (i + 1) * per) as ArrayLike<number | bigint>, el));
          } else {
            out.push(el(data[i] as number | bigint));
          }
        }
      }
      rows += batch.size;
    }
  } finally {
    await loader.close();
  }
  return { rows, columns };
}

/** Same values: float32 compared at float32 precision (JSON carries the widened double). */
function assertSame(got: Expected, want: Expected, at: string): void {
  assert.equal(got.rows, want.rows, `${at}: rows`);
  assert.deepEqual(Object.keys(got.columns).sort(), Object.keys(want.columns).sort(), `${at}: columns`);
  for (const [name, values] of Object.entries(want.columns)) {
    const actual = got.columns[name]!;
    const f32 = (x: unknown): unknown => (typeof x === 'number' ? Math.fround(x) : Array.isArray(x) ? x.map(f32) : x);
    assert.deepEqual(actual.map(f32), values.map(f32), `${at}: column ${name}`);
    assert.deepEqual(actual, values.map((v, i) => (typeof v === 'number' && typeof actual[i] === 'number' && Math.fround(v) === actual[i] ? actual[i] : Array.isArray(v) && Array.isArray(actual[i]) ? (actual[i] as unknown[]).map((a, k) => (typeof a === 'number' && Math.fround(v[k] as number) === a ? a : v[k])) : v)), `${at}: column ${name} (exact)`);
  }
}

/** What `gpufeed index` must do per case: read it in place, or refuse it with this message part. */
const INDEX_REFUSES: Record<string, RegExp> = {
  'pa-parquet-hf': /column "image": is a struct.*gpufeed prep/,
  'pa-arrow-dict-delta': /column "cat" \(dictionary 0\): a delta dictionary batch, which gpufeed does not read in place; convert the files with `gpufeed prep`, or leave the column out with --drop cat/,
  'pa-arrow-hf': /column "image": Arrow type Struct.*is a struct; convert the files with `gpufeed prep`/,
  'pa-arrow-listnull': /column "l": rows 1-37 hold 1 null list item/,
  'pa-parquet-listnull': /column "l": row group 0 \(rows 1-37\) holds 1 null list item/,
  'pa-arrow-fslnull': /column "v": rows 1-37 hold 1 null fixed-size list/,
};
/**
 * Cases with a null item inside a list: refused by index (from the footer) or, where the footer
 * cannot tell, by loading; prep refuses them too, naming the row.
 */
const NULL_ITEMS: Record<string, RegExp> = {
  'pa-parquet-listnull': /column "?l"?.*null list item/,
  'duckdb-listnull': /column "?l"?.*null list item/,
  'pa-arrow-listnull': /row 6: column "l": the list holds a null item/,
};
/** Cases prep refuses for another reason (message part). */
const PREP_REFUSES: Record<string, RegExp> = {
  'pa-arrow-fslnull': /row 3: column "v": is null or missing; fixed-shape columns cannot hold nulls/,
};

const py = python();

test('writers x types x routes: every value as the writer reads it', { skip: (!py && 'python3 with pyarrow is not installed') || (!(existsSync(workerEntry('prep-shard')) && existsSync(CLI)) && 'run npm run build first') }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'gpufeed-writers-'));
  let started: Promise<unknown>[] = [];
  // Children started ahead finish before their folder goes (a failed subtest leaves some running).
  t.after(() => Promise.all(started).finally(() => rmSync(root, { recursive: true, force: true })));
  const files = join(root, 'files');
  const printed = execFileSync(py!, [join(ROOT, 'test/fixtures/writers.py'), files], { encoding: 'utf8' });
  if (printed.trim()) t.diagnostic(printed.trim());
  await writeDuckDbCases(files, t);
  const cases = readdirSync(files).sort();
  assert.ok(cases.length >= 15, `cases written: ${cases.join(', ')}`);
  // Every case's two children (index in place, prep to its own folder) touch only that case's
  // files, so they all start here, CASES_AT_ONCE at a time, while the subtests below load and compare.
  const limit = createLimiter(CASES_AT_ONCE);
  const formatOf = (name: string) => (cases.indexOf(name) % 2 === 0 ? 'arrow' : 'parquet');
  const dataFileOf = (name: string) => readdirSync(join(files, name)).find((f) => f.startsWith('data.'))!;
  const children = new Map(cases.map((name) => [name, {
    index: limit(() => runCli(['index', join(files, name)])),
    prep: limit(() => runCli(['prep', join(files, name, dataFileOf(name)), '--out', join(root, 'prep', `${name}-${formatOf(name)}`), '--format', formatOf(name), '--workers', '0'])),
  }]));
  started = [...children.values()].flatMap((c) => [c.index, c.prep]);
  for (const name of cases) await t.test(name, async () => {
    const dir = join(files, name);
    const want = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
    const dataFile = dataFileOf(name);
    // index: in place.
    const idx = await children.get(name)!.index;
    const refusal = INDEX_REFUSES[name];
    if (NULL_ITEMS[name] && !refusal && idx.code !== 0) {
      // Found from the footer's definition level histograms, where the writer recorded them.
      assert.match(idx.stderr, /GPUFEED_UNSUPPORTED_TYPE.*null list item/, `${name}: ${idx.stderr}`);
    } else if (refusal) {
      assert.notEqual(idx.code, 0, `${name}: index should refuse`);
      assert.match(idx.stderr, /GPUFEED_UNSUPPORTED_TYPE/, `${name}: ${idx.stderr}`);
      assert.match(idx.stderr, refusal, `${name}: ${idx.stderr}`);
      assert.doesNotMatch(idx.stderr, /GPUFEED_INTERNAL/);
    } else {
      assert.equal(idx.code, 0, `${name}: index: ${idx.stderr}`);
      if (NULL_ITEMS[name]) {
        await assert.rejects(loadAll(dir), (err: Error & { code?: string }) => err.code === 'GPUFEED_UNSUPPORTED_TYPE' && NULL_ITEMS[name]!.test(err.message), `${name}: load refuses null items`);
      } else {
        assertSame(await loadAll(dir), want, `${name} (index)`);
      }
    }
    // prep: converted; the shard format alternates by case (each type occurs in cases of both).
    for (const format of [formatOf(name)] as const) {
      const out = join(root, 'prep', `${name}-${format}`);
      const r = await children.get(name)!.prep;
      if (NULL_ITEMS[name]) {
        assert.notEqual(r.code, 0, `${name}: prep should refuse null items`);
        assert.match(r.stderr, /null item/, `${name}: ${r.stderr}`);
        assert.ok(r.stderr.includes(join(dir, dataFile)), `${name}: names the file: ${r.stderr}`);
        assert.match(r.stderr, /row 6/, `${name}: names the row: ${r.stderr}`);
        continue;
      }
      if (PREP_REFUSES[name]) {
        assert.equal(r.code, 2, `${name}: prep should refuse: ${r.stderr}`);
        assert.match(r.stderr, PREP_REFUSES[name]!);
        assert.ok(r.stderr.includes(join(dir, dataFile)), `${name}: names the file: ${r.stderr}`);
        continue;
      }
      assert.equal(r.code, 0, `${name} prep ${format}: ${r.stderr}`);
      assertSame(await loadAll(out), want, `${name} (prep ${format})`);
    }
  });
});

/** DuckDB's own Parquet: DECIMAL via FIXED_LEN_BYTE_ARRAY, timestamps, structs, lists; expected from DuckDB's reading. */
async function writeDuckDbCases(files: string, t: { diagnostic(msg: string): void }): Promise<void> {
  let duck: typeof import('@duckdb/node-api');
  try {
    duck = await import('@duckdb/node-api');
  } catch (err) {
    t.diagnostic(`skip duckdb: ${(err as Error).message}`);
    return;
  }
  const instance = await duck.DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  try {
    const dir = join(files, 'duckdb-parquet');
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'data.parquet');
    await conn.run(`COPY (SELECT i::BIGINT AS id, i * 0.5 AS score, (i * 1.25)::DECIMAL(38,2) AS big,
      'name ' || i AS name, [i, i + 1]::INTEGER[] AS pair, {'a': i, 'b': 'x' || i} AS s,
      TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (i) SECOND AS ts, (i / 3)::FLOAT AS f
      FROM range(23) t(i)) TO '${path}' (FORMAT PARQUET)`);
    const reader = await conn.runAndReadAll(`SELECT id::VARCHAR AS id, score::DOUBLE AS score, big::DOUBLE AS big, name,
      [x::VARCHAR for x in pair] AS pair, s.a::VARCHAR AS "s.a", s.b AS "s.b", epoch_us(ts)::VARCHAR AS ts, f::DOUBLE AS f
      FROM read_parquet('${path}')`);
    const columns: Record<string, unknown[]> = {};
    const names = reader.columnNames();
    for (const n of names) columns[n] = [];
    for (const row of reader.getRowObjectsJson()) for (const n of names) columns[n]!.push(row[n] ?? null);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(dir, 'expected.json'), JSON.stringify({ rows: reader.currentRowCount, columns }));
    // Decimals are read in place; the struct still needs prep (which flattens it).
    INDEX_REFUSES['duckdb-parquet'] = /column "s": is a struct.*gpufeed prep.*--drop s/;
    // DuckDB's decimals by width: INT32 (precision <= 9), INT64 (<= 18), FIXED_LEN_BYTE_ARRAY (more).
    const decDir = join(files, 'duckdb-decimal');
    mkdirSync(decDir, { recursive: true });
    const decPath = join(decDir, 'data.parquet');
    await conn.run(`COPY (SELECT (i * 0.5)::DECIMAL(4,1) AS d32, CASE WHEN i = 3 THEN NULL ELSE (i * -1234.567)::DECIMAL(18,3) END AS d64,
      i * 0.5 AS score, (i * 98765432109876.54321)::DECIMAL(38,5) AS d128
      FROM range(23) t(i)) TO '${decPath}' (FORMAT PARQUET)`);
    const decReader = await conn.runAndReadAll(`SELECT d32::DOUBLE AS d32, d64::DOUBLE AS d64, score::DOUBLE AS score, d128::DOUBLE AS d128 FROM read_parquet('${decPath}')`);
    const decColumns: Record<string, unknown[]> = {};
    for (const n of decReader.columnNames()) decColumns[n] = [];
    for (const row of decReader.getRowObjectsJson()) for (const n of decReader.columnNames()) decColumns[n]!.push(row[n] ?? null);
    writeFileSync(join(decDir, 'expected.json'), JSON.stringify({ rows: decReader.currentRowCount, columns: decColumns }));
    const nullDir = join(files, 'duckdb-listnull');
    mkdirSync(nullDir, { recursive: true });
    await conn.run(`COPY (SELECT CASE WHEN i = 5 THEN [i, NULL] ELSE [i] END::BIGINT[] AS l FROM range(23) t(i)) TO '${join(nullDir, 'data.parquet')}' (FORMAT PARQUET)`);
    writeFileSync(join(nullDir, 'expected.json'), JSON.stringify({ rows: 23, columns: {} }));
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}
