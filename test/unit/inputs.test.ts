import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { inferSchema } from '../../src/dataset/infer.js';
import { CsvReader, csvGuess } from '../../src/dataset/inputs/csv.js';
import { JsonlReader } from '../../src/dataset/inputs/jsonl.js';
import { inputKindOf, resolveInputs } from '../../src/dataset/inputs/resolve.js';
import type { InputFile, InputReader } from '../../src/dataset/inputs/source.js';
import { parseBytes, formatBytes } from '../../src/util/bytes.js';
import { globFiles, globMatcher } from '../../src/util/glob.js';
import { tempDir } from '../fixtures/dataset-fixtures.js';

async function readAll(reader: InputReader): Promise<{ rows: Record<string, unknown>[]; refs: number[] }> {
  const rows: Record<string, unknown>[] = [];
  const refs: number[] = [];
  for await (const b of reader.batches()) {
    rows.push(...b.rows);
    refs.push(...b.refs);
  }
  return { rows, refs };
}

const file = (path: string, kind: InputFile['kind'], gzip = false): InputFile => ({ path, kind, gzip, size: 0 });

test('jsonl: rows with their line numbers, blank lines and CRLF, gzip', async (t) => {
  const dir = await tempDir(t);
  const text = '{"a":1}\r\n\n  \n{"a":2,"s":"é"}\n{"a":3}';
  await writeFile(join(dir, 'x.jsonl'), text);
  await writeFile(join(dir, 'x.jsonl.gz'), gzipSync(text));
  for (const f of [file(join(dir, 'x.jsonl'), 'jsonl'), file(join(dir, 'x.jsonl.gz'), 'jsonl', true)]) {
    const { rows, refs } = await readAll(new JsonlReader(f));
    assert.deepEqual(rows, [{ a: 1 }, { a: 2, s: 'é' }, { a: 3 }]);
    assert.deepEqual(refs, [1, 4, 5]);
  }
});

test('jsonl: a bad line names the file and line', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'bad.jsonl');
  await writeFile(path, '{"a":1}\n{"a":\n');
  await assert.rejects(readAll(new JsonlReader(file(path, 'jsonl'))), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'GPUFEED_BAD_INPUT');
    assert.ok(e.message.includes(`${path}, line 2`), e.message);
    return true;
  });
  await writeFile(path, '[1,2]\n');
  await assert.rejects(readAll(new JsonlReader(file(path, 'jsonl'))), /must be a JSON object/);
  await writeFile(path, 'not gzip');
  await assert.rejects(readAll(new JsonlReader(file(path, 'jsonl', true))), { code: 'GPUFEED_BAD_INPUT' });
});

test('csv: quotes, escaped quotes, newlines in fields, empty vs ""', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'x.csv');
  await writeFile(path, 'a,b,c\r\n1,"x, ""y""",\r\n2,"multi\nline",""\n3,plain,z');
  const { rows, refs } = await readAll(new CsvReader(file(path, 'csv')));
  assert.deepEqual(rows, [
    { a: '1', b: 'x, "y"', c: null },
    { a: '2', b: 'multi\nline', c: '' },
    { a: '3', b: 'plain', c: 'z' },
  ]);
  assert.deepEqual(refs, [2, 3, 5]);
  await writeFile(path, 'a,b\n1,2\n3\n');
  await assert.rejects(readAll(new CsvReader(file(path, 'csv'))), (e: Error) => e.message.includes(`${path}, line 3`) && /1 fields but the header has 2/.test(e.message));
});

