// Start-up: how long a fresh process waits from Loader.open (JS) or gpufeed.Loader(...) (Python)
// to its first batch, median of `runs` fresh processes each, run alternately in this one run. Each
// JS child also reports its phases (src/pipeline/startup-trace.ts): manifest read, plan, pool and
// loops started, each worker's module loading, first ids, first shard opened, first batch
// published, and the batch handed out. `node dist/benchmarks/startup.js [dir] [runs]` prints them
// for a generated local Arrow dataset (or `dir`); `npm run bench` reports the two medians.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { STARTUP_TRACE_PREFIX } from '../src/pipeline/startup-trace.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The package root (this file runs from dist/benchmarks). */
const root = join(here, '..', '..');
const run = promisify(execFile);

export interface StartupOptions {
  dir: string;
  workers: number;
  batchSize: number;
  /** Fresh processes per side. */
  runs: number;
  /** Also measure the Python client (needs python3 with numpy). */
  python: boolean;
}

/** Phase -> ms after the start of Loader.open; worker phases as the earliest and latest worker. */
export type Phases = Record<string, number>;

export interface StartupResult {
  js_first_batch_s: number[];
  js_open_s: number[];
  /** CPU seconds of every thread of the JS child from Loader.open to its first batch. */
  js_cpu_s: number[];
  python_first_batch_s: number[];
  /** Per JS run, the phases of its trace. */
  phases: Phases[];
  /** Per Python run: ms after gpufeed.Loader(...) at which the server's phases came. */
  python_phases: Phases[];
}

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Trace lines -> phases relative to `origin` (ms since the epoch); a phase several workers mark keeps the first and the last. */
export function phasesOf(stderr: string, origin?: number): Phases {
  const marks: { thread: string; phase: string; at: number }[] = [];
  for (const line of stderr.split('\n')) {
    const m = line.match(new RegExp(`${STARTUP_TRACE_PREFIX} (\\S+) (\\S+) ([0-9.]+)`));
    if (m) marks.push({ thread: m[1]!, phase: m[2]!, at: Number(m[3]) });
  }
  const zero = origin ?? marks.find((m) => m.thread === 'main' && m.phase === 'open')?.at ?? NaN;
  const out: Phases = {};
  const byPhase = new Map<string, number[]>();
  for (const m of marks) {
    const key = m.thread === 'main' ? m.phase : `worker ${m.phase}`;
    byPhase.set(key, [...(byPhase.get(key) ?? []), m.at - zero]);
  }
  for (const [key, ats] of byPhase) {
    if (!key.startsWith('worker')) out[key] = Math.min(...ats);
    else {
      out[`${key} (first)`] = Math.min(...ats);
      out[`${key} (last)`] = Math.max(...ats);
    }
  }
  return out;
}

const PY_CHILD = `
import json, sys, time
sys.path.insert(0, sys.argv[1])
import gpufeed
t0 = time.time()
c0 = time.perf_counter()
loader = gpufeed.Loader(sys.argv[2], batch_size=int(sys.argv[3]), workers=int(sys.argv[4]), epochs=1, shuffle="none", as_numpy=True, cuda=False)
for batch in loader:
    first = time.perf_counter() - c0
    break
loader.close()
print(json.dumps({"first_batch_s": first, "t0_ms": t0 * 1e3}))
`;

async function jsRun(o: StartupOptions): Promise<{ first: number; open: number; cpu: number; phases: Phases }> {
  const { stdout, stderr } = await run(process.execPath, [join(here, 'startup-child.js'), o.dir, String(o.workers), String(o.batchSize), 'none'], {
    timeout: 60_000, env: { ...process.env, GPUFEED_TRACE_STARTUP: '1' },
  });
  const r = JSON.parse(stdout.trim().split('\n').pop()!) as { first_batch_s: number; open_s: number; cpu_s: number };
  return { first: r.first_batch_s, open: r.open_s, cpu: r.cpu_s, phases: phasesOf(stderr) };
}

async function pyRun(o: StartupOptions): Promise<{ first: number; phases: Phases }> {
  const env = { ...process.env, GPUFEED_NODE_CMD: `${process.execPath} ${join(root, 'bin', 'gpufeed.js')}`, GPUFEED_TRACE_STARTUP: '1' };
  const { stdout, stderr } = await run('python3', ['-c', PY_CHILD, join(root, 'python'), o.dir, String(o.batchSize), String(o.workers)], { timeout: 60_000, env });
  const r = JSON.parse(stdout.trim().split('\n').pop()!) as { first_batch_s: number; t0_ms: number };
  return { first: r.first_batch_s, phases: phasesOf(stderr, r.t0_ms) };
}

