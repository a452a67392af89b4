// Every Loader option key with the JavaScript type its value must have: the one list of valid
// keys. `satisfies Record<keyof LoaderOptions, ...>` makes the compiler fail when an option is
// added to (or removed from) the LoaderOptions interface without this table following, so the
// runtime check can never drift from the documented interface. Ranges are checked where each
// option is used; this only catches unknown keys and values of the wrong type (a JS caller or a
// config file has no compiler to do it).
import { invalidOption } from '../errors.js';
import { nearestName } from '../util/nearest-name.js';
import type { PackedLoaderOptions } from './loader.js';

export type OptionType = 'number' | 'string' | 'boolean' | 'string[]' | 'object' | 'function';

export const LOADER_OPTION_TYPES = {
  // loader.ts
  batchSize: 'number',
  columns: 'string[]',
  transforms: 'object',
  seed: 'number',
  shuffle: 'string',
  shuffleWindow: 'number',
  partitions: 'number',
  dropLast: 'boolean',
  pad: 'boolean',
  epochs: 'number',
  rank: 'number',
  worldSize: 'number',
  localRank: 'number',
  localWorldSize: 'number',
  resume: 'object',
  pack: 'object',
  mixtureChange: 'string',
  epochSamples: 'number',
  workers: 'number',
  slots: 'number',
  memoryBytes: 'number',
  pin: 'boolean',
  verifyPieces: 'boolean',
  decodeCacheBytes: 'number',
  varRowBytes: 'number',
  read: 'string',
  onCorrupt: 'string',
  maxQuarantined: 'number',
  quarantineLog: 'string',
  // metrics/options.ts (MetricsOptions)
  metricsPort: 'number',
  metricsHost: 'string',
  metricsDataset: 'string',
  stallTimeout: 'number',
  stallAction: 'string',
  // storage/index.ts (StoreOptions)
  s3Endpoint: 'string',
  s3Region: 'string',
  s3: 'object',
  // pipeline/prefetcher.ts (ShardSourceOptions) and cache/options.ts (ShardCacheOptions)
  cache: 'object',
  prefetchBytes: 'number',
  prefetchConcurrency: 'number',
  cacheDir: 'string',
  cacheBytes: 'number',
  minFreeBytes: 'number',
  lockTimeoutMs: 'number',
  admitTimeoutMs: 'number',
  pollMs: 'number',
  verifyOnFirstUse: 'boolean',
  onEvent: 'function',
} as const satisfies Record<keyof PackedLoaderOptions, OptionType>;

const TYPE_WORDS: Record<OptionType, string> = {
  number: 'a number',
  string: 'a string',
  boolean: 'a boolean (true or false)',
  'string[]': 'an array of strings',
  object: 'an object',
  function: 'a function',
};

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number' && Number.isNaN(v)) return 'NaN';
  return typeof v === 'string' ? `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}` : `${typeof v} ${String(v)}`.slice(0, 60);
}

function hasType(v: unknown, t: OptionType): boolean {
  switch (t) {
    case 'number':
      return typeof v === 'number' && !Number.isNaN(v);
    case 'string':
    case 'boolean':
    case 'function':
      return typeof v === t;
    case 'string[]':
      return Array.isArray(v) && v.every((x) => typeof x === 'string');
    case 'object':
      return typeof v === 'object' && v !== null && !Array.isArray(v);
  }
}

/**
 * Rejects unknown keys (naming the nearest valid one) and values of the wrong JavaScript type
 * (naming the expected type). An undefined value counts as absent.
 */
export function checkLoaderOptionTypes(options: object): void {
  const types: Record<string, OptionType> = LOADER_OPTION_TYPES;
  for (const [key, value] of Object.entries(options)) {
    const expected = Object.hasOwn(types, key) ? types[key] : undefined;
    if (expected === undefined) {
      const near = nearestName(key, Object.keys(types));
      throw invalidOption(key, `is not a Loader option${near ? `; did you mean ${near}?` : ''} (valid options are listed in README.md, "Loader options")`, near ? { nearest: near } : {});
    }
    if (value === undefined) continue;
    if (!hasType(value, expected)) {
      throw invalidOption(key, `must be ${TYPE_WORDS[expected]}, got ${typeOf(value)}`, { expected });
    }
  }
}
