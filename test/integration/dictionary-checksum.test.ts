// A dictionary-encoded Arrow column read in place takes its values from the file's dictionary
// batch, so that batch is a piece like any record batch: `index` records its checksum and the
// loader checks it before a value of it reaches a batch. Damage there is GPUFEED_HASH_MISMATCH
// naming the shard and the dictionary, never other strings delivered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, readSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliArgv } from '../helpers/cli-command.js';
import { Loader, GpufeedError, ErrorCodes, isVarColumn } from '../../src/index.js';
import type { ManifestV1 } from '../../src/dataset/types.js';
import { pythonHas } from '../helpers/python-modules.js';


const WORDS = ['alpha', 'bravo', 'charlie', 'delta'];

async function strings(dir: string, verifyPieces: boolean): Promise<string[]> {
  const loader = await Loader.open(dir, { batchSize: 8, workers: 1, verifyPieces });
  const out: string[] = [];
  try {
    for await (const b of loader) {
      const c = b.columns.word!;
      assert.ok(isVarColumn(c));
      for (let i = 0; i < b.size; i++) out.push(Buffer.from(c.values.subarray(c.offsets[i]!, c.offsets[i + 1]!) as Uint8Array).toString());
    }
  } finally {
    await loader.close();
  }
  return out;
}

test('a damaged dictionary batch is a hash mismatch naming the dictionary', { skip: !pythonHas('pyarrow') && 'python3 with pyarrow is not installed' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-dict-crc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'data.arrow');
  execFileSync('python3', ['-c', `
import pyarrow as pa, pyarrow.feather as f, sys
words = ${JSON.stringify(WORDS)}
t = pa.table({'word': pa.array([words[i % 4] for i in range(40)]).dictionary_encode(), 'i': pa.array(range(40))})
f.write_feather(t, sys.argv[1], compression='uncompressed')
`, file]);
  execFileSync(process.execPath, [...cliArgv(), 'index', dir], { stdio: 'pipe' });
  const manifest = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as ManifestV1;
  const layout = manifest.shards[0]!.layout;
  assert.equal(layout.kind, 'arrow');
  const dict = layout.kind === 'arrow' ? layout.dictionaries : undefined;
  assert.equal(dict?.length, 1, 'index records the dictionary batch with its checksum');
  const expected = Array.from({ length: 40 }, (_, i) => WORDS[i % 4]!);
  assert.deepEqual(await strings(dir, true), expected);

  // Flip one byte of "charlie" inside the dictionary batch's body.
  const fd = openSync(file, 'r+');
  const body = Buffer.alloc(dict![0]!.bodyLength);
  readSync(fd, body, 0, body.length, dict![0]!.offset + dict![0]!.metadataLength);
  const at = body.indexOf('charlie');
  assert.ok(at >= 0);
  writeSync(fd, Buffer.from('X'), 0, 1, dict![0]!.offset + dict![0]!.metadataLength + at);
  closeSync(fd);

  // Unchecked, the damage would be delivered as data: this is what the check prevents.
  const unchecked = await strings(dir, false);
  assert.ok(unchecked.includes('Xharlie'), 'the flipped byte lies in the values the rows take');
  await assert.rejects(strings(dir, true), (err: unknown) => {
    assert.ok(err instanceof GpufeedError, String(err));
    assert.equal(err.code, ErrorCodes.HASH_MISMATCH, err.message);
    assert.match(err.message, /shard data\.arrow: dictionary 0 .*checksums to/);
    return true;
  });

  // A manifest that drops the dictionary checksums cannot vouch for the values: refused by name.
  const { dictionaries: _dropped, ...rest } = layout as typeof layout & { dictionaries?: unknown };
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ ...manifest, shards: [{ ...manifest.shards[0]!, layout: rest }] }));
  await assert.rejects(strings(dir, true), (err: unknown) => err instanceof GpufeedError && err.code === ErrorCodes.SHARD_CORRUPT && /dictionary batch at byte \d+ has no checksum/.test(err.message));
});
