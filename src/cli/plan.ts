// `gpufeed plan`: prints the sample order, reading only the manifest. One JSON line per batch,
// {"rank","epoch","step","ids"}; for one rank (--rank), or for every rank, step-major: all ranks'
// batches of step k (rank 0 first), then step k+1. That is the order the job consumes them in.
import { renameSync, writeFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { invalidOption } from '../errors.js';
import { loadManifest } from '../dataset/manifest.js';
import { openStore } from '../storage/index.js';
import {
  type OrderOptions,
  planRankEpoch,
  type RankEpochPlan,
  adoptResumeOptions,
  resolveOrderOptions,
  resolveWorld,
  resumePoint,
  resumeState,
  type ResumeState,
  type ShardSize,
  type ShuffleAlgo,
  type World,
} from '../plan/index.js';
import { packMixtureSetup, packSetup, packSummary, type PackSetup } from '../pipeline/packed-loader.js';
import { openMixture, type MixtureInput } from '../pipeline/mixture-source.js';
import { rankRuns } from '../plan/packing.js';
import type { PackedLoaderOptions } from '../pipeline/loader.js';
import { packFromFlags, readResumeFile } from './loader-options.js';
import { addMixtureOptions, datasetInputFrom, epochSamplesFrom, mixtureChangeFrom, type MixtureFlags } from './mixture-flags.js';
import { mixtureResumePoint, mixtureResumeState, planMixtureRankEpoch, resolveMixture, type MixtureRankEpochPlan, type MixtureStream, type ResolvedStream } from '../plan/index.js';
import { addStorageOptions, storageOptionsFrom, type StorageFlags } from './storage-options.js';

interface PlanFlags extends StorageFlags, MixtureFlags {
  batchSize?: string;
  worldSize?: string;
  rank?: string;
  seed?: string;
  epoch?: string;
  shuffle?: string;
  shuffleWindow?: string;
  partitions?: string;
  dropLast?: boolean;
  pad?: boolean;
  resume?: string;
  maxSteps?: string;
  stateOut?: string;
  pack?: string;
}

export function register(program: Command): void {
  const cmd = program.command('plan <dataset...>');
  addStorageOptions(cmd, { cache: false });
  addMixtureOptions(cmd);
  cmd
    .description(
      'print the sample order from the manifest alone: one JSON line per batch, {"rank","epoch","step","ids"}; ' +
        'without --rank, every rank, step-major (all ranks of step k, rank 0 first, then step k+1); ' +
        'a mixture (several datasets, --weights/--samples/--repeat) adds "streams", the stream of each id',
    )
    .option('--batch-size <n>', 'samples per batch on each rank (required)')
    .option('--world-size <n>', 'ranks in the job (default: $WORLD_SIZE, $SLURM_NTASKS, or 1)')
    .option('--rank <n>', 'print only this rank (default: every rank)')
    .option('--seed <n>', 'shuffle seed (default 0)')
    .option('--epoch <n>', 'epoch to print (default 0)')
    .addOption(new Option('--shuffle <algo>', 'sample order (default none)').choices(['none', 'window', 'naive']))
    .option('--shuffle-window <n>', 'samples per shuffle window (shuffle=window)')
    .option('--partitions <n>', 'canonical partitions (default: world size; keep it to resume on another world size)')
    .option('--drop-last', 'drop the tail that does not fill a global batch (every batch full)')
    .option('--pad', 'fill the last step with repeated samples (every batch full); default: a smaller last batch, each sample once')
    .option('--resume <file>', 'continue from a resume state: prints the rest of the epoch it points into')
    .option('--max-steps <k>', 'print at most k steps')
    .option('--pack <column=length>', 'packed rows: print {"rank","epoch","step","rows":[[partition,row],...]} (each row k of a partition holds its tokens [k*length, (k+1)*length)), and the accounting on stderr')
    .option('--state-out <file>', 'write the resume state after the last printed step')
    .action(async (datasets: string[], flags: PlanFlags) => {
      await runPlan(datasets, flags);
    });
}

async function runPlan(datasets: string[], flags: PlanFlags): Promise<void> {
  const input = datasetInputFrom(datasets, flags);
  const batchSize = intFlag('--batch-size', flags.batchSize, 1);
  if (batchSize === undefined) throw invalidOption('--batch-size', 'is required');
  const onlyRank = intFlag('--rank', flags.rank, 0);
  const worldSize = intFlag('--world-size', flags.worldSize, 1);
  const maxSteps = intFlag('--max-steps', flags.maxSteps, 0) ?? Number.POSITIVE_INFINITY;
  if (flags.resume !== undefined && flags.epoch !== undefined) {
    throw invalidOption('--epoch', 'cannot be combined with --resume (the state says which epoch)');
  }

  // Without --rank every rank is printed; with --world-size alone, rank 0 stands in while the
  // world is resolved (else the launcher's values are checked as they are).
  const worldOptions: Partial<World> = {};
  if (worldSize !== undefined) worldOptions.worldSize = worldSize;
  if (onlyRank !== undefined || worldSize !== undefined) worldOptions.rank = onlyRank ?? 0;
  const base = resolveWorld(worldOptions, process.env);
  const partial: Partial<OrderOptions> = { batchSize, epochs: Number.POSITIVE_INFINITY };
  const seed = intFlag('--seed', flags.seed, 0);
  if (seed !== undefined) partial.seed = seed;
  if (flags.shuffle !== undefined) partial.shuffle = flags.shuffle as ShuffleAlgo;
  const shuffleWindow = intFlag('--shuffle-window', flags.shuffleWindow, 1);
  if (shuffleWindow !== undefined) partial.shuffleWindow = shuffleWindow;
  const partitions = intFlag('--partitions', flags.partitions, 1);
  if (partitions !== undefined) partial.partitions = partitions;
  if (flags.dropLast) partial.dropLast = true;
  if (flags.pad) partial.pad = true;
  const resume = flags.resume === undefined ? undefined : readResumeFile(flags.resume);
  const options = resolveOrderOptions(resume === undefined ? partial : adoptResumeOptions(partial, resume, base), base);

  if (flags.pack !== undefined) {
    return runPackPlan(input, flags, base, options, onlyRank, maxSteps, resume);
  }
  let streams: ResolvedStream[] | undefined;
  let shards: ShardSize[] = [];
  if (typeof input === 'string') shards = await readShardSizes(input, flags);
  else {
    const specs: MixtureStream[] = [];
    for (const s of input) {
      const spec: MixtureStream = { shards: await readShardSizes(s.uri, flags) };
      if (s.weight !== undefined) spec.weight = s.weight;
      if (s.samples !== undefined) spec.samples = s.samples;
      if (s.repeat !== undefined) spec.repeat = s.repeat;
      specs.push(spec);
    }
    const epochSamples = epochSamplesFrom(flags);
    streams = resolveMixture(specs, epochSamples === undefined ? {} : { epochSamples });
  }
  let start = { epoch: intFlag('--epoch', flags.epoch, 0) ?? 0, step: 0 };
  if (resume !== undefined) {
    start = streams ? mixtureResumePoint(resume, streams, base, options, mixtureChangeFrom(flags)) : resumePoint(resume, shards, base, options);
  }

  const ranks: World[] = onlyRank !== undefined
    ? [base]
    : Array.from({ length: base.worldSize }, (_, rank) => ({ ...base, rank, localRank: rank % base.localWorldSize }));
  const plans: RankEpochPlan[] = ranks.map((w) => (streams ? planMixtureRankEpoch(streams, w, options, start.epoch) : planRankEpoch(shards, w, options, start.epoch)));
  const steps = plans[0]?.steps ?? 0;
  const end = Math.min(steps, start.step + maxSteps);

  const out = new LineWriter();
  for (let step = start.step; step < end; step++) {
    for (let i = 0; i < plans.length; i++) {
      const plan = plans[i] as RankEpochPlan;
      const rank = (ranks[i] as World).rank;
      if (streams) {
        const b = (plan as MixtureRankEpochPlan).batch(step);
        await out.line(`{"rank":${rank},"epoch":${start.epoch},"step":${step},"ids":[${b.ids.join(',')}],"streams":[${b.streams.join(',')}]}`);
      } else {
        await out.line(`{"rank":${rank},"epoch":${start.epoch},"step":${step},"ids":[${plan.batchIds(step).join(',')}]}`);
      }
    }
  }
  await out.flush();

  if (flags.stateOut !== undefined) {
    const done = Math.max(start.step, end);
    const state = streams ? mixtureResumeState(streams, base, options, start.epoch, done) : resumeState(shards, base, options, start.epoch, done);
    const tmp = `${flags.stateOut}.tmp-${process.pid}`;
    writeFileSync(tmp, `${JSON.stringify(state)}\n`);
    renameSync(tmp, flags.stateOut);
  }
}

/** `plan --pack`: which packed rows of which partition each rank gets per step, from the manifest alone. */
async function runPackPlan(dataset: string | MixtureInput[], flags: PlanFlags, base: World, options: OrderOptions, onlyRank: number | undefined, maxSteps: number, resume: ResumeState | undefined): Promise<void> {
  const pack = packFromFlags(flags.pack, undefined)!;
  if (flags.stateOut !== undefined) throw invalidOption('--state-out', 'cannot be combined with --pack: a packed state holds carries that only the documents give; take it with gpufeed dump --pack --state-out');
  if (options.dropLast) throw invalidOption('--drop-last', 'does not apply to --pack: the tail past the last full step is dropped unless --pad is set');
  const loaderOptions: PackedLoaderOptions = { batchSize: options.batchSize, rank: base.rank, worldSize: base.worldSize, seed: options.seed, shuffle: options.shuffle, shuffleWindow: options.shuffleWindow, partitions: options.partitions, pad: options.pad, epochs: Number.POSITIVE_INFINITY, pack };
  if (resume) loaderOptions.resume = resume;
  let setup: PackSetup;
  if (typeof dataset !== 'string') {
    // A packed mixture: the same setup as the loader's (mixture-packing.ts), from the streams' manifests.
    const change = mixtureChangeFrom(flags);
    if (change !== undefined) loaderOptions.mixtureChange = change;
    const epochSamples = epochSamplesFrom(flags);
    const mixture = await openMixture(dataset, { ...storageOptionsFrom(flags).store, columns: [pack.column], ...(epochSamples === undefined ? {} : { epochSamples }) });
    try {
      setup = packMixtureSetup(mixture.manifest, mixture.streams, mixture.uris, loaderOptions);
    } finally {
      await mixture.store.close();
    }
  } else {
    const store = await openStore(dataset, storageOptionsFrom(flags).store);
    try {
      const manifest = await loadManifest(store);
      setup = packSetup(manifest, loaderOptions);
    } finally {
      await store.close();
    }
  }
  process.stderr.write(`plan: ${packSummary({ pack, packLayout: setup.layout })}\n`);
  const epoch = resume ? setup.start.epoch : intFlag('--epoch', flags.epoch, 0) ?? 0;
  const first = resume ? setup.start.step : 0;
  const end = Math.min(setup.layout.steps, first + maxSteps);
  const ranks = onlyRank !== undefined ? [base.rank] : Array.from({ length: base.worldSize }, (_, r) => r);
  const runs = ranks.map((r) => rankRuns(setup.layout, r, options.batchSize));
  const out = new LineWriter();
  for (let step = first; step < end; step++) {
    for (let i = 0; i < ranks.length; i++) {
      const rows: string[] = [];
      for (const run of runs[i]!) {
        const share = setup.layout.partitions[run.partition]!.share;
        for (let k = run.from; k < run.to; k++) rows.push(`[${run.partition},${step * share + k}]`);
      }
      await out.line(`{"rank":${ranks[i]!},"epoch":${epoch},"step":${step},"rows":[${rows.join(',')}]}`);
    }
  }
  await out.flush();
}

async function readShardSizes(dataset: string, flags: StorageFlags): Promise<ShardSize[]> {
  const store = await openStore(dataset, storageOptionsFrom(flags).store);
  try {
    const manifest = await loadManifest(store);
    return manifest.shards.map((s) => ({ rows: s.rows, bytes: s.bytes, hash: s.hash }));
  } finally {
    await store.close();
  }
}

function intFlag(name: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = /^\s*\d+\s*$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min) throw invalidOption(name, `must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  return n;
}

/** Buffers lines into ~64 KiB writes and waits for stdout to drain, so memory stays flat on huge plans. */
class LineWriter {
  private chunks: string[] = [];
  private size = 0;

  async line(text: string): Promise<void> {
    this.chunks.push(text, '\n');
    this.size += text.length + 1;
    if (this.size >= 65536) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.chunks.length === 0) return;
    const data = this.chunks.join('');
    this.chunks = [];
    this.size = 0;
    if (!process.stdout.write(data)) await new Promise<void>((resolve) => process.stdout.once('drain', () => resolve()));
  }
}
