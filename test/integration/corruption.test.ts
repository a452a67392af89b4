// Damage of every kind, and manifests that lie about their files: over many seeded cases, bytes of
// Arrow and Parquet shards are flipped, zeroed, cut off or appended to, and manifest fields
// (dtype, shape, nullability, rows, layout entries, hashes, piece checksums) are edited. Every
// load must give either exactly the original rows or an error with a GPUFEED_ code (never
// GPUFEED_INTERNAL) that names the damaged shard or the manifest field; never a wrong value,
// never a signal. Bounded: small datasets, a fixed number of cases.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { appendFileSync, cpSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepDataset } from '../../src/dataset/index.js';
import { verifyDataset } from '../../src/dataset/verify.js';
import { ErrorCodes, GpufeedError, isVarColumn, Loader, type Batch, type LoaderOptions } from '../../src/index.js';
import type { ManifestV1 } from '../../src/dataset/types.js';
import { ROOT } from '../fixtures/run-cli.js';
import { mulberry32 } from '../helpers/seeded-random.js';
import { mixedRow, type MixedRow } from '../fixtures/mixed-rows.js';
import { CASES_AT_ONCE, mapLimit } from '../helpers/map-limit.js';
import { cliArgv } from '../helpers/cli-command.js';

const ROWS = 120;
const SEQ = 8;

type Row = MixedRow;
const makeRow = (i: number): Row => mixedRow(i, SEQ);
const rows = Array.from({ length: ROWS }, (_, i) => makeRow(i));

/** Row `i` of `batch` is exactly the original row `batch.ids[i]`: every column, validity too. */
function sameRow(batch: Batch, i: number): string | undefined {
  const want = rows[batch.ids[i]!];
  if (!want) return `id ${batch.ids[i]} is not a row of the dataset`;
  const shape = batch.shape('tokens');
  if (shape.length !== 2 || shape[1] !== SEQ) return `tokens shape ${JSON.stringify(shape)}`;
  const tokens = Array.from((batch.columns.tokens as Int32Array).subarray(i * SEQ, (i + 1) * SEQ));
  if (JSON.stringify(tokens) !== JSON.stringify(want.tokens)) return `tokens ${JSON.stringify(tokens)}`;
  const label = batch.columns.label as BigInt64Array;
  if (!(label instanceof BigInt64Array) || label[i] !== BigInt(want.label)) return `label ${String(label[i])}`;
  const score = batch.columns.score as Float64Array;
  if (!(score instanceof Float64Array) || score[i] !== want.score) return `score ${score[i]}`;
  const text = batch.columns.text!;
  if (!isVarColumn(text) || new TextDecoder().decode(text.values.subarray(text.offsets[i]!, text.offsets[i + 1]!) as Uint8Array) !== want.text) return 'text';
  const tags = batch.columns.tags!;
  if (!isVarColumn(tags) || JSON.stringify(Array.from(tags.values.subarray(tags.offsets[i]!, tags.offsets[i + 1]!), Number)) !== JSON.stringify(want.tags)) return 'tags';
  const valid = batch.valid.maybe;
  if (!valid || valid[i] !== (want.maybe === null ? 0 : 1)) return 'maybe validity';
  if (want.maybe !== null && Number((batch.columns.maybe as BigInt64Array)[i]) !== want.maybe) return 'maybe';
  return undefined;
}

type Outcome = { ok: true } | { ok: false; err: GpufeedError };

/** Loads the whole dataset; wrong values or rows that are not each delivered once fail the test. */
async function loadAll(dir: string, what: string, options: Partial<LoaderOptions> = {}, checkValues = true): Promise<Outcome> {
  let loader: Loader | undefined;
  try {
    loader = await Loader.open(dir, { batchSize: 7, workers: 1, ...options });
    const seen: number[] = [];
    for await (const batch of loader) {
      if (checkValues) {
        for (let i = 0; i < batch.ids.length; i++) {
          const wrong = sameRow(batch, i);
          assert.equal(wrong, undefined, `${what}: row ${batch.ids[i]} came back wrong (${wrong}) with no error`);
        }
      }
      seen.push(...batch.ids);
    }
    if (checkValues) assert.deepEqual(seen.sort((a, b) => a - b), Array.from({ length: ROWS }, (_, i) => i), `${what}: not every row exactly once`);
    return { ok: true };
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    assert.ok(err instanceof GpufeedError, `${what}: expected a GpufeedError, got ${String(err)}`);
    assert.notEqual(err.code, ErrorCodes.INTERNAL, `${what}: bad input reported as internal: ${err.message}`);
    assert.match(err.code, /^GPUFEED_/);
    return { ok: false, err };
  } finally {
    await loader?.close();
  }
}

