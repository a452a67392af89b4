// `gpufeed cache status|verify|clear`: the node-local shard cache. verify re-hashes every cached
// shard against the sha256 in its file name and REMOVES bad entries (except one a live process
// holds, which is reported as in use and left for that process); exit 2 when any entry was bad.
import type { Command } from 'commander';
import { cacheStatus, clearCache, verifyCache } from '../cache/maintenance.js';
import { defaultCacheDir } from '../cache/options.js';
import { formatBytes } from '../util/bytes.js';

interface Flags {
  cacheDir?: string;
  json?: boolean;
}

export function register(program: Command): void {
  const cache = program.command('cache').description('Inspect, verify or clear the node-local shard cache');
  const dirOption = (cmd: Command): Command =>
    cmd
      .option('--cache-dir <dir>', 'cache folder (default: $GPUFEED_CACHE_DIR or <tmp>/gpufeed-cache)')
      .option('--json', 'print the result as JSON', false);

  dirOption(cache.command('status').description('Entries, bytes, downloads in progress; removes leftovers of dead processes')).action(async (o: Flags) => {
    const s = await cacheStatus(o.cacheDir ?? defaultCacheDir());
    if (o.json) {
      process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
      return;
    }
    process.stdout.write(
      `${s.cacheDir}: ${s.entries} shards, ${formatBytes(s.bytes)}; ${s.held} in use; ` +
        `${s.downloading} downloading (${formatBytes(s.downloadingBytes)})` +
        (s.staleRemoved ? `; removed ${s.staleRemoved} leftovers of dead processes` : '') + '\n',
    );
  });

  dirOption(cache.command('verify').description('Re-hash every cached shard; remove bad ones; exit 2 if any was bad')).action(async (o: Flags) => {
    const dir = o.cacheDir ?? defaultCacheDir();
    const r = await verifyCache(dir);
    for (const b of r.bad) {
      process.stderr.write(`gpufeed: error GPUFEED_HASH_MISMATCH: ${dir}/shards/${b.name}: ${b.reason}; ${b.removed ? 'removed' : 'in use by a live process, not removed'}\n`);
    }
    if (o.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    else if (r.bad.length === 0) process.stdout.write(`ok: ${r.checked} cached shards match their hashes (${dir})\n`);
    else process.stdout.write(`FAILED: ${r.bad.length} of ${r.checked} cached shards did not match (${r.bad.filter((b) => b.removed).length} removed)\n`);
    if (r.bad.length > 0) process.exitCode = 2;
  });

  dirOption(cache.command('clear').description('Remove every cached shard no live process is using')).action(async (o: Flags) => {
    const dir = o.cacheDir ?? defaultCacheDir();
    const r = await clearCache(dir);
    if (o.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    else process.stdout.write(`removed ${r.removed} shards (${formatBytes(r.removedBytes)}) from ${dir}${r.kept ? `; kept ${r.kept} in use` : ''}\n`);
  });
}
