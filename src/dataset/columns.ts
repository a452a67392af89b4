// Column lookup by name, with an error that lists what the dataset does have.
import { ErrorCodes, GpufeedError } from '../errors.js';
import type { ColumnSpec, ManifestV1 } from './types.js';

export function columnByName(manifest: ManifestV1, name: string): ColumnSpec {
  const col = manifest.schema.find((c) => c.name === name);
  if (!col) throw unknownColumn(manifest, name);
  return col;
}

/** The named columns in the order asked, or the whole schema when `names` is undefined or empty. */
export function selectColumns(manifest: ManifestV1, names?: readonly string[]): ColumnSpec[] {
  if (!names || names.length === 0) return manifest.schema.slice();
  return names.map((n) => columnByName(manifest, n));
}

function unknownColumn(manifest: ManifestV1, name: string): GpufeedError {
  const known = manifest.schema.map((c) => c.name);
  return new GpufeedError(ErrorCodes.UNKNOWN_COLUMN, `unknown column ${JSON.stringify(name)}; the dataset has: ${known.join(', ')}`, { column: name, known });
}

/** Values per row of a fixed column (product of its shape). */
export function valuesPerRow(col: ColumnSpec): number {
  return (col.shape ?? [1]).reduce((a, b) => a * b, 1);
}
