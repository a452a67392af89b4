// `gpufeed inspect <dataset>`: schema, shards and totals of a dataset, as a table or JSON.
import type { Command } from 'commander';
import { openDataset } from '../dataset/open-dataset.js';
import type { ManifestV1 } from '../dataset/types.js';
import { formatBytes } from '../util/bytes.js';
import { addStorageOptions, storageOptionsFrom, type StorageFlags } from './storage-options.js';

export function register(program: Command): void {
  const cmd = program.command('inspect');
  addStorageOptions(cmd, { cache: false });
  cmd
    .description('Show a dataset: schema, shards (path, format, rows, bytes) and totals')
    .argument('<dataset>', 'dataset folder or URI (holding index.json)')
    .option('--json', 'print the manifest summary as JSON', false)
    .option('--shards <n>', 'shards listed in the table (all with --json)', '50')
    .action(async (dataset: string, o: { json: boolean; shards: string } & StorageFlags) => {
      const { manifest, shards, manifestUri } = await openDataset(dataset, storageOptionsFrom(o).store);
      try {
        const shardsAt = manifest.base !== undefined ? shards.uri : undefined;
        if (o.json) process.stdout.write(`${JSON.stringify({ ...inspectJson(manifestUri, manifest), ...(shardsAt ? { shardsAt } : {}) }, null, 2)}\n`);
        else process.stdout.write(renderInspect(manifestUri, manifest, Math.max(0, Number(o.shards) || 0), shardsAt));
      } finally {
        await shards.close();
      }
    });
}

export function inspectJson(uri: string, m: ManifestV1): Record<string, unknown> {
  return {
    uri,
    format: m.format,
    version: m.version,
    rows: m.rows,
    bytes: m.bytes,
    shardCount: m.shards.length,
    schema: m.schema,
    shards: m.shards.map((s) => ({
      path: s.path, format: s.format, rows: s.rows, bytes: s.bytes, hash: s.hash,
      parts: s.layout.kind === 'arrow' ? s.layout.batches.length : s.layout.rowGroups.length,
      ...(s.maxRowBytes ? { maxRowBytes: s.maxRowBytes } : {}),
    })),
    ...(m.base !== undefined ? { base: m.base } : {}),
    ...(m.createdBy ? { createdBy: m.createdBy } : {}),
    ...(m.createdAt ? { createdAt: m.createdAt } : {}),
  };
}

function table(header: string[], rows: string[][], right: Set<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}

export function renderInspect(uri: string, m: ManifestV1, maxShards: number, shardsAt?: string): string {
  let out = `dataset  ${uri}\n`;
  if (shardsAt !== undefined) out += `shards   in ${shardsAt} (base ${JSON.stringify(m.base)})\n`;
  out += `format   ${m.format} v${m.version}${m.createdBy ? `, created by ${m.createdBy}` : ''}${m.createdAt ? ` at ${m.createdAt}` : ''}\n`;
  out += `total    ${m.rows} rows, ${m.shards.length} shards, ${formatBytes(m.bytes)} (${m.bytes} bytes)\n\n`;
  out += 'schema\n';
  out += table(['column', 'kind', 'dtype', 'shape', 'nullable'], m.schema.map((c) => [
    c.name, c.kind, c.dtype, c.shape ? c.shape.join('x') : '', c.nullable ? 'yes' : 'no',
  ]), new Set());
  out += '\nshards\n';
  const shown = m.shards.slice(0, maxShards);
  out += table(['path', 'format', 'rows', 'bytes', 'parts'], shown.map((s) => [
    s.path, s.format, String(s.rows), formatBytes(s.bytes),
    String(s.layout.kind === 'arrow' ? s.layout.batches.length : s.layout.rowGroups.length),
  ]), new Set([2, 3, 4]));
  if (m.shards.length > shown.length) out += `... and ${m.shards.length - shown.length} more (--shards N, or --json for all)\n`;
  return out;
}
