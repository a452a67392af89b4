// Loader options shared by `dump`, `bench` and `serve`: one definition, so a user benchmarks
// exactly the configuration they train with.
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { invalidOption } from '../errors.js';
import { parseBytes } from '../util/bytes.js';
import type { LoaderOptions, PackedLoaderOptions } from '../pipeline/loader.js';
import type { PackOptions } from '../plan/packing.js';
import type { ResumeState, ShuffleAlgo } from '../plan/index.js';
import { transformsFromFlags } from '../transforms/image-spec.js';
import { addStorageOptions, storageOptionsFrom, type StorageFlags } from './storage-options.js';
import { addMixtureOptions, mixtureLoaderOptions, type MixtureFlags } from './mixture-flags.js';

export interface LoaderFlags extends StorageFlags, MixtureFlags {
  batchSize?: string;
  columns?: string;
  worldSize?: string;
  rank?: string;
  seed?: string;
  shuffle?: string;
  shuffleWindow?: string;
  partitions?: string;
  dropLast?: boolean;
  pad?: boolean;
  epochs?: string;
  workers?: string;
  slots?: string;
  memoryBytes?: string;
  decodeCacheBytes?: string;
  pin?: boolean;
  verifyPieces?: boolean;
  resume?: string;
  onCorrupt?: string;
  maxQuarantined?: string;
  quarantineLog?: string;
  metricsPort?: string;
  metricsHost?: string;
  metricsDataset?: string;
  stallTimeout?: string;
  stallAction?: string;
  image?: string[];
  transforms?: string;
  pack?: string;
  padToken?: string;
}

export function addLoaderOptions(cmd: Command, defaults: { batchSize?: number } = {}): Command {
  addStorageOptions(cmd)
    .option('--batch-size <n>', 'rows per batch on this rank', defaults.batchSize === undefined ? undefined : String(defaults.batchSize))
    .option('--columns <a,b>', 'columns to load (default: all)')
    .option('--world-size <n>', 'ranks in the job (default: $WORLD_SIZE, $SLURM_NTASKS, or 1)')
    .option('--rank <n>', 'this rank (default: $RANK, $SLURM_PROCID, or 0)')
    .option('--seed <n>', 'shuffle seed (default 0)')
    .addOption(new Option('--shuffle <algo>', 'sample order').choices(['none', 'window', 'naive']))
    .option('--shuffle-window <n>', 'samples per shuffle window (shuffle=window)')
    .option('--partitions <n>', 'canonical partitions (keep it when resuming on another world size)')
    .option('--drop-last', 'drop the tail that does not fill a global batch (every batch full)')
    .option('--pad', 'fill the last step with repeated samples (every batch full); default: a smaller last batch, each sample once')
    .option('--epochs <n>', 'epochs to run (default 1; "inf" for endless)')
    .option('--workers <n>', 'decode threads (default: usable CPUs)')
    .option('--slots <n>', 'batch slots in the ring (default: 2 x workers + 2)')
    .option('--memory-bytes <size>', 'pinned batch memory in all, e.g. 4GiB (default: a quarter of RAM, 256 MiB to 32 GiB)')
    .option('--decode-cache-bytes <size>', 'decoded Parquet pieces shared by the decode workers, e.g. 2GiB (default 1GiB)')
    .option('--no-pin', 'do not page-lock batch memory')
    .option('--no-verify-pieces', 'do not check each record batch / column chunk against its manifest checksum as it is read')
    .option('--resume <file>', 'resume from a state file written by --state-out or loader.state()')
    .addOption(new Option('--on-corrupt <mode>', 'a corrupt piece or shard: fail the run (default), or skip: quarantine its rows (README, "Quarantine")').choices(['fail', 'skip']))
    .option('--max-quarantined <n>', 'with --on-corrupt skip: quarantined rows per epoch before GPUFEED_QUARANTINE_LIMIT, a count or a fraction < 1 of the epoch')
    .option('--quarantine-log <file>', 'with --on-corrupt skip: append each quarantine event to this JSON Lines file')
    .option('--metrics-port <n>', 'serve Prometheus metrics on this port (0: a free one, printed on stderr); default: off')
    .option('--metrics-host <host>', 'address the metrics endpoint binds (default 127.0.0.1)')
    .option('--metrics-dataset <name>', 'the dataset label of the metrics (default: the last part of the dataset URI)')
    .option('--stall-timeout <s>', 'seconds the consumer may wait for one batch before a GPUFEED_STALL report on stderr; 0: off (default 60)')
    .addOption(new Option('--stall-action <action>', 'after a stall report: warn (report again every interval) or fail (exit with GPUFEED_STALL)').choices(['warn', 'fail']))
    .option('--image <spec>', 'decode an image column into a tensor, e.g. image=train:224:chw or image=eval:224 (repeatable; README "Images")', (v: string, prev: string[] = []) => [...prev, v])
    .option('--transforms <json>', 'the transforms option as JSON, e.g. {"image":{"kind":"train","size":224}}')
    .option('--pack <column=length>', 'pack the list column into rows of exactly length tokens, adding position_ids and seq_lens (e.g. input_ids=2048)')
    .option('--pad-token <n>', 'with --pack --pad: the value of padding tokens (default 0)');
  return addMixtureOptions(cmd);
}

