// gpufeed's own Parquet writer (src/formats/parquet/writer.ts): every type prep writes as Parquet
// (every int width, float16/32/64, bool, strings, binary, fixed-shape lists, variable lists, null
// rows, empty lists and strings), several row groups and pages, every codec, read back by pyarrow
// (skipped with a printed reason where it is missing), by DuckDB and by gpufeed's own index route
// and decoder, value for value; the chunk checksums the writer records are those `gpufeed index`
// computes. Also its parts: the snappy compressor and the RLE / bit-packed hybrid level encoder,
// against gpufeed's decoders of them.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { parquetMetadata } from 'hyparquet';
import { Loader, isVarColumn } from '../../src/index.js';
import { openStore } from '../../src/storage/index.js';
import { loadManifest, writeManifest } from '../../src/dataset/index.js';
import { indexDataset } from '../../src/cli/index-cmd.js';
import { halfToNumber } from '../../src/dataset/float16.js';
import { TYPED_ARRAY } from '../../src/dataset/dtypes.js';
import type { ColumnSpec, DType, ParquetLayout } from '../../src/dataset/types.js';
import type { ColumnData, ShardColumns } from '../../src/formats/column-data.js';
import { encodeParquetShard, withParquetPieceChecksums } from '../../src/formats/parquet/writer.js';
import { zstdAvailable } from '../../src/formats/parquet/compression.js';
import { snappyCompress } from '../../src/formats/parquet/snappy-compress.js';
import { snappyDecompress } from '../../src/formats/parquet/snappy.js';
import { ByteSink } from '../../src/formats/parquet/byte-sink.js';
import { writeHybrid } from '../../src/formats/parquet/hybrid-rle-writer.js';
import { readHybrid } from '../../src/formats/parquet/hybrid-rle.js';
import { mulberry32 } from '../helpers/seeded-random.js';

describe('snappy compressor', () => {
  it('round-trips through gpufeed\'s decompressor, and compresses what repeats', () => {
    const rand = mulberry32(7);
    const cases: Record<string, Uint8Array> = {
      empty: new Uint8Array(0),
      one: Uint8Array.of(42),
      short: new TextEncoder().encode('abcabcabcabcabcabc'),
      random: Uint8Array.from({ length: 200_000 }, () => Math.floor(rand() * 256)),
      zeros: new Uint8Array(300_000),
      // int32 token ids below 50k: the top two bytes of every value are zero.
      tokens: new Uint8Array(Int32Array.from({ length: 100_000 }, () => Math.floor(rand() * 50_000)).buffer),
      text: new TextEncoder().encode(Array.from({ length: 5000 }, (_, i) => `row ${i} the quick brown fox ${i % 17}`).join('\n')),
      // A run longer than a block, periods 1..70 (1-byte and 2-byte offset copies, overlapping).
      periodic: Uint8Array.from({ length: 140_000 }, (_, i) => (i % (1 + (Math.floor(i / 2000) % 70))) * 3),
    };
    for (const [name, input] of Object.entries(cases)) {
      const packed = snappyCompress(input);
      assert.deepEqual(snappyDecompress(packed, input.length), input, name);
      assert.ok(packed.length <= 32 + input.length + Math.ceil(input.length / 6), `${name}: within snappy's bound`);
    }
    // Random token ids have no 4-byte repeats to find (nor for any snappy); these do.
    for (const name of ['zeros', 'text', 'periodic']) {
      const input = cases[name]!;
      const ratio = snappyCompress(input).length / input.length;
      assert.ok(ratio < 0.3, `${name}: compressed to ${ratio.toFixed(3)} of its size`);
    }
  });
});

