// `gpufeed bench`: measures what the loader delivers into pinned batches, on a given dataset or a
// demo dataset made in a temp folder (no input, no cloud account).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Command } from 'commander';
import { invalidOption } from '../errors.js';
import { Loader } from '../pipeline/loader.js';
import { PackedLoader, packSummary } from '../pipeline/packed-loader.js';
import { measureLoader, type ThroughputResult } from '../pipeline/throughput.js';
import { memoryStatus } from '../memory/index.js';
import type { ShardSourceStats } from '../pipeline/shard-source.js';
import { BenchSampler } from './bench-sampler.js';
import { checkReportPath, writeBenchReport, type BenchReportInput } from './bench-report.js';
import { formatBytes } from '../util/bytes.js';
import { datasetInputFrom } from './mixture-flags.js';
import { addLoaderOptions, loaderOptionsFromFlags, type LoaderFlags } from './loader-options.js';

interface BenchFlags extends LoaderFlags {
  demo?: boolean;
  demoRows?: string;
  demoSeqLen?: string;
  demoFormat?: string;
  json?: string;
  maxBatches?: string;
  seconds?: string;
  consumerMs?: string;
  report?: string;
}

function num(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw invalidOption(name, `must be a number >= ${min}, got ${JSON.stringify(v)}`);
  return n;
}

