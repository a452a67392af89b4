// `gpufeed bench --report`: the page opens in headless Chromium (Debian's `chromium`) with no
// network, its uPlot charts draw, and what it embeds and prints is the same run's `bench --json`:
// figures, the series' last point, the plotted rates (their integral is the run's totals) and the
// legend uPlot renders at the last sample. Once on a local demo dataset, once through S3 (s3rver)
// with a shard cache, where the cache and storage-latency charts appear.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { prepDataset } from '../../src/dataset/index.js';
import { runCli } from '../fixtures/run-cli.js';
import { startS3Server, S3RVER_CREDENTIALS } from '../helpers/s3-server.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
const skip = CHROMIUM ? false : 'chromium is not installed (Debian package `chromium`; .ci/run installs it)';

interface BenchJson {
  dataset: string;
  samples_per_s: number; bytes_per_s: number; whole_samples_per_s: number; startup_seconds: number;
  batches: number; samples: number; bytes: number; seconds: number; data_wait_fraction: number;
  wait_ms: { p50: number; p99: number; max: number };
  stage_seconds: { read: number; decode: number; shard_wait: number; data_wait: number };
  workers: number; batch_size: number;
  storage?: { hits: number; downloads: number; bytesDownloaded: number; readyOnAcquire: number; waitedOnAcquire: number; fetches: number; fetchSeconds: number };
  [k: string]: unknown;
}

interface Spec { id: string; x: number[]; series: { label: string; values: (number | null)[]; digits: number }[] }
interface Embedded {
  format: string; dataset: string; result: Record<string, unknown>; storage?: BenchJson['storage'];
  series: { t: number[]; batches: number[]; samples: number[]; bytes: number[]; dataWaitSeconds: number[]; readSeconds: number[]; decodeSeconds: number[]; shardWaitSeconds: number[]; storage?: Record<string, number[]> };
  charts: Spec[];
}
interface PageView {
  embedded: Embedded;
  figures: Record<string, string>;
  charts: { id: string; data: (number | null)[][]; canvases: number; inked: number; legend: string[] }[];
}

/** Runs in the page: what it embeds, the figures it prints, and for each uPlot chart its data, inked pixels and legend. */
const VIEW_SCRIPT = String.raw`(() => {
  const embedded = JSON.parse(document.getElementById('gpufeed-bench-data').textContent);
  const figures = {};
  for (const td of document.querySelectorAll('#figures td[data-field]')) figures[td.dataset.field] = td.textContent;
  const charts = window.gpufeedCharts.map(({ id, plot }) => {
    const canvases = [...plot.root.querySelectorAll('canvas')];
    // Coloured pixels: the series' lines (axes, grid and text are grey or black).
    let inked = 0;
    for (const c of canvases) {
      const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < px.length; i += 4) if (px[i + 3] > 0 && Math.max(px[i], px[i + 1], px[i + 2]) - Math.min(px[i], px[i + 1], px[i + 2]) > 60) inked++;
    }
    // The legend uPlot renders for the cursor on the last sample.
    const x = plot.data[0];
    plot.setCursor({ left: plot.valToPos(x[x.length - 1], 'x'), top: 1 });
    const legend = [...plot.root.querySelectorAll('.u-legend .u-series')].map((el) => el.querySelector('.u-label').textContent + '=' + el.querySelector('.u-value').textContent);
    return { id, data: plot.data, canvases: canvases.length, inked, legend };
  });
  return { embedded, figures, charts };
})()`;

async function openBrowser(dir: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(join(dir, 'chromium-profile'), {
    executablePath: CHROMIUM!,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 60_000,
  });
}

/** Opens the report with every non-file request refused, and reads back what it embeds and draws. */
async function viewReport(dir: string, html: string): Promise<{ view: PageView; external: string[] }> {
  const context = await openBrowser(dir);
  try {
    const external: string[] = [];
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file:')) return route.continue();
      external.push(url);
      return route.abort();
    });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`file://${html}`);
    await page.waitForSelector('body[data-rendered]', { timeout: 30_000 });
    assert.deepEqual(errors, [], 'no script error on the page');
    // A string, not a function: tsx's transform may add helpers a function would need in the page.
    const view = await page.evaluate(VIEW_SCRIPT);
    return { view: view as PageView, external };
  } finally {
    await context.close();
  }
}

/** The integral of a per-interval rate over the run: what the plotted line says was delivered. */
function integral(x: number[], rate: (number | null)[]): number {
  let sum = 0;
  for (let i = 1; i < x.length; i++) sum += (rate[i] ?? 0) * (x[i]! - x[i - 1]!);
  return sum;
}

