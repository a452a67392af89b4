// Opening a weighted mixture for the loader: each stream's manifest and store, one combined
// manifest (the streams' shards end to end, so global sample ids of stream k follow those of
// streams 0..k-1) and one store that routes each combined shard path to its stream's store. The
// rest of the pipeline (prefetch, cache, decode workers) sees one dataset; only the plan knows the
// streams. The streams must agree on the selected columns' types.
import { ErrorCodes, GpufeedError, invalidOption } from '../errors.js';
import { openDataset } from '../dataset/open-dataset.js';
import type { ColumnSpec, ManifestV1, ShardEntry } from '../dataset/types.js';
import type { ResolvedStream } from '../plan/index.js';
import { resolveMixture, type MixtureStream } from '../plan/index.js';
import type { Store, StoreOptions, ByteRange, ObjectInfo, ReadOptions } from '../storage/index.js';

/** One stream of a mixture: a dataset URI and how much of it an epoch takes (at most one of these). */
export interface MixtureInput {
  uri: string;
  /** Share of the epoch (normalized over the streams). */
  weight?: number;
  /** Absolute samples per epoch. */
  samples?: number;
  /** Upsampling factor: round(repeat x rows) samples per epoch. */
  repeat?: number;
}

/** What Loader.open takes: one dataset URI, or the streams of a mixture. */
export type DatasetInput = string | readonly (string | MixtureInput)[];

export interface OpenedMixture {
  uris: string[];
  manifest: ManifestV1;
  store: Store;
  streams: ResolvedStream[];
}

/** `@k/` before a stream's shard paths in the combined manifest; never a valid dataset path. */
const routed = (k: number, path: string): string => `@${k}/${path}`;

function parseRouted(key: string): { k: number; path: string } {
  const m = /^@(\d+)\/(.*)$/s.exec(key);
  if (!m) throw new GpufeedError(ErrorCodes.INTERNAL, `mixture store: key ${JSON.stringify(key)} names no stream`);
  return { k: Number(m[1]), path: m[2] as string };
}

/** Routes the combined manifest's shard paths to the streams' stores. Read-only. */
class MixtureStore implements Store {
  readonly uri: string;
  constructor(private readonly stores: readonly Store[]) {
    this.uri = `mixture:${stores.map((s) => s.uri).join('+')}`;
  }
  #at(key: string): { store: Store; path: string } {
    const { k, path } = parseRouted(key);
    const store = this.stores[k];
    if (!store) throw new GpufeedError(ErrorCodes.INTERNAL, `mixture store: no stream ${k}`);
    return { store, path };
  }
  localPath(key: string): string | undefined {
    const { store, path } = this.#at(key);
    return store.localPath(path);
  }
  head(key: string, opts?: ReadOptions): Promise<ObjectInfo | undefined> {
    const { store, path } = this.#at(key);
    return store.head(path, opts);
  }
  get(key: string, range?: ByteRange, opts?: ReadOptions): Promise<Uint8Array> {
    const { store, path } = this.#at(key);
    return store.get(path, range, opts);
  }
  download(key: string, destPath: string, opts?: ReadOptions): Promise<number> {
    const { store, path } = this.#at(key);
    return store.download(path, destPath, opts);
  }
  async list(): Promise<ObjectInfo[]> {
    throw new GpufeedError(ErrorCodes.INTERNAL, 'a mixture store lists nothing');
  }
  async put(): Promise<void> {
    throw new GpufeedError(ErrorCodes.INTERNAL, 'a mixture store is read-only');
  }
  async delete(): Promise<void> {
    throw new GpufeedError(ErrorCodes.INTERNAL, 'a mixture store is read-only');
  }
  async close(): Promise<void> {
    await Promise.all(this.stores.map((s) => s.close()));
  }
}

/** A column's type as a user reads it, for the schema-mismatch message. */
export function describeColumnType(c: ColumnSpec): string {
  const parts: string[] = [c.dtype, c.kind];
  if (c.shape) parts.push(`[${c.shape.join('x')}]`);
  if (c.logical) parts.push(c.logical);
  if (c.unit) parts.push(c.unit);
  if (c.timezone) parts.push(c.timezone);
  if (c.precision !== undefined) parts.push(`precision ${c.precision}`);
  if (c.scale !== undefined) parts.push(`scale ${c.scale}`);
  return parts.join(' ');
}

/**
 * The selected columns every stream must carry with one type (nullable where any stream's is):
 * `columns`, or all of stream 0's. GPUFEED_UNKNOWN_COLUMN or GPUFEED_SCHEMA_MISMATCH name the
 * stream, the column and both types.
 */
