// Multi-dim fixed_size_list columns in Parquet (pyarrow's nested fixed_size_list: Hugging Face
// Array2D/Array3D, [N, D] tensors), through both routes: `gpufeed index` (read in place) and
// `gpufeed prep` (converted). Every value must be pyarrow's; a null row, a null inner list, a null
// item or a row of other sizes (even with the right total) must be refused naming file, column and
// row, never loaded as wrong values. Files from test/fixtures/nested-fixed.py.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetMetadata } from 'hyparquet';
import { Loader } from '../../src/index.js';
import { workerEntry } from '../../src/package-root.js';
import { computeBatchLayout } from '../../src/pipeline/batch-layout.js';
import { decodeFlatColumn } from '../../src/formats/parquet/flat-column.js';
import type { ColumnSpec } from '../../src/dataset/types.js';
import { ROOT } from '../fixtures/run-cli.js';
import { cliInProcess } from '../helpers/cli-in-process.js';
import { pythonHas } from '../helpers/python-modules.js';

interface Expected {
  rows: number;
  columns: Record<string, unknown[][]>;
}

/** Every row of a dataset through the Loader: values row-major (int64 as strings), and the shapes. */
async function loadAll(dir: string): Promise<{ rows: number; columns: Record<string, unknown[][]>; shapes: Record<string, number[]> }> {
  const loader = await Loader.open(dir, { batchSize: 16, workers: 1 });
  const columns: Record<string, unknown[][]> = {};
  const shapes: Record<string, number[]> = {};
  let rows = 0;
  try {
    for await (const batch of loader) {
      // The loader's own order (seeded shuffle) is undone by the ids.
      for (const region of batch.layout.columns) {
        shapes[region.name] = region.shape;
        const out = (columns[region.name] ??= []);
        const data = batch.columns[region.name] as ArrayLike<number | bigint>;
        const per = region.kind === 'fixed' ? region.rowBytes / region.elementBytes : 1;
        const el = (x: number | bigint): unknown => (region.dtype === 'bool' ? x === 1 : /int/.test(region.dtype) ? String(x) : x);
        for (let i = 0; i < batch.size; i++) {
          const row: unknown[] = [];
          for (let k = 0; k < per; k++) row.push(el(data[i * per + k]!));
          out[Number(batch.ids[i])] = row;
        }
      }
      rows += batch.size;
    }
  } finally {
    await loader.close();
  }
  return { rows, columns, shapes };
}

/** float32 values compared at float32 precision (pyarrow's JSON holds the widened double exactly). */
function assertSame(got: Expected, want: Expected, at: string): void {
  assert.equal(got.rows, want.rows, `${at}: rows`);
  assert.deepEqual(Object.keys(got.columns).sort(), Object.keys(want.columns).sort(), `${at}: columns`);
  for (const [name, values] of Object.entries(want.columns)) {
    const wantRows = values.map((row) => (Array.isArray(row) ? row : [row]));
    assert.deepEqual(got.columns[name], wantRows, `${at}: column ${name}`);
  }
}

const SHAPES: Record<string, Record<string, number[]>> = {
  'f32-2d': { x: [3, 4], id: [] },
  'f32-3d': { v: [2, 2, 3] },
  'i64-3d': { t: [2, 3, 2] },
  'bool-2d': { m: [2, 5] },
  'bool-3d': { m: [2, 2, 3] },
};

