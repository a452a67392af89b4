// Batch values as plain JSON: fixed-width columns flattened, strings as text, binary as base64,
// lists as arrays per row, 64-bit integers as numbers (strings past 2^53).
import type { Batch, NumericArray } from './batch.js';

function jsonNumber(v: number | bigint): number | string {
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  return v;
}

function flat(a: NumericArray): (number | string)[] {
  const out: (number | string)[] = new Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = jsonNumber(a[i]!);
  return out;
}

const decoder = new TextDecoder();

export function batchColumnsJson(batch: Batch, names?: readonly string[]): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  for (const region of batch.layout.columns) {
    if (names && !names.includes(region.name)) continue;
    const col = batch.columns[region.name]!;
    const valid = batch.valid[region.name];
    let values: unknown[];
    if ('offsets' in col) {
      values = [];
      for (let i = 0; i < batch.size; i++) {
        const part = col.values.subarray(col.offsets[i]!, col.offsets[i + 1]!);
        if (region.dtype === 'string') values.push(decoder.decode(part as Uint8Array));
        else if (region.dtype === 'binary') values.push(Buffer.from(part.buffer, part.byteOffset, part.byteLength).toString('base64'));
        else values.push(flat(part));
      }
    } else {
      values = region.dtype === 'bool' ? Array.from(col as Uint8Array, (v) => v === 1) : flat(col);
    }
    if (valid && region.kind !== 'fixed') values = values.map((v, i) => (valid[i] ? v : null));
    out[region.name] = values;
  }
  return out;
}