describe('RLE / bit-packed hybrid level encoder', () => {
  it('round-trips through gpufeed\'s reader: runs, mixed values, every length around group edges', () => {
    const rand = mulberry32(11);
    for (const bitWidth of [1, 2]) {
      const max = (1 << bitWidth) - 1;
      for (let n = 0; n < 70; n++) {
        for (const pattern of ['random', 'runs', 'lists']) {
          const v = new Uint8Array(n);
          for (let i = 0; i < n; i++) {
            if (pattern === 'random') v[i] = Math.floor(rand() * (max + 1));
            else if (pattern === 'runs') v[i] = Math.floor(i / (1 + (i % 13))) % (max + 1);
            else v[i] = i % 19 === 0 ? 0 : max; // a list's levels: a row start, then a long run
          }
          const out = new ByteSink(8);
          writeHybrid(out, v, bitWidth);
          const bytes = out.finish();
          const back = new Uint8Array(n);
          const end = readHybrid(bytes, 0, bytes.length, bitWidth, n, back);
          assert.deepEqual(back, v, `width ${bitWidth}, ${n} values, ${pattern}`);
          assert.equal(end, bytes.length, `width ${bitWidth}, ${n} values, ${pattern}: every byte read`);
        }
      }
    }
    // Long runs cost a few bytes, not one bit per value.
    const out = new ByteSink(8);
    writeHybrid(out, new Uint8Array(1 << 20).fill(1), 1);
    assert.ok(out.length <= 8, `a run of 1Mi ones in ${out.length} bytes`);
  });
});

// ---- The whole writer ----

const INTS: DType[] = ['int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64'];
const SCHEMA: ColumnSpec[] = [
  ...INTS.map((dtype): ColumnSpec => ({ name: dtype, dtype, kind: 'scalar', nullable: false })),
  { name: 'f16', dtype: 'float16', kind: 'scalar', nullable: false },
  { name: 'f32', dtype: 'float32', kind: 'scalar', nullable: false },
  { name: 'f64', dtype: 'float64', kind: 'scalar', nullable: false },
  { name: 'flag', dtype: 'bool', kind: 'scalar', nullable: false },
  { name: 'n_i64', dtype: 'int64', kind: 'scalar', nullable: true },
  { name: 'n_f32', dtype: 'float32', kind: 'scalar', nullable: true },
  { name: 'n_flag', dtype: 'bool', kind: 'scalar', nullable: true },
  { name: 'text', dtype: 'string', kind: 'bytes', nullable: false },
  { name: 'n_text', dtype: 'string', kind: 'bytes', nullable: true },
  { name: 'blob', dtype: 'binary', kind: 'bytes', nullable: true },
  { name: 'grid', dtype: 'int32', kind: 'fixed', shape: [2, 3], nullable: false },
  { name: 'half_vec', dtype: 'float16', kind: 'fixed', shape: [4], nullable: false },
  { name: 'bits', dtype: 'bool', kind: 'fixed', shape: [5], nullable: false },
  { name: 'ids', dtype: 'int64', kind: 'list', nullable: false },
  { name: 'n_ids', dtype: 'int32', kind: 'list', nullable: true },
  { name: 'mask', dtype: 'uint8', kind: 'list', nullable: true },
  { name: 'n_f64s', dtype: 'float64', kind: 'list', nullable: true },
];

const RANGES: Record<string, [number, number]> = {
  int8: [-128, 127], uint8: [0, 255], int16: [-32768, 32767], uint16: [0, 65535],
  int32: [-(2 ** 31), 2 ** 31 - 1], uint32: [0, 2 ** 32 - 1],
};
const HALF_SPECIALS = [0x0000, 0x8000, 0x3c00, 0x7bff, 0xfbff, 0x0001, 0x7c00, 0xfc00, 0x7e00, 0x3555];

/** One element value (a number, bigint, or float16 bits), edges first, then random. */
function element(dtype: DType, i: number, rand: () => number): number | bigint {
  const r = RANGES[dtype];
  if (r) return i < 2 ? r[i]! : Math.floor(r[0] + rand() * (r[1] - r[0] + 1));
  switch (dtype) {
    case 'int64': return [-(2n ** 63n), 2n ** 63n - 1n][i] ?? BigInt(Math.floor((rand() - 0.5) * 2 ** 53)) * 1021n;
    case 'uint64': return [0n, 2n ** 64n - 1n][i] ?? BigInt(Math.floor(rand() * 2 ** 53)) * 2039n;
    case 'float16': return HALF_SPECIALS[i] ?? Math.floor(rand() * 0x7c00) | (rand() < 0.5 ? 0x8000 : 0);
    case 'float32': return Math.fround([-0, Infinity, -Infinity, NaN, 3.4028234663852886e38, 1.401298464324817e-45][i] ?? (rand() - 0.5) * 1e6);
    case 'float64': return [-0, Infinity, NaN, Number.MIN_VALUE, Number.MAX_VALUE][i] ?? (rand() - 0.5) * 1e300 * rand();
    case 'bool': return rand() < 0.5 ? 1 : 0;
    default: throw new Error(dtype);
  }
}

