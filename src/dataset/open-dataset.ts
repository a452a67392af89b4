// Opens a dataset for reading: index.json from the dataset URI, shards from the manifest's base
// (see base-uri.ts) or, without one, from beside index.json. Loader, verify and inspect share it.
import { openStore, type StoreOptions } from '../storage/index.js';
import type { Store } from '../storage/store.js';
import { resolveBaseUri } from './base-uri.js';
import { joinUri, loadManifest } from './manifest.js';
import { MANIFEST_FILE, type ManifestV1 } from './types.js';

export interface OpenedDataset {
  manifest: ManifestV1;
  /** The store shard paths are relative to; the caller closes it. */
  shards: Store;
  /** The URI of index.json's folder (equal to shards.uri without a base). */
  manifestUri: string;
}

export async function openDataset(uri: string, options: StoreOptions = {}): Promise<OpenedDataset> {
  const store = await openStore(uri, options);
  let manifest: ManifestV1;
  try {
    manifest = await loadManifest(store);
  } catch (err) {
    await store.close();
    throw err;
  }
  if (manifest.base === undefined) return { manifest, shards: store, manifestUri: store.uri };
  const manifestUri = store.uri;
  await store.close();
  const baseUri = resolveBaseUri(manifest.base, manifestUri, joinUri(manifestUri, MANIFEST_FILE));
  return { manifest, shards: await openStore(baseUri, options), manifestUri };
}
