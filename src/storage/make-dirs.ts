// mkdir -p that always ends. Node's own recursive mkdir spins forever (100% CPU) when a missing
// folder cannot be created where its parent exists but refuses new entries with ENOENT (/proc,
// some FUSE and overlay mounts); here each missing component is created once, so any refusal
// (ENOENT, EROFS, EACCES, ENOTDIR, ENOSPC) comes back as the error of the first folder that failed.
import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

export async function makeDirs(path: string): Promise<void> {
  const missing: string[] = [];
  let dir = resolve(path);
  // Walk up to the nearest existing ancestor (bounded by the path's depth).
  for (;;) {
    const st = await stat(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (st) {
      if (!st.isDirectory()) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${missing[missing.length - 1] ?? dir}'`), { code: 'ENOTDIR', syscall: 'mkdir', path: dir });
      break;
    }
    missing.push(dir);
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  for (let i = missing.length - 1; i >= 0; i--) {
    await mkdir(missing[i]!).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err; // another process made it meanwhile
    });
  }
}