interface Dataset { dir: string; manifest: ManifestV1 }

function copyDataset(src: Dataset, into: string): Dataset {
  rmSync(into, { recursive: true, force: true });
  cpSync(src.dir, into, { recursive: true });
  return { dir: into, manifest: JSON.parse(readFileSync(join(into, 'index.json'), 'utf8')) as ManifestV1 };
}

function writeManifest(ds: Dataset): void {
  writeFileSync(join(ds.dir, 'index.json'), JSON.stringify(ds.manifest));
}

type FileDamage = 'flip' | 'zero' | 'truncate' | 'append';

/** Damages one shard file; returns its manifest path and what was done. */
function damageFile(ds: Dataset, kind: FileDamage, rand: () => number): { shard: string; what: string } {
  const entry = ds.manifest.shards[Math.floor(rand() * ds.manifest.shards.length)]!;
  const file = join(ds.dir, entry.path);
  const bytes = readFileSync(file);
  const at = Math.floor(rand() * bytes.length);
  switch (kind) {
    case 'flip': {
      const n = 1 + Math.floor(rand() * 16);
      for (let i = at; i < Math.min(bytes.length, at + n); i++) bytes[i] = bytes[i]! ^ (1 + Math.floor(rand() * 255));
      writeFileSync(file, bytes);
      return { shard: entry.path, what: `flip ${n} bytes at ${at} of ${entry.path}` };
    }
    case 'zero': {
      const n = 1 + Math.floor(rand() * 64);
      bytes.fill(0, at, at + n);
      writeFileSync(file, bytes);
      return { shard: entry.path, what: `zero ${n} bytes at ${at} of ${entry.path}` };
    }
    case 'truncate':
      truncateSync(file, at);
      return { shard: entry.path, what: `truncate ${entry.path} to ${at} bytes` };
    case 'append': {
      const n = 1 + Math.floor(rand() * 64);
      appendFileSync(file, Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256))));
      return { shard: entry.path, what: `append ${n} bytes to ${entry.path}` };
    }
  }
}

/** Manifest edits: each returns a description and a pattern its error must match (field or shard). */
type ManifestEdit = (ds: Dataset, rand: () => number) => { what: string; names: RegExp } | undefined;

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const pick = <T>(xs: readonly T[], rand: () => number): T => xs[Math.floor(rand() * xs.length)]!;