/** Bad cases: what prep says (1-based file row) and what index or loading in place says. */
const BAD: Record<string, { prep: RegExp; index?: RegExp; load?: RegExp }> = {
  nullrow: {
    prep: /GPUFEED_BAD_INPUT: .*nullrow\/data\.parquet, row 6: column "x": is null or missing; fixed-shape columns cannot hold nulls/,
    load: /column x: row 6 of the file \(row 5 of row group 0\): is null; fixed-shape columns cannot hold nulls/,
  },
  nullinner: {
    prep: /GPUFEED_BAD_INPUT: .*nullinner\/data\.parquet, row 4: column "x": item \[1\] is a null list; shape \[3, 4\] needs 4 items there/,
    load: /column x: row 4 of the file \(row 3 of row group 0\): item \[1\] is a null list/,
  },
  nullitem: {
    prep: /GPUFEED_BAD_INPUT: .*nullitem\/data\.parquet, row 8: column "x": item \[2\]\[1\] is null; fixed-shape columns carry no per-item nulls/,
    // From the footer's definition level histograms, before any batch.
    index: /GPUFEED_UNSUPPORTED_TYPE: .*nullitem\/data\.parquet: column "x": row group 0 \(rows 1-16\) holds 1 null list item/,
  },
  'ragged-inner': {
    prep: /GPUFEED_BAD_INPUT: .*ragged-inner\/data\.parquet, row 9: column "x": item \[0\] has 5 items, shape \[3, 4\] needs 4/,
    load: /column x: row 9 of the file \(row 8 of row group 0\): item \[0\] has 5 items, shape \[3, 4\] needs 4/,
  },
  'ragged-outer': {
    prep: /GPUFEED_BAD_INPUT: .*ragged-outer\/data\.parquet, row 21: column "x": the row has 2 items, shape \[3, 4\] needs 3/,
    load: /column x: row 21 of the file \(row 4 of row group 1\): the row has 2 items, shape \[3, 4\] needs 3/,
  },
};

/**
 * The in-place fast path (flat-column.ts) itself: pyarrow's nested levels decode flat (float32 v2
 * pages straddling rows, int64 dictionary pages), and rows of other sizes with the right total
 * fall back (the generic path then refuses them) instead of decoding as if they fit.
 */
