// One loader epoch from S3 (s3rver on loopback) through a proxy that adds latency before every
// response, cold cache against warm cache, in one run. Two ranks share one cache dir, as the
// ranks of a node do. Two pacings:
//   raw:   the consumer takes batches as fast as they come (the path's own ceiling);
//   paced: the consumer spends a fixed time per batch (a training step) set so that it needs 80%
//          of the cold raw rate; the goal is cold/warm >= 0.9 (prefetch hides the latency).
//   npx tsx benchmarks/s3-epoch.ts [--rows 8192] [--seq-len 2048] [--shard-size 8MiB] [--latency-ms 30]
import { mkdtemp, readFile, rm, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeDemoDataset } from '../src/dataset/index.js';
import { Loader } from '../src/pipeline/loader.js';
import { measureLoader, type ThroughputResult } from '../src/pipeline/throughput.js';
import { formatBytes } from '../src/util/bytes.js';
import { startS3Server, S3RVER_CREDENTIALS } from '../test/helpers/s3-server.js';
import { startFaultProxy } from '../test/helpers/fault-proxy.js';
import type { ManifestV1 } from '../src/dataset/types.js';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '8192' },
    'seq-len': { type: 'string', default: '2048' },
    'shard-size': { type: 'string', default: '8MiB' },
    'latency-ms': { type: 'string', default: '30' },
    'batch-size': { type: 'string', default: '64' },
  },
});
const rows = Number(values.rows);
const seqLen = Number(values['seq-len']);
const latencyMs = Number(values['latency-ms']);
const batchSize = Number(values['batch-size']);
const RANKS = 2;

process.env.AWS_ACCESS_KEY_ID = S3RVER_CREDENTIALS.accessKeyId;
process.env.AWS_SECRET_ACCESS_KEY = S3RVER_CREDENTIALS.secretAccessKey;
process.env.AWS_REGION = 'us-east-1';

interface EpochResult {
  seconds: number;
  samplesPerS: number;
  /** After each rank's first batch: what prefetching sustains once the pipeline is primed. */
  steadySamplesPerS: number;
  firstBatchSeconds: number[];
  fetchedPerRank: number[];
  dataWait: number[];
}

async function epoch(endpoint: string, cacheDir: string, consumerMs: number): Promise<EpochResult> {
  const t0 = performance.now();
  const results = await Promise.all(Array.from({ length: RANKS }, async (_, rank) => {
    const loader = await Loader.open('s3://bench/ds', {
      batchSize, rank, worldSize: RANKS, shuffle: 'window', shuffleWindow: 4096, seed: 1, workers: 1,
      columns: ['input_ids'], s3Endpoint: endpoint, cacheDir, cacheBytes: 1 << 30, minFreeBytes: 0,
    });
    let r: ThroughputResult;
    let fetched = 0;
    try {
      r = await measureLoader(loader, consumerMs > 0 ? { consumerMs, consumerWait: 'async' } : {});
      fetched = loader.stats().storage?.bytesDownloaded ?? 0;
    } finally {
      await loader.close();
    }
    return { r, fetched };
  }));
  const seconds = (performance.now() - t0) / 1e3;
  return {
    seconds,
    samplesPerS: results.reduce((a, x) => a + x.r.samples, 0) / seconds,
    steadySamplesPerS: results.reduce((a, x) => a + x.r.samples_per_s, 0),
    firstBatchSeconds: results.map((x) => x.r.first_batch_seconds),
    fetchedPerRank: results.map((x) => x.fetched),
    dataWait: results.map((x) => x.r.data_wait_fraction),
  };
}

