// prep's output location: refuse a non-empty one unless --overwrite, and with --overwrite replace
// only a previous gpufeed dataset (its index.json and shards), never unrelated files. Old shards
// are removed only after the new manifest is in place, so a failed prep leaves the old dataset whole.
import { stat } from 'node:fs/promises';
import { ErrorCodes, GpufeedError } from '../errors.js';
import type { Store } from '../storage/store.js';
import { parseManifest } from './manifest.js';
import { MANIFEST_FILE, type ManifestV1 } from './types.js';

export const SHARDS_DIR = 'shards';
/** Leftovers of an interrupted prep: shard files and the stores' temporary siblings. */
const LEFTOVER_SHARD = /^shards\/[^/]+\.(arrow|parquet)(\.tmp-[^/]*)?$/;

export interface OutputPlan {
  /** Keys of the previous dataset, to delete once the new manifest is written. */
  oldKeys: string[];
  previous?: ManifestV1;
}

export async function prepareOutput(store: Store, overwrite: boolean): Promise<OutputPlan> {
  const local = store.localPath(MANIFEST_FILE);
  if (local) {
    const root = local.slice(0, -MANIFEST_FILE.length - 1);
    const st = await stat(root).catch(() => undefined);
    if (st && !st.isDirectory()) {
      throw new GpufeedError(ErrorCodes.INVALID_OPTION, `option out: ${root} exists and is not a folder`, { option: 'out', path: root });
    }
  }
  const existing = await store.list();
  if (existing.length === 0) return { oldKeys: [] };
  const sample = existing.slice(0, 5).map((o) => o.key).join(', ');
  if (!overwrite) {
    throw new GpufeedError(ErrorCodes.OUTPUT_NOT_EMPTY, `option out: ${store.uri} is not empty (${existing.length} files: ${sample}${existing.length > 5 ? ', ...' : ''}); pass --overwrite to replace a gpufeed dataset there, or pick an empty folder`, { option: 'out', path: store.uri });
  }
  const manifestObj = existing.find((o) => o.key === MANIFEST_FILE);
  if (!manifestObj) {
    throw new GpufeedError(ErrorCodes.OUTPUT_NOT_EMPTY, `option out: ${store.uri} is not empty and holds no gpufeed dataset (no index.json); --overwrite only replaces a gpufeed dataset, so nothing was touched`, { option: 'out', path: store.uri });
  }
  let previous: ManifestV1;
  try {
    previous = parseManifest(new TextDecoder().decode(await store.get(MANIFEST_FILE)), `${store.uri}/${MANIFEST_FILE}`);
  } catch (err) {
    throw new GpufeedError(ErrorCodes.OUTPUT_NOT_EMPTY, `option out: ${store.uri}/index.json is not a valid gpufeed manifest (${(err as Error).message}); --overwrite only replaces a gpufeed dataset, so nothing was touched`, { option: 'out', path: store.uri }, { cause: err });
  }
  const owned = new Set<string>([MANIFEST_FILE, ...previous.shards.map((s) => s.path)]);
  const foreign = existing.filter((o) => !owned.has(o.key) && !LEFTOVER_SHARD.test(o.key));
  if (foreign.length > 0) {
    const list = foreign.slice(0, 5).map((o) => o.key).join(', ');
    throw new GpufeedError(ErrorCodes.OUTPUT_NOT_EMPTY, `option out: ${store.uri} holds files that are not part of its gpufeed dataset (${list}${foreign.length > 5 ? ', ...' : ''}); --overwrite will not delete them, so nothing was touched`, { option: 'out', path: store.uri });
  }
  // index.json itself is replaced by the new one, not deleted.
  return { oldKeys: existing.map((o) => o.key).filter((k) => k !== MANIFEST_FILE), previous };
}

/** Deletes an object (local file or S3 object). */
export async function removeObject(store: Store, key: string): Promise<boolean> {
  await store.delete(key);
  return true;
}
