// CPUs this process may really use: the affinity mask (os.availableParallelism) capped by a
// cgroup v2 CPU quota, which containers set and Node does not read.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

export function cgroupCpuLimit(cpuMax = '/sys/fs/cgroup/cpu.max'): number | undefined {
  try {
    const [quota, period] = readFileSync(cpuMax, 'utf8').trim().split(/\s+/);
    if (!quota || quota === 'max' || !period) return undefined;
    const n = Number(quota) / Number(period);
    return Number.isFinite(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

export function usableCpus(): number {
  const affinity = availableParallelism();
  const quota = cgroupCpuLimit();
  return Math.max(1, quota === undefined ? affinity : Math.min(affinity, Math.ceil(quota)));
}

/**
 * Most decode threads a loader may start: 4 per usable CPU (threads blocked on I/O or waiting for
 * a slot leave the CPU to others, so a few per core can help), and never more than 256. Every
 * thread loads the decode modules, the native addon and its own copy of the manifest and computes
 * each epoch's plan, so start-up time and memory grow linearly with threads; past a few per core
 * they only add that cost.
 */
export const MAX_WORKERS_PER_CPU = 4;
export const MAX_WORKERS_CEILING = 256;

export function maxWorkers(cpus = usableCpus()): number {
  return Math.min(MAX_WORKERS_CEILING, MAX_WORKERS_PER_CPU * Math.max(1, cpus));
}