function checkFlatPath(file: string, spec: ColumnSpec, expectFlat: boolean, want?: unknown[][]): void {
  const buf = readFileSync(file);
  const metadata = parquetMetadata(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const region = computeBatchLayout({ shards: [] } as never, [spec], 1).columns[0]!;
  const fd = openSync(file, 'r');
  try {
    const ref = { index: 0, name: file, file, format: 'parquet' as const, bytes: statSync(file).size };
    let row = 0;
    let fellBack = false;
    for (let g = 0; g < metadata.row_groups.length; g++) {
      const flat = decodeFlatColumn(fd, ref, metadata, g, region);
      const n = Number(metadata.row_groups[g]!.num_rows);
      if (!flat) {
        fellBack = true;
        row += n;
        continue;
      }
      assert.ok(expectFlat || g !== 0, `${file}: row group ${g} holds a row of other sizes; it must not decode flat`);
      const per = region.rowBytes / region.elementBytes;
      const values = spec.dtype === 'int64'
        ? Array.from(new BigInt64Array(flat.bytes.buffer, flat.bytes.byteOffset, n * per), String)
        : Array.from(new Float32Array(flat.bytes.buffer, flat.bytes.byteOffset, n * per));
      if (want) for (let r = 0; r < n; r++, row++) assert.deepEqual(values.slice(r * per, (r + 1) * per), want[row], `${file}: row ${row}`);
      else row += n;
    }
    assert.equal(fellBack, !expectFlat, `${file}: ${expectFlat ? 'every row group decodes flat' : 'the bad row group falls back'}`);
  } finally {
    closeSync(fd);
  }
}

test('Parquet nested fixed_size_list (multi-dim): index and prep carry the full shape and pyarrow\'s values; bad rows refused by row', {
  skip: (!pythonHas('pyarrow') && 'python3 with pyarrow is not installed') || (!existsSync(workerEntry('prep-shard')) && 'run npm run build first'),
}, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'gpufeed-nestedfsl-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const files = join(root, 'files');
  execFileSync('python3', [join(ROOT, 'test/fixtures/nested-fixed.py'), files]);

  for (const [name, shapes] of Object.entries(SHAPES)) {
    await t.test(name, async () => {
      const dir = join(files, name);
      const want = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
      const idx = await cliInProcess(['index', dir]);
      assert.equal(idx.code, 0, `index: ${idx.err}`);
      const inPlace = await loadAll(dir);
      assert.deepEqual(inPlace.shapes, shapes, 'index: shapes');
      assertSame(inPlace, want, `${name} (index)`);
      for (const format of ['arrow', 'parquet']) {
        const out = join(root, 'prep', `${name}-${format}`);
        const r = await cliInProcess(['prep', join(dir, 'data.parquet'), '--out', out, '--format', format, '--workers', '0']);
        assert.equal(r.code, 0, `prep ${format}: ${r.err}`);
        const prepped = await loadAll(out);
        assert.deepEqual(prepped.shapes, shapes, `prep ${format}: shapes`);
        assertSame(prepped, want, `${name} (prep ${format})`);
      }
    });
  }

  await t.test('Arrow IPC nested fixed_size_list: prep converts it, index refuses it pointing at prep', async () => {
    const dir = join(files, 'arrow-f32-2d');
    const want = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
    const idx = await cliInProcess(['index', dir]);
    assert.notEqual(idx.code, 0, 'index must refuse');
    assert.match(idx.err, /GPUFEED_UNSUPPORTED_TYPE: .*data\.arrow: column "x": .*is a nested fixed-size list \(multi-dim\), which the decoder does not read in place from Arrow files.*`gpufeed prep`/);
    const out = join(root, 'prep', 'arrow-f32-2d');
    const r = await cliInProcess(['prep', join(dir, 'data.arrow'), '--out', out, '--workers', '0']);
    assert.equal(r.code, 0, `prep: ${r.err}`);
    const prepped = await loadAll(out);
    assert.deepEqual(prepped.shapes, { x: [3, 4] });
    assertSame(prepped, want, 'arrow-f32-2d (prep)');
  });

  await t.test('the in-place fast path decodes nested levels flat, and only rows of exactly the shape', () => {
    const want = (name: string, col: string): unknown[][] => (JSON.parse(readFileSync(join(files, name, 'expected.json'), 'utf8')) as Expected).columns[col]!;
    checkFlatPath(join(files, 'f32-2d', 'data.parquet'), { name: 'x', dtype: 'float32', kind: 'fixed', shape: [3, 4], nullable: false }, true, want('f32-2d', 'x'));
    checkFlatPath(join(files, 'f32-3d', 'data.parquet'), { name: 'v', dtype: 'float32', kind: 'fixed', shape: [2, 2, 3], nullable: false }, true, want('f32-3d', 'v'));
    checkFlatPath(join(files, 'i64-3d', 'data.parquet'), { name: 't', dtype: 'int64', kind: 'fixed', shape: [2, 3, 2], nullable: false }, true, want('i64-3d', 't'));
    checkFlatPath(join(files, 'ragged-inner', 'data.parquet'), { name: 'x', dtype: 'float32', kind: 'fixed', shape: [3, 4], nullable: false }, false);
  });

  for (const [name, bad] of Object.entries(BAD)) {
    await t.test(`refused: ${name}`, async () => {
      const dir = join(files, name);
      const r = await cliInProcess(['prep', join(dir, 'data.parquet'), '--out', join(root, 'prep', name), '--workers', '0']);
      assert.equal(r.code, 2, `prep must refuse: ${r.err}`);
      assert.match(r.err, bad.prep);
      const idx = await cliInProcess(['index', dir]);
      if (bad.index) {
        assert.notEqual(idx.code, 0, 'index must refuse');
        assert.match(idx.err, bad.index);
        return;
      }
      assert.equal(idx.code, 0, `index: ${idx.err}`);
      await assert.rejects(loadAll(dir), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'GPUFEED_BAD_INPUT', err.message);
        assert.match(err.message, bad.load!);
        assert.ok(err.message.includes('data.parquet'), `names the file: ${err.message}`);
        return true;
      });
    });
  }
});