/** A column's data in prep's layout (null scalar rows hold a 0, null and empty lists equal offsets). */
function columnOf(col: ColumnSpec, rows: number, rand: () => number): ColumnData {
  const Ctor = TYPED_ARRAY[col.dtype];
  const isNull = (r: number): boolean => col.nullable && r % 7 === 3;
  const validity = col.nullable ? Uint8Array.from({ length: rows }, (_, r) => (isNull(r) ? 0 : 1)) : undefined;
  const nullCount = validity ? validity.filter((v) => v === 0).length : 0;
  const big = col.dtype === 'int64' || col.dtype === 'uint64';
  if (col.kind === 'bytes') {
    const parts: Uint8Array[] = [];
    const offsets = new Int32Array(rows + 1);
    for (let r = 0; r < rows; r++) {
      let b = new Uint8Array(0);
      if (!isNull(r) && r % 11 !== 4) {
        b = col.dtype === 'string'
          ? new TextEncoder().encode(`row ${r} ${'é€😀'.repeat(r % 4)}${'x'.repeat(Math.floor(rand() * 40))}`)
          : Uint8Array.from({ length: Math.floor(rand() * 30) }, () => Math.floor(rand() * 256));
      }
      parts.push(b);
      offsets[r + 1] = offsets[r]! + b.length;
    }
    const values = new Uint8Array(offsets[rows]!);
    parts.forEach((p, r) => values.set(p, offsets[r]!));
    return { values, offsets, validity, nullCount };
  }
  const lengths = Array.from({ length: rows }, (_, r) => {
    if (col.kind === 'scalar') return 1;
    if (col.kind === 'fixed') return col.shape!.reduce((a, b) => a * b, 1);
    return isNull(r) || r % 9 === 2 ? 0 : Math.floor(rand() * 30);
  });
  const total = lengths.reduce((a, b) => a + b, 0);
  const values = new Ctor(total);
  let k = 0;
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < lengths[r]!; j++, k++) {
      const v = isNull(r) ? 0 : element(col.dtype, k, rand);
      values[k] = (big ? BigInt(v) : Number(v)) as never;
    }
  }
  if (col.kind !== 'list') return { values, validity, nullCount };
  const offsets = new Int32Array(rows + 1);
  lengths.forEach((n, r) => (offsets[r + 1] = offsets[r]! + n));
  return { values, offsets, validity, nullCount };
}

// Canonical values, the same whoever read them: integers as decimal strings, floats as the hex of
// their float64 bits ("nan" for any NaN), bytes as hex, strings as they are.
type Canon = string | boolean | null | Canon[];

function floatCanon(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  const b = new DataView(new ArrayBuffer(8));
  b.setFloat64(0, x, true);
  return Buffer.from(b.buffer).toString('hex');
}

