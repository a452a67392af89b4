// Small shared helpers of the benchmark scripts: numeric `--name value` arguments, synthetic shards.
export function numberArg(name: string, fallback: number, argv: readonly string[] = process.argv): number {
  const i = argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(argv[i + 1]) : fallback;
  return Number.isFinite(v) ? v : fallback;
}

/**
 * `shards` shard sizes that vary +-50% around the mean (deterministically) and sum exactly to
 * `samples`, with `bytesPerRow` bytes a row.
 */
export function syntheticShards(samples: number, shards: number, bytesPerRow: number): { rows: number; bytes: number }[] {
  const mean = samples / shards;
  const out: { rows: number; bytes: number }[] = [];
  let total = 0;
  for (let i = 0; i < shards; i++) {
    const rows = i === shards - 1 ? samples - total : Math.max(1, Math.round(mean * (0.5 + ((i * 2654435761) % 1000) / 1000)));
    out.push({ rows, bytes: rows * bytesPerRow });
    total += rows;
  }
  if (total !== samples || out.some((s) => s.rows < 0)) throw new Error('shard generator: sizes do not add up');
  return out;
}
