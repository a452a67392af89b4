// World resolution (options, torchrun, Slurm) and order option validation.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCodes, GpufeedError } from '../../src/errors.js';
import { resolveOrderOptions, resolveWorld, type World } from '../../src/plan/index.js';

function rejects(fn: () => unknown, code: string, ...mentions: string[]): GpufeedError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof GpufeedError, `expected a GpufeedError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  for (const m of mentions) assert.ok(caught.message.includes(m), `message ${JSON.stringify(caught.message)} should mention ${m}`);
  return caught;
}

describe('resolveWorld', () => {
  it('defaults to a single process without launcher variables', () => {
    assert.deepEqual(resolveWorld({}, {}), { rank: 0, worldSize: 1, localRank: 0, localWorldSize: 1 });
  });

  it('reads torchrun variables', () => {
    const env = { RANK: '5', WORLD_SIZE: '16', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '4' };
    assert.deepEqual(resolveWorld({}, env), { rank: 5, worldSize: 16, localRank: 1, localWorldSize: 4 });
  });

  it('reads Slurm variables, including the compressed tasks-per-node form', () => {
    const env = { SLURM_PROCID: '3', SLURM_NTASKS: '8', SLURM_LOCALID: '3', SLURM_NTASKS_PER_NODE: '4' };
    assert.deepEqual(resolveWorld({}, env), { rank: 3, worldSize: 8, localRank: 3, localWorldSize: 4 });
    const compressed = { SLURM_PROCID: '6', SLURM_NTASKS: '8', SLURM_LOCALID: '2', SLURM_TASKS_PER_NODE: '4(x2)' };
    assert.deepEqual(resolveWorld({}, compressed), { rank: 6, worldSize: 8, localRank: 2, localWorldSize: 4 });
  });

  it('prefers torchrun over Slurm (torchrun launched by srun sets both)', () => {
    const env = { SLURM_PROCID: '1', SLURM_NTASKS: '2', RANK: '9', WORLD_SIZE: '16', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '8' };
    assert.deepEqual(resolveWorld({}, env), { rank: 9, worldSize: 16, localRank: 1, localWorldSize: 8 });
  });

  it('lets options override the environment', () => {
    const env = { RANK: '5', WORLD_SIZE: '16', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '4' };
    assert.deepEqual(resolveWorld({ rank: 2, worldSize: 4 }, env), { rank: 2, worldSize: 4, localRank: 1, localWorldSize: 4 });
    assert.deepEqual(resolveWorld({ rank: 3, worldSize: 4, localRank: 0, localWorldSize: 1 }, {}), {
      rank: 3, worldSize: 4, localRank: 0, localWorldSize: 1,
    });
  });

  it('rejects inconsistent values, naming them', () => {
    rejects(() => resolveWorld({}, { RANK: '8', WORLD_SIZE: '8' }), ErrorCodes.WORLD_INVALID, 'RANK=8', 'WORLD_SIZE=8');
    rejects(() => resolveWorld({}, { RANK: '1' }), ErrorCodes.WORLD_INVALID, 'RANK=1', 'WORLD_SIZE');
    rejects(() => resolveWorld({}, { WORLD_SIZE: '4' }), ErrorCodes.WORLD_INVALID, 'WORLD_SIZE=4', 'RANK');
    rejects(() => resolveWorld({}, { RANK: '0', WORLD_SIZE: '8', LOCAL_RANK: '4', LOCAL_WORLD_SIZE: '4' }), ErrorCodes.WORLD_INVALID, 'LOCAL_RANK=4', 'LOCAL_WORLD_SIZE=4');
    rejects(() => resolveWorld({}, { RANK: '0', WORLD_SIZE: '6', LOCAL_RANK: '0', LOCAL_WORLD_SIZE: '4' }), ErrorCodes.WORLD_INVALID, 'WORLD_SIZE=6', 'LOCAL_WORLD_SIZE=4');
    rejects(() => resolveWorld({}, { RANK: '0', WORLD_SIZE: '0' }), ErrorCodes.WORLD_INVALID, 'WORLD_SIZE=0');
    rejects(() => resolveWorld({}, { RANK: 'two', WORLD_SIZE: '4' }), ErrorCodes.WORLD_INVALID, 'RANK', 'two');
    rejects(() => resolveWorld({}, { SLURM_PROCID: '4', SLURM_NTASKS: '4' }), ErrorCodes.WORLD_INVALID, 'SLURM_PROCID=4', 'SLURM_NTASKS=4');
    rejects(() => resolveWorld({}, { SLURM_PROCID: '0', SLURM_NTASKS: '4', SLURM_LOCALID: '2' }), ErrorCodes.WORLD_INVALID, 'SLURM_LOCALID=2');
    rejects(() => resolveWorld({ rank: 4 }, { WORLD_SIZE: '4', RANK: '0' }), ErrorCodes.WORLD_INVALID, 'option rank=4', 'WORLD_SIZE=4');
  });

  it('rejects option values of the wrong type as invalid options', () => {
    const err = rejects(() => resolveWorld({ rank: -1, worldSize: 2 }, {}), ErrorCodes.INVALID_OPTION, 'rank');
    assert.equal(err.details.option, 'rank');
    rejects(() => resolveWorld({ worldSize: 1.5 }, {}), ErrorCodes.INVALID_OPTION, 'worldSize');
  });
});

describe('resolveOrderOptions', () => {
  const world4: World = { rank: 0, worldSize: 4, localRank: 0, localWorldSize: 4 };

  it('fills defaults: no shuffle, seed 0, one epoch, padding, a partition per rank', () => {
    const o = resolveOrderOptions({ batchSize: 8 }, world4);
    assert.equal(o.shuffle, 'none');
    assert.equal(o.seed, 0);
    assert.equal(o.epochs, 1);
    assert.equal(o.dropLast, false);
    assert.equal(o.partitions, 4);
    assert.ok(o.shuffleWindow >= 1);
    assert.equal(resolveOrderOptions({ batchSize: 1, epochs: Infinity }, world4).epochs, Infinity);
  });

  it('rejects bad values naming the option', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{}, 'batchSize'],
      [{ batchSize: 0 }, 'batchSize'],
      [{ batchSize: 2.5 }, 'batchSize'],
      [{ batchSize: 4, seed: -1 }, 'seed'],
      [{ batchSize: 4, seed: 0.5 }, 'seed'],
      [{ batchSize: 4, shuffle: 'random' }, 'shuffle'],
      [{ batchSize: 4, shuffleWindow: 0 }, 'shuffleWindow'],
      [{ batchSize: 4, shuffleWindow: 2 ** 30 }, 'shuffleWindow'],
      [{ batchSize: 4, partitions: 3 }, 'partitions'], // neither divides nor is a multiple of 4
      [{ batchSize: 4, partitions: 6 }, 'partitions'],
      [{ batchSize: 2, partitions: 16 }, 'partitions'], // more than the global batch of 8
      [{ batchSize: 4, partitions: 0 }, 'partitions'],
      [{ batchSize: 4, epochs: 0 }, 'epochs'],
      [{ batchSize: 4, epochs: -Infinity }, 'epochs'],
      [{ batchSize: 4, dropLast: 'yes' }, 'dropLast'],
    ];
    for (const [partial, option] of cases) {
      const err = rejects(() => resolveOrderOptions(partial as never, world4), ErrorCodes.INVALID_OPTION, option);
      assert.equal(err.details.option, option, JSON.stringify(partial));
    }
  });

  it('accepts partitions that divide or are multiples of the world size', () => {
    for (const partitions of [1, 2, 4, 8, 32]) {
      assert.equal(resolveOrderOptions({ batchSize: 8, partitions }, world4).partitions, partitions);
    }
  });
});