/** `--pack input_ids=2048` (and `--pad-token`) as the pack option. */
export function packFromFlags(pack: string | undefined, padToken: string | undefined): PackOptions | undefined {
  if (pack === undefined) {
    if (padToken !== undefined) throw invalidOption('--pad-token', 'only applies with --pack');
    return undefined;
  }
  const m = /^([^=]+)=(\d+)$/.exec(pack.trim());
  if (!m) throw invalidOption('--pack', `must be column=length, e.g. input_ids=2048, got ${JSON.stringify(pack)}`);
  const out: PackOptions = { column: m[1]!.trim(), length: Number(m[2]) };
  if (padToken !== undefined) {
    const n = Number(padToken);
    if (!Number.isSafeInteger(n)) throw invalidOption('--pad-token', `must be an integer, got ${JSON.stringify(padToken)}`);
    out.padToken = n;
  }
  return out;
}

function int(name: string, v: string | undefined, min = 0): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw invalidOption(name, `must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return n;
}

export function readResumeFile(path: string): ResumeState {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw invalidOption('--resume', `cannot read ${path}: ${(err as Error).message}`, { path });
  }
  try {
    return JSON.parse(text) as ResumeState;
  } catch (err) {
    throw invalidOption('--resume', `${path} is not JSON: ${(err as Error).message}`, { path });
  }
}

export function loaderOptionsFromFlags(f: LoaderFlags): LoaderOptions | PackedLoaderOptions {
  const batchSize = int('--batch-size', f.batchSize, 1);
  if (batchSize === undefined) throw invalidOption('--batch-size', 'is required');
  const { store, cache } = storageOptionsFrom(f);
  const o: LoaderOptions = { ...store, ...cache, batchSize };
  if (f.columns !== undefined) o.columns = f.columns.split(',').map((s) => s.trim()).filter(Boolean);
  const set = <K extends keyof LoaderOptions>(k: K, v: LoaderOptions[K] | undefined) => {
    if (v !== undefined) o[k] = v;
  };
  set('worldSize', int('--world-size', f.worldSize, 1));
  set('rank', int('--rank', f.rank, 0));
  set('seed', int('--seed', f.seed, 0));
  set('shuffle', f.shuffle as ShuffleAlgo | undefined);
  set('shuffleWindow', int('--shuffle-window', f.shuffleWindow, 1));
  set('partitions', int('--partitions', f.partitions, 1));
  if (f.dropLast) o.dropLast = true;
  if (f.pad) o.pad = true;
  if (f.epochs !== undefined) o.epochs = /^inf(inity)?$/i.test(f.epochs) ? Number.POSITIVE_INFINITY : int('--epochs', f.epochs, 1)!;
  set('workers', int('--workers', f.workers, 1));
  set('slots', int('--slots', f.slots, 1));
  if (f.decodeCacheBytes !== undefined) {
    o.decodeCacheBytes = parseBytes(f.decodeCacheBytes, '--decode-cache-bytes');
    if (o.decodeCacheBytes < 1) throw invalidOption('--decode-cache-bytes', `must be at least 1 byte, got ${JSON.stringify(f.decodeCacheBytes)}`);
  }
  if (f.memoryBytes !== undefined) {
    o.memoryBytes = parseBytes(f.memoryBytes, '--memory-bytes');
    if (o.memoryBytes < 1) throw invalidOption('--memory-bytes', `must be at least 1 byte, got ${JSON.stringify(f.memoryBytes)}`);
  }
  if (f.pin === false) o.pin = false;
  if (f.verifyPieces === false) o.verifyPieces = false;
  if (f.resume !== undefined) o.resume = readResumeFile(f.resume);
  if (f.onCorrupt !== undefined) o.onCorrupt = f.onCorrupt as 'fail' | 'skip';
  if (f.maxQuarantined !== undefined) {
    const n = Number(f.maxQuarantined);
    if (f.maxQuarantined.trim() === '' || !Number.isFinite(n) || n < 0) throw invalidOption('--max-quarantined', `must be a count or a fraction < 1, got ${JSON.stringify(f.maxQuarantined)}`);
    o.maxQuarantined = n;
  }
  if (f.quarantineLog !== undefined) o.quarantineLog = f.quarantineLog;
  set('metricsPort', int('--metrics-port', f.metricsPort, 0));
  set('metricsHost', f.metricsHost);
  set('metricsDataset', f.metricsDataset);
  if (f.stallTimeout !== undefined) {
    const t = Number(f.stallTimeout);
    if (f.stallTimeout.trim() === '' || !Number.isFinite(t) || t < 0) throw invalidOption('--stall-timeout', `must be a number of seconds >= 0 (0: off), got ${JSON.stringify(f.stallTimeout)}`);
    o.stallTimeout = t;
  }
  set('stallAction', f.stallAction as LoaderOptions['stallAction']);
  const transforms = transformsFromFlags(f.image, f.transforms);
  if (transforms) o.transforms = transforms;
  Object.assign(o, mixtureLoaderOptions(f));
  const pack = packFromFlags(f.pack, f.padToken);
  return pack ? { ...o, pack } : o;
}