const manifestEdits: Record<string, ManifestEdit> = {
  dtype: (ds, rand) => {
    const col = pick(['label', 'tokens', 'score', 'maybe'], rand);
    const c = ds.manifest.schema.find((s) => s.name === col)!;
    c.dtype = c.dtype === 'float32' ? 'int32' : 'float32';
    return { what: `dtype of ${col} -> ${c.dtype}`, names: new RegExp(`${escape(col)}.*dtype|dtype.*${escape(col)}`) };
  },
  shape: (ds, rand) => {
    const c = ds.manifest.schema.find((s) => s.name === 'tokens')!;
    c.shape = [pick([SEQ * 2, SEQ / 2, 1], rand)];
    return { what: `shape of tokens -> ${JSON.stringify(c.shape)}`, names: /tokens.*shape/ };
  },
  nullable: (ds) => {
    ds.manifest.schema.find((s) => s.name === 'maybe')!.nullable = false;
    return { what: 'maybe nullable -> false', names: /maybe.*nullable/ };
  },
  rows: (ds, rand) => {
    // Rows and the last unit lowered together, so the manifest still validates on its own.
    const s = pick(ds.manifest.shards, rand);
    const units = s.layout.kind === 'arrow' ? s.layout.batches : s.layout.rowGroups;
    const last = units[units.length - 1]!;
    const k = Math.max(1, Math.min(last.rows, 1 + Math.floor(rand() * 5)));
    last.rows -= k;
    s.rows -= k;
    ds.manifest.rows -= k;
    return { what: `rows of ${s.path} lowered by ${k}`, names: new RegExp(escape(s.path)) };
  },
  layoutEntry: (ds, rand) => {
    const s = pick(ds.manifest.shards, rand);
    if (s.layout.kind === 'arrow') {
      const b = pick(s.layout.batches, rand);
      const key = pick(['offset', 'metadataLength', 'bodyLength'] as const, rand);
      b[key] = Math.max(0, b[key] - 8);
      return { what: `${s.path} batch ${key} - 8`, names: new RegExp(escape(s.path)) };
    }
    const g = pick(s.layout.rowGroups, rand);
    const key = pick(['offset', 'bytes'] as const, rand);
    g[key] = Math.max(0, g[key] - 1);
    return { what: `${s.path} row group ${key} - 1`, names: new RegExp(escape(s.path)) };
  },
  chunkEntry: (ds, rand) => {
    const s = pick(ds.manifest.shards, rand);
    if (s.layout.kind !== 'parquet') return undefined;
    const g = pick(s.layout.rowGroups, rand);
    const c = pick(g.chunks!, rand);
    c.bytes = Math.max(0, c.bytes - 1);
    return { what: `${s.path} chunk ${c.column} bytes - 1`, names: new RegExp(escape(s.path)) };
  },
  pieceChecksum: (ds, rand) => {
    const s = pick(ds.manifest.shards, rand);
    if (s.layout.kind === 'arrow') pick(s.layout.batches, rand).crc32! ^= 1;
    else pick(pick(s.layout.rowGroups, rand).chunks!, rand).crc32 ^= 1;
    return { what: `a piece checksum of ${s.path}`, names: new RegExp(escape(s.path)) };
  },
  footerChecksum: (ds, rand) => {
    const s = pick(ds.manifest.shards, rand);
    s.layout.footerCrc32 = (s.layout.footerCrc32! ^ 0x10) >>> 0;
    return { what: `footer checksum of ${s.path}`, names: new RegExp(escape(s.path)) };
  },
  hash: (ds, rand) => {
    // The whole-file hash is verify's (and the cache's); a local load may still deliver exact rows.
    const s = pick(ds.manifest.shards, rand);
    s.hash = `sha256:${s.hash.slice(7).split('').reverse().join('')}`;
    return { what: `sha256 of ${s.path}`, names: new RegExp(escape(s.path)) };
  },
};

function runDump(dir: string, extra: string[] = []): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [...cliArgv(), 'dump', dir, '--batch-size', '7', '--workers', '2', ...extra], { cwd: ROOT, timeout: 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string; signal?: string | null }) | null;
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal: e?.signal ?? null, stdout, stderr });
    });
  });
}

