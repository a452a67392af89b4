// Local-disk Store: the dataset root is a folder; shards are read in place.
import { createReadStream, createWriteStream } from 'node:fs';
import { open, readdir, rename, rm, stat, writeFile, copyFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import { ErrorCodes, GpufeedError, ioError, withIoErrors } from '../errors.js';
import { makeDirs } from './make-dirs.js';
import { checkRelativeKey, checkResolvesInside } from '../dataset/paths.js';
import type { ByteRange, ObjectInfo, ReadOptions, Store } from './store.js';

export class LocalStore implements Store {
  readonly uri: string;
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.uri = pathToFileURL(this.root).href;
  }

  /**
   * The file of `key`, checked to resolve (symlinks followed) inside the dataset folder: once per
   * shard open, lease or request, never per read (a worker reads through the descriptor it opened).
   */
  localPath(key: string): string {
    const path = join(this.root, checkRelativeKey(key, this.uri));
    checkResolvesInside(this.root, path, key, this.uri);
    return path;
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const st = await stat(this.localPath(key));
      return st.isFile() ? { key, size: st.size } : undefined;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async get(key: string, range?: ByteRange, _opts?: ReadOptions): Promise<Uint8Array> {
    const path = this.localPath(key);
    let fh;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      if (isNotFound(err)) throw new GpufeedError(ErrorCodes.STORAGE_NOT_FOUND, `not found: ${path}`, { path, shard: key });
      throw err;
    }
    try {
      const size = range ? range.length : (await fh.stat()).size;
      const offset = range ? range.offset : 0;
      const buf = Buffer.allocUnsafe(size);
      let done = 0;
      while (done < size) {
        const { bytesRead } = await fh.read(buf, done, size - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      if (done !== size) {
        throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `${path}: short read, wanted ${size} bytes at ${offset}, file ended after ${done}`, {
          path, shard: key, range: [offset, offset + size],
        });
      }
      return buf;
    } finally {
      await fh.close();
    }
  }

  async download(key: string, destPath: string): Promise<number> {
    const src = this.localPath(key);
    await copyFile(src, destPath).catch(async (err: unknown) => {
      // Missing source: not found; anything else (the destination's disk full or read-only): I/O.
      if (isNotFound(err) && !(await stat(src).catch(() => undefined))) {
        throw new GpufeedError(ErrorCodes.STORAGE_NOT_FOUND, `not found: ${src}`, { path: src, shard: key });
      }
      throw ioError(`copying ${src} to`, destPath, err);
    });
    return (await stat(destPath)).size;
  }

  async list(prefix = ''): Promise<ObjectInfo[]> {
    const base = prefix ? this.localPath(prefix) : this.root;
    const out: ObjectInfo[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (isNotFound(err)) return;
        throw err;
      }
      for (const e of entries) {
        const full = join(dir, e.name);
        if (e.isDirectory()) await walk(full);
        else if (e.isFile()) out.push({ key: relative(this.root, full).split(sep).join('/'), size: (await stat(full)).size });
      }
    };
    await walk(base);
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return out;
  }

  async put(key: string, data: Uint8Array | { path: string }): Promise<void> {
    const dest = this.localPath(key);
    await withIoErrors('creating folder', dirname(dest), () => makeDirs(dirname(dest)));
    // Write to a temporary sibling and rename, so readers never see a partial object.
    const tmp = `${dest}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    await withIoErrors('writing', dest, async () => {
      try {
        if (data instanceof Uint8Array) {
          await writeFile(tmp, data);
        } else {
          await pipeline(createReadStream(data.path), createWriteStream(tmp));
        }
        await rename(tmp, dest);
      } catch (err) {
        await rm(tmp, { force: true }).catch(() => {});
        throw err;
      }
    });
  }

  async delete(key: string): Promise<void> {
    const path = this.localPath(key);
    await withIoErrors('deleting', path, () => rm(path, { force: true }));
  }

  async close(): Promise<void> {}
}

function isNotFound(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
