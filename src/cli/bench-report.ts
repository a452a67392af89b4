// `gpufeed bench --report FILE`: one self-contained HTML page (uPlot and its CSS inlined, no
// network needed to view it) with the run's figures and charts over time: samples/s, data-wait,
// time per stage, cache hits and storage latency. The charts' series are computed here from the
// sampled counters (bench-sampler.ts) and embedded as JSON beside the run's figures, so the page
// shows exactly what `bench --json` reports and a test can compare the two.
import { readFileSync } from 'node:fs';
import { stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { invalidOption } from '../errors.js';
import type { ShardSourceStats } from '../pipeline/shard-source.js';
import type { ThroughputResult } from '../pipeline/throughput.js';
import { formatBytes } from '../util/bytes.js';
import type { BenchSeries } from './bench-sampler.js';

export interface BenchReportInput {
  /** What was benchmarked: a path or URI, or 'demo'. */
  dataset: string;
  /** When the run started (ISO 8601). */
  startedAt: string;
  /** Facts about the setup, shown as given (rows, shards, workers, slots, options). */
  setup: Record<string, string | number | boolean>;
  result: ThroughputResult;
  series: BenchSeries;
  storage?: ShardSourceStats | undefined;
}

export interface ChartSeries {
  label: string;
  /** One value per x; null where the interval has nothing to show (e.g. no download finished). */
  values: (number | null)[];
  /** Which y axis: 'y' (left) or 'y2' (right). */
  scale: 'y' | 'y2';
  /** Digits shown in the legend. */
  digits: number;
  /** 'step': a rate over the interval ending at x; 'line': a level at x. */
  kind: 'step' | 'line';
}

export interface ChartSpec {
  id: string;
  title: string;
  /** Seconds since the loader was opened. */
  x: number[];
  yLabel: string;
  y2Label?: string;
  series: ChartSeries[];
  /** A line under the chart on how to read it. */
  note?: string;
}

/** Per-interval rate of a cumulative column: value at x[i] covers (x[i-1], x[i]]; null at 0. */
export function ratePerSecond(t: readonly number[], c: readonly number[], scale = 1): (number | null)[] {
  return t.map((ti, i) => {
    if (i === 0) return null;
    const dt = ti - t[i - 1]!;
    return dt > 0 ? ((c[i]! - c[i - 1]!) / dt) * scale : null;
  });
}

/** Per-interval mean of `sum` per `count` (e.g. seconds per download), null where count did not move. */
export function meanPerEvent(count: readonly number[], sum: readonly number[], scale = 1): (number | null)[] {
  return count.map((n, i) => {
    if (i === 0) return null;
    const dn = n - count[i - 1]!;
    return dn > 0 ? ((sum[i]! - sum[i - 1]!) / dn) * scale : null;
  });
}

/** The charts of a run, in page order; the cache and storage ones only for a remote dataset. */
export function benchCharts(series: BenchSeries): ChartSpec[] {
  const { t } = series;
  const charts: ChartSpec[] = [
    {
      id: 'throughput', title: 'Samples/s delivered to the consumer', x: t, yLabel: 'samples/s', y2Label: 'batches',
      series: [
        { label: 'samples/s', values: ratePerSecond(t, series.samples), scale: 'y', digits: 0, kind: 'step' },
        { label: 'batches delivered', values: series.batches, scale: 'y2', digits: 0, kind: 'line' },
      ],
    },
    {
      id: 'data-wait', title: 'Data-wait: share of each interval the consumer waited for a batch', x: t, yLabel: '% of interval', y2Label: 'batches',
      series: [
        { label: 'data-wait %', values: ratePerSecond(t, series.dataWaitSeconds, 100), scale: 'y', digits: 1, kind: 'step' },
        { label: 'batches ready ahead', values: series.queued, scale: 'y2', digits: 0, kind: 'line' },
      ],
    },
    {
      id: 'stages', title: 'Time per stage: seconds spent per second of run (decode workers summed)', x: t, yLabel: 'busy s/s',
      series: [
        { label: 'read', values: ratePerSecond(t, series.readSeconds), scale: 'y', digits: 3, kind: 'step' },
        { label: 'decode', values: ratePerSecond(t, series.decodeSeconds), scale: 'y', digits: 3, kind: 'step' },
        { label: 'shard wait', values: ratePerSecond(t, series.shardWaitSeconds), scale: 'y', digits: 3, kind: 'step' },
        { label: 'data-wait (consumer)', values: ratePerSecond(t, series.dataWaitSeconds), scale: 'y', digits: 3, kind: 'step' },
      ],
      note: 'The workers count read, decode and shard-wait time when each batch is done, so a long wait shows in the interval where it ends (and can exceed the number of workers).',
    },
  ];
  const st = series.storage;
  if (st) {
    charts.push(
      {
        id: 'cache', title: 'Shard cache: hits, downloads and whether a shard was ready when a worker asked (running totals)', x: t, yLabel: 'count',
        series: [
          { label: 'cache hits', values: st.hits, scale: 'y', digits: 0, kind: 'line' },
          { label: 'downloads', values: st.downloads, scale: 'y', digits: 0, kind: 'line' },
          { label: 'ready on acquire', values: st.readyOnAcquire, scale: 'y', digits: 0, kind: 'line' },
          { label: 'waited on acquire', values: st.waitedOnAcquire, scale: 'y', digits: 0, kind: 'line' },
        ],
      },
      {
        id: 'storage', title: 'Storage latency: mean time of the shard downloads that ended in each interval', x: t, yLabel: 'ms per shard', y2Label: 'MB/s',
        series: [
          { label: 'download ms', values: meanPerEvent(st.fetches, st.fetchSeconds, 1e3), scale: 'y', digits: 1, kind: 'step' },
          { label: 'downloaded MB/s', values: ratePerSecond(t, st.bytesDownloaded, 1e-6), scale: 'y2', digits: 2, kind: 'step' },
        ],
        note: 'A download counts when it ends; an interval where none ended has no latency point.',
      },
    );
  }
  charts.push({
    id: 'memory', title: 'Resident memory of the bench process', x: t, yLabel: 'MiB',
    series: [{ label: 'RSS MiB', values: series.rssBytes.map((b) => b / 2 ** 20), scale: 'y', digits: 1, kind: 'line' }],
  });
  return charts;
}

/** The run's headline figures as the page prints them: [field of bench --json, label, text]. */
export function headlineFigures(r: ThroughputResult, storage?: ShardSourceStats): [string, string, string][] {
  const pct = (f: number): string => `${(f * 100).toFixed(1)} %`;
  const rows: [string, string, string][] = [
    ['samples_per_s', 'samples/s (steady, after the first batch)', Math.round(r.samples_per_s).toString()],
    ['bytes_per_s', 'GB/s into batches (steady)', (r.bytes_per_s / 1e9).toFixed(3)],
    ['whole_samples_per_s', 'samples/s (whole run, start-up included)', Math.round(r.whole_samples_per_s).toString()],
    ['startup_seconds', 'first batch after open (s)', r.startup_seconds.toFixed(3)],
    ['batches', 'batches', r.batches.toString()],
    ['samples', 'samples', r.samples.toString()],
    ['seconds', 'seconds iterating', r.seconds.toFixed(3)],
    ['data_wait_fraction', r.data_wait_measured ? 'data-wait (steady)' : 'data-wait (steady; no consumer step simulated, pass --consumer-ms)', pct(r.data_wait_fraction)],
    ['wait_ms.p50', 'wait per batch p50 (ms)', r.wait_ms.p50.toFixed(3)],
    ['wait_ms.p99', 'wait per batch p99 (ms)', r.wait_ms.p99.toFixed(3)],
    ['wait_ms.max', 'wait per batch max (ms)', r.wait_ms.max.toFixed(3)],
    ['stage_seconds.read', 'read seconds (workers summed)', r.stage_seconds.read.toFixed(3)],
    ['stage_seconds.decode', 'decode seconds (workers summed)', r.stage_seconds.decode.toFixed(3)],
    ['stage_seconds.shard_wait', 'shard wait seconds (workers summed)', r.stage_seconds.shard_wait.toFixed(3)],
    ['stage_seconds.data_wait', 'data-wait seconds (consumer)', r.stage_seconds.data_wait.toFixed(3)],
    ['peak_rss_bytes', 'peak RSS', formatBytes(r.peak_rss_bytes)],
    ['workers', 'decode workers', r.workers.toString()],
    ['batch_size', 'batch size', r.batch_size.toString()],
    ['memory_kind', 'batch memory', `${r.pinned ? 'pinned' : 'pageable'} (${r.memory_kind})`],
  ];
  if (storage) {
    rows.push(
      ['storage.hits', 'cache hits', storage.hits.toString()],
      ['storage.downloads', 'shard downloads', storage.downloads.toString()],
      ['storage.bytesDownloaded', 'bytes downloaded', formatBytes(storage.bytesDownloaded)],
      ['storage.fetchSeconds', 'mean shard download (ms)', storage.fetches > 0 ? ((storage.fetchSeconds / storage.fetches) * 1e3).toFixed(1) : 'none'],
    );
  }
  return rows;
}

let uplotAssets: { js: string; css: string } | undefined;

/** uPlot's browser build and stylesheet, from the installed package, to inline. */
function uplot(): { js: string; css: string } {
  if (uplotAssets) return uplotAssets;
  const dir = join(dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist');
  uplotAssets = { js: readFileSync(join(dir, 'uPlot.iife.min.js'), 'utf8'), css: readFileSync(join(dir, 'uPlot.min.css'), 'utf8') };
  return uplotAssets;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON safe inside a <script> element: no `</script>` or `<!--` can end it early. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

// Runs in the browser: draws each embedded chart spec with uPlot, then marks the page rendered.
const PAGE_SCRIPT = String.raw`
(function () {
  var data = JSON.parse(document.getElementById('gpufeed-bench-data').textContent);
  var colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
  var charts = [];
  data.charts.forEach(function (spec) {
    var el = document.getElementById('chart-' + spec.id);
    var series = [{ label: 'seconds since open', value: function (u, v) { return v == null ? '--' : v.toFixed(2) + ' s'; } }];
    spec.series.forEach(function (s, i) {
      series.push({
        label: s.label, scale: s.scale, stroke: colors[i % colors.length], width: 2, spanGaps: false,
        paths: s.kind === 'step' ? uPlot.paths.stepped({ align: -1 }) : undefined,
        value: (function (digits) { return function (u, v) { return v == null ? '--' : v.toFixed(digits); }; })(s.digits),
      });
    });
    var axes = [{ label: 'seconds since the loader was opened' }, { label: spec.yLabel, scale: 'y' }];
    var scales = { x: { time: false }, y: { range: function (u, lo, hi) { return [Math.min(0, lo), hi > 0 ? hi * 1.1 : 1]; } } };
    if (spec.y2Label) {
      axes.push({ label: spec.y2Label, scale: 'y2', side: 1, grid: { show: false } });
      scales.y2 = { range: function (u, lo, hi) { return [Math.min(0, lo), hi > 0 ? hi * 1.1 : 1]; } };
    }
    var opts = { title: spec.title, width: 920, height: 260, series: series, axes: axes, scales: scales, legend: { live: true } };
    var columns = [spec.x].concat(spec.series.map(function (s) { return s.values; }));
    charts.push({ id: spec.id, plot: new uPlot(opts, columns, el) });
  });
  window.gpufeedCharts = charts;
  document.body.setAttribute('data-rendered', String(charts.length));
})();
`;

export function benchReportHtml(input: BenchReportInput): string {
  const { js, css } = uplot();
  const charts = benchCharts(input.series);
  const figures = headlineFigures(input.result, input.storage);
  const data = { format: 'gpufeed-bench-report', version: 1, dataset: input.dataset, startedAt: input.startedAt, setup: input.setup, result: input.result, storage: input.storage, series: input.series, charts };
  const figureRows = figures.map(([field, label, text]) => `<tr><th>${escapeHtml(label)}</th><td data-field="${escapeHtml(field)}">${escapeHtml(text)}</td></tr>`).join('\n');
  const setupRows = Object.entries(input.setup).map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(String(v))}</td></tr>`).join('\n');
  const chartDivs = charts.map((c) => `<div class="chart" id="chart-${c.id}"></div>${c.note ? `\n<p class="note">${escapeHtml(c.note)}</p>` : ''}`);
  // Local datasets are read in place: no cache and no storage requests to chart.
  const storageNote = input.series.storage ? '' : '<p class="note" id="no-storage">Local dataset: shards are read where they lie, so there is no shard cache and no storage request to chart; the read time is in the time-per-stage chart.</p>';
  const memoryAt = chartDivs.length - 1;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>gpufeed bench: ${escapeHtml(input.dataset)}</title>
<style>${css}</style>
<style>
body { font-family: system-ui, sans-serif; margin: 16px 24px; color: #222; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
.sub { color: #555; margin: 0 0 12px; }
.tables { display: flex; gap: 32px; align-items: flex-start; margin-bottom: 12px; }
table { border-collapse: collapse; font-size: 13px; }
th { text-align: left; font-weight: normal; color: #555; padding: 1px 12px 1px 0; }
td { font-variant-numeric: tabular-nums; font-weight: 600; padding: 1px 0; }
.chart { margin: 8px 0 4px; }
.note { color: #555; font-style: italic; font-size: 13px; max-width: 920px; margin: 0 0 16px; }
</style>
</head>
<body>
<h1>gpufeed bench: ${escapeHtml(input.dataset)}</h1>
<p class="sub">started ${escapeHtml(input.startedAt)}; ${input.series.t.length} samples, one every ${input.series.intervalMs} ms</p>
<div class="tables">
<table id="figures">
${figureRows}
</table>
<table id="setup">
${setupRows}
</table>
</div>
${chartDivs.slice(0, memoryAt).join('\n')}
${storageNote}
${chartDivs[memoryAt]}
<script id="gpufeed-bench-data" type="application/json">${scriptJson(data)}</script>
<script>${js.replace(/<\/script/gi, '<\\/script')}</script>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}

/** Refuses a report path whose folder does not exist before the run, not after it. */
export async function checkReportPath(path: string): Promise<void> {
  const dir = dirname(path);
  const st = await stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw invalidOption('--report', `the folder ${dir} of ${path} does not exist`, { path });
}

export async function writeBenchReport(path: string, input: BenchReportInput): Promise<void> {
  await writeFile(path, benchReportHtml(input));
}