function elementCanon(dtype: DType, v: unknown): Canon {
  if (v === null || v === undefined) return null;
  switch (dtype) {
    case 'bool': return v === true || v === 1;
    case 'float16': return floatCanon(typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff ? halfToNumber(v) : Number(v));
    case 'float32': case 'float64': return floatCanon(Number(v));
    default: return String(v);
  }
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** What the shard holds, row by row, per column. */
function canonOf(schema: readonly ColumnSpec[], shard: ShardColumns): Record<string, Canon[]> {
  const out: Record<string, Canon[]> = {};
  schema.forEach((col, c) => {
    const d = shard.columns[c]!;
    const per = col.kind === 'fixed' ? col.shape!.reduce((a, b) => a * b, 1) : 1;
    out[col.name] = Array.from({ length: shard.rows }, (_, r): Canon => {
      if (d.validity && d.validity[r] === 0) return null;
      if (col.kind === 'bytes') {
        const b = (d.values as Uint8Array).subarray(d.offsets![r]!, d.offsets![r + 1]!);
        return col.dtype === 'string' ? new TextDecoder().decode(b) : hex(b);
      }
      if (col.kind === 'scalar') return elementCanon(col.dtype, d.values[r]);
      const [lo, hi] = col.kind === 'fixed' ? [r * per, (r + 1) * per] : [d.offsets![r]!, d.offsets![r + 1]!];
      return Array.from(d.values.subarray(lo, hi) as ArrayLike<unknown>, (v) => elementCanon(col.dtype, v));
    });
  });
  return out;
}

/** pyarrow's reading, canonicalized in Python the same way. */
const PYARROW_READ = `
import json, math, struct, sys
import pyarrow.parquet as pq
def canon(v, t):
    if v is None: return None
    if isinstance(v, list): return [canon(x, t) for x in v]
    if isinstance(v, bool): return v
    if isinstance(v, (bytes, bytearray)): return v.hex()
    if isinstance(v, str): return v
    if isinstance(v, int) and 'float' not in t and 'half' not in t: return str(v)
    f = float(v)
    return 'nan' if math.isnan(f) else struct.pack('<d', f).hex()
t = pq.read_table(sys.argv[1])
out = {name: [canon(v, str(t.schema.field(name).type)) for v in t.column(name).to_pylist()] for name in t.column_names}
json.dump({'types': {f.name: str(f.type) for f in t.schema}, 'columns': out}, sys.stdout)
`;

const hasPyarrow = spawnSync('python3', ['-c', 'import pyarrow.parquet'], { stdio: 'ignore' }).status === 0;

function assertColumns(got: Record<string, Canon[]>, want: Record<string, Canon[]>, who: string): void {
  for (const name of Object.keys(want)) {
    const g = got[name];
    assert.ok(g, `${who}: column ${name} missing`);
    assert.equal(g.length, want[name]!.length, `${who}: column ${name} rows`);
    for (let r = 0; r < g.length; r++) assert.deepEqual(g[r], want[name]![r], `${who}: column ${name} row ${r}`);
  }
}

describe('gpufeed Parquet writer: read back by pyarrow, DuckDB and gpufeed', () => {
  const root = mkdtempSync(join(tmpdir(), 'gpufeed-pqw-'));
  const ROWS = 700;
  const shard: ShardColumns = (() => {
    const rand = mulberry32(3);
    return { rows: ROWS, columns: SCHEMA.map((c) => columnOf(c, ROWS, rand)) };
  })();
  const want = canonOf(SCHEMA, shard);
  const codecs = ['snappy', 'gzip', 'none', ...(zstdAvailable() ? ['zstd'] : [])];
  const files = new Map<string, string>();
  let db: DuckDBInstance;
  let conn: DuckDBConnection;
  before(async () => {
    db = await DuckDBInstance.create(':memory:', { threads: '1' });
    conn = await db.connect();
    for (const codec of codecs) {
      const dir = join(root, codec);
      mkdirSync(dir);
      // Small targets: several row groups, several pages per chunk.
      const { bytes } = encodeParquetShard(SCHEMA, shard, { compression: codec, targetRowGroupBytes: 64 << 10, targetPageBytes: 2048 });
      writeFileSync(join(dir, 'part.parquet'), bytes);
      files.set(codec, join(dir, 'part.parquet'));
    }
  });
  after(() => {
    conn.closeSync();
    db.closeSync();
    rmSync(root, { recursive: true, force: true });
  });

  it('footer: row groups, several pages per chunk, the schema, the codec', () => {
    for (const [codec, file] of files) {
      const bytes = new Uint8Array(readFileSync(file));
      const meta = parquetMetadata(bytes.slice().buffer);
      assert.equal(Number(meta.num_rows), ROWS);
      assert.ok(meta.row_groups.length > 1, `${codec}: ${meta.row_groups.length} row groups`);
      assert.equal(meta.row_groups.reduce((a, g) => a + Number(g.num_rows), 0), ROWS);
      const ids = meta.row_groups[0]!.columns.find((c) => c.meta_data!.path_in_schema[0] === 'ids')!.meta_data!;
      assert.deepEqual(ids.path_in_schema, ['ids', 'list', 'element']);
      assert.equal(ids.codec, { snappy: 'SNAPPY', gzip: 'GZIP', none: 'UNCOMPRESSED', zstd: 'ZSTD' }[codec]);
      assert.ok(Number(ids.encoding_stats![0]!.count) > 1, `${codec}: ids chunk in ${ids.encoding_stats![0]!.count} pages`);
    }
  });

  it('pyarrow reads every value back exactly', { skip: !hasPyarrow && 'pyarrow is not installed (python3 -c "import pyarrow.parquet" failed)' }, () => {
    for (const [codec, file] of files) {
      const r = spawnSync('python3', ['-c', PYARROW_READ, file], { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 60_000 });
      assert.equal(r.status, 0, `${codec}: pyarrow failed: ${r.stderr}`);
      const got = JSON.parse(r.stdout) as { types: Record<string, string>; columns: Record<string, Canon[]> };
      assert.equal(got.types.uint32, 'uint32');
      assert.equal(got.types.int8, 'int8');
      assert.equal(got.types.f16, 'halffloat');
      assert.equal(got.types.text, 'string');
      assert.equal(got.types.blob, 'binary');
      assert.equal(got.types.ids, 'list<element: int64 not null>');
      assertColumns(got.columns, want, `pyarrow (${codec})`);
    }
  });

  it('DuckDB reads every value back exactly', async () => {
    for (const [codec, file] of files) {
      const reader = await conn.runAndReadAll(`SELECT * FROM read_parquet('${file}')`);
      const rows = reader.getRowObjectsJS();
      const got: Record<string, Canon[]> = {};
      for (const col of SCHEMA) {
        got[col.name] = rows.map((o) => {
          const v = o[col.name];
          if (v === null || v === undefined) return null;
          if (col.kind === 'bytes') return col.dtype === 'string' ? (v as string) : hex(v as Uint8Array);
          if (col.kind === 'scalar') return col.dtype === 'float16' ? floatCanon(Number(v)) : elementCanon(col.dtype, v);
          return (v as unknown[]).map((x) => (col.dtype === 'float16' ? floatCanon(Number(x)) : elementCanon(col.dtype, x)));
        });
      }
      assertColumns(got, want, `DuckDB (${codec})`);
    }
  });

  it('gpufeed index and the Loader read every value back exactly; index records the writer\'s chunk checksums', async () => {
    for (const [codec, file] of files) {
      const dir = join(root, codec);
      const store = await openStore(dir);
      try {
        await writeManifest(store, await indexDataset(store));
      } finally {
        await store.close();
      }
      const s2 = await openStore(dir);
      const manifest = await loadManifest(s2);
      await s2.close();
      const indexed = manifest.shards[0]!.layout as ParquetLayout;
      const bytes = new Uint8Array(readFileSync(file));
      const written = withParquetPieceChecksums(indexed, bytes);
      assert.ok(indexed.rowGroups.every((g) => (g.chunks?.length ?? 0) === SCHEMA.length), `${codec}: a checksum per column chunk`);
      assert.deepEqual(indexed.rowGroups.map((g) => g.chunks), written.rowGroups.map((g) => g.chunks), `${codec}: chunk checksums`);
      assert.equal(indexed.footerCrc32, written.footerCrc32);

      const got: Record<string, Canon[]> = Object.fromEntries(SCHEMA.map((c) => [c.name, new Array<Canon>(ROWS)]));
      const loader = await Loader.open(dir, { batchSize: 64, workers: 1, varRowBytes: 4096 });
      try {
        for await (const batch of loader) {
          for (const region of batch.layout.columns) {
            const col = SCHEMA.find((c) => c.name === region.name)!;
            const data = batch.columns[region.name]!;
            const valid = batch.valid[region.name];
            batch.ids.forEach((id, i) => {
              let v: Canon;
              if (valid && !valid[i]) v = null;
              else if (isVarColumn(data)) {
                const part = data.values.subarray(data.offsets[i]!, data.offsets[i + 1]!);
                if (col.dtype === 'string') v = new TextDecoder().decode(part as Uint8Array);
                else if (col.dtype === 'binary') v = hex(part as Uint8Array);
                else v = Array.from(part as ArrayLike<unknown>, (x) => elementCanon(col.dtype, x));
              } else if (col.kind === 'fixed') {
                const per = col.shape!.reduce((a, b) => a * b, 1);
                v = Array.from(data.subarray(i * per, (i + 1) * per) as ArrayLike<unknown>, (x) => elementCanon(col.dtype, x));
              } else v = elementCanon(col.dtype, data[i]);
              got[col.name]![Number(id)] = v;
            });
          }
        }
      } finally {
        await loader.close();
      }
      assertColumns(got, want, `gpufeed Loader (${codec})`);
    }
  });
});
