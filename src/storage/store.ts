// The Store interface: one way to reach a dataset, whatever holds it. Keys are relative,
// '/'-separated paths inside the dataset root; stores refuse keys that escape it.

export interface ObjectInfo {
  key: string;
  size: number;
}

export interface ByteRange {
  offset: number;
  length: number;
}

export interface ReadOptions {
  signal?: AbortSignal;
}

export interface Store {
  /** The dataset root, e.g. `file:///data/ds` or `s3://bucket/prefix`. */
  readonly uri: string;
  /** Absolute filesystem path of `key` for stores on local disk (read in place), else undefined. */
  localPath(key: string): string | undefined;
  /** Size of an object, or undefined when it does not exist. */
  head(key: string, opts?: ReadOptions): Promise<ObjectInfo | undefined>;
  /** Whole object, or one byte range of it. Throws GPUFEED_STORAGE_NOT_FOUND / GPUFEED_SHARD_MISSING. */
  get(key: string, range?: ByteRange, opts?: ReadOptions): Promise<Uint8Array>;
  /** Writes the whole object to `destPath` (a local file); returns bytes written. */
  download(key: string, destPath: string, opts?: ReadOptions): Promise<number>;
  /** Objects under `prefix` (relative to the root), keys relative to the root. */
  list(prefix?: string, opts?: ReadOptions): Promise<ObjectInfo[]>;
  /** Writes an object from memory or from a local file. Readers never see a partial object. */
  put(key: string, data: Uint8Array | { path: string }): Promise<void>;
  /** Removes an object; removing one that does not exist is not an error. */
  delete(key: string): Promise<void>;
  close(): Promise<void>;
}