const server = await startS3Server(['bench']);
const proxy = await startFaultProxy(server.endpoint, { latencyMs, match: () => false });
const dir = await mkdtemp(join(tmpdir(), 'gpufeed-bench-s3-epoch-'));
try {
  const local = join(dir, 'local');
  const manifest: ManifestV1 = await makeDemoDataset(local, { rows, seqLen, format: 'arrow', shardSize: values['shard-size'] ?? '8MiB' });
  for (const s of manifest.shards) await server.putObject('bench', `ds/${s.path}`, await readFile(join(local, s.path)));
  await server.putObject('bench', 'ds/index.json', await readFile(join(local, 'index.json')));

  let n = 0;
  const freshCache = async () => {
    const d = join(dir, `cache-${n++}`);
    await mkdir(d);
    return d;
  };
  const rawCache = await freshCache();
  const rawCold = await epoch(proxy.endpoint, rawCache, 0);
  const rawWarm = await epoch(proxy.endpoint, rawCache, 0);
  // A training step that needs 80% of what the cold path delivered raw, per rank.
  const perRankRate = rawCold.samplesPerS / RANKS;
  const consumerMs = (batchSize / (0.8 * perRankRate)) * 1e3;
  const pacedCache = await freshCache();
  const pacedCold = await epoch(proxy.endpoint, pacedCache, consumerMs);
  const pacedWarm = await epoch(proxy.endpoint, pacedCache, consumerMs);

  const ratio = (cold: EpochResult, warm: EpochResult) => cold.steadySamplesPerS / warm.steadySamplesPerS;
  const wallRatio = (cold: EpochResult, warm: EpochResult) => cold.samplesPerS / warm.samplesPerS;
  const result = {
    machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version },
    dataset: { rows, seqLen, shards: manifest.shards.length, bytes: manifest.bytes },
    latencyMsPerResponse: latencyMs,
    ranks: RANKS,
    raw: { cold: rawCold, warm: rawWarm, coldOverWarm: ratio(rawCold, rawWarm), wallColdOverWarm: wallRatio(rawCold, rawWarm) },
    paced: { consumerMsPerBatch: consumerMs, cold: pacedCold, warm: pacedWarm, coldOverWarm: ratio(pacedCold, pacedWarm), wallColdOverWarm: wallRatio(pacedCold, pacedWarm), goal: 0.9 },
  };
  const line = (name: string, r: EpochResult) =>
    `  ${name.padEnd(11)} ${r.seconds.toFixed(2).padStart(6)} s  ${Math.round(r.samplesPerS).toString().padStart(7)} samples/s wall, ${Math.round(r.steadySamplesPerS).toString().padStart(7)} after the first batch (first at ${r.firstBatchSeconds.map((s) => s.toFixed(2)).join(', ')} s)  fetched per rank ${r.fetchedPerRank.map(formatBytes).join(', ')}  data-wait ${r.dataWait.map((w) => `${(w * 100).toFixed(1)}%`).join(', ')}`;
  process.stdout.write(
    `s3-epoch: ${rows} rows x ${seqLen} int32 in ${manifest.shards.length} shards (${formatBytes(manifest.bytes)}), ${RANKS} ranks sharing one cache, +${latencyMs} ms per S3 response\n` +
      `${line('raw cold', rawCold)}\n${line('raw warm', rawWarm)}\n  raw cold/warm: ${result.raw.coldOverWarm.toFixed(2)} after the first batch, ${result.raw.wallColdOverWarm.toFixed(2)} wall (s3rver's own bandwidth bounds the cold path)\n` +
      `  paced consumer: ${consumerMs.toFixed(2)} ms per batch (80% of the cold raw rate)\n` +
      `${line('paced cold', pacedCold)}\n${line('paced warm', pacedWarm)}\n` +
      `  paced cold/warm: ${result.paced.coldOverWarm.toFixed(2)} after the first batch, ${result.paced.wallColdOverWarm.toFixed(2)} wall (goal, after the first batch >= 0.9: ${result.paced.coldOverWarm >= 0.9 ? 'PASS' : 'FAIL'})\n`,
  );
  await mkdir(new URL('./results/', import.meta.url), { recursive: true });
  await writeFile(new URL('./results/s3-epoch.json', import.meta.url), `${JSON.stringify(result, null, 2)}\n`);
} finally {
  await proxy.close();
  await server.close();
  await rm(dir, { recursive: true, force: true });
}