test('inference rules', () => {
  const rows = [
    { i: 1, f: 1.5, b: true, s: 'x', l: [1, 2], big: [1, 2 ** 40], emb: [0.5, 1], n: null, fx: [[1, 2], [3, 4]] },
    { i: 2, f: 2, b: false, s: 'y', l: [], big: [3], emb: [1], n: 3, fx: [[5, 6], [7, 8]] },
    { i: null, f: 3, b: true, s: 'z', l: [5], big: [], emb: [2.5] },
  ];
  const schema = inferSchema(rows, { shapes: { fx: [2, 2] } }, 'in.jsonl');
  assert.deepEqual(schema, [
    { name: 'i', dtype: 'int64', kind: 'scalar', nullable: true },
    { name: 'f', dtype: 'float64', kind: 'scalar', nullable: false },
    { name: 'b', dtype: 'bool', kind: 'scalar', nullable: false },
    { name: 's', dtype: 'string', kind: 'bytes', nullable: false },
    { name: 'l', dtype: 'int32', kind: 'list', nullable: false },
    { name: 'big', dtype: 'int64', kind: 'list', nullable: false },
    { name: 'emb', dtype: 'float32', kind: 'list', nullable: false },
    { name: 'n', dtype: 'int64', kind: 'scalar', nullable: true },
    { name: 'fx', dtype: 'int32', kind: 'fixed', shape: [2, 2], nullable: false },
  ]);
  assert.deepEqual(inferSchema(rows, { shapes: { fx: [2, 2] }, types: { i: 'int32', l: 'int64' }, nullable: ['s'] }, 'in.jsonl').filter((c) => ['i', 'l', 's'].includes(c.name)), [
    { name: 'i', dtype: 'int32', kind: 'scalar', nullable: true },
    { name: 's', dtype: 'string', kind: 'bytes', nullable: true },
    { name: 'l', dtype: 'int64', kind: 'list', nullable: false },
  ]);
  assert.throws(() => inferSchema([{ x: 1 }, { x: 'a' }], {}, 'in.jsonl'), (e: Error & { code?: string }) => e.code === 'GPUFEED_BAD_INPUT' && /--type x=string/.test(e.message));
  assert.throws(() => inferSchema([{ x: null }], {}, 'in.jsonl'), /pass --type x=/);
  assert.throws(() => inferSchema([{ x: { y: 1 } }], {}, 'in.jsonl'), { code: 'GPUFEED_UNSUPPORTED_TYPE' });
  assert.throws(() => inferSchema([{ x: [[1]] }], {}, 'in.jsonl'), /--shape x=/);
  assert.throws(() => inferSchema([{ x: 1 }], { shapes: { y: [2] } }, 'in.jsonl'), { code: 'GPUFEED_UNKNOWN_COLUMN' });
  // CSV: text wins over numbers; numbers only when every cell parses.
  const csv = [{ a: '1', b: '1.5', c: 'x', d: 'true', e: '[1,2]' }, { a: '2', b: '2', c: '3', d: 'FALSE', e: '[3]' }].map((r) =>
    Object.fromEntries(Object.entries(r).map(([k, v]) => [k, csvGuess(v)])));
  assert.deepEqual(inferSchema(csv, {}, 'in.csv', true).map((c) => `${c.name}:${c.kind}:${c.dtype}`), ['a:scalar:int64', 'b:scalar:float64', 'c:bytes:string', 'd:scalar:bool', 'e:list:int32']);
});

test('inputs: files, folders (recursive, sorted), globs, mixed, in the given order', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'f', 'sub'), { recursive: true });
  for (const p of ['f/b.jsonl', 'f/a.csv', 'f/sub/c.parquet', 'f/notes.txt', 'f/.hidden.jsonl', 'z.arrow', 'y.jsonl.gz']) await writeFile(join(dir, p), '');
  const got = await resolveInputs([join(dir, 'z.arrow'), join(dir, 'f'), `${dir}/*.gz`]);
  assert.deepEqual(got.map((f) => [f.path.slice(dir.length + 1), f.kind, f.gzip]), [
    ['z.arrow', 'arrow', false], ['f/a.csv', 'csv', false], ['f/b.jsonl', 'jsonl', false], ['f/sub/c.parquet', 'parquet', false], ['y.jsonl.gz', 'jsonl', true],
  ]);
  assert.deepEqual((await resolveInputs([`${dir}/f/**/*.{csv,parquet}`])).map((f) => f.path.slice(dir.length + 1)), ['f/a.csv', 'f/sub/c.parquet']);
  await assert.rejects(resolveInputs([join(dir, 'missing.jsonl')]), { code: 'GPUFEED_BAD_INPUT' });
  await assert.rejects(resolveInputs([join(dir, 'f', 'notes.txt')]), /unknown input type/);
  await assert.rejects(resolveInputs([`${dir}/*.nothing`]), /matches no input files/);
  await assert.rejects(resolveInputs([]), { code: 'GPUFEED_INVALID_OPTION' });
  assert.equal(inputKindOf('x.ndjson')?.kind, 'jsonl');
});