export function mixtureSchema(manifests: readonly ManifestV1[], uris: readonly string[], columns?: readonly string[]): ColumnSpec[] {
  const first = manifests[0] as ManifestV1;
  const names = columns && columns.length > 0 ? columns : first.schema.map((c) => c.name);
  return names.map((name) => {
    let merged: ColumnSpec | undefined;
    manifests.forEach((m, k) => {
      const col = m.schema.find((c) => c.name === name);
      if (!col) {
        throw new GpufeedError(ErrorCodes.UNKNOWN_COLUMN, `mixture stream ${k} (${uris[k]}) has no column ${JSON.stringify(name)}; it has: ${m.schema.map((c) => c.name).join(', ')}`, { column: name, stream: k, path: uris[k] });
      }
      if (!merged) {
        merged = { ...col };
        return;
      }
      const a = describeColumnType(merged);
      const b = describeColumnType(col);
      const sameShape = (merged.shape ?? []).join(',') === (col.shape ?? []).join(',');
      if (a !== b || !sameShape) {
        throw new GpufeedError(
          ErrorCodes.SCHEMA_MISMATCH,
          `mixture stream ${k} (${uris[k]}): column ${JSON.stringify(name)} is ${b}, stream 0 (${uris[0]}) has ${a}: the streams of a mixture must agree on the selected columns`,
          { column: name, stream: k, path: uris[k], expected: a, actual: b },
        );
      }
      merged.nullable ||= col.nullable;
    });
    return merged as ColumnSpec;
  });
}

function checkInputs(inputs: readonly (string | MixtureInput)[]): MixtureInput[] {
  if (inputs.length === 0) throw invalidOption('uri', 'a mixture needs at least one dataset');
  return inputs.map((x, k) => {
    const input = typeof x === 'string' ? { uri: x } : x;
    if (!input || typeof input !== 'object' || typeof input.uri !== 'string' || input.uri.length === 0) {
      throw invalidOption('uri', `mixture stream ${k} must be a dataset URI or { uri, weight | samples | repeat }, got ${JSON.stringify(x)}`, { stream: k });
    }
    for (const f of Object.keys(input)) {
      if (!['uri', 'weight', 'samples', 'repeat'].includes(f)) throw invalidOption('uri', `mixture stream ${k}: unknown field ${JSON.stringify(f)} (uri, weight, samples, repeat)`, { stream: k });
    }
    return input;
  });
}

/** Opens every stream; on any failure closes what was opened. */
export async function openMixture(inputs: readonly (string | MixtureInput)[], options: StoreOptions & { columns?: string[]; epochSamples?: number }): Promise<OpenedMixture> {
  const specs = checkInputs(inputs);
  const stores: Store[] = [];
  try {
    const manifests: ManifestV1[] = [];
    for (const spec of specs) {
      const opened = await openDataset(spec.uri, options);
      stores.push(opened.shards);
      manifests.push(opened.manifest);
    }
    const uris = specs.map((s) => s.uri);
    const schema = mixtureSchema(manifests, uris, options.columns);
    const shards: ShardEntry[] = manifests.flatMap((m, k) => m.shards.map((s) => ({ ...s, path: routed(k, s.path) })));
    const manifest: ManifestV1 = {
      ...(manifests[0] as ManifestV1),
      schema,
      shards,
      rows: manifests.reduce((a, m) => a + m.rows, 0),
      bytes: manifests.reduce((a, m) => a + m.bytes, 0),
    };
    delete manifest.base;
    const streams: MixtureStream[] = specs.map((spec, k) => {
      const s: MixtureStream = { shards: (manifests[k] as ManifestV1).shards.map((x) => ({ rows: x.rows, bytes: x.bytes, hash: x.hash })) };
      if (spec.weight !== undefined) s.weight = spec.weight;
      if (spec.samples !== undefined) s.samples = spec.samples;
      if (spec.repeat !== undefined) s.repeat = spec.repeat;
      return s;
    });
    const spec = options.epochSamples === undefined ? {} : { epochSamples: options.epochSamples };
    return { uris, manifest, store: new MixtureStore(stores), streams: resolveMixture(streams, spec) };
  } catch (err) {
    await Promise.all(stores.map((s) => s.close().catch(() => undefined)));
    throw err;
  }
}

/** The stream of each global sample id (streams' ids are contiguous, in stream order). */
export function streamsOfIds(ids: readonly number[], streams: readonly ResolvedStream[]): Int32Array {
  const out = new Int32Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i] as number;
    let lo = 0;
    let hi = streams.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((streams[mid] as ResolvedStream).offset <= id) lo = mid;
      else hi = mid - 1;
    }
    // Empty streams share their offset with the next one: the id belongs to the last of them.
    out[i] = lo;
  }
  return out;
}
