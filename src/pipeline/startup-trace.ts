// Start-up phases, for measuring where the time from Loader.open to the first batch goes
// (benchmarks/startup.ts). Off unless GPUFEED_TRACE_STARTUP=1: then each phase writes one line
// `gpufeed-startup <thread> <phase> <ms since the epoch>` to stderr. Times are absolute
// (timeOrigin + now), comparable across threads and processes (the Python client's clock too).
import { performance } from 'node:perf_hooks';
import { isMainThread, threadId } from 'node:worker_threads';

export const TRACE_STARTUP = process.env.GPUFEED_TRACE_STARTUP === '1';

/** Prefix of every trace line on stderr. */
export const STARTUP_TRACE_PREFIX = 'gpufeed-startup';

/** Writes one phase line when tracing is on; `at` defaults to now. */
export function startupMark(phase: string, at: number = performance.timeOrigin + performance.now()): void {
  if (!TRACE_STARTUP) return;
  process.stderr.write(`${STARTUP_TRACE_PREFIX} ${isMainThread ? 'main' : `worker${threadId}`} ${phase} ${at.toFixed(2)}\n`);
}

/** When this process started (the main thread's timeOrigin), for the CLI's own start-up. */
export function processStartedAt(): number {
  return performance.timeOrigin;
}