/** JS and Python runs alternately (a noisy host shifts both alike). */
export async function measureStartup(o: StartupOptions): Promise<StartupResult> {
  const out: StartupResult = { js_first_batch_s: [], js_open_s: [], js_cpu_s: [], python_first_batch_s: [], phases: [], python_phases: [] };
  // One unmeasured run of each first: the page cache then holds the code both sides load.
  await jsRun(o);
  if (o.python) await pyRun(o);
  for (let i = 0; i < o.runs; i++) {
    const j = await jsRun(o);
    out.js_first_batch_s.push(j.first);
    out.js_open_s.push(j.open);
    out.js_cpu_s.push(j.cpu);
    out.phases.push(j.phases);
    if (o.python) {
      const p = await pyRun(o);
      out.python_first_batch_s.push(p.first);
      out.python_phases.push(p.phases);
    }
  }
  return out;
}

/** Seconds `gpufeed <args>` takes in a fresh process, one run per entry. */
export async function measureCli(args: string[], runs: number): Promise<number[]> {
  return measureNode([join(root, 'bin', 'gpufeed.js'), ...args], runs);
}

/** Seconds `node <args>` takes in a fresh process (`-e 0`: what this host's load makes of any start). */
export async function measureNode(args: string[], runs: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await run(process.execPath, args, { timeout: 60_000 });
    out.push((performance.now() - t0) / 1e3);
  }
  return out;
}

/** Median of each phase over the runs, in start order. */
export function medianPhases(runs: readonly Phases[]): [string, number][] {
  const keys = new Set(runs.flatMap((p) => Object.keys(p)));
  return [...keys].map((k) => [k, median(runs.map((p) => p[k]).filter((v): v is number => v !== undefined))] as [string, number]).sort((a, b) => a[1] - b[1]);
}

async function main(): Promise<void> {
  const { makeArrow, SEQ_LEN } = await import('./datasets.js');
  const given = process.argv[2] || undefined;
  const runs = Number(process.argv[3] ?? 5);
  const tmp = given ? undefined : await mkdtemp(join(tmpdir(), 'gpufeed-startup-'));
  const dir = given ?? join(tmp!, 'arrow');
  try {
    if (!given) await makeArrow(dir, 4096);
    const { usableCpus } = await import('../src/pipeline/cpus.js');
    const r = await measureStartup({ dir, workers: usableCpus(), batchSize: 64, runs, python: process.env.GPUFEED_STARTUP_PYTHON !== '0' });
    const f = (ms: number): string => `${ms.toFixed(0).padStart(5)} ms`;
    process.stdout.write(`dataset ${dir}${given ? '' : ` (4096 rows x ${SEQ_LEN} int32, Arrow)`}, ${runs} fresh processes each, medians\n`);
    process.stdout.write(`JS: open returns ${f(median(r.js_open_s) * 1e3)}, first batch ${f(median(r.js_first_batch_s) * 1e3)} after Loader.open, ${f(median(r.js_cpu_s) * 1e3)} CPU (runs: ${r.js_first_batch_s.map((s) => s.toFixed(3)).join(', ')})\n`);
    for (const [k, v] of medianPhases(r.phases)) process.stdout.write(`  ${f(v)}  ${k}\n`);
    const version = await measureCli(['--version'], runs);
    const bare = await measureNode(['-e', '0'], runs);
    process.stdout.write(`gpufeed --version: ${f(median(version) * 1e3)} (runs: ${version.map((s) => s.toFixed(3)).join(', ')}); node -e 0: ${f(median(bare) * 1e3)}\n`);
    if (r.python_first_batch_s.length) {
      process.stdout.write(`Python: first batch ${f(median(r.python_first_batch_s) * 1e3)} after gpufeed.Loader(...) (runs: ${r.python_first_batch_s.map((s) => s.toFixed(3)).join(', ')})\n`);
      for (const [k, v] of medianPhases(r.python_phases)) process.stdout.write(`  ${f(v)}  ${k}\n`);
    }
  } finally {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
