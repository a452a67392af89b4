// `gpufeed dump`: loads this rank's batches for real and prints one JSON line per batch.
import { writeFileSync, renameSync } from 'node:fs';
import type { Command } from 'commander';
import { Loader } from '../pipeline/loader.js';
import { PackedLoader, packRankSummary, packSummary } from '../pipeline/packed-loader.js';
import { batchColumnsJson } from '../pipeline/batch-json.js';
import { addLoaderOptions, loaderOptionsFromFlags, type LoaderFlags } from './loader-options.js';
import { invalidOption } from '../errors.js';
import { datasetInputFrom } from './mixture-flags.js';

interface DumpFlags extends LoaderFlags {
  maxBatches?: string;
  stateOut?: string;
}

export function register(program: Command): void {
  const cmd = program
    .command('dump <dataset...>')
    .description('load batches and print one JSON line per batch: {"rank","epoch","step","ids","columns"}; a mixture (several datasets, --weights/--samples/--repeat) adds "streams"');
  addLoaderOptions(cmd)
    .option('--max-batches <k>', 'stop after k batches')
    .option('--state-out <file>', 'write the resume state after the last printed batch')
    .action(async (datasets: string[], flags: DumpFlags) => {
      const options = loaderOptionsFromFlags(flags);
      let maxBatches = Number.POSITIVE_INFINITY;
      if (flags.maxBatches !== undefined) {
        maxBatches = Number(flags.maxBatches);
        if (!Number.isInteger(maxBatches) || maxBatches < 0) throw invalidOption('--max-batches', `must be an integer >= 0, got ${flags.maxBatches}`);
      }
      const loader = await Loader.open(datasetInputFrom(datasets, flags), options);
      try {
        let n = 0;
        const names = options.columns;
        if (n < maxBatches) {
          for await (const batch of loader) {
            const line: Record<string, unknown> = { rank: loader.world.rank, epoch: batch.epoch, step: batch.step, ids: batch.ids, ...(batch.stream ? { streams: [...batch.stream] } : {}), columns: batchColumnsJson(batch, names) };
            // Rows replaced by quarantine (--on-corrupt skip), only when there are some.
            if (batch.quarantined.length > 0) line.quarantined = batch.quarantined;
            if (batch.pack) line.pack = batch.pack.streams ? { segments: batch.pack.segments, streams: batch.pack.streams } : { segments: batch.pack.segments };
            if (!process.stdout.write(`${JSON.stringify(line)}\n`)) await new Promise((r) => process.stdout.once('drain', r));
            if (++n >= maxBatches) break;
          }
        }
        if (loader instanceof PackedLoader) process.stderr.write(`${packSummary(loader)}\n${packRankSummary(loader)}\n`);
        if (flags.stateOut) {
          const tmp = `${flags.stateOut}.tmp-${process.pid}`;
          writeFileSync(tmp, `${JSON.stringify(loader.state())}\n`);
          renameSync(tmp, flags.stateOut);
        }
      } finally {
        await loader.close();
      }
    });
}