function progressBar(done: number, total: number, text: string): string {
  const width = 24;
  const frac = total > 0 ? Math.min(1, done / total) : 0;
  const full = Math.round(frac * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${(frac * 100).toFixed(0).padStart(3)}% ${text}`;
}

export function summaryLine(r: ThroughputResult): string {
  const wait = r.data_wait_measured
    ? `data-wait ${(r.data_wait_fraction * 100).toFixed(1)}% steady, ${(r.data_wait_fraction_with_startup * 100).toFixed(1)}% with start-up`
    : 'data-wait not measured (no consumer step; pass --consumer-ms)';
  return `bench: ${Math.round(r.samples_per_s)} samples/s, ${(r.bytes_per_s / 1e9).toFixed(2)} GB/s steady into ${r.pinned ? 'pinned' : 'pageable'} (${r.memory_kind}) batches; ` +
    `whole run ${Math.round(r.whole_samples_per_s)} samples/s, ${(r.whole_bytes_per_s / 1e9).toFixed(2)} GB/s (first batch ${r.startup_seconds.toFixed(3)} s after open); ` +
    `${r.batches} batches of ${r.batch_size} in ${r.seconds.toFixed(2)} s, ${r.workers} workers, ${wait}, peak RSS ${formatBytes(r.peak_rss_bytes)}`;
}

/** The setup facts a report shows beside its figures. */
function reportSetup(loader: Pick<Loader, 'manifest' | 'world' | 'workers' | 'ring' | 'layout' | 'order'>, flags: BenchFlags): BenchReportInput['setup'] {
  return {
    rows: loader.manifest.rows, shards: loader.manifest.shards.length, 'dataset bytes': formatBytes(loader.manifest.bytes),
    rank: `${loader.world.rank} of ${loader.world.worldSize}`, workers: loader.workers, slots: loader.ring.slots.length, 'slot bytes': formatBytes(loader.layout.slotBytes),
    'batch size': loader.order.batchSize, 'consumer ms': flags.consumerMs ?? 'none', node: process.version,
  };
}

export function register(program: Command): void {
  const cmd = program
    .command('bench [dataset...]')
    .description('measure samples/s and GB/s delivered into pinned batches (--demo: on a generated demo dataset)');
  addLoaderOptions(cmd, { batchSize: 64 })
    .option('--demo', 'generate a demo dataset in a temp folder and benchmark it')
    .option('--demo-rows <n>', 'rows in the demo dataset', '32768')
    .option('--demo-seq-len <n>', 'int32 tokens per demo row', '2048')
    .option('--demo-format <fmt>', 'demo shard format: arrow or parquet', 'arrow')
    .option('--max-batches <k>', 'stop after k batches')
    .option('--seconds <s>', 'stop after s seconds')
    .option('--consumer-ms <ms>', 'simulated compute per batch, to measure data-wait')
    .option('--report <file>', 'write an HTML page with charts of the run (samples/s, data-wait, stages, cache, storage)')
    .option('--json <file>', 'write the figures as JSON')
    .action(async (datasets: string[], flags: BenchFlags) => {
      let dataset: string | undefined = datasets[0];
      if (!dataset && !flags.demo) throw invalidOption('dataset', 'give a dataset path or URI, or --demo');
      if (dataset && flags.demo) throw invalidOption('--demo', 'takes no dataset argument');
      const options = loaderOptionsFromFlags(flags);
      if (flags.report) await checkReportPath(flags.report);
      let demoDir: string | undefined;
      try {
        if (flags.demo) {
          const { makeDemoDataset } = await import('../dataset/index.js');
          demoDir = await mkdtemp(join(tmpdir(), 'gpufeed-demo-'));
          const rows = num('--demo-rows', flags.demoRows, 1)!;
          const seqLen = num('--demo-seq-len', flags.demoSeqLen, 1)!;
          const format = flags.demoFormat === 'parquet' ? 'parquet' : flags.demoFormat === 'arrow' ? 'arrow' : undefined;
          if (!format) throw invalidOption('--demo-format', `must be arrow or parquet, got ${flags.demoFormat}`);
          process.stderr.write(`bench: writing a demo dataset (${rows} rows of ${seqLen} int32 tokens, ${format}) to ${demoDir}\n`);
          await makeDemoDataset(demoDir, { rows, seqLen, format });
          dataset = demoDir;
        }
        const startedIso = new Date().toISOString();
        const openedAt = performance.now();
        const loader = await Loader.open(demoDir ? dataset! : datasetInputFrom(datasets, flags), options);
        let result: ThroughputResult;
        let storage: ShardSourceStats | undefined;
        let report: Omit<BenchReportInput, 'result' | 'storage'> | undefined;
        const sampler = flags.report ? new BenchSampler(() => loader.stats(), openedAt) : undefined;
        try {
          const tty = Boolean(process.stderr.isTTY);
          const total = Math.min(
            num('--max-batches', flags.maxBatches, 1) ?? Number.POSITIVE_INFINITY,
            Number.isFinite(loader.order.epochs) ? loader.stepsPerEpoch() * loader.order.epochs : Number.POSITIVE_INFINITY,
          );
          const mem = memoryStatus();
          process.stderr.write(`bench: ${loader.manifest.rows} rows in ${loader.manifest.shards.length} shards (${formatBytes(loader.manifest.bytes)}), rank ${loader.world.rank}/${loader.world.worldSize}, ${loader.workers} workers, ${loader.ring.slots.length} slots of ${formatBytes(loader.layout.slotBytes)}, CUDA ${mem.cudaAvailable ? 'available' : 'not available'}\n`);
          if (loader instanceof PackedLoader) process.stderr.write(`bench: ${packSummary(loader)}\n`);
          const measure: Parameters<typeof measureLoader>[1] = {
            startedAt: openedAt,
            onProgress: (p) => {
              if (!tty) return;
              const text = `${p.batches} batches, ${Math.round(p.samples / Math.max(p.seconds, 1e-3))} samples/s, ${(p.bytes / Math.max(p.seconds, 1e-3) / 1e9).toFixed(2)} GB/s`;
              process.stderr.write(`\r${progressBar(p.batches, Number.isFinite(total) ? total : p.batches, text)}\x1b[K`);
            },
          };
          const mb = num('--max-batches', flags.maxBatches, 1);
          if (mb !== undefined) measure.maxBatches = mb;
          const secs = num('--seconds', flags.seconds, 0.001);
          if (secs !== undefined) measure.maxSeconds = secs;
          const cms = num('--consumer-ms', flags.consumerMs, 0);
          if (cms !== undefined) measure.consumerMs = cms;
          if (sampler) {
            measure.onBatch = sampler.onBatch;
            sampler.start();
          }
          result = await measureLoader(loader, measure);
          if (tty) process.stderr.write('\n');
          const end = loader.stats();
          storage = end.storage;
          if (sampler) report = { dataset: flags.demo ? 'demo' : dataset!, startedAt: startedIso, setup: reportSetup(loader, flags), series: sampler.finish(result, end) };
          const quarantined = end.quarantinedSamples;
          if (quarantined > 0) process.stderr.write(`bench: ${quarantined} rows were quarantined (--on-corrupt skip) and replaced by other rows of their batches; the figures count them as delivered\n`);
        } finally {
          sampler?.stop();
          await loader.close();
        }
        if (flags.json) await writeFile(flags.json, `${JSON.stringify({ dataset: flags.demo ? 'demo' : dataset, ...result, ...(storage ? { storage } : {}) }, null, 2)}\n`);
        if (flags.report && report) await writeBenchReport(flags.report, { ...report, result, storage });
        process.stdout.write(`${summaryLine(result)}\n`);
      } finally {
        if (demoDir) await rm(demoDir, { recursive: true, force: true });
      }
    });
}
