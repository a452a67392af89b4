// `gpufeed prep <inputs...> --out DIR`: convert JSONL/CSV/Parquet/Arrow inputs into a dataset.
import type { Command } from 'commander';
import { invalidOption } from '../errors.js';
import { prepDataset } from '../dataset/prep.js';
import { parseShapeSpec, parseTypeSpec } from '../dataset/prep-options.js';
import type { DType, ShardFormat } from '../dataset/types.js';
import { formatBytes } from '../util/bytes.js';
import { addStorageOptions, storageOptionsFrom, type StorageFlags } from './storage-options.js';

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function register(program: Command): void {
  const cmd = program.command('prep');
  addStorageOptions(cmd, { cache: false });
  cmd
    .description('Convert JSON Lines (.jsonl, .jsonl.gz), CSV, Parquet or Arrow IPC inputs into a sharded gpufeed dataset')
    .argument('<inputs...>', 'input files, folders (read recursively) or globs, in order')
    .requiredOption('-o, --out <dir>', 'output dataset folder (or URI)')
    .option('-f, --format <format>', 'shard format: arrow or parquet', 'arrow')
    .option('-s, --shard-size <size>', 'target shard size, e.g. 64MiB', '64MiB')
    .option('--shape <col=dims>', 'fixed-shape column, e.g. input_ids=2048 or image=3x224x224 (repeatable)', collect)
    .option('--type <col=dtype>', 'column (element) dtype, e.g. label=int32 (repeatable)', collect)
    .option('--nullable <col>', 'allow nulls in a column the first rows show none in (repeatable)', collect)
    .option('--columns <a,b>', 'keep only these columns (repeatable)', collect)
    .option('--drop <c>', 'leave out these columns (comma-separated, repeatable)', collect)
    .option('--images', 'the input is an image folder ROOT/<class>/<image> (ImageNet style): rows of image bytes, label, path', false)
    .option('--split <name>', 'read only this Hugging Face split of folder and glob inputs (train, validation, test, ...)')
    .option('-c, --compression <codec>', 'Parquet codec: snappy, zstd, gzip or none')
    .option('--overwrite', 'replace a gpufeed dataset already at --out', false)
    .option('-w, --workers <n>', 'encoder threads (0 = main thread)')
    .option('--sample-rows <n>', 'rows of the first input used to infer a JSONL/CSV schema', '1000')
    .option('--json', 'print the result as JSON', false)
    .action(async (inputs: string[], o: {
      out: string; format: string; shardSize: string; shape?: string[]; type?: string[]; nullable?: string[];
      columns?: string[]; drop?: string[]; split?: string; images: boolean;
      compression?: string; overwrite: boolean; workers?: string; sampleRows: string; json: boolean;
    } & StorageFlags) => {
      const shapes = Object.fromEntries((o.shape ?? []).map(parseShapeSpec));
      const types = Object.fromEntries((o.type ?? []).map(parseTypeSpec)) as Record<string, DType>;
      const workers = o.workers === undefined ? undefined : parseIntOption('workers', o.workers);
      const sampleRows = parseIntOption('sample-rows', o.sampleRows);
      let seconds = 0;
      const manifest = await prepDataset(inputs, {
        out: o.out, format: o.format as ShardFormat, shardSize: o.shardSize, shapes, types, nullable: o.nullable,
        compression: o.compression, overwrite: o.overwrite, workers, sampleRows, storeOptions: storageOptionsFrom(o).store,
        columns: o.columns, drop: o.drop, split: o.split, images: o.images,
      }, (s) => { seconds = s.seconds; });
      const rate = seconds > 0 ? Math.round(manifest.rows / seconds) : manifest.rows;
      if (o.json) {
        process.stdout.write(`${JSON.stringify({ out: o.out, rows: manifest.rows, shards: manifest.shards.length, bytes: manifest.bytes, seconds, rowsPerSecond: rate, schema: manifest.schema })}\n`);
      } else {
        process.stdout.write(`wrote ${manifest.rows} rows in ${manifest.shards.length} ${o.format} shards (${formatBytes(manifest.bytes)}) to ${o.out} in ${seconds.toFixed(2)} s (${rate} rows/s)\n`);
        for (const c of manifest.schema) {
          process.stdout.write(`  ${c.name}: ${c.kind}${c.shape ? `[${c.shape.join('x')}]` : ''} ${c.dtype}${c.nullable ? ' nullable' : ''}\n`);
        }
      }
    });
}

function parseIntOption(name: string, text: string): number {
  if (!/^\d+$/.test(text)) throw invalidOption(name, `expected a whole number, got ${JSON.stringify(text)}`);
  return Number(text);
}
