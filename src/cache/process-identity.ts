// Who owns a lock, lease or temp file: pid plus the process start time, so a pid the kernel reused
// for a new process is not mistaken for the dead owner. Start time comes from /proc (Linux); where
// /proc is absent only the pid is checked.
import { readFileSync } from 'node:fs';

export interface ProcessIdentity {
  pid: number;
  /** Start time in clock ticks since boot (/proc/<pid>/stat field 22), or 0 when unknown. */
  start: number;
}

function readStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) may contain spaces and parentheses; fields after the last ')' are plain.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const start = Number(fields[19]);
    return Number.isFinite(start) ? start : undefined;
  } catch {
    return undefined;
  }
}

let self: ProcessIdentity | undefined;

export function selfIdentity(): ProcessIdentity {
  if (!self || self.pid !== process.pid) self = { pid: process.pid, start: readStartTime(process.pid) ?? 0 };
  return self;
}

/** `<pid>-<start>`: the owner token used in file names and lock contents. */
export function ownerToken(id: ProcessIdentity = selfIdentity()): string {
  return `${id.pid}-${id.start}`;
}

export function parseOwnerToken(token: string): ProcessIdentity | undefined {
  const m = /^(\d+)-(\d+)$/.exec(token);
  if (!m) return undefined;
  return { pid: Number(m[1]), start: Number(m[2]) };
}

/** False only when the owner is certainly gone: no such pid, or the pid now belongs to a newer process. */
export function isAlive(id: ProcessIdentity): boolean {
  if (id.pid === process.pid) return id.start === selfIdentity().start || id.start === 0;
  try {
    process.kill(id.pid, 0);
  } catch (err) {
    if ((err as { code?: string }).code === 'ESRCH') return false;
    // EPERM: it exists but belongs to someone else.
  }
  if (id.start === 0) return true;
  const now = readStartTime(id.pid);
  return now === undefined || now === id.start;
}