test('globFiles: from the literal folder, sorted, real files only, into folders that can match', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'd', 'sub', 'deep'), { recursive: true });
  await mkdir(join(dir, 'other'), { recursive: true });
  for (const p of ['d/b.jsonl', 'd/a.jsonl', 'd/.h.jsonl', 'd/x.csv', 'd/sub/c.jsonl', 'd/sub/deep/e.jsonl', 'other/f.jsonl']) await writeFile(join(dir, p), '');
  await symlink(join(dir, 'other', 'f.jsonl'), join(dir, 'd', 'link.jsonl'));
  await symlink(join(dir, 'other'), join(dir, 'd', 'linkdir'));
  const rel = (xs: string[]): string[] => xs.map((x) => x.slice(dir.length + 1));
  assert.deepEqual(rel(await globFiles(`${dir}/d/*.jsonl`)), ['d/.h.jsonl', 'd/a.jsonl', 'd/b.jsonl']);
  assert.deepEqual(rel(await globFiles(`${dir}/d/**/*.jsonl`)), ['d/.h.jsonl', 'd/a.jsonl', 'd/b.jsonl', 'd/sub/c.jsonl', 'd/sub/deep/e.jsonl']);
  assert.deepEqual(rel(await globFiles(`${dir}/d/*/*.jsonl`)), ['d/sub/c.jsonl']);
  assert.deepEqual(rel(await globFiles(`${dir}/*/{a,f}.jsonl`)), ['d/a.jsonl', 'other/f.jsonl']);
  assert.deepEqual(await globFiles(`${dir}/nothing/*.jsonl`), []);
});

test('glob matching and byte sizes', () => {
  const m = (pattern: string, path: string): boolean => globMatcher(pattern)(path);
  assert.ok(m('**/*.jsonl', 'a/b/c.jsonl'));
  assert.ok(m('**/*.jsonl', 'c.jsonl'));
  assert.ok(!m('*.jsonl', 'a/c.jsonl'));
  assert.ok(m('part-[0-9]?.csv', 'part-12.csv'));
  assert.ok(m('x/[!a]b', 'x/cb') && !m('x/[!a]b', 'x/ab'), '[!...] excludes');
  assert.ok(m('part(1)-*.parquet', 'part(1)-a.parquet') && !m('part(1)-*.parquet', 'part1-a.parquet'), 'parentheses are literal');
  assert.ok(m('{train,test}-*.parquet', 'test-0.parquet') && !m('{train,test}-*.parquet', 'validation-0.parquet'));
  assert.ok(m('*.jsonl', '.hidden.jsonl'), 'a glob names dotfiles too');
  assert.equal(parseBytes('64MiB'), 64 * 2 ** 20);
  assert.equal(parseBytes('1.5GB'), 1.5e9);
  assert.equal(parseBytes('4096'), 4096);
  assert.equal(parseBytes('512k'), 512_000);
  assert.throws(() => parseBytes('lots', 'shard-size'), (e: Error & { code?: string }) => e.code === 'GPUFEED_INVALID_OPTION' && e.message.includes('shard-size'));
  assert.equal(formatBytes(64 * 2 ** 20), '64.0 MiB');
});
