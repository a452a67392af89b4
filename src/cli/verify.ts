// `gpufeed verify <dataset>`: re-hash every shard against the manifest. Exit 0 when all match,
// 2 when any shard is missing, truncated or differs (each problem printed with its code and shard).
import type { Command } from 'commander';
import { verifyDataset } from '../dataset/verify.js';
import { formatBytes } from '../util/bytes.js';
import { addStorageOptions, storageOptionsFrom, type StorageFlags } from './storage-options.js';

export function register(program: Command): void {
  const cmd = program.command('verify');
  addStorageOptions(cmd, { cache: false });
  cmd
    .description('Check every shard of a dataset against index.json: present, right size, right sha256')
    .argument('<dataset>', 'dataset folder or URI (holding index.json)')
    .option('--json', 'print the report as JSON', false)
    .option('--concurrency <n>', 'shards hashed at once', '4')
    .action(async (dataset: string, o: { json: boolean; concurrency: string } & StorageFlags) => {
      const report = await verifyDataset(dataset, { concurrency: Math.max(1, Number(o.concurrency) || 4), storeOptions: storageOptionsFrom(o).store });
      for (const p of report.problems) process.stderr.write(`gpufeed: error ${p.code}: ${p.message}\n`);
      if (o.json) {
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      } else if (report.ok) {
        process.stdout.write(`ok: ${report.shards} shards, ${report.rows} rows, ${formatBytes(report.bytes)} match ${report.uri}/index.json\n`);
      } else {
        process.stdout.write(`FAILED: ${report.problems.length} of ${report.shards} shards do not match ${report.uri}/index.json\n`);
      }
      if (!report.ok) process.exitCode = 2;
    });
}
