// Which cached shards live processes are using. Each cache instance keeps one small file in
// leases/ named after its owner (pid + start time) listing the entries it holds: `leases` (a
// reader has the path) and `pins` (prefetched, wanted soon). Evictors skip leased entries always,
// and pinned ones unless a reader is waiting for room. Files of dead owners are ignored and removed.
import { readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isAlive, ownerToken, parseOwnerToken } from './process-identity.js';

export type HoldKind = 'lease' | 'pin';

export interface HoldCounts {
  leases: number;
  pins: number;
}

let instanceCounter = 0;

/** This cache instance's lease file. Updates are atomic (write + rename). */
export class LeaseFile {
  readonly path: string;
  private readonly holds = new Map<string, HoldCounts>();
  private writing: Promise<void> = Promise.resolve();
  private version = 0;

  constructor(readonly dir: string) {
    this.path = join(dir, `${ownerToken()}-${++instanceCounter}.json`);
  }

  add(name: string, kind: HoldKind): void {
    const h = this.holds.get(name) ?? { leases: 0, pins: 0 };
    if (kind === 'lease') h.leases++;
    else h.pins++;
    this.holds.set(name, h);
  }

  remove(name: string, kind: HoldKind): void {
    const h = this.holds.get(name);
    if (!h) return;
    if (kind === 'lease') h.leases = Math.max(0, h.leases - 1);
    else h.pins = Math.max(0, h.pins - 1);
    if (h.leases === 0 && h.pins === 0) this.holds.delete(name);
  }

  has(name: string): boolean {
    return this.holds.has(name);
  }

  /** Writes the current holds; concurrent calls are serialized and the last state wins. */
  flush(): Promise<void> {
    const version = ++this.version;
    this.writing = this.writing.then(async () => {
      if (version !== this.version) return;
      const body = JSON.stringify(Object.fromEntries(this.holds));
      const tmp = `${this.path}.tmp`;
      await writeFile(tmp, body);
      await rename(tmp, this.path);
    });
    return this.writing;
  }

  /** Resolves once every flush asked for so far is on disk. */
  settled(): Promise<void> {
    return this.writing.catch(() => {});
  }

  async delete(): Promise<void> {
    this.holds.clear();
    await this.writing.catch(() => {});
    await unlink(this.path).catch(() => {});
    await unlink(`${this.path}.tmp`).catch(() => {});
  }
}

/** Holds of every live process, summed per entry name; removes lease files of dead owners. */
export async function readLiveHolds(dir: string): Promise<Map<string, HoldCounts>> {
  const out = new Map<string, HoldCounts>();
  let files: string[];
  try {
    files = await readdir(dir);
  } catch {
    return out;
  }
  for (const file of files) {
    const m = /^(\d+-\d+)-\d+\.json(\.tmp)?$/.exec(file);
    const owner = m?.[1] ? parseOwnerToken(m[1]) : undefined;
    if (!m || !owner) continue;
    if (!isAlive(owner)) {
      await unlink(join(dir, file)).catch(() => {});
      continue;
    }
    if (m[2]) continue;
    let holds: Record<string, HoldCounts>;
    try {
      holds = JSON.parse(await readFile(join(dir, file), 'utf8')) as Record<string, HoldCounts>;
    } catch {
      continue; // replaced between readdir and read
    }
    for (const [name, h] of Object.entries(holds)) {
      const sum = out.get(name) ?? { leases: 0, pins: 0 };
      sum.leases += h.leases ?? 0;
      sum.pins += h.pins ?? 0;
      out.set(name, sum);
    }
  }
  return out;
}
