// Parquet DECIMAL columns read in place (INT32, INT64, FIXED_LEN_BYTE_ARRAY, BYTE_ARRAY), as
// float64. hyparquet scales decimals by a multiplication (not exact), so the generic path reads
// them unannotated, as their stored integers or bytes, and each value is divided once by
// formats/decimal.ts, exactly as prep converts them.
import type { FileMetaData, SchemaElement } from 'hyparquet';
import { storedDecimalToFloat64 } from '../decimal.js';
import { leafPath } from './column-path.js';

function isDecimal(el: SchemaElement): boolean {
  return el.converted_type === 'DECIMAL' || el.logical_type?.type === 'DECIMAL';
}

/** Scale of top-level column `name` when it is a decimal, else undefined. */
export function decimalScale(metadata: FileMetaData, name: string): number | undefined {
  const leaf = leafPath(metadata.schema, name)?.leaf;
  if (!leaf || !isDecimal(leaf) || leaf.num_children) return undefined;
  const lt = leaf.logical_type as { type?: string; scale?: number } | undefined;
  return (lt?.type === 'DECIMAL' ? lt.scale : undefined) ?? leaf.scale ?? 0;
}

const unannotated = new WeakMap<FileMetaData, FileMetaData>();

/** The footer with every decimal leaf's annotation removed (hyparquet then yields the stored values). */
export function withoutDecimalAnnotations(metadata: FileMetaData): FileMetaData {
  let out = unannotated.get(metadata);
  if (!out) {
    out = { ...metadata, schema: metadata.schema.map((el) => (isDecimal(el) && !el.num_children ? { ...el, converted_type: undefined, logical_type: undefined } : el)) };
    unannotated.set(metadata, out);
  }
  return out;
}

/** Stored decimals (numbers, bigints or bytes; null stays null) as doubles, in place. */
export function decimalsToFloat64(values: unknown[], scale: number): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v !== null && v !== undefined) values[i] = storedDecimalToFloat64(v, scale);
  }
}
