// Prometheus metrics end to end: a loader with metricsPort 0 on loopback, scraped during and after
// a real run, its counters checked against the run's own stats(); two ranks of one node expose
// distinct labels on distinct ports; loader.metrics() has the same figures as the endpoint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepDataset } from '../../src/dataset/index.js';
import { Loader, ErrorCodes, GpufeedError } from '../../src/index.js';

const ROWS = 150;
const SEQ = 8;

async function dataset(t: { after: (fn: () => void) => void }): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-metrics-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const input = join(dir, 'rows.jsonl');
  writeFileSync(input, Array.from({ length: ROWS }, (_, i) => JSON.stringify({ tokens: Array.from({ length: SEQ }, (_, k) => i + k), label: i })).join('\n'));
  const out = join(dir, 'ds');
  await prepDataset([input], { out, shapes: { tokens: [SEQ] }, types: { tokens: 'int32' }, shardSize: 2048, workers: 0, progress: false });
  return out;
}

interface Sample { name: string; labels: Record<string, string>; value: number }

/** Parses Prometheus text format (the subset prom-client writes). */
function parseProm(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `a metric line: ${line}`);
    const labels: Record<string, string> = {};
    for (const lm of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]!] = lm[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

function one(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.equal(hits.length, 1, `one series ${name} ${JSON.stringify(labels)}, found ${hits.length}`);
  return hits[0]!.value;
}

async function scrape(address: string): Promise<{ text: string; samples: Sample[] }> {
  const res = await fetch(address);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await res.text();
  return { text, samples: parseProm(text) };
}

test('metrics scraped during and after a run agree with the run\'s own stats()', async (t) => {
  const ds = await dataset(t);
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    lines.push(String(chunk));
    return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  let loader: Loader;
  try {
    loader = await Loader.open(ds, { batchSize: 7, shuffle: 'none', workers: 2, metricsPort: 0, metricsDataset: 'toy' });
  } finally {
    process.stderr.write = write;
  }
  t.after(() => loader.close());
  const address = loader.metricsAddress();
  assert.ok(address, 'an address with metricsPort 0');
  assert.match(address, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  assert.ok(!address.endsWith(':0/metrics'), 'port 0 is replaced by the port taken');
  assert.ok(lines.some((l) => l.includes(`gpufeed: metrics on ${address}`)), `the address on stderr: ${lines.join('')}`);

  let batches = 0;
  let rows = 0;
  let during: Sample[] | undefined;
  for await (const b of loader) {
    batches += 1;
    rows += b.ids.length;
    if (batches === 5) {
      during = (await scrape(address)).samples;
      const s = loader.stats();
      // Counted by the consumer's own thread: exactly the five batches handed out so far.
      assert.equal(one(during, 'gpufeed_batches_delivered_total'), 5);
      assert.equal(one(during, 'gpufeed_samples_delivered_total'), rows);
      assert.equal(s.delivered, 5);
      assert.ok(one(during, 'gpufeed_batches_decoded_total') >= 5);
    }
  }
  assert.ok(during, 'scraped mid-run');
  const { text, samples } = await scrape(address);
  const s = loader.stats();
  assert.equal(rows, ROWS);
  assert.equal(one(samples, 'gpufeed_batches_delivered_total'), batches);
  assert.equal(one(samples, 'gpufeed_batches_delivered_total'), s.delivered);
  assert.equal(one(samples, 'gpufeed_samples_delivered_total'), s.deliveredRows);
  assert.equal(one(samples, 'gpufeed_samples_delivered_total'), ROWS);
  assert.equal(one(samples, 'gpufeed_payload_bytes_total'), s.bytesRead);
  assert.ok(s.bytesRead >= ROWS * SEQ * 4, 'at least the tokens were moved');
  assert.equal(one(samples, 'gpufeed_batches_decoded_total'), s.batches);
  assert.ok(Math.abs(one(samples, 'gpufeed_data_wait_seconds_total') - s.dataWaitSeconds) < 1e-9);
  // The histogram holds one wait per batch after the first, summing to the total.
  assert.equal(one(samples, 'gpufeed_data_wait_seconds_count'), batches - 1);
  assert.equal(one(samples, 'gpufeed_data_wait_seconds_bucket', { le: '+Inf' }), batches - 1);
  assert.ok(Math.abs(one(samples, 'gpufeed_data_wait_seconds_sum') - s.dataWaitSeconds) < 1e-6);
  const decodeByWorker = samples.filter((x) => x.name === 'gpufeed_decode_seconds_total');
  assert.deepEqual(decodeByWorker.map((x) => x.labels.worker).sort(), ['0', '1']);
  assert.ok(Math.abs(decodeByWorker.reduce((a, x) => a + x.value, 0) - s.decodeSeconds) < 1e-6);
  const batchesByWorker = samples.filter((x) => x.name === 'gpufeed_worker_batches_total');
  assert.equal(batchesByWorker.reduce((a, x) => a + x.value, 0), s.batches);
  assert.equal(one(samples, 'gpufeed_batches_ready_ahead'), s.queue.queued);
  assert.equal(one(samples, 'gpufeed_quarantined_samples_total'), 0);
  assert.equal(one(samples, 'gpufeed_stalls_total'), 0);
  // A local dataset has no cache and no storage requests: the series exist and read 0.
  assert.equal(one(samples, 'gpufeed_cache_hits_total'), 0);
  assert.equal(one(samples, 'gpufeed_storage_retries_total'), 0);
  // Every series carries the four common labels.
  for (const x of samples) {
    assert.deepEqual([x.labels.rank, x.labels.local_rank, x.labels.world_size, x.labels.dataset], ['0', '0', '1', 'toy'], `labels of ${x.name}`);
  }
  assert.match(text, /# TYPE gpufeed_data_wait_seconds histogram/);
  assert.match(text, /# TYPE gpufeed_batches_delivered_total counter/);

  // The same figures as a flat object, without the common labels.
  const dict = await loader.metrics();
  assert.equal(dict.gpufeed_batches_delivered_total, batches);
  assert.equal(dict.gpufeed_samples_delivered_total, ROWS);
  assert.equal(dict['gpufeed_data_wait_seconds_bucket{le="+Inf"}'], batches - 1);
  assert.equal(dict['gpufeed_worker_batches_total{worker="0"}']! + dict['gpufeed_worker_batches_total{worker="1"}']!, s.batches);

  const notFound = await fetch(address.replace('/metrics', '/other'));
  assert.equal(notFound.status, 404);
  await notFound.text();
  await loader.close();
  await assert.rejects(fetch(address), 'the endpoint closes with the loader');
});

test('two ranks on one node: distinct ports, distinct rank labels, samples that add up', async (t) => {
  const ds = await dataset(t);
  const open = (rank: number) => Loader.open(ds, { batchSize: 5, worldSize: 2, rank, localRank: rank, localWorldSize: 2, workers: 1, metricsPort: 0, seed: 3 });
  const loaders = await Promise.all([open(0), open(1)]);
  t.after(() => Promise.all(loaders.map((l) => l.close())));
  const [a, b] = loaders.map((l) => l.metricsAddress()!);
  assert.notEqual(a, b);
  const seen: number[] = [];
  await Promise.all(loaders.map(async (l) => {
    for await (const batch of l) seen.push(...batch.ids);
  }));
  assert.equal(seen.length, ROWS);
  const scrapes = await Promise.all([a!, b!].map(scrape));
  const total = scrapes.reduce((acc, { samples }, rank) => {
    const delivered = samples.filter((x) => x.name === 'gpufeed_samples_delivered_total');
    assert.equal(delivered.length, 1);
    assert.deepEqual(delivered[0]!.labels, { rank: String(rank), local_rank: String(rank), world_size: '2', dataset: 'ds' });
    assert.equal(delivered[0]!.value, loaders[rank]!.stats().deliveredRows);
    return acc + delivered[0]!.value;
  }, 0);
  assert.equal(total, ROWS);
});

test('metrics options are checked by name; a port in use is an error naming metricsPort', async (t) => {
  const ds = await dataset(t);
  for (const [options, option] of [
    [{ metricsPort: -1 }, 'metricsPort'], [{ metricsPort: 1.5 }, 'metricsPort'], [{ stallTimeout: -1 }, 'stallTimeout'],
    [{ stallAction: 'explode' }, 'stallAction'], [{ metricsHost: '' }, 'metricsHost'],
  ] as const) {
    await assert.rejects(Loader.open(ds, { batchSize: 4, workers: 1, ...(options as object) }), (err: unknown) => {
      assert.ok(err instanceof GpufeedError && err.code === ErrorCodes.INVALID_OPTION, String(err));
      assert.equal(err.details.option, option);
      return true;
    });
  }
  const first = await Loader.open(ds, { batchSize: 4, workers: 1, metricsPort: 0 });
  t.after(() => first.close());
  const port = Number(new URL(first.metricsAddress()!).port);
  await assert.rejects(Loader.open(ds, { batchSize: 4, workers: 1, metricsPort: port }), (err: unknown) => {
    assert.ok(err instanceof GpufeedError && err.code === ErrorCodes.INVALID_OPTION, String(err));
    assert.equal(err.details.option, 'metricsPort');
    assert.match(err.message, /EADDRINUSE/);
    return true;
  });
});