function close(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= 1e-6 * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected}`);
}

function checkCommon(view: PageView, json: BenchJson, external: string[]): void {
  assert.deepEqual(external, [], 'the page asks the network for nothing');
  const { embedded: e } = view;
  assert.equal(e.format, 'gpufeed-bench-report');
  assert.equal(e.dataset, json.dataset);
  const { dataset: _d, storage: jsonStorage, ...figures } = json;
  assert.deepEqual(e.result, figures, 'the embedded figures are the run\'s bench --json');
  assert.deepEqual(e.storage, jsonStorage);

  // The series ends with the run's totals.
  const s = e.series;
  // The simulated consumer step alone lasts longer than 3 sampling intervals.
  assert.ok(s.t.length >= 3, `several samples (${s.t.length})`);
  for (let i = 1; i < s.t.length; i++) assert.ok(s.t[i]! >= s.t[i - 1]! && s.samples[i]! >= s.samples[i - 1]!, `sample ${i} in order`);
  assert.equal(s.samples.at(-1), json.samples);
  assert.equal(s.batches.at(-1), json.batches);
  assert.equal(s.bytes.at(-1), json.bytes);
  assert.equal(s.dataWaitSeconds.at(-1), json.stage_seconds.data_wait);
  assert.equal(s.readSeconds.at(-1), json.stage_seconds.read);
  assert.equal(s.decodeSeconds.at(-1), json.stage_seconds.decode);
  assert.equal(s.shardWaitSeconds.at(-1), json.stage_seconds.shard_wait);

  // Printed figures, as the page formats them.
  const expected: Record<string, string> = {
    samples_per_s: String(Math.round(json.samples_per_s)),
    whole_samples_per_s: String(Math.round(json.whole_samples_per_s)),
    bytes_per_s: (json.bytes_per_s / 1e9).toFixed(3),
    startup_seconds: json.startup_seconds.toFixed(3),
    batches: String(json.batches),
    samples: String(json.samples),
    seconds: json.seconds.toFixed(3),
    data_wait_fraction: `${(json.data_wait_fraction * 100).toFixed(1)} %`,
    'wait_ms.p99': json.wait_ms.p99.toFixed(3),
    'stage_seconds.read': json.stage_seconds.read.toFixed(3),
    'stage_seconds.decode': json.stage_seconds.decode.toFixed(3),
    'stage_seconds.data_wait': json.stage_seconds.data_wait.toFixed(3),
    workers: String(json.workers),
    batch_size: String(json.batch_size),
  };
  for (const [field, text] of Object.entries(expected)) assert.equal(view.figures[field], text, `figure ${field}`);

  // Every chart drew, from the embedded series.
  const byId = new Map(view.charts.map((c) => [c.id, c]));
  assert.deepEqual([...byId.keys()], e.charts.map((c) => c.id));
  for (const spec of e.charts) {
    const c = byId.get(spec.id)!;
    assert.ok(c.canvases >= 1, `${spec.id}: a canvas`);
    assert.ok(c.inked > 200, `${spec.id}: the series are drawn (${c.inked} coloured pixels)`);
    assert.deepEqual(c.data, [spec.x, ...spec.series.map((v) => v.values)], `${spec.id}: uPlot holds the embedded data`);
    assert.deepEqual(spec.x, s.t);
    // uPlot's legend at the last sample: the x value, then each series' last value.
    assert.equal(c.legend[0], `seconds since open=${s.t.at(-1)!.toFixed(2)} s`, `${spec.id}: legend x`);
    spec.series.forEach((v, i) => {
      const last = v.values.at(-1);
      assert.equal(c.legend[i + 1], `${v.label}=${last == null ? '--' : last.toFixed(v.digits)}`, `${spec.id}: legend of ${v.label}`);
    });
  }
  const rate = (id: string, label: string): (number | null)[] => e.charts.find((c) => c.id === id)!.series.find((v) => v.label === label)!.values;
  // A wait under way when sampled is counted in its own interval: none waited more than all of its time.
  for (const v of rate('data-wait', 'data-wait %')) assert.ok(v === null || v <= 100 + 1e-6, `data-wait ${v} % of an interval`);
  // Over the sampled span: from the first sample (taken when the loader had opened) to the run's end.
  close(integral(s.t, rate('throughput', 'samples/s')), json.samples - s.samples[0]!, 'samples/s integrates to the samples delivered');
  close(integral(s.t, rate('data-wait', 'data-wait %')) / 100, json.stage_seconds.data_wait - s.dataWaitSeconds[0]!, 'data-wait % integrates to the data-wait seconds');
  close(integral(s.t, rate('stages', 'decode')), json.stage_seconds.decode - s.decodeSeconds[0]!, 'decode s/s integrates to the decode seconds');
  close(integral(s.t, rate('stages', 'read')), json.stage_seconds.read - s.readSeconds[0]!, 'read s/s integrates to the read seconds');
}

test('bench --demo --report: a self-contained page whose charts render the run\'s --json figures', { skip, timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-bench-report-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const html = join(dir, 'bench.html');
  const jsonPath = join(dir, 'bench.json');
  const r = await runCli(['bench', '--demo', '--demo-rows', '3072', '--demo-seq-len', '256', '--batch-size', '16', '--workers', '1',
    '--consumer-ms', '3', '--json', jsonPath, '--report', html], 120_000);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(readFileSync(jsonPath, 'utf8')) as BenchJson;
  assert.equal(json.samples, 3072);
  assert.equal(json.storage, undefined, 'a local dataset has no storage figures');

  const { view, external } = await viewReport(dir, html);
  checkCommon(view, json, external);
  assert.deepEqual(view.charts.map((c) => c.id), ['throughput', 'data-wait', 'stages', 'memory']);
  const note = readFileSync(html, 'utf8').includes('id="no-storage"');
  assert.ok(note, 'the page says why there is no cache or storage chart');
});

test('bench --report on S3 through a shard cache: cache and storage-latency charts with the run\'s counts', { skip, timeout: 180_000 }, async (t) => {
  const env = { AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey, AWS_REGION: 'us-east-1' };
  const saved = { ...process.env };
  Object.assign(process.env, env);
  t.after(() => {
    for (const k of Object.keys(env)) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-bench-report-s3-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const server = await startS3Server(['data']);
  t.after(() => server.close());
  const ROWS = 600;
  const SEQ = 64;
  const input = join(dir, 'rows.jsonl');
  writeFileSync(input, Array.from({ length: ROWS }, (_, i) => JSON.stringify({ tokens: Array.from({ length: SEQ }, (_, k) => (i * 31 + k) % 1000), label: i })).join('\n'));
  const manifest = await prepDataset([input], {
    out: 's3://data/ds', shapes: { tokens: [SEQ] }, types: { tokens: 'int32' }, shardSize: 32 * 1024,
    workers: 0, progress: false, storeOptions: { s3Endpoint: server.endpoint },
  });
  assert.ok(manifest.shards.length >= 4, `several shards (${manifest.shards.length})`);

  const html = join(dir, 'bench.html');
  const jsonPath = join(dir, 'bench.json');
  const r = await runCli(['bench', 's3://data/ds', '--s3-endpoint', server.endpoint, '--cache-dir', join(dir, 'cache'), '--cache-bytes', '64MiB', '--min-free-bytes', '0',
    '--batch-size', '16', '--workers', '1', '--consumer-ms', '10', '--json', jsonPath, '--report', html], 120_000);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(readFileSync(jsonPath, 'utf8')) as BenchJson;
  assert.equal(json.samples, ROWS);
  const st = json.storage!;
  assert.ok(st, 'a remote dataset reports its storage figures');
  assert.equal(st.downloads, manifest.shards.length, 'a fresh cache downloads every shard once');
  assert.equal(st.fetches, manifest.shards.length);
  assert.ok(st.fetchSeconds > 0);

  const { view, external } = await viewReport(dir, html);
  checkCommon(view, json, external);
  assert.deepEqual(view.charts.map((c) => c.id), ['throughput', 'data-wait', 'stages', 'cache', 'storage', 'memory']);
  const e = view.embedded;
  const series = (id: string, label: string): (number | null)[] => e.charts.find((c) => c.id === id)!.series.find((v) => v.label === label)!.values;
  assert.equal(series('cache', 'downloads').at(-1), st.downloads);
  assert.equal(series('cache', 'cache hits').at(-1), st.hits);
  assert.equal(series('cache', 'ready on acquire').at(-1), st.readyOnAcquire);
  assert.equal(series('cache', 'waited on acquire').at(-1), st.waitedOnAcquire);
  // Mean download ms per interval, weighted by the downloads that ended in it: the run's download seconds.
  const fetches = e.series.storage!.fetches!;
  const ms = series('storage', 'download ms');
  let total = 0;
  for (let i = 1; i < fetches.length; i++) total += (ms[i] ?? 0) * (fetches[i]! - fetches[i - 1]!);
  const first = (k: string): number => e.series.storage![k]![0]!;
  close(total / 1e3, st.fetchSeconds - first('fetchSeconds'), 'download ms per interval adds up to the download seconds');
  close(integral(e.series.t, series('storage', 'downloaded MB/s')) * 1e6, st.bytesDownloaded - first('bytesDownloaded'), 'MB/s integrates to the bytes downloaded');
  assert.equal(view.figures['storage.downloads'], String(st.downloads));
  assert.equal(view.figures['storage.hits'], String(st.hits));
  assert.equal(view.figures['storage.fetchSeconds'], ((st.fetchSeconds / st.fetches) * 1e3).toFixed(1));
});

test('bench --report into a folder that does not exist fails before the run, naming the option', async () => {
  const r = await runCli(['bench', '--demo', '--report', join(tmpdir(), 'gpufeed-no-such-folder', 'x', 'bench.html')]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /GPUFEED_INVALID_OPTION/);
  assert.match(r.stderr, /--report/);
  assert.doesNotMatch(r.stderr, /writing a demo dataset/, 'nothing was generated or run');
});
