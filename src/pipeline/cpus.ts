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
