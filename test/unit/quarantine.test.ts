// The quarantine's pure parts (src/pipeline/quarantine.ts): the substitution rule, the options,
// the shared flags, the decode loop that finds bad pieces by probing them one at a time, and the
// resume state's list (version 3, with version 2 states still accepted).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCodes, GpufeedError } from '../../src/errors.js';
import type { ManifestV1, ShardEntry } from '../../src/dataset/types.js';
import { resolveOrderOptions, resumePoint, resumeState, type ResumeState, type World } from '../../src/plan/index.js';
import {
  createQuarantineBuffers, decodeQuarantined, entriesFromState, QuarantineFlags, resolveQuarantineOptions, ShardFailure, substituteIds, type QuarantineEvent,
} from '../../src/pipeline/quarantine.js';
import { SampleLocator } from '../../src/pipeline/sample-locator.js';
import { loaderOptionsFromFlags } from '../../src/cli/loader-options.js';
import { checkLoaderOptionTypes } from '../../src/pipeline/loader-option-types.js';
import { invalidOptionNaming } from '../helpers/expect-error.js';

/** Three Arrow shards of 3 record batches of 10 rows. */
function manifest(): ManifestV1 {
  const shard = (i: number): ShardEntry => ({
    path: `s${i}.arrow`, format: 'arrow', rows: 30, bytes: 1000, hash: `sha256:${String(i).repeat(64)}`,
    layout: { kind: 'arrow', batches: [0, 1, 2].map((b) => ({ offset: b * 100, metadataLength: 8, bodyLength: 80, rows: 10 })) },
  });
  return { format: 'gpufeed', version: 1, schema: [], shards: [shard(0), shard(1), shard(2)], rows: 90, bytes: 3000 } as unknown as ManifestV1;
}