describe('corruption: exact rows or a named GPUFEED_ error', () => {
  const root = mkdtempSync(join(tmpdir(), 'gpufeed-corrupt-'));
  const clean: Partial<Record<'arrow' | 'parquet', Dataset>> = {};
  // Each case damages its own copy, so cases run CASES_AT_ONCE at a time.
  const caseDir = (name: string) => join(root, `case-${name}`);

  before(async () => {
    const input = join(root, 'rows.jsonl');
    writeFileSync(input, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    for (const format of ['arrow', 'parquet'] as const) {
      const dir = join(root, format);
      // Several shards, several units per shard, so damage lands in every kind of region.
      await prepDataset([input], {
        out: dir, format, shapes: { tokens: [SEQ] }, types: { tokens: 'int32', tags: 'int32' },
        shardSize: 2500, targetBatchBytes: 600, maxBatchRows: 11, workers: 0, progress: false,
      });
      clean[format] = { dir, manifest: JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as ManifestV1 };
    }
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  for (const format of ['arrow', 'parquet'] as const) {
    it(`${format}: undamaged, every row exactly, with piece checksums in the manifest`, async () => {
      const ds = clean[format]!;
      assert.ok(ds.manifest.shards.length >= 3, 'several shards');
      for (const s of ds.manifest.shards) {
        assert.equal(s.layout.pieceHash, 'crc32');
        assert.equal(typeof s.layout.footerCrc32, 'number');
        if (s.layout.kind === 'arrow') assert.ok(s.layout.batches.length > 1 && s.layout.batches.every((b) => typeof b.crc32 === 'number'));
        else assert.ok(s.layout.rowGroups.every((g) => g.chunks!.length === ds.manifest.schema.length));
      }
      const [checked, unchecked] = await Promise.all([
        loadAll(ds.dir, 'clean', { workers: 2 }),
        loadAll(ds.dir, 'clean, shuffled, unchecked', { verifyPieces: false, shuffle: 'naive', seed: 3 }),
      ]);
      assert.deepEqual(checked, { ok: true });
      assert.deepEqual(unchecked, { ok: true });
    });

    it(`${format}: flipped, zeroed, truncated and appended bytes over many seeds`, async () => {
      const tally = new Map<string, number>();
      const kinds: FileDamage[] = ['flip', 'zero', 'truncate', 'append'];
      const seeds = Array.from({ length: 8 }, (_, i) => i + 1);
      /** A damaged footer is caught by its checksum before anything decodes it. */
      const footerCase = async (): Promise<void> => {
        const ds = copyDataset(clean[format]!, caseDir(`${format}-footer`));
        const s = ds.manifest.shards[1]!;
        const file = join(ds.dir, s.path);
        const bytes = readFileSync(file);
        const footerStart = s.layout.kind === 'parquet' ? s.layout.footerOffset : bytes.length - 10 - bytes.readInt32LE(bytes.length - 10);
        const at = footerStart + ((bytes.length - 10 - footerStart) >> 1);
        bytes[at] = bytes[at]! ^ 0xff;
        writeFileSync(file, bytes);
        const out = await loadAll(ds.dir, `footer byte ${at} of ${s.path}`);
        assert.ok(!out.ok && out.err.code === ErrorCodes.HASH_MISMATCH && out.err.message.includes(s.path) && /footer/.test(out.err.message), out.ok ? 'loaded' : out.err.message);
      };
      await mapLimit([...seeds, 0], CASES_AT_ONCE, async (seed) => {
        if (seed === 0) return footerCase();
        const rand = mulberry32(seed * 7919 + (format === 'arrow' ? 0 : 1));
        const kind = kinds[seed % kinds.length]!;
        const ds = copyDataset(clean[format]!, caseDir(`${format}-damage-${seed}`));
        const { shard, what } = damageFile(ds, kind, rand);
        const out = await loadAll(ds.dir, `seed ${seed}: ${what}`, { workers: 1 + (seed % 2) });
        const key = out.ok ? 'exact' : out.err.code;
        tally.set(key, (tally.get(key) ?? 0) + 1);
        if (!out.ok) assert.ok(out.err.message.includes(shard), `seed ${seed}: ${what}: the error does not name the shard: ${out.err.message}`);
        // Size changes are caught at open whatever is damaged; verify sees every change.
        if (kind === 'truncate' || kind === 'append') assert.equal(out.ok ? 'exact' : out.err.code, ErrorCodes.SHARD_CORRUPT, what);
      });
      // Most damage is read (only an Arrow file's leading schema copy is not): errors dominate.
      assert.ok((tally.get(ErrorCodes.HASH_MISMATCH) ?? 0) >= 2, `hash mismatches seen: ${JSON.stringify([...tally])}`);
    });

    it(`${format}: damage with verifyPieces off is never internal, never a signal`, async () => {
      await mapLimit([1, 2, 3], CASES_AT_ONCE, async (seed) => {
        const rand = mulberry32(seed * 104_729 + (format === 'arrow' ? 0 : 1));
        const ds = copyDataset(clean[format]!, caseDir(`${format}-unchecked-${seed}`));
        const { shard, what } = damageFile(ds, seed % 2 ? 'flip' : 'zero', rand);
        // Unchecked pieces may decode into other values: only the error contract is asserted.
        const out = await loadAll(ds.dir, `unchecked seed ${seed}: ${what}`, { verifyPieces: false }, false);
        if (!out.ok) assert.ok(out.err.message.includes(shard) || out.err.code === ErrorCodes.INVALID_OPTION, `${what}: ${out.err.message}`);
      });
    });

    it(`${format}: edited manifest fields are caught before a row is delivered`, async () => {
      await mapLimit(Object.entries(manifestEdits), CASES_AT_ONCE, async ([name, edit], i) => {
        {
          const seed = i + 1;
          const rand = mulberry32(seed * 31 + (format === 'arrow' ? 0 : 1));
          const ds = copyDataset(clean[format]!, caseDir(`${format}-manifest-${name}`));
          const e = edit(ds, rand);
          if (!e) return;
          writeManifest(ds);
          const out = await loadAll(ds.dir, `${name}: ${e.what}`);
          if (name === 'hash') {
            assert.deepEqual(out, { ok: true }, 'a local load does not hash whole files');
          } else {
            assert.equal(out.ok, false, `${name}: ${e.what}: loaded with no error`);
            if (!out.ok) assert.match(out.err.message, e.names, `${name}: ${e.what}: ${out.err.message}`);
          }
          // verify reports every edit (the sha256 ones too), naming the shard.
          let report;
          try {
            report = await verifyDataset(ds.dir);
          } catch (err) {
            assert.ok(err instanceof GpufeedError && err.code === ErrorCodes.MANIFEST_INVALID, `${name}: verify threw ${String(err)}`);
            return;
          }
          assert.equal(report.ok, false, `${name}: ${e.what}: verify passed`);
          assert.ok(report.problems.every((p) => p.code !== ErrorCodes.INTERNAL), JSON.stringify(report.problems));
        }
      });
    });
  }

  it('the CLI: dump exits 0 with every row, or non-zero with a named GPUFEED_ error; never a signal', async () => {
    const goodRun = runDump(clean.arrow!.dir);
    /** Flips bytes in the middle of the first unit's body: a piece every load reads. */
    const flipPiece = (ds: Dataset): string => {
      const s = ds.manifest.shards[0]!;
      const at = s.layout.kind === 'arrow'
        ? s.layout.batches[0]!.offset + s.layout.batches[0]!.metadataLength + (s.layout.batches[0]!.bodyLength >> 1)
        : s.layout.rowGroups[0]!.offset + (s.layout.rowGroups[0]!.bytes >> 1);
      const file = join(ds.dir, s.path);
      const bytes = readFileSync(file);
      for (let i = at; i < at + 16; i++) bytes[i] = bytes[i]! ^ 0xa5;
      writeFileSync(file, bytes);
      return s.path;
    };
    const damaged: [string, 'arrow' | 'parquet', (ds: Dataset) => string, string][] = [
      ['arrow flip', 'arrow', flipPiece, ErrorCodes.HASH_MISMATCH],
      ['parquet flip', 'parquet', flipPiece, ErrorCodes.HASH_MISMATCH],
    ];
    // The three children run at once; each is judged on its own output.
    const runs = damaged.map(([what, format, damage]) => {
      const ds = copyDataset(clean[format]!, caseDir(`cli-${what.replace(' ', '-')}`));
      const names = damage(ds);
      return { names, run: runDump(ds.dir) };
    });
    const good = await goodRun;
    assert.equal(good.code, 0, good.stderr);
    const ids = good.stdout.trim().split('\n').flatMap((line) => (JSON.parse(line) as { ids: number[] }).ids);
    assert.deepEqual(ids, Array.from({ length: ROWS }, (_, i) => i));
    for (const [k, [what, , , code]] of damaged.entries()) {
      const { names, run } = runs[k]!;
      const r = await run;
      assert.equal(r.signal, null, `${what}: killed by ${r.signal}`);
      assert.notEqual(r.code, 0, `${what}: exit 0`);
      assert.ok(r.stderr.includes(code) && r.stderr.includes(names), `${what}: wanted ${code} naming ${names}: ${r.stderr}`);
    }
  });
});
