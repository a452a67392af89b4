// Resume states name the dataset by its shards' row counts and content hashes, and every field
// out of range is GPUFEED_RESUME_MISMATCH naming the field and the valid range: a state from
// another dataset with the same row counts, a version 1 state (row counts only), stepsDone past
// the epoch, and a point past the run's last epoch are refused instead of loading wrong or no data.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCodes, GpufeedError } from '../../src/errors.js';
import { resolveOrderOptions, resumePoint, resumeState, type ResumeState, type World } from '../../src/plan/index.js';

const world: World = { rank: 0, worldSize: 2, localRank: 0, localWorldSize: 2 } as World;
const hash = (c: string): string => `sha256:${c.repeat(64)}`;
const shards = Array.from({ length: 10 }, (_, i) => ({ rows: 100 + i, bytes: 5000, hash: hash('0123456789'[i]!) }));
const opts = resolveOrderOptions({ batchSize: 4, seed: 1, shuffle: 'naive', epochs: 3 }, world);

function refused(fn: () => unknown, field: string, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof GpufeedError, String(err));
    assert.equal(err.code, ErrorCodes.RESUME_MISMATCH, err.message);
    assert.equal(err.details.field, field, err.message);
    assert.match(err.message, new RegExp(`^resume state ${field}: `));
    assert.match(err.message, pattern);
    return true;
  });
}

describe('resume state fingerprint and ranges', () => {
  const state = resumeState(shards, world, opts, 1, 5);
  const steps = state.stepsPerEpoch;

  it('is version 2 with a content fingerprint, and round-trips through JSON', () => {
    assert.equal(state.version, 2);
    assert.match(state.dataset.fingerprint, /^shards-sha256:[0-9a-f]{32}$/);
    assert.deepEqual(resumePoint(JSON.parse(JSON.stringify(state)) as ResumeState, shards, world, opts), { epoch: 1, step: 5 });
  });

  it('refuses a dataset with the same row counts but another shard content', () => {
    const rewritten = shards.map((s, i) => (i === 4 ? { ...s, hash: hash('f') } : s));
    refused(() => resumePoint(state, rewritten, world, opts), 'dataset', /content hashes differ/);
  });

  it('refuses a version 1 state (row-count fingerprint), saying why', () => {
    const v1 = { ...state, version: 1, dataset: { ...state.dataset, fingerprint: 'rows-fnv1a:887755dc' } } as unknown as ResumeState;
    refused(() => resumePoint(v1, shards, world, opts), 'version', /covers row counts only.*content hashes/);
  });

  it('names stepsDone and its range when it is past the epoch', () => {
    refused(() => resumePoint({ ...state, stepsDone: 1_000_000 }, shards, world, opts), 'stepsDone', new RegExp(`from 0 to stepsPerEpoch \\(${steps}\\), got 1000000`));
    // At the end of an epoch is fine: it points at the next epoch.
    assert.deepEqual(resumePoint({ ...state, stepsDone: steps }, shards, world, opts), { epoch: 2, step: 0 });
  });

  it('refuses a point past the last epoch, naming epoch and the range, and accepts it with more epochs', () => {
    refused(() => resumePoint({ ...state, epoch: 3, stepsDone: 0 }, shards, world, opts), 'epoch', /epochs 3 runs epochs 0 to 2/);
    refused(() => resumePoint({ ...state, epoch: 2, stepsDone: steps }, shards, world, opts), 'epoch', /resumes at epoch 3 step 0/);
    refused(() => resumePoint({ ...state, epoch: 1_000_000, stepsDone: 0 }, shards, world, opts), 'epoch', /epochs 0 to 2/);
    assert.deepEqual(resumePoint({ ...state, epoch: 3, stepsDone: 0 }, shards, world, { ...opts, epochs: 4 }), { epoch: 3, step: 0 });
    assert.deepEqual(resumePoint({ ...state, epoch: 7, stepsDone: 2 }, shards, world, { ...opts, epochs: Infinity }), { epoch: 7, step: 2 });
  });
});