describe('quarantine', () => {
  it('replaces the k-th marked row by the (k mod g)-th good one', () => {
    assert.deepEqual(substituteIds([10, 11, 12, 13, 14], Uint8Array.from([0, 1, 0, 1, 1])), [10, 10, 12, 12, 10]);
    assert.deepEqual(substituteIds([5, 6, 7], Uint8Array.from([1, 1, 0])), [7, 7, 7]);
  });

  it('checks its options', () => {
    assert.deepEqual(resolveQuarantineOptions({}), { onCorrupt: 'fail', maxQuarantined: Infinity });
    assert.deepEqual(resolveQuarantineOptions({ onCorrupt: 'skip', maxQuarantined: 0.25, quarantineLog: '/tmp/q.jsonl' }), { onCorrupt: 'skip', maxQuarantined: 0.25, quarantineLog: '/tmp/q.jsonl' });
    assert.throws(() => resolveQuarantineOptions({ onCorrupt: 'ignore' }), invalidOptionNaming('onCorrupt'));
    assert.throws(() => resolveQuarantineOptions({ onCorrupt: 'skip', maxQuarantined: 1.5 }), invalidOptionNaming('maxQuarantined'));
    assert.throws(() => resolveQuarantineOptions({ onCorrupt: 'skip', maxQuarantined: -1 }), invalidOptionNaming('maxQuarantined'));
    assert.throws(() => resolveQuarantineOptions({ maxQuarantined: 3 }), invalidOptionNaming('maxQuarantined', /only with onCorrupt: 'skip'/));
    assert.throws(() => resolveQuarantineOptions({ quarantineLog: 'x' }), invalidOptionNaming('quarantineLog'));
    assert.throws(() => checkLoaderOptionTypes({ onCorrupt: true }), invalidOptionNaming('onCorrupt'));
    const o = loaderOptionsFromFlags({ batchSize: '4', onCorrupt: 'skip', maxQuarantined: '0.1', quarantineLog: 'q.jsonl' });
    assert.deepEqual([o.onCorrupt, o.maxQuarantined, o.quarantineLog], ['skip', 0.1, 'q.jsonl']);
    assert.throws(() => loaderOptionsFromFlags({ batchSize: '4', maxQuarantined: 'many' }), invalidOptionNaming('--max-quarantined'));
  });

  it('finds the bad pieces by probing each alone, marks them once, and decodes the rest by the rule', async () => {
    const m = manifest();
    const locator = new SampleLocator(m);
    const flags = new QuarantineFlags(createQuarantineBuffers(m, 1, 8).flags, m);
    // Sample 15 is in shard 0 batch 1 (bad bytes); 40 in shard 1, which cannot be opened.
    const ids = [3, 15, 16, 40, 41, 70, 71, 5];
    const badPiece = (id: number) => id >= 10 && id < 20;
    const badShard = (id: number) => id >= 30 && id < 60;
    const fills: number[][] = [];
    const events: QuarantineEvent[] = [];
    const marks = new Uint8Array(8);
    const corrupt = new GpufeedError(ErrorCodes.HASH_MISMATCH, 'bad piece');
    const out = await decodeQuarantined(ids, locator, flags, marks, {
      async fill(source) {
        fills.push([...source]);
        if (source.some(badPiece) || source.some(badShard)) throw corrupt;
        return 'ok';
      },
      async probe(shard, pieceIds) {
        if (pieceIds.some(badShard)) throw new ShardFailure(shard, new GpufeedError(ErrorCodes.SHARD_CORRUPT, 'short file'));
        if (pieceIds.some(badPiece)) throw corrupt;
      },
      zero: () => assert.fail('not every row is bad'),
      report: (e) => events.push(e),
    });
    assert.equal(out.result, 'ok');
    assert.equal(out.quarantined, 4);
    assert.deepEqual([...marks], [0, 1, 1, 1, 1, 0, 0, 0]);
    assert.deepEqual(fills.at(-1), [3, 3, 70, 71, 5, 70, 71, 5]);
    assert.deepEqual(events.map((e) => [e.shard, e.unit, e.code]), [[0, 1, ErrorCodes.HASH_MISMATCH], [1, -1, ErrorCodes.SHARD_CORRUPT]]);
    assert.deepEqual(flags.entries(), [{ shard: 0, unit: 1, code: ErrorCodes.HASH_MISMATCH }, { shard: 1, unit: -1, code: ErrorCodes.SHARD_CORRUPT }]);

    // Known bad now: a later batch reads nothing of them, and an all-bad batch is zeroed.
    let zeroed = false;
    const again = await decodeQuarantined([12, 33], locator, flags, marks, {
      fill: () => assert.fail('nothing to read'), probe: () => assert.fail('nothing to probe'), zero: () => { zeroed = true; }, report: () => assert.fail('no new event'),
    });
    assert.ok(zeroed);
    assert.equal(again.quarantined, 2);

    // An error that is not corrupt data, or that no piece reproduces, fails the batch as before.
    const io = new GpufeedError(ErrorCodes.STORAGE_UNAVAILABLE, 'endpoint down');
    await assert.rejects(decodeQuarantined([0, 1], locator, flags, marks, { fill: async () => { throw io; }, probe: async () => {}, zero() {}, report() {} }), (e) => e === io);
    await assert.rejects(decodeQuarantined([0, 1], locator, flags, marks, { fill: async () => { throw corrupt; }, probe: async () => {}, zero() {}, report() {} }), (e) => e === corrupt);
  });

  it('resume states: version 3 lists pieces by shard index and path; version 2 is still read', () => {
    const m = manifest();
    const world = { rank: 0, worldSize: 1, localRank: 0, localWorldSize: 1 } as World;
    const sizes = m.shards.map((s) => ({ rows: s.rows, bytes: s.bytes, hash: s.hash }));
    const opts = resolveOrderOptions({ batchSize: 10, shuffle: 'none' }, world);
    const v2 = resumeState(sizes, world, opts, 0, 2);
    assert.equal(v2.version, 2);
    const v3: ResumeState = { ...v2, version: 3, quarantined: [{ shard: 1, path: 's1.arrow', code: ErrorCodes.SHARD_CORRUPT }, { shard: 0, path: 's0.arrow', unit: 2, code: ErrorCodes.HASH_MISMATCH }] };
    assert.deepEqual(resumePoint(v2, sizes, world, opts), { epoch: 0, step: 2 });
    assert.deepEqual(resumePoint(v3, sizes, world, opts), { epoch: 0, step: 2 });
    assert.deepEqual(entriesFromState(m, v3.quarantined), [{ shard: 1, unit: -1, code: ErrorCodes.SHARD_CORRUPT }, { shard: 0, unit: 2, code: ErrorCodes.HASH_MISMATCH }]);
    assert.deepEqual(entriesFromState(m, v2.quarantined), []);
    const refused = (list: unknown) => assert.throws(() => entriesFromState(m, list), (e: unknown) => e instanceof GpufeedError && e.code === ErrorCodes.RESUME_MISMATCH && e.details.field === 'quarantined');
    refused([{ shard: 1, path: 'other.arrow', code: ErrorCodes.SHARD_CORRUPT }]);
    refused([{ shard: 7, path: 's1.arrow', code: ErrorCodes.SHARD_CORRUPT }]);
    refused([{ shard: 1, path: 's1.arrow', unit: 3, code: ErrorCodes.SHARD_CORRUPT }]);
    refused('s1');
    assert.throws(() => resumePoint({ ...v2, version: 3 } as ResumeState, sizes, world, opts), (e: unknown) => e instanceof GpufeedError && e.details.field === 'quarantined');
  });
});
