// `gpufeed plan` and `gpufeed dump` over a mixture, end to end in a child per call: several
// datasets with --weights/--samples, the "streams" field of every line, the same lines as the
// plan API, resume through --state-out/--resume, the mixture-change refusal and flag errors.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, before, after } from 'node:test';
import { fileURLToPath } from 'node:url';
import { prepDataset } from '../../src/dataset/index.js';
import { planMixtureRankEpoch, resolveOrderOptions } from '../../src/plan/index.js';
import { cliArgv } from '../helpers/cli-command.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Line {
  rank: number;
  epoch: number;
  step: number;
  ids: number[];
  streams: number[];
  columns?: Record<string, number[]>;
}

function gpufeed(args: string[]): Promise<{ code: number; lines: Line[]; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(RANK|WORLD_SIZE|LOCAL_RANK|LOCAL_WORLD_SIZE|SLURM_.*)$/.test(k)));
  return new Promise((resolve) => {
    execFile(process.execPath, [...cliArgv(), ...args], { cwd: ROOT, env, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, lines: stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line), stderr });
    });
  });
}

describe('gpufeed plan and dump over a mixture', () => {
  const root = mkdtempSync(join(tmpdir(), 'gpufeed-mixture-cli-'));
  const a = join(root, 'a');
  const b = join(root, 'b');
  const rows = { a: 41, b: 13 };
  const sizes: Record<string, number[]> = {};
  before(async () => {
    for (const [name, n, base] of [['a', rows.a, 100], ['b', rows.b, 900]] as const) {
      const src = join(root, `${name}.jsonl`);
      writeFileSync(src, Array.from({ length: n }, (_, i) => JSON.stringify({ v: base + i })).join('\n'));
      const m = await prepDataset([src], { out: join(root, name), format: 'arrow', shardSize: '400B', workers: 0, progress: false });
      sizes[name] = m.shards.map((s) => s.rows);
    }
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('plan prints ids and streams per line, as the plan API gives them, with the weights\' counts', async () => {
    const { code, lines, stderr } = await gpufeed(['plan', a, b, '--weights', '0.6,0.4', '--batch-size', '3', '--world-size', '2', '--shuffle', 'window', '--shuffle-window', '5', '--seed', '2']);
    assert.equal(code, 0, stderr);
    const streams = lines.flatMap((l) => l.streams);
    // 54 samples per epoch: round(32.4) = 32 of a, 22 of b.
    assert.equal(streams.filter((s) => s === 0).length, 32);
    assert.equal(streams.filter((s) => s === 1).length, 22);
    for (const l of lines) {
      assert.equal(l.ids.length, l.streams.length);
      l.ids.forEach((id, i) => assert.equal(l.streams[i], id < rows.a ? 0 : 1));
    }
    // The same as the plan API with the manifests' row counts.
    const mk = (name: string) => sizes[name]!.map((r) => ({ rows: r, bytes: 1 }));
    const streamsIn = [{ shards: mk('a'), weight: 0.6 }, { shards: mk('b'), weight: 0.4 }];
    for (const rank of [0, 1]) {
      const world = { rank, worldSize: 2, localRank: 0, localWorldSize: 1 };
      const plan = planMixtureRankEpoch(streamsIn, world, resolveOrderOptions({ batchSize: 3, shuffle: 'window', shuffleWindow: 5, seed: 2, epochs: Infinity }, world), 0);
      const mine = lines.filter((l) => l.rank === rank);
      assert.equal(mine.length, plan.steps);
      mine.forEach((l) => assert.deepEqual({ ids: l.ids, streams: l.streams }, plan.batch(l.step)));
    }
  });

  it('dump loads the rows with their streams; --state-out and --resume continue it; another mixture is refused', async () => {
    const whole = await gpufeed(['dump', a, b, '--samples', '20,10', '--batch-size', '4', '--workers', '1']);
    assert.equal(whole.code, 0, whole.stderr);
    const all = whole.lines.flatMap((l) => l.ids.map((id, i) => ({ id, s: l.streams[i]!, v: l.columns!.v![i]! })));
    assert.equal(all.length, 30);
    for (const x of all) assert.equal(x.v, x.s === 0 ? 100 + x.id : 900 + x.id - rows.a);
    const state = join(root, 'state.json');
    const first = await gpufeed(['dump', a, b, '--samples', '20,10', '--batch-size', '4', '--workers', '1', '--max-batches', '3', '--state-out', state]);
    assert.equal(first.code, 0, first.stderr);
    const rest = await gpufeed(['dump', a, b, '--samples', '20,10', '--batch-size', '4', '--workers', '1', '--resume', state]);
    assert.equal(rest.code, 0, rest.stderr);
    assert.deepEqual([...first.lines, ...rest.lines].map((l) => l.ids), whole.lines.map((l) => l.ids));
    const refused = await gpufeed(['plan', a, b, '--samples', '20,11', '--batch-size', '4', '--resume', state]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /GPUFEED_RESUME_MISMATCH.*mixture.*stream 1 has samples 10/s);
    const intended = await gpufeed(['plan', a, b, '--samples', '20,11', '--batch-size', '4', '--resume', state, '--mixture-change', 'next-epoch']);
    assert.equal(intended.code, 0, intended.stderr);
    assert.ok(intended.lines.every((l) => l.epoch === 1 && l.step >= 0));
    assert.equal(intended.lines.flatMap((l) => l.ids).length, 31);
  });

  it('refuses a values list of the wrong length and two kinds of counts', async () => {
    const short = await gpufeed(['plan', a, b, '--weights', '1', '--batch-size', '4']);
    assert.notEqual(short.code, 0);
    assert.match(short.stderr, /--weights.*one value per dataset/);
    const both = await gpufeed(['plan', a, b, '--weights', '1,1', '--samples', '3,3', '--batch-size', '4']);
    assert.notEqual(both.code, 0);
    assert.match(both.stderr, /--samples.*cannot be combined with --weights/);
  });
});
