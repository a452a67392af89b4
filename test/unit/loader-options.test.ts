// Loader option checks: unknown keys name the nearest valid one, values of the wrong type name
// the expected type, and workers is capped by the machine. Checked before any dataset is read.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepDataset } from '../../src/dataset/index.js';
import { Loader, GpufeedError, ErrorCodes } from '../../src/index.js';
import { editDistance, nearestName } from '../../src/util/nearest-name.js';
import { LOADER_OPTION_TYPES } from '../../src/pipeline/loader-option-types.js';
import { maxWorkers, usableCpus } from '../../src/pipeline/cpus.js';
import { invalidOptionNaming } from '../helpers/expect-error.js';

describe('nearestName', () => {
  it('measures edits case-insensitively', () => {
    assert.equal(editDistance('batchsize', 'batchSize'), 0);
    assert.equal(editDistance('shufle', 'shuffle'), 1);
    assert.equal(editDistance('kitten', 'sitting'), 3);
    assert.equal(editDistance('', 'abc'), 3);
  });
  it('suggests only plausible typos', () => {
    const keys = Object.keys(LOADER_OPTION_TYPES);
    assert.equal(nearestName('batchsize', keys), 'batchSize');
    assert.equal(nearestName('shufle', keys), 'shuffle');
    assert.equal(nearestName('worker', keys), 'workers');
    assert.equal(nearestName('memory_bytes', keys), 'memoryBytes');
    assert.equal(nearestName('zzzzzzzzzzzzzzzz', keys), undefined);
  });
});

describe('Loader option keys and types', () => {
  // Key and type checks come before the dataset is opened: no dataset is needed here.
  const nowhere = join(tmpdir(), 'gpufeed-no-such-dataset');

  it('rejects an unknown key, naming it and the nearest valid name', async () => {
    await assert.rejects(Loader.open(nowhere, { batchsize: 4, shufle: 'window' } as never), (err: unknown) => {
      assert.ok(err instanceof GpufeedError);
      assert.equal(err.code, ErrorCodes.INVALID_OPTION);
      assert.equal(err.details.option, 'batchsize');
      assert.equal(err.details.nearest, 'batchSize');
      assert.match(err.message, /batchsize.*did you mean batchSize\?/);
      return true;
    });
    await assert.rejects(Loader.open(nowhere, { batchSize: 4, shufle: 'window' } as never), invalidOptionNaming('shufle', /did you mean shuffle\?/));
    await assert.rejects(Loader.open(nowhere, { batchSize: 4, frobnicate: true } as never), (err: unknown) => {
      assert.ok(err instanceof GpufeedError && err.details.option === 'frobnicate');
      assert.doesNotMatch(err.message, /did you mean/);
      return true;
    });
  });

  it('rejects a value of the wrong type, naming the option and the expected type', async () => {
    await assert.rejects(Loader.open(nowhere, { batchSize: 4, columns: 'label' } as never), invalidOptionNaming('columns', /must be an array of strings, got the string "label"/));
    await assert.rejects(Loader.open(nowhere, { batchSize: 4, columns: ['a', 3] } as never), invalidOptionNaming('columns', /array of strings/));
    await assert.rejects(Loader.open(nowhere, { batchSize: '4' } as never), invalidOptionNaming('batchSize', /must be a number, got the string "4"/));
    await assert.rejects(Loader.open(nowhere, { batchSize: 4, pin: 'no' } as never), invalidOptionNaming('pin', /boolean/));
    await assert.rejects(Loader.open(nowhere, { batchSize: 4, resume: null } as never), invalidOptionNaming('resume', /object, got null/));
    await assert.rejects(Loader.open(nowhere, { batchSize: 4, workers: Number.NaN }), invalidOptionNaming('workers', /got NaN/));
  });

  it('treats an undefined value as absent', async () => {
    // Passes the key checks and fails only on the missing dataset.
    await assert.rejects(Loader.open(nowhere, { batchSize: 4, columns: undefined, workers: undefined }), (err: unknown) => {
      assert.ok(err instanceof GpufeedError);
      assert.notEqual(err.code, ErrorCodes.INVALID_OPTION);
      return true;
    });
  });
});

describe('workers limit', () => {
  const root = mkdtempSync(join(tmpdir(), 'gpufeed-loader-options-'));
  const dir = join(root, 'ds');
  before(async () => {
    const input = join(root, 'rows.jsonl');
    writeFileSync(input, Array.from({ length: 20 }, (_, i) => JSON.stringify({ label: i })).join('\n'));
    await prepDataset([input], { out: dir, format: 'arrow', shardSize: 10, workers: 0, progress: false });
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('is 4 per usable CPU, at most 256', () => {
    assert.equal(maxWorkers(1), 4);
    assert.equal(maxWorkers(3), 12);
    assert.equal(maxWorkers(1000), 256);
  });

  it('rejects more workers than the limit, naming it, and accepts the limit', async () => {
    const max = maxWorkers(usableCpus());
    await assert.rejects(Loader.open(dir, { batchSize: 4, workers: max + 1 }), invalidOptionNaming('workers', new RegExp(`at most ${max}`)));
    await assert.rejects(Loader.open(dir, { batchSize: 4, workers: 1000 }), invalidOptionNaming('workers', new RegExp(`at most ${max}.*got 1000`)));
    const loader = await Loader.open(dir, { batchSize: 4, workers: Math.min(max, 2) });
    try {
      let rows = 0;
      for await (const b of loader) rows += b.size;
      assert.equal(rows, 20);
    } finally {
      await loader.close();
    }
  });
});
