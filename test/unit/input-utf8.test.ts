import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { CsvReader } from '../../src/dataset/inputs/csv.js';
import { JsonlReader } from '../../src/dataset/inputs/jsonl.js';
import type { InputFile, InputReader } from '../../src/dataset/inputs/source.js';
import { firstInvalidUtf8 } from '../../src/dataset/inputs/text-stream.js';
import { tempDir } from '../fixtures/dataset-fixtures.js';

const file = (path: string, kind: InputFile['kind'], gzip = false): InputFile => ({ path, kind, gzip, size: 0 });

async function readAll(reader: InputReader): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  for await (const b of reader.batches()) rows.push(...b.rows);
  return rows;
}

function badUtf8At(path: string, line: number) {
  return (e: Error & { code?: string; details?: { path?: string; row?: number } }): boolean => {
    assert.equal(e.code, 'GPUFEED_BAD_INPUT');
    assert.ok(e.message.includes(`${path}, line ${line}`), e.message);
    assert.match(e.message, /not valid UTF-8/);
    assert.equal(e.details?.path, path);
    assert.equal(e.details?.row, line);
    return true;
  };
}

test('firstInvalidUtf8: valid text, stray bytes, overlong forms, surrogates, cut-off sequences', () => {
  const b = (...xs: number[]): Uint8Array => Uint8Array.from(xs);
  assert.equal(firstInvalidUtf8(Buffer.from('aé€😀')), -1);
  assert.equal(firstInvalidUtf8(b(0x61, 0xff, 0x62)), 1);
  assert.equal(firstInvalidUtf8(b(0x61, 0x80)), 1); // lone continuation byte
  assert.equal(firstInvalidUtf8(b(0xc0, 0xaf)), 0); // overlong '/'
  assert.equal(firstInvalidUtf8(b(0xe0, 0x80, 0xaf)), 0); // overlong 3-byte
  assert.equal(firstInvalidUtf8(b(0xed, 0xa0, 0x80)), 0); // U+D800
  assert.equal(firstInvalidUtf8(b(0xf4, 0x90, 0x80, 0x80)), 0); // past U+10FFFF
  assert.equal(firstInvalidUtf8(b(0x61, 0xe2, 0x82)), 1); // cut off
  assert.equal(firstInvalidUtf8(b(0x61, 0xe2, 0x82, 0xac, 0xff), 0, 4), -1); // end bounds the scan
});

test('jsonl: invalid UTF-8 is GPUFEED_BAD_INPUT naming file and line, plain and gzipped', async (t) => {
  const dir = await tempDir(t);
  const body = Buffer.concat([Buffer.from('{"s":"ok é"}\n\n{"s":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}\n{"s":"z"}\n')]);
  const plain = join(dir, 'bad.jsonl');
  const gz = join(dir, 'bad.jsonl.gz');
  await writeFile(plain, body);
  await writeFile(gz, gzipSync(body));
  await assert.rejects(readAll(new JsonlReader(file(plain, 'jsonl'))), badUtf8At(plain, 3));
  await assert.rejects(readAll(new JsonlReader(file(gz, 'jsonl', true))), badUtf8At(gz, 3));
  // Valid multi-byte text still reads, also when it is the whole line.
  const good = join(dir, 'good.jsonl');
  await writeFile(good, '{"s":"é€😀"}\n');
  assert.deepEqual(await readAll(new JsonlReader(file(good, 'jsonl'))), [{ s: 'é€😀' }]);
});

test('csv: invalid UTF-8 is GPUFEED_BAD_INPUT naming file and line; characters across chunk edges still decode', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'bad.csv');
  await writeFile(path, Buffer.concat([Buffer.from('a,b\n1,x\n2,"multi\nline"\n3,'), Buffer.from([0xc3, 0x28]), Buffer.from('\n')]));
  await assert.rejects(readAll(new CsvReader(file(path, 'csv'))), badUtf8At(path, 5));
  // A file ending inside a character.
  await writeFile(path, Buffer.concat([Buffer.from('a\n1\n'), Buffer.from([0xe2, 0x82])]));
  await assert.rejects(readAll(new CsvReader(file(path, 'csv'))), badUtf8At(path, 3));
  // 1 MiB read chunks: put a 4-byte character across the first chunk edge.
  const pad = 'x'.repeat((1 << 20) - 4 - 1);
  const good = join(dir, 'good.csv');
  await writeFile(good, `a\n${pad}😀\n`);
  const rows = await readAll(new CsvReader(file(good, 'csv')));
  assert.equal(rows.length, 1);
  assert.equal(rows[0]!.a, `${pad}😀`);
});
